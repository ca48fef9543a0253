"""Once locked on its target, the controller asks ultrasound perception for a region of interest around it."""

import dataclasses

import numpy as np

from ir_robot.evaluation.episode import run_episode


class RecordingPerception:
    """Wraps a predictor; records (frame, roi) of every call."""

    def __init__(self, inner):
        self.inner = inner
        self.calls = []

    def predict(self, frame, spacing_mm=None, *, roi=None):
        self.calls.append((frame, roi))
        return self.inner.predict(frame, spacing_mm, roi=roi)


def test_the_controller_tracks_its_target_through_a_region_of_interest(cfg, gt, world):
    us = RecordingPerception(gt[0])
    cfg = dataclasses.replace(cfg, control=dataclasses.replace(cfg.control, us_roi_mm=20.0))
    r = run_episode(2, cfg, us, gt[1], world=world)
    assert r.success
    rois = [roi for _, roi in us.calls]
    assert rois[0] is None  # the scan sees whole frames
    first = next(i for i, roi in enumerate(rois) if roi is not None)
    # align, insert and retract: zoomed; the confirmation and the hold: one run of whole frames
    runs, n = [], 0
    for roi in rois[first:] + [(0, 0, 0)]:
        if roi is None:
            n += 1
        elif n:
            runs.append(n)
            n = 0
    assert max(runs) >= 5  # the hold alone lasts several frames
    assert sum(roi is not None for roi in rois[first:]) > 0.9 * (len(rois[first:]) - max(runs))
    dist = []
    for frame, roi in us.calls[first:]:
        if roi is None:
            continue
        assert roi[2] == cfg.control.us_roi_mm / min(frame.spacing_mm)
        centres = np.asarray(frame.vessel_centres_px, float).reshape(-1, 2)
        dist.append(np.min(np.hypot(*((centres - roi[:2]) * frame.spacing_mm).T)))
    # centred on a true vessel: the tracked target
    assert np.percentile(dist, 95) < 1.0, np.percentile(dist, 95)


def test_a_zero_roi_side_keeps_whole_frames(cfg, gt, world):
    us = RecordingPerception(gt[0])
    assert cfg.control.us_roi_mm == 0.0  # the default: whole frames
    r = run_episode(2, cfg, us, gt[1], world=world)
    assert r.success and all(roi is None for _, roi in us.calls)


class NoVesselsInWholeFramesAfterZoom(RecordingPerception):
    """Once zoomed tracking has started, whole frames show no vessel: the zoomed view followed
    something the whole frame does not confirm."""

    def predict(self, frame, spacing_mm=None, *, roi=None):
        res = super().predict(frame, spacing_mm, roi=roi)
        if roi is None and any(r is not None for _, r in self.calls):
            return dataclasses.replace(res, vessels=())
        return res


def test_zoomed_tracking_is_not_confirmed_without_the_whole_frame(cfg, gt, world):
    us = NoVesselsInWholeFramesAfterZoom(gt[0])
    cfg = dataclasses.replace(cfg, control=dataclasses.replace(cfg.control, us_roi_mm=20.0, max_attempts=1))
    r = run_episode(2, cfg, us, gt[1], world=world)
    assert not r.success and not r.confirmed
    assert "whole ultrasound frame shows no vessel at the tracked target" in r.reason, r.reason
