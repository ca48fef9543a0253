"""The predictors used by the venipuncture controller, the ROS nodes and ``ir-robot segment``.

::

    us = UltrasoundPerception.default()          # models/us_seg/model.pt
    res = us.predict(frame)                      # ImageFrame, or a uint8 (H, W) array (+ spacing_mm)
    res.mask, res.vessels, res.needle            # UsResult
    nir = NirPerception.default(); nir.predict(frame).veins
    gt = GroundTruthPerception(); gt.predict(frame)   # same results from frame.labels

Any image size is accepted (resized to the model's input and the class probabilities
resized back). Bad input (wrong channels, dtype or size; a missing, corrupt or foreign
weights file) raises one :class:`~ir_robot.core.errors.PerceptionError` naming the problem.

Weights file format (``torch.save`` of a plain dict, loaded with ``weights_only=True``)::

    {"format": "ir_robot.perception.segmenter/1", "modality": "us" | "nir",
     "arch": {"name": "unet", ...}, "input_size": 128, "classes": [...],
     "field_of_view_mm": [depth, width], "class_bias": [...] (optional), "state_dict": {...},
     "info": {...}}

``class_bias`` is added to the log-probabilities before the argmax; training calibrates it
on the validation split (a decision threshold), zeros mean a plain argmax.
"""

from __future__ import annotations

import dataclasses
import io
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast, overload

import numpy as np
from numpy.typing import NDArray

from ir_robot.core.errors import PerceptionError
from ir_robot.core.results import NirResult, UsResult
from ir_robot.core.types import LABEL_NAMES, ImageFrame
from ir_robot.perception.postprocess import DEFAULT_POSTPROCESS, PostprocessParams, analyse_nir, analyse_us
from ir_robot.perception.transforms import check_spacing, probs_to_size, roi_box, to_model_input, validate_image

if TYPE_CHECKING:
    import torch

    from ir_robot.perception.models import UNet
    from ir_robot.perception.postprocess import VesselDetection

    #: what runs the network on a batch: the eager network, a TorchScript copy or an onnxruntime session
    _Runner = Callable[[torch.Tensor], torch.Tensor]

WEIGHTS_FORMAT = "ir_robot.perception.segmenter/1"
CLASSES = {"us": LABEL_NAMES, "nir": LABEL_NAMES[:2]}
MODEL_DIRS = {"us": "us_seg", "nir": "nir_seg"}
DEFAULT_FOV_MM = {"us": (30.0, 30.0), "nir": (50.0, 50.0)}


def default_weights_path(modality: str) -> Path:
    """``models/us_seg/model.pt`` or ``models/nir_seg/model.pt`` in the package data."""
    from ir_robot.paths import data_path

    if modality not in MODEL_DIRS:
        raise PerceptionError(f"unknown modality {modality!r}; use one of {sorted(MODEL_DIRS)}")
    return data_path("models", MODEL_DIRS[modality], "model.pt")


def save_weights(
    path: str | Path,
    model: torch.nn.Module,
    *,
    modality: str,
    arch: dict[str, Any],
    input_size: int,
    field_of_view_mm: tuple[float, float],
    info: dict[str, Any] | None = None,
    class_bias: Sequence[float] | NDArray[np.floating] | None = None,
) -> Path:
    """Write a weights file (see the module docstring) atomically."""
    import torch

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    blob = {
        "format": WEIGHTS_FORMAT,
        "modality": modality,
        "arch": dict(arch),
        "input_size": int(input_size),
        "classes": list(CLASSES[modality]),
        "field_of_view_mm": [float(v) for v in field_of_view_mm],
        "class_bias": [float(v) for v in (class_bias if class_bias is not None else [0.0] * len(CLASSES[modality]))],
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "info": dict(info or {}),
    }
    tmp = p.with_suffix(p.suffix + ".tmp")
    torch.save(blob, tmp)
    tmp.replace(p)
    return p


