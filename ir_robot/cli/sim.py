"""``ir-robot sim needle`` and ``ir-robot sim catheter``: run a world headless and write its pictures."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from ir_robot.sim.endovascular import CatheterWorld, CatheterWorldState


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


#: the anatomies ``--anatomy`` names without a file (drawn from the seed)
CATHETER_ANATOMIES = ("random", "type1", "type2", "type3", "bovine")
#: the tip-camera strip of ``ir-robot sim catheter``: (caption, surface, normal force N)
CATHETER_TIP_STRIP = (("free (blood)", "blood", 0.0), ("tissue 0.5 N", "tissue", 0.5), ("valve 0.8 N", "valve", 0.8))
#: sizes (inches at FIGURE_DPI) of anatomy_3d.png and force.png
ANATOMY_FIGSIZE_IN = (9.0, 9.0)
FORCE_FIGSIZE_IN = (10.0, 4.5)
FIGURE_DPI = 100
#: the fluoroscopy table is panned when the tip's projection leaves this central fraction of the detector
_VIEW_MARGIN = 0.15


def _jsonable(value: Any) -> Any:
    """``value`` with numpy scalars and arrays turned into plain Python numbers and lists (for scene.json)."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def _keep_tip_in_view(world: CatheterWorld) -> None:
    """Pan the fluoroscopy table (move the isocentre across the view) so the tip is in the picture's centre.

    Only when the tip's projection has left the detector's central region, as an operator pans in steps;
    the C-arm angles are kept.
    """
    import numpy as np

    geom = world.fluoro.geometry
    tip = np.asarray(world.state().tip_mm, dtype=np.float64)
    px, depth = geom.project(tip)
    col, row = float(px[0, 0]), float(px[0, 1])
    h, w = geom.shape
    inside = _VIEW_MARGIN * w <= col <= (1.0 - _VIEW_MARGIN) * w and _VIEW_MARGIN * h <= row <= (1.0 - _VIEW_MARGIN) * h
    if inside and depth[0] > 0.0:
        return
    iso = np.asarray(world.fluoro.carm.isocentre_mm, dtype=np.float64)
    d = geom.view_dir
    centred = tip - float((tip - iso) @ d) * d  # the isocentre slid across the view until the tip is on the axis
    world.fluoro.set_pose(isocentre_mm=(float(centred[0]), float(centred[1]), float(centred[2])))


def write_video(frames: Sequence[np.ndarray], path: Path, fps: float) -> dict[str, Any]:
    """Write grey or BGR uint8 ``frames`` as an MP4 (OpenCV, mp4v) at ``path``; without the codec, an animated GIF
    (Pillow) beside it, and without Pillow a folder of PNG frames. Returns what was written and how.
    """
    import cv2
    import numpy as np

    from ir_robot.viz import save_png

    bgr = [np.ascontiguousarray(f if f.ndim == 3 else cv2.cvtColor(f, cv2.COLOR_GRAY2BGR)) for f in frames]
    if not bgr:
        return {"file": None, "format": None, "frames": 0, "note": "no frames"}
    h, w = bgr[0].shape[:2]
    path.unlink(missing_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), float(fps), (w, h), True)
    if writer.isOpened():
        for f in bgr:
            writer.write(f)
        writer.release()
        if path.is_file() and path.stat().st_size > 0:
            return {"file": path.name, "format": "mp4", "frames": len(bgr), "note": ""}
    else:
        writer.release()
    path.unlink(missing_ok=True)
    note = "OpenCV could not write MP4 (mp4v codec missing)"
    try:
        from PIL import Image
    except ImportError:
        folder = path.with_suffix("")
        folder = folder.with_name(folder.name + "_frames")
        for k, f in enumerate(bgr):
            save_png(folder / f"{k:04d}.png", f)
        return {"file": folder.name, "format": "png frames", "frames": len(bgr), "note": note + "; Pillow missing"}
    gif = path.with_suffix(".gif")
    images = [Image.fromarray(cv2.cvtColor(f, cv2.COLOR_BGR2RGB)) for f in bgr]
    images[0].save(gif, save_all=True, append_images=images[1:], duration=int(round(1000.0 / fps)), loop=0)
    return {"file": gif.name, "format": "gif", "frames": len(bgr), "note": note + "; wrote an animated GIF"}


