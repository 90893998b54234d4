"""Pseudo-labels from a teacher model: its boxes on frames of real clips become labels (after the class map).

A teacher (e.g. YOLOX-Nano, COCO's person and vehicle classes) labels what our labelled photos lack, so one
student model can learn people and vehicles next to garbage. Its boxes are only as good as the teacher:
keep `conf` high (0.4-0.5) so the student learns few false boxes, and remember that the frames' garbage is
not labelled (use clips of streets, not of garbage). Runs through the edge's own ONNX path (`OnnxDetector`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gridwatch.models.base import Detector
from gridwatch.models.datasets.clips import FrameSampler, encode_jpeg, sample_frames
from gridwatch.models.datasets.records import Box, DatasetError, Sample, safe_stem
from gridwatch.models.manifest import shipped_manifests


def manifest_for(name_or_path: str | None, base: Path) -> Path | None:
    """A shipped manifest by stem (`yolox_nano_coco80`), a path, or None (next to the model)."""
    if name_or_path is None:
        return None
    for shipped in shipped_manifests():
        if Path(shipped).stem == name_or_path:
            return Path(shipped)
    path = Path(name_or_path)
    path = path if path.is_absolute() else base / path
    if not path.is_file():
        stems = [Path(p).stem for p in shipped_manifests()]
        raise DatasetError(f"manifest {name_or_path!r}: no such file and not a shipped manifest ({stems})")
    return path


def load_teacher(model: Path, manifest: Path | None, conf: float) -> Detector:
    from gridwatch.models.onnx_backend import OnnxDetector

    return OnnxDetector.from_path(model, manifest, conf_threshold=conf, threads=1)


def pseudo_label(detector: Detector, clips: list[Path], source: str, sampler: FrameSampler,
                 tick: Callable[[], None] | None = None) -> list[Sample]:
    """Kept frames of each clip with the teacher's boxes under the teacher's class names; group = the clip."""
    names = detector.info.class_names
    samples = []
    for clip in clips:
        sampler.reset()
        for index, image in sample_frames(clip, sampler, None, tick):
            h, w = image.shape[:2]
            det = detector.detect(image)
            boxes = []
            for (x1, y1, x2, y2), cid in zip(det.xyxy, det.class_id if det.class_id is not None else [], strict=False):
                box = Box(names[int(cid)], x1 / w, y1 / h, x2 / w, y2 / h).clipped()
                if box is not None:
                    boxes.append(box)
            samples.append(Sample(source, safe_stem(f"{clip.stem}_f{index:06d}"), clip.stem, encode_jpeg(image),
                                  (w, h), tuple(boxes)))
    return samples
