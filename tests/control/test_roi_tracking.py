"""Once locked on its target, the controller asks ultrasound perception for a region of interest around it."""

import dataclasses

import numpy as np

from ir_robot.control.episode import run_episode


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
    assert rois[0] is None                        # the scan sees whole frames
    first = next(i for i, roi in enumerate(rois) if roi is not None)
    assert sum(roi is not None for roi in rois[first:]) > 0.9 * len(rois[first:])
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
    assert cfg.control.us_roi_mm == 0.0            # the default: whole frames
    r = run_episode(2, cfg, us, gt[1], world=world)
    assert r.success and all(roi is None for _, roi in us.calls)