def _plot_catheter_anatomy(world: CatheterWorld, route_mm: np.ndarray, target: str, title: str, path: Path) -> None:
    """The anatomy in 3-D and coronal views with the instrument's final shape and the route to ``target``."""
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    from ir_robot.sim.anatomy.plot import LABELS, plot_anatomy
    from ir_robot.viz import new_figure

    fig, _ = new_figure(figsize=ANATOMY_FIGSIZE_IN)
    fig.clf()
    grid = fig.add_gridspec(1, 2, width_ratios=(1.2, 1.0), wspace=0.05, left=0.0, right=0.97, top=0.92, bottom=0.08)
    ax3 = fig.add_subplot(grid[0], projection="3d")
    ax2 = fig.add_subplot(grid[1])
    tree = world.tree
    x = world.device.positions
    tip = np.asarray(world.state().tip_mm)
    plot_anatomy(tree, ax3, view="3d")
    ax3.plot(route_mm[:, 0], route_mm[:, 1], route_mm[:, 2], color="#27ae60", ls="--", lw=1.0, label="route")
    if len(x) > 1:
        ax3.plot(x[:, 0], x[:, 1], x[:, 2], color="k", lw=2.0, label=world.spec.name)
    ax3.scatter([tip[0]], [tip[1]], [tip[2]], color="#f39c12", s=25, depthshade=False, label="tip")
    lo, hi = tree.bounds()
    ax3.set_box_aspect(tuple(float(v) for v in np.maximum(hi - lo, 1.0)), zoom=1.3)
    ax3.view_init(elev=12.0, azim=-62.0)
    ax3.invert_yaxis()  # anterior towards the viewer
    ax3.legend(fontsize=7, loc="upper left")
    ax3.tick_params(labelsize=6)
    for axis in (ax3.xaxis, ax3.yaxis):
        axis.set_major_locator(MaxNLocator(3))
    ax3.set_title("3-D", fontsize=9)
    plot_anatomy(tree, ax2, view="coronal", labels=True)
    ax2.plot(route_mm[:, 0], route_mm[:, 2], color="#27ae60", ls="--", lw=1.0)
    if len(x) > 1:
        ax2.plot(x[:, 0], x[:, 2], color="k", lw=1.6)
    ax2.plot([tip[0]], [tip[2]], "o", color="#f39c12", ms=4)
    ax2.set_title(f"coronal; route to {LABELS.get(target, target)} dashed", fontsize=9)
    ax2.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=FIGURE_DPI)
    plt.close(fig)


def _plot_catheter_forces(states: Sequence[CatheterWorldState], title: str, path: Path) -> None:
    """Axial force at the drive, tip force and max wall force vs time, the 1.5 N limit, events and pull-backs."""
    import matplotlib.pyplot as plt
    import numpy as np

    from ir_robot.sim.catheter.contact import WALL_FORCE_LIMIT_N
    from ir_robot.viz import new_figure

    t = np.array([s.t_s for s in states])
    fig, ax = new_figure(figsize=FORCE_FIGSIZE_IN)
    if len(t):
        back = np.array([s.velocity.insert_mm < 0.0 for s in states])
        first = True
        for k0, k1 in _runs(back):  # steps where the drive pulled back (a retry)
            ax.axvspan(
                t[k0] - 0.1 if k0 == 0 else t[k0 - 1], t[k1], color="0.85", lw=0, label="pull-back" if first else None
            )
            first = False
        ax.plot(t, [s.force_n for s in states], lw=0.6, color="0.55", label="axial at drive (measured)")
        ax.plot(t, [s.true_force_n for s in states], lw=1.2, color="C0", label="axial at drive")
        ax.plot(t, [math.hypot(*s.tip_force_n) for s in states], lw=1.0, color="C1", label="|tip force|")
        ax.plot(t, [s.max_wall_force_n for s in states], lw=1.0, color="C3", label="max wall force")
        events = [e for e in states[-1].events if "force_n" in e]
        if events:
            ax.plot(
                [e["time_s"] for e in events],
                [e["force_n"] for e in events],
                "v",
                color="C3",
                ms=5,
                label=f"event: wall force > {WALL_FORCE_LIMIT_N:g} N ({len(events)})",
            )
    ax.axhline(WALL_FORCE_LIMIT_N, color="C3", ls="--", lw=0.9, label=f"{WALL_FORCE_LIMIT_N:g} N limit")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("force (N)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=FIGURE_DPI)
    plt.close(fig)


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) index of each run of True in ``flags``."""
    out: list[tuple[int, int]] = []
    start = None
    for k, f in enumerate(flags):
        if f and start is None:
            start = k
        elif not f and start is not None:
            out.append((start, k - 1))
            start = None
    if start is not None:
        out.append((start, len(flags) - 1))
    return out


def _write_force_csv(states: Sequence[CatheterWorldState], path: Path) -> None:
    """One row per control step: time, drive joints, the forces of the force plot, contacts, the tip's branch."""
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "t_s",
                "insert_mm",
                "roll_rad",
                "force_n",
                "true_force_n",
                "tip_force_n",
                "max_wall_force_n",
                "n_contacts",
                "tip_branch",
            ]
        )
        for s in states:
            w.writerow(
                [
                    f"{s.t_s:.3f}",
                    f"{s.inserted_mm:.4f}",
                    f"{s.joints.roll_rad:.5f}",
                    f"{s.force_n:.5f}",
                    f"{s.true_force_n:.5f}",
                    f"{math.hypot(*s.tip_force_n):.5f}",
                    f"{s.max_wall_force_n:.5f}",
                    s.n_contacts,
                    s.tip_branch,
                ]
            )


