"""``ir-robot demo``: one autonomous venipuncture in the simulator, with pictures.

Writes to ``--out``:

* ``overlay.mp4`` (when OpenCV can encode it) and ``frames/frame_NNNN.png`` (every
  ``png_every`` ultrasound frame): left, the transverse ultrasound with the perception
  masks (vein blue, artery red, needle yellow), the tracked target, the planned needle
  plane and the detected needle; right, the NIR image with the veins perception found,
  the chosen target, the planned needle path and the tip seen from above;
* ``confirm.png``: the overlay at the moment the tip was confirmed in the lumen;
* ``force.png``: measured and filtered axial force and insertion depth against time,
  phases shaded, punctures marked, the safety ceiling drawn;
* ``result.json``: the line printed on stdout plus the event log.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ir_robot.control.config import VenipunctureConfig, load_venipuncture_config
from ir_robot.planning.geometry import frame_probe, world_to_nir, world_to_us

PHASE_COLOURS = {
    "scan": "0.85",
    "align": "#cfe2f3",
    "insert": "#fce5cd",
    "confirm": "#d9ead3",
    "hold": "#b6d7a8",
    "retract": "#ead1dc",
    "abort": "#f4cccc",
}


def choose_perception(kind: str, config: VenipunctureConfig):
    """(us, nir, label): ``auto`` uses the trained model of each modality whose weights exist."""
    from ir_robot.evaluation.episode import make_perception, perception_label, resolve_perception

    choice = resolve_perception(kind)
    missing = [m for m, k in choice.items() if kind == "auto" and k != "model"]
    if missing:
        print(
            f"ir-robot demo: no trained weights for {missing} under models/: using ground-truth perception "
            f"for them (train with `ir-robot train-perception us|nir`)",
            file=sys.stderr,
        )
    us, nir = make_perception(kind, config)
    return us, nir, perception_label(choice)


def _to_bgr(img: np.ndarray, scale: int) -> np.ndarray:
    import cv2

    out = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 else img.copy()
    return cv2.resize(out, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)


def _pt(rc, scale: int) -> tuple[int, int]:
    return int(round((rc[1] + 0.5) * scale - 0.5)), int(round((rc[0] + 0.5) * scale - 0.5))


def render_overlay(ctl, us_frame, nir_frame, state, scale: int = 2) -> np.ndarray:
    """One composite picture (BGR) of what the controller sees and plans."""
    import cv2

    from ir_robot.viz import overlay

    m = ctl.last_us
    mask = m.mask if (m is not None and m.mask is not None and m.stamp_s == us_frame.stamp_s) else None
    us = _to_bgr(overlay(us_frame.image, mask, alpha=0.4), scale)
    shape, sp = us_frame.shape, us_frame.spacing_mm
    probe = frame_probe(us_frame, state.joints)
    plan = ctl.plan
    if plan is not None:
        # the needle plane (x-z at the pivot's y) seen edge-on: a vertical line down to the target depth
        ty, tz = ctl.target_at(us_frame.stamp_s) if ctl.tracker.locked else plan.target_mm[1:]
        top, _ = world_to_us(np.array([probe.x_mm, state.joints.y_mm, 0.0]), shape, sp, probe)
        bot, _ = world_to_us(np.array([probe.x_mm, state.joints.y_mm, tz]), shape, sp, probe)
        a, b = _pt(top, scale), _pt(bot, scale)
        for k in range(0, max(1, b[1] - a[1]), 12):
            cv2.line(us, (a[0], a[1] + k), (a[0], min(b[1], a[1] + k + 6)), (0, 200, 0), 1, cv2.LINE_AA)
        if ctl.tracker.locked:
            c, _ = world_to_us(np.array([probe.x_mm, ty, tz]), shape, sp, probe)
            axes = (
                max(1, int(ctl.tracker.size_mm[0] / 2 / sp[1] * scale)),
                max(1, int(ctl.tracker.size_mm[1] / 2 / sp[0] * scale)),
            )
            cv2.ellipse(us, _pt(c, scale), axes, 0, 0, 360, (0, 255, 0), 1, cv2.LINE_AA)
            cv2.drawMarker(us, _pt(c, scale), (0, 255, 0), cv2.MARKER_CROSS, 10, 1)
    if m is not None and m.needle_yz_mm is not None and m.stamp_s == us_frame.stamp_s:
        c, _ = world_to_us(np.array([probe.x_mm, *m.needle_yz_mm]), shape, sp, probe)
        cv2.circle(us, _pt(c, scale), 7, (0, 230, 255), 1, cv2.LINE_AA)
    panels = [us]
    if nir_frame is not None:
        from ir_robot.core.types import NirView

        v = nir_frame.meta.get("view", {}) if isinstance(nir_frame.meta, dict) else {}
        view = NirView(v.get("x_mm", 0.0), v.get("y_mm", 0.0), v.get("fov_mm", 50.0))
        nir = _to_bgr(nir_frame.image, scale)
        nshape, nsp = nir_frame.shape, nir_frame.spacing_mm
        for tr in ctl.nir_traces:
            pts = world_to_nir(tr.xy_mm, nshape, nsp, view)
            poly = np.array([_pt(p, scale) for p in pts], np.int32)
            cv2.polylines(nir, [poly], False, (255, 140, 0), 1, cv2.LINE_AA)
        if plan is not None:
            tgt = np.array(
                [plan.target_mm[0], ctl.target_at(nir_frame.stamp_s)[0] if ctl.tracker.locked else plan.target_mm[1]]
            )
            piv = np.array([plan.pivot_mm[0], tgt[1]])
            a = _pt(world_to_nir(piv, nshape, nsp, view), scale)
            b = _pt(world_to_nir(tgt, nshape, nsp, view), scale)
            cv2.line(nir, a, b, (0, 200, 0), 1, cv2.LINE_AA)
            cv2.drawMarker(nir, b, (0, 255, 0), cv2.MARKER_TILTED_CROSS, 14, 2)
        tip = np.array(
            [state.joints.x_mm + state.joints.insert_mm * math.cos(state.joints.pitch_rad), state.joints.y_mm]
        )
        cv2.circle(nir, _pt(world_to_nir(tip, nshape, nsp, view), scale), 4, (0, 230, 255), -1, cv2.LINE_AA)
        panels.append(nir)
    h = max(p.shape[0] for p in panels)
    body = np.concatenate([np.pad(p, ((0, h - p.shape[0]), (0, 0), (0, 0))) for p in panels], axis=1)
    bar = np.zeros((44, body.shape[1], 3), np.uint8)
    t = state.stamp_s - (ctl.t0 or 0.0)
    txt = (
        f"t {t:5.1f} s  {ctl.phase.value.upper():8s} insert {state.joints.insert_mm:5.2f} mm  "
        f"force {state.force_n:5.2f} N  attempt {max(ctl.outcome.attempts, 1)}"
    )
    cv2.putText(bar, txt, (8, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    last = ctl.outcome.events[-1][1] if ctl.outcome.events else ""
    cv2.putText(bar, last[:130], (8, 37), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (200, 200, 200), 1, cv2.LINE_AA)
    return np.concatenate([bar, body], axis=0)


def plot_force(path: Path, ctl, events, safety_ceiling_n: float) -> None:
    """The demo's force plot, written to ``path``: measured and filtered force and the insertion over the controller's
    phases, with the safety ceiling and the true punctures (ground truth, dotted).
    """
    from ir_robot.viz import new_figure

    tr = ctl.trace
    t = np.asarray(tr["t_s"]) - (ctl.t0 or 0.0)
    fig, ax = new_figure(figsize=(9, 4.2))
    phases = tr["phase"]
    start = 0
    for i in range(1, len(phases) + 1):
        if i == len(phases) or phases[i] != phases[start]:
            colour = PHASE_COLOURS.get(phases[start])
            if colour is not None:
                ax.axvspan(t[start], t[min(i, len(t) - 1)], color=colour, alpha=0.6, lw=0)
                ax.text(
                    0.5 * (t[start] + t[min(i, len(t) - 1)]),
                    0.98,
                    phases[start],
                    rotation=90,
                    fontsize=7,
                    va="top",
                    ha="center",
                    transform=ax.get_xaxis_transform(),
                )
            start = i
    ax.plot(t, tr["force_n"], color="0.55", lw=0.7, label="measured force")
    ax.plot(t, tr["force_filtered_n"], color="C0", lw=1.2, label="median-filtered")
    ax.axhline(safety_ceiling_n, color="C3", ls="--", lw=0.8, label=f"safety ceiling {safety_ceiling_n:g} N")
    t0 = ctl.t0 or 0.0
    for ev in events:
        ax.axvline(ev.t_s - t0, color="C3" if ev.membrane in ("vessel_wall", "back_wall") else "C1", lw=0.6, ls=":")
        ax.annotate(ev.membrane, (ev.t_s - t0, ev.peak_force_n), fontsize=6, xytext=(2, 2), textcoords="offset points")
    ax.set_xlabel("time (simulated s)")
    ax.set_ylabel("axial needle force (N)")
    ax2 = ax.twinx()
    ax2.plot(t, tr["insert_mm"], color="C2", lw=1.0, label="insertion")
    ax2.set_ylabel("insertion along the needle (mm)", color="C2")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper left")
    ax.set_title("venipuncture force and insertion (true punctures dotted: layers orange, vessel red)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def run_demo(
    out: str | Path,
    seed: int = 0,
    *,
    perception: str = "auto",
    motion: bool = True,
    config: VenipunctureConfig | None = None,
    png_every: int = 5,
    video: bool = True,
) -> dict:
    """One procedure with pictures; returns the printed result dict."""
    import cv2

    from ir_robot.evaluation.episode import make_world, run_episode

    cv2.setNumThreads(1)
    out = Path(out)
    (out / "frames").mkdir(parents=True, exist_ok=True)
    for old in (out / "frames").glob("frame_*.png"):
        old.unlink()
    config = config or load_venipuncture_config()
    us, nir, kind = choose_perception(perception, config)
    world = make_world(motion=motion)
    rec: dict[str, Any] = {"n": 0, "writer": None, "confirm": None, "nir": None}

    def hook(state, obs, cmd, ctl):
        if obs.us is None:
            return
        if rec["n"] % 5 == 0 or rec["nir"] is None:
            rec["nir"] = world.nir()  # a fresh top-down view for the picture (the controller does not use it)
        img = render_overlay(ctl, obs.us, rec["nir"], state)
        if video and rec["writer"] is None:
            wr = cv2.VideoWriter(
                str(out / "overlay.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (img.shape[1], img.shape[0])
            )
            rec["writer"] = wr if wr.isOpened() else False
        if rec["writer"]:
            rec["writer"].write(img)
        if rec["n"] % png_every == 0:
            cv2.imwrite(str(out / "frames" / f"frame_{rec['n']:04d}.png"), img)
        if ctl.phase.value == "hold" and rec["confirm"] is None:
            rec["confirm"] = img
            cv2.imwrite(str(out / "confirm.png"), img)
        rec["n"] += 1

    try:
        r = run_episode(seed, config, us, nir, world=world, motion=motion, on_tick=hook)
    finally:
        if rec["writer"]:
            rec["writer"].release()
        world.close()
    ctl = r.extra["controller"]
    plot_force(out / "force.png", ctl, r.extra["events"], config.safety.force_ceiling_n)
    result = {
        "success": r.success,
        "tip_error_mm": None if not math.isfinite(r.tip_error_mm) else round(r.tip_error_mm, 3),
        "attempts": r.attempts,
        "duration_s": round(r.duration_s, 2),
        "peak_force_n": round(r.peak_force_n, 3),
        "seed": seed,
        "perception": kind,
        "reason": r.reason,
    }
    (out / "result.json").write_text(
        json.dumps(
            {
                **result,
                "events": r.extra["outcome"].events,
                "candidates": r.extra["outcome"].candidates,
                "video": (out / "overlay.mp4").name if rec["writer"] else None,
                "frames": rec["n"],
            },
            indent=2,
        )
    )
    return result
