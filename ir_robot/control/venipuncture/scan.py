"""SCAN and SELECT: the transverse ultrasound (and NIR) scan, then fusing it into vessels, ranking
them and planning the insertion into the best reachable vein.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ir_robot.control.sensing import measure_nir, measure_us
from ir_robot.control.venipuncture.context import INS, PITCH, YAW, Context, FloatArray, X, Y, Z
from ir_robot.control.venipuncture.phases import Phase
from ir_robot.control.venipuncture.servo import servo, settled, travel_speeds
from ir_robot.core.types import N_JOINTS, JointVector
from ir_robot.planning.insertion import UnreachableTarget, plan_insertion
from ir_robot.planning.pulsatility import ARTERY
from ir_robot.planning.targets import rank_targets
from ir_robot.planning.vessels import fuse_scan


def station_goal(c: Context) -> dict[int, float]:
    """The pose of the current scan station: probe over (x, y), transverse, needle out."""
    x, y = c.scan.stations[c.scan.station]
    return {
        X: x - c.p.probe_offset_mm,
        Y: y,
        Z: c.p.safe_height_mm,
        PITCH: math.radians(c.p.scan_pitch_deg),
        INS: 0.0,
        YAW: math.pi / 2,
    }


def scan(c: Context) -> FloatArray:
    """SCAN: one NIR frame; at each station, settle and take ultrasound frames (blank ones retaken)."""
    t, q, obs, dt, _ = c.tick
    s = c.scan
    if obs.nir is not None and c.nir_perception is not None:
        s.nir_traces = measure_nir(obs.nir, c.nir_perception)
        c.event(f"NIR: {len(s.nir_traces)} vein(s) seen from above")
    if not s.stations:
        c.go(Phase.SELECT, "no scan stations configured")
        return np.zeros(N_JOINTS)
    goal = station_goal(c)
    if settled(c, q, goal):
        c.settled_ticks += 1
    else:
        c.settled_ticks = 0
    if c.settled_ticks >= 2 and obs.us is not None:
        c.img.last_us_frame = obs.us
        # placed by the rig's joints unless the frame says where the probe was (a camera frame does not)
        m = measure_us(obs.us, c.us_perception, JointVector.from_array(q), probe_offset_mm=c.p.probe_offset_mm)
        if m.blank:
            s.blank_frames += 1
            s.tries += 1
            c.event(f"scan station {s.station}: blank ultrasound frame")
        else:
            s.sections.extend(m.sections)
            c.img.last_us = m
            s.tries = c.p.scan_frame_retries
        if s.tries >= c.p.scan_frame_retries:
            s.station += 1
            s.tries = 0
            c.settled_ticks = 0
            if s.station >= len(s.stations):
                if not s.sections:
                    why = (
                        "ultrasound frames were blank at every scan station (check probe contact and video)"
                        if s.blank_frames
                        else "no vessel found in ultrasound during the scan"
                    )
                    c.go(Phase.ABORT, why)
                    return np.zeros(N_JOINTS)
                c.go(Phase.SELECT, f"scan done: {len(s.sections)} cross-section(s)")
                return select(c)
            goal = station_goal(c)
    if c.settled_ticks >= 1:
        c.img.want = c.img.want | {"us"}
    return servo(c, q, goal, dt, speed=travel_speeds(c))


def select(c: Context) -> FloatArray:
    """SELECT: fuse the scan into vessels, rank them, plan into the best reachable vein (or abort)."""
    sel = c.sel
    sel.vessels, unmatched = fuse_scan(c.scan.sections, c.scan.nir_traces, c.cfg.fusion)
    # vessels the artery check found pulsating are arteries, whatever the classifier said
    sel.vessels = tuple(
        dataclasses.replace(v, kind="artery") if c.artery.verdicts.get(i) == ARTERY else v
        for i, v in enumerate(sel.vessels)
    )
    sel.candidates = rank_targets(
        sel.vessels,
        c.cfg.criteria,
        pulse_check=c.cfg.pulsatility.enabled,
        pulse_verdicts=c.artery.verdicts,
    )
    c.outcome.candidates = [cand.describe() for cand in sel.candidates]
    for cand in sel.candidates:
        c.event(cand.describe())
    accepted = [cand for cand in sel.candidates if cand.accepted]
    if not accepted:
        detail = "; ".join(cand.describe() for cand in sel.candidates) or "no vessels"
        c.go(Phase.ABORT, f"no suitable vein: {detail}")
        return np.zeros(N_JOINTS)
    failures = []
    for cand in accepted:
        obstacles = [v for v in sel.vessels if v is not cand.vessel]
        try:
            plan = plan_insertion(
                cand.vessel,
                obstacles,
                lower=JointVector.from_array(c.lo),
                upper=JointVector.from_array(c.hi),
                params=c.cfg.insertion,
                vessel_index=cand.index,
            )
        except UnreachableTarget as exc:
            failures.append(f"vessel {cand.index}: {exc}")
            continue
        sel.target, sel.plan = cand.vessel, plan
        c.artery.needs_vein_verdict = cand.needs_pulse
        c.outcome.plan = plan
        c.go(
            Phase.ALIGN,
            f"target vessel {cand.index}: {cand.vessel.diameter_mm:.2f} mm vein at "
            f"{-plan.target_mm[2]:.2f} mm, pitch {math.degrees(plan.pitch_rad):.1f} deg, "
            f"insertion {plan.insert_mm:.1f} mm",
        )
        return np.zeros(N_JOINTS)
    c.go(Phase.ABORT, "unreachable target: " + " | ".join(failures))
    return np.zeros(N_JOINTS)