def load_weights(path: str | Path, *, expect_modality: str | None = None) -> tuple[UNet, dict[str, Any]]:
    """Load a weights file into a fresh eval-mode network. Returns ``(model, meta)``."""
    import torch

    from ir_robot.perception.models import build_model

    p = Path(path)
    fix = (
        f"train one with `ir-robot train-perception {expect_modality or 'us|nir'} --out DIR` "
        f"or pass the right --weights file"
    )
    if not p.exists():
        raise PerceptionError(f"weights file {p}: not found; {fix}")
    if not p.is_file() or p.stat().st_size == 0:
        raise PerceptionError(f"weights file {p}: empty or not a file; {fix}")
    try:
        data = p.read_bytes()
        blob = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors of many kinds: one message for people
        raise PerceptionError(
            f"weights file {p}: cannot be read as torch weights ({type(exc).__name__}); "
            f"the file is corrupt, truncated or not a weights file; {fix}"
        ) from None
    if not isinstance(blob, dict) or blob.get("format") != WEIGHTS_FORMAT:
        found = blob.get("format") if isinstance(blob, dict) else type(blob).__name__
        raise PerceptionError(
            f"weights file {p}: not an ir_robot segmenter (format {found!r}, expected {WEIGHTS_FORMAT!r}); {fix}"
        )
    modality: Any = blob.get("modality")  # checked below: one of CLASSES' keys
    if expect_modality is not None and modality != expect_modality:
        raise PerceptionError(
            f"weights file {p}: holds a {modality!r} model but a {expect_modality!r} model is "
            f"needed; pass the {expect_modality} weights (models/{MODEL_DIRS.get(expect_modality)}"
            f"/model.pt)"
        )
    if modality not in CLASSES or list(blob.get("classes", [])) != list(CLASSES[modality]):
        raise PerceptionError(
            f"weights file {p}: classes {blob.get('classes')} do not match the {modality!r} "
            f"label set {list(CLASSES.get(modality, []))}"
        )
    arch = dict(blob.get("arch") or {})
    if arch.get("num_classes") != len(CLASSES[modality]):
        raise PerceptionError(
            f"weights file {p}: architecture has {arch.get('num_classes')} outputs, the "
            f"{modality!r} label set needs {len(CLASSES[modality])}"
        )
    try:
        model = build_model(arch)
        model.load_state_dict(blob["state_dict"], strict=True)
    except (RuntimeError, ValueError, TypeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise PerceptionError(
            f"weights file {p}: tensors do not fit architecture {arch} ({first}); the file belongs to another model"
        ) from None
    model.eval()
    size = int(blob.get("input_size", 0))
    if size < 16 or size % model.divisor:
        raise PerceptionError(f"weights file {p}: input_size {size} is not a multiple of {model.divisor}")
    meta = {k: v for k, v in blob.items() if k != "state_dict"}
    meta["path"] = str(p)
    return model, meta


#: ``backend`` of :class:`Segmenter` -> what is tried for single frames, in order (the eager
#: network always works; the others are used only when their output matches it)
BACKENDS = {
    "auto": ("onnxruntime", "torchscript", "eager"),
    "onnxruntime": ("onnxruntime", "eager"),
    "torchscript": ("torchscript", "eager"),
    "eager": ("eager",),
}


class _OrtRunner:
    """An onnxruntime session called like the torch network: ``(1, C, S, S)`` tensor -> logits tensor."""

    def __init__(self, session: Any, torch: Any):
        self.session = session
        self._torch = torch
        self._input = session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        arr = x.detach().numpy() if hasattr(x, "detach") else np.asarray(x)
        return self._torch.from_numpy(self.session.run(None, {self._input: np.ascontiguousarray(arr, np.float32)})[0])


class Segmenter:
    """A loaded network plus its transforms: uint8 image -> per-class probabilities at image size.

    Single frames run on the fastest backend that reproduces the eager network's output
    (``backend="auto"``: onnxruntime when installed, else a TorchScript-frozen copy); batches
    run the eager network. ``self.backend`` says which one is in use.
    """

    def __init__(self, model: UNet, meta: dict[str, Any], *, threads: int | None = None, backend: str = "auto"):
        import torch

        if backend not in BACKENDS:
            raise PerceptionError(f"unknown inference backend {backend!r}; use one of {list(BACKENDS)}")
        self.model = model.eval()
        self.meta = dict(meta)
        self.modality: str = meta["modality"]
        self.input_size: int = int(meta["input_size"])
        self.num_classes = len(CLASSES[self.modality])
        self.field_of_view_mm = tuple(meta.get("field_of_view_mm") or DEFAULT_FOV_MM[self.modality])
        bias = meta.get("class_bias") or [0.0] * self.num_classes
        if len(bias) != self.num_classes:
            raise PerceptionError(
                f"weights file {meta.get('path')}: class_bias has {len(bias)} values for {self.num_classes} classes"
            )
        #: added to the log-probabilities before the argmax (decision thresholds calibrated on validation data)
        self.class_bias = np.asarray(bias, np.float32)
        if threads is not None:
            torch.set_num_threads(int(threads))
        self._torch = torch
        #: what runs single frames: "onnxruntime", "torchscript" or "eager" (see :data:`BACKENDS`)
        self.backend = "eager"
        self._single: _Runner | None = None
        for name in BACKENDS[backend]:
            runner = getattr(self, f"_runner_{name}")()
            if runner is not None:
                self._single, self.backend = runner, name
                break

    @classmethod
    def from_weights(
        cls, path: str | Path, *, modality: str | None = None, threads: int | None = None, backend: str = "auto"
    ) -> Segmenter:
        """A segmenter of the network in a weights file, refusing one of another ``modality``."""
        model, meta = load_weights(path, expect_modality=modality)
        return cls(model, meta, threads=threads, backend=backend)

    def _example(self) -> torch.Tensor:
        """A fixed pseudo-random ``(1, 1, S, S)`` input for checking a runner against the eager network."""
        g = self._torch.Generator().manual_seed(0)
        return (
            self._torch.rand(1, getattr(self.model, "in_channels", 1), self.input_size, self.input_size, generator=g)
            * 2
            - 1
        )

    def _agrees(self, runner: _Runner) -> bool:
        x = self._example()
        with self._torch.inference_mode():
            return bool(self._torch.allclose(runner(x), self.model(x), atol=1e-4, rtol=1e-4))

    def _runner_eager(self) -> _Runner:
        return self.model

    def _runner_torchscript(self) -> _Runner | None:
        """The network traced and frozen for one ``(1, 1, S, S)`` frame (TorchScript folds the BatchNorms
        into the convolutions: about 25 % less time per frame on CPU); None if that fails.
        """
        torch = self._torch
        x = self._example()
        try:
            with torch.inference_mode(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # TracerWarning on the forward's shape checks (shape fixed here)
                frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(self.model, x)))
            return frozen if self._agrees(frozen) else None
        except Exception:  # noqa: BLE001 - any TorchScript failure: the eager model is always right
            return None

    def _runner_onnxruntime(self) -> _Runner | None:
        """The network exported to ONNX (in memory) and run by onnxruntime's CPU provider: about 40 %
        less network time than TorchScript for these small-channel U-Nets on one thread (measured in
        docs/perception.md). None when onnx/onnxruntime are not installed or the outputs differ.
        """
        try:
            import onnxruntime as ort
        except ImportError:
            return None
        torch = self._torch
        x = self._example()
        buf = io.BytesIO()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # TracerWarning, the exporter's deprecation notes
                torch.onnx.export(
                    self.model, x, buf, dynamo=False, opset_version=17, input_names=["image"], output_names=["logits"]
                )
            opts = ort.SessionOptions()
            # one thread: a 128 px frame of this network is too small to share (measured: 2 threads
            # without spinning are no faster and cost 60 % more CPU; docs/perception.md)
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            opts.log_severity_level = 3
            # no busy-waiting between calls: spinning worker threads starve the other processes on the
            # cores (the simulator, the controller, a training run) for a network this small
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
            runner = _OrtRunner(ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"]), torch)
            return runner if self._agrees(runner) else None
        except Exception:  # noqa: BLE001 - onnx missing, an exporter or runtime failure: use TorchScript
            return None

    def probabilities_batch(self, images: NDArray[np.uint8]) -> NDArray[np.float32]:
        """Validated uint8 ``(N, H, W)`` of one size -> probabilities ``(N, C, H, W)`` float32."""
        torch = self._torch
        x = torch.from_numpy(to_model_input(images, self.input_size))
        net = self._single if (self._single is not None and x.shape[0] == 1) else self.model
        with torch.inference_mode():
            probs = torch.softmax(net(x), dim=1).numpy()
        h, w = images.shape[-2:]
        return np.stack([probs_to_size(p, (h, w)) for p in probs])

    def probabilities(self, image: NDArray[Any]) -> NDArray[np.float32]:
        """Per-class probabilities ``(C, H, W)`` float32 of one grey image, validated, at its own size."""
        img = validate_image(image)
        return self.probabilities_batch(img[None])[0]

    def segment(self, image: NDArray[Any]) -> tuple[NDArray[np.uint8], NDArray[np.float32]]:
        """``(mask uint8 (H, W), probs (C, H, W))`` for one grey image."""
        probs = self.probabilities(image)
        return self.decide(probs), probs

    def segment_region(
        self, image: NDArray[Any], box: tuple[int, int, int, int]
    ) -> tuple[NDArray[np.uint8], NDArray[np.float32]]:
        """:meth:`segment` of the whole image with the network run on ``box`` = ``(r0, c0, r1, c1)`` only
        (resized to the model input: a zoom); background outside the box.
        """
        img = validate_image(image)
        r0, c0, r1, c1 = box
        probs = np.zeros((self.num_classes, *img.shape), np.float32)
        probs[0] = 1.0
        probs[:, r0:r1, c0:c1] = self.probabilities_batch(np.ascontiguousarray(img[r0:r1, c0:c1])[None])[0]
        return self.decide(probs), probs

    def decide(self, probs: NDArray[np.float32]) -> NDArray[np.uint8]:
        """Label mask from probabilities ``(C, H, W)``: argmax of log-probabilities plus ``class_bias``."""
        if not self.class_bias.any():
            return probs.argmax(axis=0).astype(np.uint8)
        # argmax(log p + bias) = argmax(p * exp(bias)): log is monotonic
        return (probs * np.exp(self.class_bias)[:, None, None]).argmax(axis=0).astype(np.uint8)


def _frame_inputs(
    frame: ImageFrame | NDArray[Any],
    spacing_mm: Sequence[float] | None,
    fov_mm: tuple[float, float],
    modality: str,
) -> tuple[NDArray[np.uint8], tuple[float, float]]:
    """(validated image, spacing) from an ImageFrame or an array (+ optional spacing)."""
    if isinstance(frame, ImageFrame):
        if frame.modality not in (modality, "", None):
            raise PerceptionError(
                f"frame modality {frame.modality!r} given to the {modality!r} perception; use the matching predictor"
            )
        img = validate_image(frame.image, what=f"{frame.modality} frame")
        spacing = frame.spacing_mm if spacing_mm is None else spacing_mm
    else:
        img = validate_image(frame)
        if spacing_mm is None:
            # assume the field of view the model was trained on, spread over this image
            spacing = (fov_mm[0] / img.shape[0], fov_mm[1] / img.shape[1])
        else:
            spacing = spacing_mm
    return img, check_spacing(spacing)


#: the smallest region of interest :meth:`UltrasoundPerception.predict` accepts (pixels)
MIN_ROI_PX = 32


def _cut_by_box(
    v: VesselDetection, box: tuple[int, int, int, int], shape_hw: tuple[int, ...], spacing_mm: tuple[float, float]
) -> bool:
    """True when a cross-section reaches a side of ``box`` that is inside the image (it is cut there)."""
    if v.band:
        return False
    r0, c0, r1, c1 = box
    sy, sx = spacing_mm
    hw = 0.5 * (v.width_mm or v.diameter_mm) / sx + 1.0
    hh = 0.5 * (v.height_mm or v.diameter_mm) / sy + 1.0
    r, c = v.centre_px
    return (
        (r0 > 0 and r - hh < r0)
        or (r1 < shape_hw[0] and r + hh > r1)
        or (c0 > 0 and c - hw < c0)
        or (c1 < shape_hw[1] and c + hw > c1)
    )


class UltrasoundPerception:
    """Learned ultrasound perception: mask {background, vein, artery, needle}, vessels, needle."""

    modality = "us"

    def __init__(self, segmenter: Segmenter, postprocess: PostprocessParams = DEFAULT_POSTPROCESS):
        if segmenter.modality != self.modality:
            raise PerceptionError(f"{type(self).__name__} needs a 'us' model, got a {segmenter.modality!r} model")
        self.segmenter = segmenter
        self.postprocess = postprocess

    @classmethod
    def default(cls, *, threads: int | None = None) -> UltrasoundPerception:
        """The shipped ultrasound model (``models/us_seg/model.pt``)."""
        return cls.from_weights(default_weights_path(cls.modality), threads=threads)

    @classmethod
    def from_weights(
        cls, path: str | Path, *, threads: int | None = None, postprocess: PostprocessParams = DEFAULT_POSTPROCESS
    ) -> UltrasoundPerception:
        """Ultrasound perception with the network in a weights file (refused if it is not a 'us' model)."""
        return cls(Segmenter.from_weights(path, modality=cls.modality, threads=threads), postprocess)

    def predict(
        self,
        frame: ImageFrame | NDArray[Any],
        spacing_mm: Sequence[float] | None = None,
        *,
        roi: Sequence[float] | None = None,
    ) -> UsResult:
        """Segment and analyse one frame. ``roi`` = ``(centre row, centre col, side)`` in pixels: run the
        network on that square only (kept inside the image), so a small target gets more of the
        network's input pixels (the controller tracks its target this way). Vessels cut by the
        region's border are left out (their centre and size would be wrong).
        """
        img, spacing = _frame_inputs(frame, spacing_mm, self.segmenter.field_of_view_mm, self.modality)
        if roi is None:
            mask, probs = self.segmenter.segment(img)
            return analyse_us(mask, spacing, probs, self.postprocess, source="model")
        if len(roi) != 3 or not all(np.isfinite(float(v)) for v in roi) or float(roi[2]) < MIN_ROI_PX:
            raise PerceptionError(f"roi must be (centre row, centre col, side >= {MIN_ROI_PX} px), got {roi}")
        box = roi_box(roi[:2], roi[2], img.shape)
        mask, probs = self.segmenter.segment_region(img, box)
        res = analyse_us(mask, spacing, probs, self.postprocess, source="model")
        vessels = tuple(v for v in res.vessels if not _cut_by_box(v, box, img.shape, spacing))
        return dataclasses.replace(res, vessels=vessels, roi_px=box)


class NirPerception:
    """Learned NIR perception: mask {background, vein} and veins (centreline, width, angle...)."""

    modality = "nir"

    def __init__(self, segmenter: Segmenter, postprocess: PostprocessParams = DEFAULT_POSTPROCESS):
        if segmenter.modality != self.modality:
            raise PerceptionError(f"{type(self).__name__} needs a 'nir' model, got a {segmenter.modality!r} model")
        self.segmenter = segmenter
        self.postprocess = postprocess

    @classmethod
    def default(cls, *, threads: int | None = None) -> NirPerception:
        """The shipped NIR model (``models/nir_seg/model.pt``)."""
        return cls.from_weights(default_weights_path(cls.modality), threads=threads)

    @classmethod
    def from_weights(
        cls, path: str | Path, *, threads: int | None = None, postprocess: PostprocessParams = DEFAULT_POSTPROCESS
    ) -> NirPerception:
        """NIR perception with the network in a weights file (refused if it is not a 'nir' model)."""
        return cls(Segmenter.from_weights(path, modality=cls.modality, threads=threads), postprocess)

    def predict(self, frame: ImageFrame | NDArray[Any], spacing_mm: Sequence[float] | None = None) -> NirResult:
        """Segment one NIR frame and find its veins (centreline, width, angle, length, contrast)."""
        img, spacing = _frame_inputs(frame, spacing_mm, self.segmenter.field_of_view_mm, self.modality)
        mask, probs = self.segmenter.segment(img)
        return analyse_nir(mask, spacing, probs, img, self.postprocess, source="model")


class GroundTruthPerception:
    """Perfect perception: the same results computed from ``frame.labels`` by the same post-processing.

    Lets the controller separate perception errors from control errors. Works for both
    modalities (dispatch on ``frame.modality``).
    """

    def __init__(self, postprocess: PostprocessParams = DEFAULT_POSTPROCESS):
        self.postprocess = postprocess

    def predict(
        self, frame: ImageFrame, spacing_mm: Sequence[float] | None = None, *, roi: Sequence[float] | None = None
    ) -> UsResult | NirResult:
        """``roi`` is accepted for the predictor protocol and ignored: the labels are exact everywhere."""
        if not isinstance(frame, ImageFrame) or frame.labels is None:
            raise PerceptionError("GroundTruthPerception needs an ImageFrame with labels (a simulated frame)")
        labels = np.asarray(frame.labels)
        if labels.shape != frame.image.shape[:2] or labels.dtype != np.uint8:
            raise PerceptionError(
                f"frame labels: shape {labels.shape} / dtype {labels.dtype} do not match the "
                f"image {frame.image.shape[:2]} uint8"
            )
        spacing = check_spacing(frame.spacing_mm if spacing_mm is None else spacing_mm)
        if frame.modality == "nir":
            return analyse_nir(
                labels, spacing, None, validate_image(frame.image), self.postprocess, source="ground_truth"
            )
        if frame.modality == "us":
            return analyse_us(labels, spacing, None, self.postprocess, source="ground_truth")
        raise PerceptionError(f"GroundTruthPerception: unknown frame modality {frame.modality!r} (use 'us' or 'nir')")


@overload
def make_perception(
    modality: Literal["us"],
    weights: str | Path | None = None,
    *,
    threads: int | None = None,
    postprocess: PostprocessParams = DEFAULT_POSTPROCESS,
) -> UltrasoundPerception: ...
@overload
def make_perception(
    modality: Literal["nir"],
    weights: str | Path | None = None,
    *,
    threads: int | None = None,
    postprocess: PostprocessParams = DEFAULT_POSTPROCESS,
) -> NirPerception: ...
@overload
def make_perception(
    modality: str,
    weights: str | Path | None = None,
    *,
    threads: int | None = None,
    postprocess: PostprocessParams = DEFAULT_POSTPROCESS,
) -> UltrasoundPerception | NirPerception: ...
def make_perception(
    modality: str,
    weights: str | Path | None = None,
    *,
    threads: int | None = None,
    postprocess: PostprocessParams = DEFAULT_POSTPROCESS,
) -> UltrasoundPerception | NirPerception:
    """The learned predictor of a modality, from ``weights`` or the shipped default."""
    if modality == "us":
        return UltrasoundPerception.from_weights(
            weights or default_weights_path("us"), threads=threads, postprocess=postprocess
        )
    if modality == "nir":
        return NirPerception.from_weights(
            weights or default_weights_path("nir"), threads=threads, postprocess=postprocess
        )
    raise PerceptionError(f"unknown modality {modality!r}; use 'us' or 'nir'")


def make_predictor(
    modality: str,
    kind: str,
    *,
    weights: str | Path | None = None,
    threads: int | None = None,
    us_min_vessel_area_mm2: float | None = None,
):
    """The predictor of one modality by kind: ``"model"`` (trained weights: ``weights`` or the shipped
    default), ``"classical"`` (OpenCV baseline) or ``"ground_truth"`` (the frames' labels).
    ``us_min_vessel_area_mm2`` lowers the ultrasound area floor (the controller keeps 1 mm veins).
    """
    post = (
        PostprocessParams(min_vessel_area_mm2=us_min_vessel_area_mm2)
        if modality == "us" and us_min_vessel_area_mm2 is not None
        else DEFAULT_POSTPROCESS
    )
    if kind == "ground_truth":
        return GroundTruthPerception(post)
    if kind == "classical":
        from ir_robot.perception.classical import ClassicalNirPerception, ClassicalUsPerception

        return ClassicalUsPerception(postprocess=post) if modality == "us" else ClassicalNirPerception()
    if kind == "model":
        return make_perception(modality, weights, threads=threads, postprocess=post)
    raise ValueError(f"perception must be 'model', 'classical' or 'ground_truth', got {kind!r}")


#: BGR colours of the overlay: vein blue, artery red, needle yellow
OVERLAY_COLOURS = {1: (255, 120, 0), 2: (40, 40, 230), 3: (0, 230, 255)}


def draw_overlay(image: NDArray[Any], result: UsResult | NirResult, alpha: float = 0.45) -> NDArray[np.uint8]:
    """BGR picture of ``result`` on its grey image: tinted classes, vessel centres, needle axis and tip."""
    import cv2

    img = validate_image(image)
    if result.mask is None:
        raise PerceptionError("overlay: the result has no mask (rebuilt from a result message); draw it from the image")
    if img.shape != result.mask.shape:
        raise PerceptionError(f"overlay: image {img.shape} and mask {result.mask.shape} differ in size")
    bgr = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    tint = bgr.copy()
    for label, colour in OVERLAY_COLOURS.items():
        tint[result.mask == label] = colour
    out = cv2.addWeighted(tint, alpha, bgr, 1 - alpha, 0)
    scale = max(1, round(max(img.shape) / 256))
    if isinstance(result, UsResult):
        if result.roi_px is not None:  # the region the network saw (a zoom on the tracked target)
            r0, c0, r1, c1 = result.roi_px
            cv2.rectangle(out, (c0, r0), (c1 - 1, r1 - 1), (200, 200, 200), scale, cv2.LINE_8)
        for v in result.vessels:
            c = (int(round(v.centre_px[1])), int(round(v.centre_px[0])))
            cv2.drawMarker(out, c, OVERLAY_COLOURS[2 if v.kind == "artery" else 1], cv2.MARKER_CROSS, 8 * scale, scale)
            cv2.putText(
                out,
                f"{v.kind[0].upper()} {v.depth_mm:.1f}mm",
                (c[0] + 5 * scale, c[1] - 4 * scale),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.35 * scale,
                (255, 255, 255),
                1,
                cv2.LINE_AA,
            )
        nd = result.needle
        if nd is not None:
            tip = (int(round(nd.tip_px[1])), int(round(nd.tip_px[0])))
            if nd.tail_px is not None:
                tail = (int(round(nd.tail_px[1])), int(round(nd.tail_px[0])))
                cv2.line(out, tail, tip, (0, 255, 0), scale, cv2.LINE_AA)
            cv2.circle(out, tip, 4 * scale, (0, 255, 0), scale, cv2.LINE_AA)
            text = f"tip {nd.tip_mm[1]:.1f}mm" + (f" {nd.angle_deg:.0f}deg" if nd.angle_deg is not None else "")
            cv2.putText(
                out,
                text,
                (tip[0] + 6 * scale, tip[1] + 12 * scale),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.35 * scale,
                (0, 255, 0),
                1,
                cv2.LINE_AA,
            )
    else:
        for vein in result.veins:
            pts = np.round(vein.centreline_px[:, ::-1]).astype(np.int32).reshape(-1, 1, 2)
            cv2.polylines(out, [pts], False, (0, 255, 0), scale, cv2.LINE_AA)
            c = (int(round(vein.centre_px[1])), int(round(vein.centre_px[0])))
            cv2.putText(
                out,
                f"{vein.width_mm:.1f}mm",
                (c[0] + 4, c[1] - 4),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.35 * scale,
                (255, 255, 255),
                1,
                cv2.LINE_AA,
            )
    return cast("NDArray[np.uint8]", out)  # a blend of two uint8 images is uint8 (the stubs say "some image")
