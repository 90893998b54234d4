"""One recipe source -> samples under the source's class names: dispatch to the importer of its `type`."""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gridwatch.models.datasets.clips import FrameSampler, frame_count
from gridwatch.models.datasets.coco import import_coco
from gridwatch.models.datasets.cvat import import_cvat_video, parse_cvat_video, resolve_video
from gridwatch.models.datasets.labelstudio import find_video, import_label_studio, parse_label_studio
from gridwatch.models.datasets.progress import ImportProgress
from gridwatch.models.datasets.recipe import (
    CocoSource,
    CvatVideoSource,
    LabelStudioVideoSource,
    SourceCommon,
    SynthSource,
    TeacherSource,
    YoloSource,
    resolve_path,
)
from gridwatch.models.datasets.records import DatasetError, Sample
from gridwatch.models.datasets.teacher import load_teacher, manifest_for, pseudo_label
from gridwatch.models.datasets.yolo import count_yolo_images, import_yolo


def load_source(spec: SourceCommon, base: Path, work: Path, bar: ImportProgress
                ) -> tuple[list[Sample], dict[str, Any]]:
    """(samples, notes): notes count what was skipped on the way (near-duplicate frames, non-box shapes)."""
    name = spec.name
    if isinstance(spec, YoloSource):
        root = _existing(resolve_path(spec.path, base), name)
        return import_yolo(root, name, bar.task(f"{name}: images", count_yolo_images(root))), {}
    if isinstance(spec, CocoSource):
        path = _existing(resolve_path(spec.path, base), name)
        images = resolve_path(spec.images, base) if spec.images else None
        return import_coco(path, name, images, bar.task(f"{name}: images", None)), {}
    if isinstance(spec, CvatVideoSource):
        return _cvat(spec, base, bar)
    if isinstance(spec, LabelStudioVideoSource):
        return _label_studio(spec, base, bar)
    if isinstance(spec, SynthSource):
        return _synth(spec, work), {}
    if isinstance(spec, TeacherSource):
        return _teacher(spec, base, bar)
    raise DatasetError(f"source {name!r}: unsupported type")  # pragma: no cover - the recipe union is closed


def _existing(path: Path, source: str) -> Path:
    if not path.exists():
        raise DatasetError(f"source {source!r}: {path} does not exist; fix `path:` in the recipe")
    return path


def cvat_files(spec: CvatVideoSource, base: Path) -> list[Path]:
    """The source's task XMLs: the file `path`, or every *.xml in the folder `path` (one clip each)."""
    path = _existing(resolve_path(spec.path, base), spec.name)
    if path.is_file():
        return [path]
    files = sorted(path.glob("*.xml"))
    if not files:
        raise DatasetError(f"source {spec.name!r}: {path} holds no *.xml; point `path:` at CVAT for video 1.1 "
                           f"exports (a file, or a folder of them)")
    if spec.video:
        raise DatasetError(f"source {spec.name!r}: `video:` names one clip, but `path:` is a folder of "
                           f"{len(files)} tasks; drop `video:` and put each clip next to its XML")
    return files


def _cvat(spec: CvatVideoSource, base: Path, bar: ImportProgress) -> tuple[list[Sample], dict[str, Any]]:
    files = cvat_files(spec, base)
    video = resolve_path(spec.video, base) if spec.video else None
    tasks = [(xml, parse_cvat_video(xml)) for xml in files]
    tick = bar.task(f"{spec.name}: frames",
                    sum(frame_count(resolve_video(xml, video, task.source)) for xml, task in tasks))
    sampler = FrameSampler(spec.every, spec.min_diff)
    samples: list[Sample] = []
    skipped = Counter[str]()
    for xml, task in tasks:
        samples += import_cvat_video(xml, spec.name, sampler, video, spec.drop_occluded, tick)
        skipped.update(task.skipped_shapes)
    notes = {f"{k}_shapes": v for k, v in skipped.items()}
    return samples, {"near_duplicate_frames": sampler.skipped_duplicates, **notes}


def _label_studio(spec: LabelStudioVideoSource, base: Path, bar: ImportProgress
                  ) -> tuple[list[Sample], dict[str, Any]]:
    path = _existing(resolve_path(spec.path, base), spec.name)
    videos = _existing(resolve_path(spec.videos, base), spec.name)
    total = sum(frame_count(find_video(t.video, videos)) for t in parse_label_studio(path))
    sampler = FrameSampler(spec.every, spec.min_diff)
    samples = import_label_studio(path, spec.name, sampler, videos, bar.task(f"{spec.name}: frames", total))
    return samples, {"near_duplicate_frames": sampler.skipped_duplicates}


def _synth(spec: SynthSource, work: Path) -> list[Sample]:
    from gridwatch.synth import build_dataset

    root = work / f"synth_{spec.name}"
    if root.exists():
        shutil.rmtree(root)
    build_dataset(root, spec.train, spec.val, seed=spec.seed, progress=True)
    return import_yolo(root, spec.name)


def _teacher(spec: TeacherSource, base: Path, bar: ImportProgress) -> tuple[list[Sample], dict[str, Any]]:
    model = _existing(resolve_path(spec.model, base), spec.name)
    clips = [_existing(resolve_path(c, base), spec.name) for c in spec.clips]
    detector = load_teacher(model, manifest_for(spec.manifest, base), spec.conf)
    sampler = FrameSampler(spec.every, spec.min_diff)
    tick: Callable[[], None] = bar.task(f"{spec.name}: frames", sum(frame_count(c) for c in clips))
    samples = pseudo_label(detector, clips, spec.name, sampler, tick)
    return samples, {"near_duplicate_frames": sampler.skipped_duplicates}
