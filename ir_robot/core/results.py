"""Perception results: what a perception model reports for one frame, shared by every layer above.

The learned predictors, the ground-truth labels and the classical baselines (:mod:`ir_robot.perception`)
produce these; the controller (:mod:`ir_robot.control`) and the ROS nodes consume them. They live in
core so that consumers need not import perception, and serialise to one JSON text
(:func:`result_to_json`) for the ``/<modality>/result`` topics.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class VesselDetection:
    """One vessel in an ultrasound image.

    ``centre_px`` (row, col); ``centre_mm`` (lateral from the probe centre, depth below the
    skin); ``diameter_mm``: equivalent-circle diameter of a cross-section (transverse
    view) or mean thickness of a band (longitudinal view); ``depth_mm`` = ``centre_mm[1]``;
    ``band``: True for a longitudinal band; ``confidence`` in [0, 1].
    """

    kind: str
    centre_px: tuple[float, float]
    centre_mm: tuple[float, float]
    diameter_mm: float
    depth_mm: float
    area_px: int
    confidence: float
    band: bool = False
    width_mm: float = 0.0
    height_mm: float = 0.0


@dataclass(frozen=True)
class NeedleDetection:
    """The needle in an ultrasound image.

    ``tip_px`` (row, col) and ``tip_mm`` (lateral, depth). ``angle_deg``: in-image angle of
    the shaft in mm space, ``atan2(depth increase, lateral increase)`` going towards the tip
    (a needle going down to the right at 30 deg gives 30, down to the left 150); None for a
    tip-only (out-of-plane) dot. ``direction_px``: unit (drow, dcol) towards the tip (None for
    a dot). ``tail_px``: the other visible end. ``length_mm``: visible shaft length.
    """

    tip_px: tuple[float, float]
    tip_mm: tuple[float, float]
    angle_deg: float | None
    direction_px: tuple[float, float] | None
    confidence: float
    tail_px: tuple[float, float] | None = None
    length_mm: float = 0.0
    area_px: int = 0

    @property
    def tip_only(self) -> bool:
        """An out-of-plane dot: the tip is known, the shaft's angle is not."""
        return self.angle_deg is None


@dataclass(frozen=True, eq=False)
class UsResult:
    """Ultrasound perception output: the label mask (H, W uint8), vessels and the needle.

    ``mask`` is None for a result rebuilt from a ``/us/result`` message (:func:`result_from_json`).
    ``roi_px``: ``(r0, c0, r1, c1)`` when only that region of interest was segmented (the mask is
    background outside it), else None.
    """

    mask: np.ndarray | None
    spacing_mm: tuple[float, float]
    vessels: tuple[VesselDetection, ...] = ()
    needle: NeedleDetection | None = None
    source: str = "model"
    roi_px: tuple[int, int, int, int] | None = None

    def veins(self) -> tuple[VesselDetection, ...]:
        """The vessels classified as veins (the candidate targets)."""
        return tuple(v for v in self.vessels if v.kind == "vein")

    def arteries(self) -> tuple[VesselDetection, ...]:
        """The vessels classified as arteries (to be avoided)."""
        return tuple(v for v in self.vessels if v.kind == "artery")

    def to_dict(self) -> dict[str, Any]:
        """The detections rounded for display (the CLI's JSON), with the mask's shape but not the mask."""
        return {
            "modality": "us",
            "source": self.source,
            "shape": list(self.mask.shape) if self.mask is not None else None,
            "spacing_mm": list(self.spacing_mm),
            "vessels": [_asdict(v) for v in self.vessels],
            "needle": _asdict(self.needle) if self.needle is not None else None,
            "roi_px": list(self.roi_px) if self.roi_px is not None else None,
        }


@dataclass(frozen=True, eq=False)
class NirVein:
    """One vein seen by the NIR camera.

    ``centreline_px`` (N, 2) rows of (row, col) along the vein; ``centre_px`` (row, col);
    ``centre_mm`` (x, y) from the view centre; ``width_mm`` mean width; ``angle_deg`` the
    vein axis angle to the image column axis in (-90, 90] (0 = along the image x axis,
    positive = rows increase with columns); ``length_mm`` visible length; ``contrast``
    (background - vein) / background intensity (0 when no image was given).
    """

    centreline_px: np.ndarray
    centre_px: tuple[float, float]
    centre_mm: tuple[float, float]
    width_mm: float
    angle_deg: float
    length_mm: float
    contrast: float
    area_px: int = 0
    confidence: float = 1.0


