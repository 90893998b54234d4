"""Pseudo-labels from a teacher model: its boxes on frames of real clips become labels (after the class map).

A teacher (e.g. YOLOX-Nano, COCO's person and vehicle classes) labels what our labelled photos lack, so one
student model can learn people and vehicles next to garbage. Its boxes are only as good as the teacher:
keep `conf` high (0.4-0.5) so the student learns few false boxes, and remember that the frames' garbage is
not labelled (use clips of streets, not of garbage). Runs through the edge's own ONNX path (`OnnxDetector`).

`fill_in` does the converse for labelled photos: garbage photos show people and cars nobody labelled, and a
student trained on them would learn that people are background; the teacher adds its boxes there, only for
our classes the photos' own labels do not cover.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from gridwatch.models.base import Detector
from gridwatch.models.datasets.clips import FrameSampler, encode_jpeg, sample_frames
from gridwatch.models.datasets.mapping import IGNORE, ClassMap, check_mapped
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
    samples = []
    for clip in clips:
        sampler.reset()
        for index, image in sample_frames(clip, sampler, None, tick):
            h, w = image.shape[:2]
            samples.append(Sample(source, safe_stem(f"{clip.stem}_f{index:06d}"), clip.stem, encode_jpeg(image),
                                  (w, h), tuple(teacher_boxes(detector, image))))
    return samples


def teacher_boxes(detector: Detector, image: np.ndarray) -> list[Box]:
    """The detector's boxes on `image`, normalised, under the detector's class names."""
    names = detector.info.class_names
    h, w = image.shape[:2]
    det = detector.detect(image)
    ids = det.class_id if det.class_id is not None else np.zeros(len(det), dtype=int)
    return [b for (x1, y1, x2, y2), cid in zip(det.xyxy, ids, strict=True)
            if (b := Box(names[int(cid)], x1 / w, y1 / h, x2 / w, y2 / h).clipped()) is not None]


def _decode(image: Path | bytes) -> np.ndarray:
    data = cv2.imread(str(image)) if isinstance(image, Path) else cv2.imdecode(
        np.frombuffer(image, np.uint8), cv2.IMREAD_COLOR)
    if data is None:
        raise DatasetError(f"cannot decode image {image if isinstance(image, Path) else '(clip frame)'}")
    return data


def source_classes(cmap: ClassMap) -> set[str]:
    """Our classes a source's mapping produces: the teacher leaves those alone."""
    return {t for t in cmap.rules.values() if t != IGNORE}


def fill_in(detector: Detector, samples: list[Sample], teacher_map: ClassMap, labelled: set[str], source: str,
            tick: Callable[[], None] | None = None) -> tuple[list[Sample], Counter[str]]:
    """`samples` (already under our class names) plus the teacher's boxes of our classes not in `labelled`.

    Returns the samples and the added boxes per class. Raise DatasetError when the teacher finds a class its
    map does not name (as for any source)."""
    found: list[tuple[Sample, list[Box]]] = []
    for sample in samples:
        found.append((sample, teacher_boxes(detector, _decode(sample.image))))
        if tick is not None:
            tick()
    check_mapped(Counter(b.label for _, boxes in found for b in boxes), teacher_map, f"{source}.teacher")
    added: Counter[str] = Counter()
    out = []
    for sample, boxes in found:
        extra = [b.relabel(t) for b in boxes if (t := teacher_map.target(b.label)) is not None and t not in labelled]
        added.update(b.label for b in extra)
        out.append(sample.with_boxes(sample.boxes + tuple(extra)))
    return out, added
