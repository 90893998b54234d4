"""Import CVAT for video 1.1 XML: `<track label=...>` of `<box frame outside occluded keyframe xtl ytl xbr ybr>`.

Tracks are interpolated as CVAT does (`tracks.py`): linearly between shapes, absent from an `outside` shape to
the next shape, held after the last visible shape until the end of the task. `occluded` boxes are kept (the
object is there; a detector should find it) unless `drop_occluded`. Frames are then cut from the clip
(`clips.py`); XML frame numbers count from the task's `start_frame` in the video. Non-box shapes (polygons,
points) are counted in `skipped_shapes` and not imported.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gridwatch.models.datasets.clips import FrameSampler, encode_jpeg, sample_frames
from gridwatch.models.datasets.records import Box, DatasetError, Sample, safe_stem
from gridwatch.models.datasets.tracks import Keyframe, box_at


@dataclass(frozen=True)
class Track:
    label: str
    keys: tuple[Keyframe, ...]


@dataclass
class CvatTask:
    tracks: list[Track]
    size: tuple[int, int]  # original width, height
    start_frame: int
    frames: int  # task size (number of frames)
    source: str | None
    skipped_shapes: dict[str, int] = field(default_factory=dict)


def _int(node: ET.Element | None, default: int) -> int:
    return int(node.text) if node is not None and node.text and node.text.strip() else default


def parse_cvat_video(path: Path) -> CvatTask:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise DatasetError(f"cannot read CVAT XML {path}: {exc}") from exc
    meta = root.find("meta")
    task = None if meta is None else (meta.find("task") if meta.find("task") is not None else meta.find("job"))
    if task is None:
        raise DatasetError(f"{path} is not a CVAT for video 1.1 export: no <meta><task> (or <job>)")
    orig = task.find("original_size")
    if orig is None:
        raise DatasetError(f"{path}: <original_size> missing in <meta>; re-export as 'CVAT for video 1.1'")
    size = (_int(orig.find("width"), 0), _int(orig.find("height"), 0))
    start = _int(task.find("start_frame"), 0)
    stop = _int(task.find("stop_frame"), -1)
    frames = _int(task.find("size"), stop - start + 1 if stop >= start else 0)
    source = meta.findtext("source") if meta is not None else None
    skipped: dict[str, int] = {}
    tracks = []
    for tr in root.iter("track"):
        label = tr.get("label", "")
        keys = []
        for shape in tr:
            if shape.tag != "box":
                skipped[shape.tag] = skipped.get(shape.tag, 0) + 1
                continue
            outside = shape.get("outside", "0") == "1"
            keys.append(Keyframe(
                frame=int(shape.get("frame", "0")),
                box=(float(shape.get("xtl", 0)), float(shape.get("ytl", 0)),
                     float(shape.get("xbr", 0)), float(shape.get("ybr", 0))),
                present=not outside, visible_after=not outside, occluded=shape.get("occluded", "0") == "1"))
        if keys:
            tracks.append(Track(label, tuple(sorted(keys, key=lambda k: k.frame))))
    if root.find("image") is not None and not tracks:
        raise DatasetError(f"{path} is a 'CVAT for images' export; export the task as 'CVAT for video 1.1', "
                           f"or as COCO and use `type: coco`")
    return CvatTask(tracks, size, start, frames, source.strip() if source else None, skipped)


def boxes_at(task: CvatTask, frame: int, drop_occluded: bool) -> tuple[Box, ...]:
    w, h = task.size
    out = []
    for tr in task.tracks:
        tb = box_at(tr.keys, frame, task.frames - 1 if task.frames > 0 else 1 << 30)
        if tb is None or (drop_occluded and tb.occluded):
            continue
        box = Box(tr.label, tb.box[0] / w, tb.box[1] / h, tb.box[2] / w, tb.box[3] / h).clipped()
        if box is not None:
            out.append(box)
    return tuple(out)


def resolve_video(xml: Path, video: Path | None, named: str | None) -> Path:
    if video is not None:
        return video
    candidates = ([xml.parent / Path(named).name] if named else []) + [
        xml.with_suffix(s) for s in (".mp4", ".avi", ".mkv", ".mov")]
    for c in candidates:
        if c.is_file():
            return c
    raise DatasetError(f"{xml}: no video found (looked for {[str(c) for c in candidates]}); set `video:` for it")


def import_cvat_video(xml: Path, source: str, sampler: FrameSampler, video: Path | None = None,
                      drop_occluded: bool = False, tick: Callable[[], None] | None = None) -> list[Sample]:
    """Kept frames of the clip with their interpolated boxes; group = the clip."""
    task = parse_cvat_video(xml)
    clip = resolve_video(xml, video, task.source)
    if min(task.size) <= 0:
        raise DatasetError(f"{xml}: <original_size> must give a positive width and height")
    last = task.start_frame + task.frames - 1 if task.frames > 0 else None
    sampler.reset()
    samples = []
    for index, image in sample_frames(clip, sampler,
                                      lambda i: i >= task.start_frame and (last is None or i <= last), tick):
        h, w = image.shape[:2]
        boxes = boxes_at(task, index - task.start_frame, drop_occluded)
        samples.append(Sample(source, safe_stem(f"{clip.stem}_f{index:06d}"), clip.stem, encode_jpeg(image),
                              (w, h), boxes))
    return samples
