"""ONNX Runtime detector: the default edge backend (no PyTorch needed).

`OnnxDetector.from_path` loads an exported YOLO-family model plus its manifest, checks that the two agree and
that the weights are the ones the manifest pins, and returns a `Detector`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
import supervision as sv

from gridwatch.models.base import (
    ModelConfigError,
    ModelInfo,
    ModelIntegrityError,
    ModelLoadError,
    check_image,
    make_detections,
)
from gridwatch.models.classes import verify_classes_known
from gridwatch.models.decoders import DECODERS, letterbox_transform, output_class_count, postprocess, preprocess
from gridwatch.models.manifest import ModelManifest, load_manifest, manifest_path_for

log = logging.getLogger(__name__)

DEFAULT_PROVIDERS = ("CPUExecutionProvider",)


def file_sha256(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Lower-case hex sha256 of a file, read in chunks so large engines do not need to fit in memory twice."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def choose_providers(requested: Sequence[str] | None) -> list[str]:
    """Keep the requested execution providers that this onnxruntime build offers, in the requested order.

    The list is a preference order (e.g. TensorRT, then CUDA, then CPU) so one site config works on a Jetson
    and on an x86 box. CPU is always appended as the last resort; an unavailable provider is logged, not
    fatal.
    """
    available = set(ort.get_available_providers())
    wanted = list(requested) if requested else list(DEFAULT_PROVIDERS)
    chosen = [p for p in wanted if p in available]
    missing = [p for p in wanted if p not in available]
    if missing:
        log.warning("execution providers not available here, skipped: %s", ", ".join(missing))
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


def _session_options(threads: int | None) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle pool threads would otherwise busy-wait between ops. On a gateway the same cores decode video and
    # track, so the spin is stolen from them: measured here at 2 threads it doubled CPU time per inference.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads is not None:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return opts


def _build_session(path: Path, threads: int | None, providers: Sequence[str] | None) -> ort.InferenceSession:
    if not path.is_file():
        raise ModelLoadError(f"model file not found: {path}")
    try:
        return ort.InferenceSession(
            str(path), sess_options=_session_options(threads), providers=choose_providers(providers)
        )
    except Exception as exc:  # onnxruntime raises its own (non-exported) exception types
        raise ModelLoadError(f"onnxruntime cannot load {path}: {exc}") from exc


def check_sha256(path: Path, manifest: ModelManifest) -> str:
    """Return the file's sha256; raise ModelIntegrityError when it is not the manifest's."""
    actual = file_sha256(path)
    if actual != manifest.sha256:
        raise ModelIntegrityError(str(path), manifest.sha256, actual)
    return actual


def check_model_matches_manifest(session: ort.InferenceSession, manifest: ModelManifest, path: Path) -> None:
    """Raise ModelConfigError when the graph's input size or class count disagrees with the manifest."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1:
        raise ModelConfigError(f"{path}: expected one image input, model has {[i.name for i in inputs]}")
    shape = inputs[0].shape
    if len(shape) != 4:
        raise ModelConfigError(f"{path}: input {inputs[0].name!r} must be NCHW, got shape {shape}")
    w, h = manifest.input_size
    static_hw = [d for d in shape[2:] if isinstance(d, int)]
    if len(static_hw) == 2 and tuple(shape[2:]) != (h, w):
        raise ModelConfigError(
            f"{path}: model input is {shape[3]}x{shape[2]} (w x h) but manifest input_size is {w}x{h}"
        )
    out_shape = outputs[0].shape
    if len(out_shape) != 3:
        raise ModelConfigError(f"{path}: output {outputs[0].name!r} must be rank 3, got shape {out_shape}")
    nc = output_class_count(manifest.decoder, out_shape)
    if nc is not None and nc != len(manifest.classes):
        raise ModelConfigError(
            f"{path}: output {out_shape} with decoder {manifest.decoder!r} means {nc} classes, "
            f"manifest lists {len(manifest.classes)}"
        )


def class_ids_for(names: Sequence[str] | None, classes: Sequence[str]) -> np.ndarray | None:
    """Map class names to ids; raise ModelConfigError naming the unknown ones and the valid ones."""
    if names is None:
        return None
    verify_classes_known({"detector.classes": names}, classes, model="this model")
    return np.asarray([classes.index(n) for n in names], dtype=np.int64)