def _anatomy_summary(world: CatheterWorld, requested: str) -> dict[str, Any]:
    """Where the anatomy came from, its arch type (when it has an arch) and its branches."""
    from ir_robot.sim.anatomy.measure import arch_type, is_bovine

    tree = world.tree
    try:
        arch: str | None = arch_type(tree)
        bovine: bool | None = is_bovine(tree)
    except (KeyError, ValueError):  # a user's tree without the arch and its great vessels
        arch, bovine = None, None
    return {
        "requested": requested,
        "source": tree.source,
        "content_hash": tree.content_hash(),
        "arch_type": arch,
        "bovine": bovine,
        "branches": [
            {
                "name": b.name,
                "parent": b.parent,
                "length_mm": round(float(b.length_mm), 2),
                "mean_radius_mm": round(float(b.radii_mm.mean()), 2),
            }
            for b in tree.branches
        ],
    }


def write_catheter_scene(
    seed: int,
    out: Path,
    *,
    anatomy: str = "random",
    instrument: str = "guidewire_035_angled",
    target: str = "LCCA",
    max_time_s: float = 120.0,
    gui: bool = False,
    video_period_s: float = 1.0,
    video_px: int = 256,
    video_fps: float = 8.0,
) -> dict[str, Any]:
    """Scripted centreline insertion to ``target`` in the catheter world; writes the anatomy with the instrument,
    fluoroscopy / angiogram / DSA at the end, a tip-camera strip, the force plot + CSV, a video and scene.json.

    Returns the scene dict (also in scene.json). Bad input (anatomy file, instrument, target, times) raises
    :class:`~ir_robot.core.errors.ConfigError` before anything is written.
    """
    import cv2
    import numpy as np

    from ir_robot.core.errors import ConfigError
    from ir_robot.sim.anatomy.graph import resolve_name
    from ir_robot.sim.catheter.contact import WALL_FORCE_LIMIT_N
    from ir_robot.sim.endovascular import CatheterWorld, CatheterWorldConfig
    from ir_robot.sim.endovascular.navigate import InsertionParams, insert_to_target
    from ir_robot.sim.imaging.figures import _caption
    from ir_robot.sim.imaging.fluoroscopy import dsa_display
    from ir_robot.viz import save_png

    if not (max_time_s > 0.0 and math.isfinite(max_time_s)):
        raise ConfigError(f"--max-time must be a positive number of seconds, got {max_time_s!r}")
    if not (video_period_s > 0.0 and math.isfinite(video_period_s)):
        raise ConfigError(f"video period must be a positive number of seconds, got {video_period_s!r}")
    if not 32 <= video_px <= 1024:
        raise ConfigError(f"video size must be 32..1024 px, got {video_px!r}")
    cfg = CatheterWorldConfig(anatomy=anatomy, instrument=instrument)
    with CatheterWorld(cfg, gui=gui) as world:
        world.reset(seed=seed)
        target_name = resolve_name(target, world.tree.names)  # an unknown name lists the tree's branches
        out.mkdir(parents=True, exist_ok=True)
        home = world.fluoro.carm.isocentre_mm
        frames: list[np.ndarray] = []

        def grab(state: CatheterWorldState) -> None:
            _keep_tip_in_view(world)
            frame = world.fluoroscopy()
            small = cv2.resize(frame.image, (video_px, video_px), interpolation=cv2.INTER_AREA)
            text = f"t {state.t_s:5.1f} s  {state.inserted_mm:4.0f} mm  F {state.true_force_n:+.2f} N"
            img = cv2.cvtColor(_caption(np.asarray(small, dtype=np.uint8), text), cv2.COLOR_RGB2BGR)
            scale = video_px / frame.image.shape[1]
            col, row = (float(v) * scale for v in frame.tip_px[0])
            if 0.0 <= col < video_px and 0.0 <= row < video_px:  # a ring around the tip, leaving the tip visible
                cv2.circle(img, (round(col), round(row)), max(4, video_px // 32), (0, 200, 255), 1, cv2.LINE_AA)
            frames.append(img)

        grabbed_t = 0.0

        def on_step(state: CatheterWorldState) -> None:
            nonlocal grabbed_t
            if state.t_s >= grabbed_t + video_period_s - 1e-6:
                grab(state)
                grabbed_t = state.t_s

        grab(world.state())
        result = insert_to_target(world, target_name, InsertionParams(max_time_s=max_time_s), on_step=on_step)
        final = world.state()
        if final.t_s > grabbed_t + 1e-6:
            grab(final)  # the last frame shows where the insertion ended

        files: list[str] = []

        def written(path: Path) -> Path:
            files.append(path.name)
            return path

        # the end of the insertion in the configured view, panned if the tip is out of it
        world.fluoro.set_pose(isocentre_mm=home)
        _keep_tip_in_view(world)
        fluoro = world.fluoroscopy(0.0)
        angio = world.fluoroscopy(1.0)
        save_png(written(out / "fluoro.png"), fluoro.image)
        save_png(written(out / "angio.png"), angio.image)
        save_png(written(out / "dsa.png"), dsa_display(world.fluoro.dsa(angio, fluoro)))

        tiles, tip_cam = [], []
        for caption, surface, force in CATHETER_TIP_STRIP:
            cam = world.camera.render(surface, force)
            tile = np.asarray(cv2.resize(cam.image, (256, 256), interpolation=cv2.INTER_LINEAR), dtype=np.uint8)
            tiles.append(_caption(tile, caption))
            tip_cam.append(
                {
                    "caption": caption,
                    "surface": surface,
                    "normal_force_n": force,
                    "label": cam.label,
                    "contact_ratio": round(float(cam.contact_ratio), 4),
                }
            )
        save_png(written(out / "tipcam_strip.png"), cv2.cvtColor(np.hstack(tiles), cv2.COLOR_RGB2BGR))

        how = f"reached in {result.time_s:.1f} s" if result.reached else f"not reached ({result.reason})"
        title = f"{anatomy} seed {seed}, {world.spec.name} to {target_name}: {how}, {result.retries} retries"
        start_arc = world.tree.branch(world.access_branch).length_mm - world.config.access_depth_mm
        route = world.tree.route(
            world.access_branch,
            target_name,
            start_arc_mm=start_arc,
            target_arc_mm=world.tree.branch(target_name).length_mm,
        )
        _plot_catheter_anatomy(world, route.points_mm, target_name, title, written(out / "anatomy_3d.png"))
        _plot_catheter_forces(result.states, title, written(out / "force.png"))
        _write_force_csv(result.states, written(out / "force.csv"))
        video = write_video(frames, out / "insertion.mp4", video_fps)
        if video["file"] is not None:
            files.append(video["file"])
        video.update(period_s=video_period_s, size_px=video_px, fps=video_fps)

        states = result.states
        tip_mag = [math.hypot(*s.tip_force_n) for s in states]
        axial = [s.true_force_n for s in states]
        events = list(final.events)
        geom = world.fluoro.carm
        scene: dict[str, Any] = {
            "seed": seed,
            "anatomy": _anatomy_summary(world, anatomy),
            "instrument": {"name": world.spec.name, "kind": world.spec.kind, "length_mm": world.spec.length_mm},
            "access": world.access_branch,
            "target": target_name,
            "insertion": {
                "reached": result.reached,
                "time_s": round(result.time_s, 3),
                "reason": result.reason,
                "retries": result.retries,
                "route_length_mm": round(result.route_length_mm, 2),
                "max_time_s": max_time_s,
                "steps": len(states),
            },
            "final": {
                "t_s": round(final.t_s, 3),
                "tip_mm": [round(v, 3) for v in final.tip_mm],
                "tip_direction": [round(v, 4) for v in final.tip_direction],
                "tip_branch": final.tip_branch,
                "inserted_mm": round(final.inserted_mm, 3),
                "roll_rad": round(final.joints.roll_rad, 4),
                "tip_px_in_fluoro": [round(float(v), 2) for v in fluoro.tip_px[0]],
                "carm": {
                    "lao_deg": geom.lao_deg,
                    "cranial_deg": geom.cranial_deg,
                    "isocentre_mm": [round(float(v), 2) for v in geom.isocentre_mm],
                },
            },
            "forces": {
                "limit_n": WALL_FORCE_LIMIT_N,
                "max_axial_n": round(max(axial, default=0.0), 4),
                "min_axial_n": round(min(axial, default=0.0), 4),
                "max_tip_n": round(max(tip_mag, default=0.0), 4),
                "max_wall_n": round(max((s.max_wall_force_n for s in states), default=0.0), 4),
                "steps_over_limit": sum(1 for s in states if s.max_wall_force_n > WALL_FORCE_LIMIT_N),
                "final_axial_n": round(final.true_force_n, 4),
            },
            "events": events,
            "tip_camera": tip_cam,
            "video": video,
            "files": [*files, "scene.json"],
        }
        (out / "scene.json").write_text(json.dumps(_jsonable(scene), indent=2))
    return scene


def _catheter(args: Any) -> int:
    scene = write_catheter_scene(
        args.seed,
        Path(args.out),
        anatomy=args.anatomy,
        instrument=args.instrument,
        target=args.target,
        max_time_s=args.max_time,
        gui=args.gui,
    )
    ins, forces, video = scene["insertion"], scene["forces"], scene["video"]
    a = scene["anatomy"]
    arch = f", arch type {a['arch_type']}" + (" (bovine)" if a["bovine"] else "") if a["arch_type"] else ""
    print(f"anatomy {a['requested']} seed {scene['seed']}{arch}; {scene['instrument']['name']} to {scene['target']}")
    if ins["reached"]:
        print(f"reached in {ins['time_s']:.1f} s of simulated time, {ins['retries']} retries")
    else:
        print(
            f"not reached: {ins['reason']} after {ins['time_s']:.1f} s, {ins['retries']} retries "
            f"(tip in {scene['final']['tip_branch']})"
        )
    print(
        f"max wall force {forces['max_wall_n']:.2f} N, {len(scene['events'])} events over {forces['limit_n']:g} N, "
        f"max axial force at the drive {forces['max_axial_n']:.2f} N"
    )
    if video["note"]:
        print(f"video: {video['note']}")
    print(f"wrote {', '.join(scene['files'])} to {args.out}")
    return 0


def register(sub) -> None:
    """Adds ``ir-robot sim needle`` and ``ir-robot sim catheter`` to the subcommand parsers ``sub``."""
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
    c = ws.add_parser(
        "catheter",
        help="catheter world: anatomy with the instrument, fluoroscopy/angiogram/DSA, tip camera, "
        "force plot and video of a scripted insertion, scene.json",
    )
    c.add_argument(
        "--anatomy",
        default="random",
        help=f"{' | '.join(CATHETER_ANATOMIES)} (drawn from --seed) or a centreline YAML/CSV or archetype YAML",
    )
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--out", default="out/sim_catheter", help="output folder (created)")
    c.add_argument("--instrument", default="guidewire_035_angled", help="name under sim/instruments/ or a YAML path")
    c.add_argument("--target", default="LCCA", help="branch name or alias to insert to (LCCA, BCA, LSA, renal_left...)")
    c.add_argument("--max-time", type=float, default=120.0, help="simulated seconds the insertion may take")
    c.add_argument("--gui", action="store_true", help="open the PyBullet window")
    c.set_defaults(func=_catheter)
