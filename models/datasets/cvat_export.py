"""Write tracked boxes of one clip as CVAT for video 1.1 XML, the format `cvat.py` imports.

Each track becomes a `<track>` of `<box>` shapes. A shape is written where the box cannot be reproduced by CVAT's
linear interpolation from the previous shape to within `tolerance_px` (0: only where the motion is exactly linear); an
`outside` shape is written on the first frame a track is missing after being present (and on the frame after
its last box, when the clip goes on), so importing the file gives back the boxes frame by frame.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gridwatch.models.datasets.records import DatasetError

XyXy = tuple[float, float, float, float]


@dataclass(frozen=True)
class TrackedBox:
    """One object's box (pixels) in one frame; `track` names the object across frames."""

    frame: int
    track: str
    label: str
    box: XyXy


@dataclass(frozen=True)
class _Shape:
    frame: int
    box: XyXy
    outside: bool


def _lerp(a: XyXy, b: XyXy, t: float) -> XyXy:
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t, a[3] + (b[3] - a[3]) * t)


def _fits(run: Sequence[tuple[int, XyXy]], start: int, end: int, tolerance_px: float) -> bool:
    """Whether interpolating run[start] -> run[end] reproduces every box between them within the tolerance."""
    f0, b0 = run[start]
    f1, b1 = run[end]
    for f, box in run[start + 1:end]:
        guess = _lerp(b0, b1, (f - f0) / (f1 - f0))
        if max(abs(g - v) for g, v in zip(guess, box, strict=True)) > tolerance_px + 1e-6:  # float noise
            return False
    return True


def _keyframes(run: Sequence[tuple[int, XyXy]], tolerance_px: float) -> list[tuple[int, XyXy]]:
    """Greedy: from each kept shape, jump to the furthest frame the interpolation still fits."""
    kept = [0]
    while kept[-1] < len(run) - 1:
        start, end = kept[-1], kept[-1] + 1
        while end + 1 < len(run) and _fits(run, start, end + 1, tolerance_px):
            end += 1
        kept.append(end)
    return [run[i] for i in kept]


def _runs(frames: Sequence[tuple[int, XyXy]]) -> list[list[tuple[int, XyXy]]]:
    """Consecutive-frame stretches of one track (frames sorted)."""
    runs: list[list[tuple[int, XyXy]]] = []
    for item in frames:
        if runs and item[0] == runs[-1][-1][0] + 1:
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


def track_shapes(frames: Sequence[tuple[int, XyXy]], frame_count: int, tolerance_px: float) -> list[_Shape]:
    """The shapes of one track: keyframes of each stretch, then `outside` on the frame after it (inside the clip)."""
    shapes: list[_Shape] = []
    for run in _runs(frames):
        shapes += [_Shape(f, box, False) for f, box in _keyframes(run, tolerance_px)]
        after = run[-1][0] + 1
        if after < frame_count:
            shapes.append(_Shape(after, run[-1][1], True))
    return shapes


def _check(boxes: Sequence[TrackedBox], frame_count: int) -> None:
    seen: set[tuple[str, int]] = set()
    for b in boxes:
        if not 0 <= b.frame < frame_count:
            raise DatasetError(f"track {b.track!r}: frame {b.frame} is outside the clip's {frame_count} frames")
        if (b.track, b.frame) in seen:
            raise DatasetError(f"track {b.track!r} has two boxes in frame {b.frame}; give each object its own track")
        seen.add((b.track, b.frame))


def cvat_video_xml(boxes: Iterable[TrackedBox], size: tuple[int, int], frame_count: int, source: str,
                   task: str = "gridwatch", tolerance_px: float = 0.0) -> ET.ElementTree:
    """The CVAT for video 1.1 document for a clip of `frame_count` frames of `size` (width, height) pixels."""
    items = sorted(boxes, key=lambda b: (b.track, b.frame))
    _check(items, frame_count)
    by_track: dict[str, list[TrackedBox]] = defaultdict(list)
    for b in items:
        by_track[b.track].append(b)
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    meta = ET.SubElement(root, "meta")
    _task_meta(ET.SubElement(meta, "task"), task, size, frame_count, sorted({b.label for b in items}))
    ET.SubElement(meta, "source").text = source
    for i, (name, track) in enumerate(by_track.items()):
        labels = {b.label for b in track}
        if len(labels) != 1:
            raise DatasetError(f"track {name!r} changes label ({sorted(labels)}); CVAT tracks have one label")
        node = ET.SubElement(root, "track", id=str(i), label=track[0].label, source="manual")
        for s in track_shapes([(b.frame, b.box) for b in track], frame_count, tolerance_px):
            ET.SubElement(node, "box", frame=str(s.frame), outside="1" if s.outside else "0", occluded="0",
                          keyframe="1", xtl=f"{s.box[0]:.2f}", ytl=f"{s.box[1]:.2f}", xbr=f"{s.box[2]:.2f}",
                          ybr=f"{s.box[3]:.2f}", z_order="0")
    ET.indent(root)
    return ET.ElementTree(root)


def _task_meta(task: ET.Element, name: str, size: tuple[int, int], frame_count: int, labels: list[str]) -> None:
    for tag, text in (("id", "1"), ("name", name), ("size", str(frame_count)), ("mode", "interpolation"),
                      ("start_frame", "0"), ("stop_frame", str(frame_count - 1))):
        ET.SubElement(task, tag).text = text
    node = ET.SubElement(task, "labels")
    for label in labels:
        entry = ET.SubElement(node, "label")
        ET.SubElement(entry, "name").text = label
        ET.SubElement(entry, "type").text = "rectangle"
    orig = ET.SubElement(task, "original_size")
    ET.SubElement(orig, "width").text = str(size[0])
    ET.SubElement(orig, "height").text = str(size[1])


def write_cvat_video(path: Path, boxes: Iterable[TrackedBox], size: tuple[int, int], frame_count: int,
                     source: str, task: str = "gridwatch", tolerance_px: float = 0.0) -> Path:
    """Write the XML to `path` (`source`: the clip's file name, looked up next to the XML on import)."""
    cvat_video_xml(boxes, size, frame_count, source, task, tolerance_px).write(
        path, encoding="utf-8", xml_declaration=True)
    return path
