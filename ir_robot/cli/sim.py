"""``ir-robot sim needle``: run the needle world headless and write its pictures."""

from __future__ import annotations

import json
from pathlib import Path


def write_needle_scene(
    seed: int,
    out: Path,
    frames: int = 6,
    *,
    phantom: str = "forearm",
    randomize: bool = False,
    motion: bool = False,
    gui: bool = False,
    pitch_deg: float = 30.0,
) -> dict:
    """Straight insertion into the first vein; writes PNGs, masks, force plot, scene.json. Returns the scene dict."""
    import numpy as np

    from ir_robot.config import to_dict
    from ir_robot.sim.scenes import plan_straight_insertion, run_straight_insertion
    from ir_robot.sim.world import NeedleWorld, WorldConfig
    from ir_robot.viz import colorize_labels, draw_marker, new_figure, overlay, save_png

    out.mkdir(parents=True, exist_ok=True)
    cfg = WorldConfig(phantom=phantom, randomize=randomize, motion=motion)
    with NeedleWorld(cfg, gui=gui) as world:
        world.reset(seed=seed)
        ph = world.phantom
        vein = next(i for i, v in enumerate(ph.spec.vessels) if v.kind == "vein")
        plan = plan_straight_insertion(ph, vessel=vein, pitch_deg=pitch_deg)
        trace, shots = run_straight_insertion(world, plan, rate_mm_s=2.0, frames=frames)
        files = []
        for k, (ins, us, nir) in enumerate(shots):
            for fr in (us, nir):
                stem = f"{fr.modality}_{k:03d}"
                assert fr.labels is not None  # the simulator renders every frame with its label mask
                save_png(out / f"{stem}.png", fr.image)
                save_png(out / f"{stem}_mask.png", fr.labels)
                save_png(out / f"{stem}_mask_color.png", colorize_labels(fr.labels))
                save_png(out / f"{stem}_overlay.png", draw_marker(overlay(fr.image, fr.labels), fr.tip_px))
                files.append(
                    {
                        "file": f"{stem}.png",
                        "modality": fr.modality,
                        "insert_mm": round(float(ins), 3),
                        "t_s": fr.stamp_s,
                        "spacing_mm": list(fr.spacing_mm),
                        "tip_px": list(fr.tip_px) if fr.tip_px is not None else None,
                        "vessel_centres_px": [list(c) for c in fr.vessel_centres_px],
                        "vessel_depths_mm": list(fr.vessel_depths_mm),
                        "vessel_kinds": list(fr.vessel_kinds),
                    }
                )
        fig, ax = new_figure(figsize=(7, 4))
        ax.plot(trace["insert_mm"], trace["force_n"], lw=0.8, color="0.6", label="measured (noisy)")
        ax.plot(trace["insert_mm"], trace["true_force_n"], lw=1.4, color="C0", label="model")
        for ev in trace["events"]:
            ax.axvline(ev.insert_mm, color="C3", ls="--", lw=0.8)
            ax.annotate(
                f"{ev.membrane}\n{ev.peak_force_n:.2f} N",
                (ev.insert_mm, ev.peak_force_n),
                fontsize=7,
                xytext=(3, 5),
                textcoords="offset points",
            )
        lumen = np.asarray(trace["in_lumen"], bool)
        if lumen.any():
            ax.axvspan(
                trace["insert_mm"][lumen][0], trace["insert_mm"][lumen][-1], color="C0", alpha=0.1, label="tip in lumen"
            )
        ax.set_xlabel("insertion from pivot (mm)")
        ax.set_ylabel("axial needle force (N)")
        ax.set_title(
            f"straight insertion into vessel {vein} ({ph.spec.vessels[vein].diameter_mm:.1f} mm vein), seed {seed}"
        )
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "force_vs_depth.png", dpi=120)
        np.savetxt(
            out / "force_vs_depth.csv",
            np.column_stack([trace["insert_mm"], trace["force_n"], trace["true_force_n"], trace["tissue"]]),
            delimiter=",",
            header="insert_mm,force_n,true_force_n,tissue_code",
            comments="",
        )
        scene = {
            "seed": seed,
            "phantom": to_dict(ph.spec),
            "vessel_centres_mm_at_x0": [
                {
                    "index": i,
                    "kind": v.kind,
                    "y_mm": float(ph.centreline(0.0)[0][i]),
                    "depth_mm": float(-ph.centreline(0.0)[1][i]),
                    "diameter_mm": v.diameter_mm,
                }
                for i, v in enumerate(ph.spec.vessels)
            ],
            "insertion": {
                "vessel": vein,
                "pivot_mm": list(plan.pivot_mm),
                "pitch_rad": plan.pitch_rad,
                "target_mm": list(plan.target_mm),
                "distance_mm": plan.distance_mm,
                "events": [
                    {
                        "membrane": e.membrane,
                        "vessel_index": e.vessel_index,
                        "peak_force_n": e.peak_force_n,
                        "insert_mm": e.insert_mm,
                        "t_s": e.t_s,
                    }
                    for e in trace["events"]
                ],
                "reached_lumen": bool(lumen.any()),
            },
            "frames": files,
        }
        (out / "scene.json").write_text(json.dumps(scene, indent=2))
    return scene


def _needle(args) -> int:
    scene = write_needle_scene(
        args.seed,
        Path(args.out),
        args.frames,
        phantom=args.phantom,
        randomize=args.random,
        motion=args.motion,
        gui=args.gui,
    )
    ins = scene["insertion"]
    print(f"wrote {len(scene['frames'])} frames, force_vs_depth.png and scene.json to {args.out}")
    print(
        "events: "
        + ", ".join(f"{e['membrane']} @ {e['insert_mm']:.2f} mm ({e['peak_force_n']:.2f} N)" for e in ins["events"])
    )
    return 0


def register(sub) -> None:
    """Adds ``ir-robot sim needle`` to the subcommand parsers ``sub``."""
    p = sub.add_parser("sim", help="run a simulation world headless and write its pictures")
    ws = p.add_subparsers(dest="world", metavar="WORLD")
    ws.required = True
    n = ws.add_parser("needle", help="needle-insertion world: US/NIR frames + masks, force plot, scene.json")
    n.add_argument("--seed", type=int, default=0)
    n.add_argument("--out", default="out/sim_needle", help="output folder (created)")
    n.add_argument("--frames", type=int, default=6, help="ultrasound/NIR frame pairs along the insertion")
    n.add_argument("--phantom", default="forearm", help="phantom name under sim/phantoms/ or a YAML path")
    n.add_argument("--random", action="store_true", help="random phantom drawn from --seed")
    n.add_argument("--motion", action="store_true", help="phantom motion on")
    n.add_argument("--gui", action="store_true", help="open the PyBullet window")
    n.set_defaults(func=_needle)