class OnnxDetector:
    """A YOLO-family ONNX export run with ONNX Runtime; see `from_path`."""

    def __init__(
        self,
        session: ort.InferenceSession,
        manifest: ModelManifest,
        sha256: str,
        conf_threshold: float,
        iou_threshold: float,
        class_ids: np.ndarray | None,
    ) -> None:
        self._session = session
        self._manifest = manifest
        self._input_name = session.get_inputs()[0].name
        self._input_fp16 = session.get_inputs()[0].type == "tensor(float16)"
        self._decode = DECODERS[manifest.decoder]
        self._class_ids = class_ids
        self.conf_threshold = conf_threshold
        self.iou_threshold = iou_threshold
        self.info = ModelInfo(
            name=manifest.name,
            version=manifest.version,
            sha256=sha256,
            class_names=tuple(manifest.classes),
            input_size=manifest.input_size,
            decoder=manifest.decoder,
        )

    @classmethod
    def from_path(
        cls,
        onnx_path: str | Path,
        manifest_path: str | Path | None = None,
        conf_threshold: float = 0.25,
        iou_threshold: float = 0.45,
        class_filter: Sequence[str] | None = None,
        threads: int | None = None,
        providers: Sequence[str] | None = None,
        verify_sha256: bool = True,
    ) -> OnnxDetector:
        """Load `onnx_path` and its manifest (default: ``<stem>.json`` beside it) into a ready detector.

        conf_threshold: minimum score kept; lower finds more and alarms more.
        iou_threshold: same-class overlap above which the weaker box is dropped as a duplicate.
        class_filter: class names to report (None = all); filtering before NMS also saves time.
        threads: intra-op threads; None lets onnxruntime use every core, which starves camera decoding on a
            small gateway, so set it to leave room for the rest of the pipeline.
        providers: execution providers in preference order (TensorRT, CUDA, ...); unavailable ones are
            skipped.
        verify_sha256: refuse weights whose digest differs from the manifest's; turn off only while iterating
            on an export locally.
        """
        path = Path(onnx_path)
        manifest = load_manifest(manifest_path if manifest_path is not None else manifest_path_for(path))
        if not path.is_file():
            raise ModelLoadError(f"model file not found: {path}")
        sha256 = check_sha256(path, manifest) if verify_sha256 else file_sha256(path)
        session = _build_session(path, threads, providers)
        check_model_matches_manifest(session, manifest, path)
        ids = class_ids_for(class_filter, manifest.classes)
        return cls(session, manifest, sha256, conf_threshold, iou_threshold, ids)

    @property
    def manifest(self) -> ModelManifest:
        return self._manifest

    @property
    def providers(self) -> list[str]:
        """The execution providers the session actually uses."""
        return list(self._session.get_providers())

    def run_raw(self, tensor: np.ndarray) -> np.ndarray:
        """Run the network on an already preprocessed tensor; return its first output as float32.

        Public for benchmarks and export checks, which need the network time without pre/post-processing.
        """
        if self._input_fp16:
            tensor = tensor.astype(np.float16)
        raw = self._session.run(None, {self._input_name: tensor})[0]
        return np.asarray(raw, dtype=np.float32)

    def decode_raw(self, raw: np.ndarray, image_wh: tuple[int, int]) -> sv.Detections:
        """Turn the network output for an image of `image_wh` (w, h) into detections in its pixels."""
        m = self._manifest
        decoded = self._decode(raw, m.input_size)
        if decoded.scores.size and decoded.class_ids.max() >= len(m.classes):
            raise ModelConfigError(f"output has class ids beyond the manifest's {len(m.classes)} classes")
        transform = letterbox_transform(image_wh, m.input_size, m.letterbox == "center")
        result = postprocess(decoded, transform, image_wh, self.conf_threshold, self.iou_threshold, self._class_ids)
        return make_detections(result.boxes, result.scores, result.class_ids, m.classes)

    def detect(self, image: np.ndarray) -> sv.Detections:
        """Detect objects in a BGR uint8 image; boxes come back in that image's pixels."""
        check_image(image)
        raw = self.run_raw(preprocess(image, self._manifest))
        return self.decode_raw(raw, (int(image.shape[1]), int(image.shape[0])))

    @property
    def dynamic_batch(self) -> bool:
        """True when the export takes any batch size (its input's first dimension is symbolic)."""
        return not isinstance(self._session.get_inputs()[0].shape[0], int)

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[sv.Detections]:
        """`detect` for several images (any sizes), in one network run when the export has a dynamic batch,
        else one by one; the results are the same either way, in the images' order."""
        for image in images:
            check_image(image)
        if not self.dynamic_batch or len(images) <= 1:
            return [self.detect(image) for image in images]
        raw = self.run_raw(np.concatenate([preprocess(image, self._manifest) for image in images]))
        if raw.shape[0] != len(images):
            raise ModelConfigError(f"a batch of {len(images)} images gave {raw.shape[0]} outputs; "
                                   "the export's batch dimension is not a real batch")
        return [self.decode_raw(raw[i : i + 1], (int(im.shape[1]), int(im.shape[0]))) for i, im in enumerate(images)]