@dataclass(frozen=True, eq=False)
class NirResult:
    """NIR perception output: the label mask (H, W uint8, 0/1) and the veins, widest first.

    ``mask`` is None for a result rebuilt from a ``/nir/result`` message (:func:`result_from_json`).
    """

    mask: np.ndarray | None
    spacing_mm: tuple[float, float]
    veins: tuple[NirVein, ...] = ()
    source: str = "model"

    def to_dict(self) -> dict[str, Any]:
        """The veins rounded for display (the CLI's JSON), with the mask's shape but not the mask."""
        return {
            "modality": "nir",
            "source": self.source,
            "shape": list(self.mask.shape) if self.mask is not None else None,
            "spacing_mm": list(self.spacing_mm),
            "veins": [_asdict(v) for v in self.veins],
        }


def result_to_json(result: UsResult | NirResult, stamp_ns: int | None = None) -> str:
    """The detections of a result as one JSON text, at full float precision, without the mask.

    This is what a perception node sends on ``/<m>/result`` so that consumers (the controller)
    use its analysis instead of repeating it on the mask. ``stamp_ns`` is the image's stamp.
    """

    def fields(obj: Any) -> dict[str, Any]:
        return {name: _plain(getattr(obj, name)) for name in obj.__dataclass_fields__}

    d: dict[str, Any] = {
        "modality": "us" if isinstance(result, UsResult) else "nir",
        "stamp_ns": stamp_ns,
        "source": result.source,
        "spacing_mm": _plain(result.spacing_mm),
        "shape": list(result.mask.shape) if result.mask is not None else None,
    }
    if isinstance(result, UsResult):
        d["vessels"] = [fields(v) for v in result.vessels]
        d["needle"] = fields(result.needle) if result.needle is not None else None
        d["roi_px"] = list(result.roi_px) if result.roi_px is not None else None
    else:
        d["veins"] = [fields(v) for v in result.veins]
    return json.dumps(d, allow_nan=False)


def result_from_json(text: str) -> tuple[UsResult | NirResult, int | None]:
    """Inverse of :func:`result_to_json`: ``(result with mask None, stamp_ns)``.

    Raises ValueError (naming the problem) on text that is not such a result.
    """
    try:
        d = json.loads(text)
        modality = d["modality"]
        sy, sx = (float(x) for x in d["spacing_mm"])
        spacing = (sy, sx)

        def tup(v: Any) -> Any:
            return tuple(tup(x) for x in v) if isinstance(v, list) else v

        def nir_vein(x: dict[str, Any]) -> NirVein:
            kw: dict[str, Any] = {
                k: (np.asarray(v, float).reshape(-1, 2) if k == "centreline_px" else tup(v)) for k, v in x.items()
            }
            return NirVein(**kw)

        result: UsResult | NirResult
        if modality == "us":
            vessels = tuple(VesselDetection(**{k: tup(v) for k, v in x.items()}) for x in d["vessels"])
            nd = d["needle"]
            needle = NeedleDetection(**{k: tup(v) for k, v in nd.items()}) if nd is not None else None
            roi = d.get("roi_px")
            roi_px: tuple[int, int, int, int] | None = None
            if roi is not None:
                r0, c0, r1, c1 = (int(v) for v in roi)
                roi_px = (r0, c0, r1, c1)
            result = UsResult(None, spacing, vessels, needle, d["source"], roi_px)
        elif modality == "nir":
            veins = tuple(nir_vein(x) for x in d["veins"])
            result = NirResult(None, spacing, veins, d["source"])
        else:
            raise ValueError(f"unknown modality {modality!r}")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"not a perception result message: {type(exc).__name__}: {exc}") from None
    stamp = d.get("stamp_ns")
    return result, (int(stamp) if stamp is not None else None)


def _plain(v: Any, digits: int | None = None, array_digits: int | None = None) -> Any:
    """JSON-ready plain Python of a result field (tuples -> lists, numpy -> Python); floats rounded
    to ``digits`` (arrays to ``array_digits``) when given, else at full precision.
    """
    if isinstance(v, np.ndarray):
        return (np.round(v, array_digits) if array_digits is not None else v).tolist()
    if isinstance(v, (tuple, list)):
        return [_plain(x, digits, array_digits) for x in v]
    if isinstance(v, (float, np.floating)):
        return round(float(v), digits) if digits is not None else float(v)
    if isinstance(v, (np.integer, np.bool_)):
        return v.item()
    return v


def _asdict(obj: Any) -> dict[str, Any]:
    """A detection rounded for display (``to_dict``, the CLI's JSON)."""
    return {name: _plain(getattr(obj, name), 4, 3) for name in obj.__dataclass_fields__}
