"""Import a Label Studio video JSON export (`videorectangle` results with keyframe `sequence`s).

Each task's video is `data.video` (an upload URL such as `/data/upload/3/1f2e3d4c-clip.mp4`); it is found by
file name in `videos_dir` (also without Label Studio's `<hash>-` upload prefix). Keyframe `x`, `y`, `width`,
`height` are percent of the frame; `frame` is 1-based; `rotation` (degrees, about the top-left corner) becomes
the axis-aligned box around the turned rectangle. Interpolation as Label Studio does it (`tracks.py`): between
keyframes linearly, nothing after a keyframe with `enabled: false` until the next one, held after the last
enabled keyframe until the video's `framesCount`. Per task the last non-cancelled annotation is used.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridwatch.models.datasets.clips import FrameSampler, encode_jpeg, sample_frames
from gridwatch.models.datasets.records import Box, DatasetError, Sample, safe_stem
from gridwatch.models.datasets.tracks import Keyframe, box_at


@dataclass(frozen=True)
class LsTrack:
    label: str
    keys: tuple[Keyframe, ...]  # boxes as (x, y, width, height) percent; rotation in `rotations`
    rotations: tuple[float, ...]
    frames: int  # framesCount (0 = unknown)


@dataclass(frozen=True)
class LsTask:
    video: str
    tracks: tuple[LsTrack, ...]


def _track(result: dict[str, Any], where: str) -> LsTrack | None:
    if result.get("type") != "videorectangle":
        return None
    value = result.get("value") or {}
    labels = value.get("labels") or []
    if len(labels) != 1:
        raise DatasetError(f"{where}: a videorectangle needs exactly one label, got {labels!r}")
    seq = sorted(value.get("sequence") or [], key=lambda k: int(k["frame"]))
    keys, rot = [], []
    for k in seq:
        keys.append(Keyframe(frame=int(k["frame"]) - 1,
                             box=(float(k["x"]), float(k["y"]), float(k["width"]), float(k["height"])),
                             visible_after=bool(k.get("enabled", True))))
        rot.append(float(k.get("rotation", 0.0)))
    return LsTrack(str(labels[0]), tuple(keys), tuple(rot), int(value.get("framesCount") or 0))


def parse_label_studio(path: Path) -> list[LsTask]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DatasetError(f"cannot read Label Studio export {path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(raw, list):
        raise DatasetError(f"{path}: a Label Studio JSON export is a list of tasks; export as 'JSON', not 'JSON-MIN'")
    tasks = []
    for n, task in enumerate(raw):
        video = str((task.get("data") or {}).get("video") or "")
        if not video:
            raise DatasetError(f"{path}: task {n} has no data.video; this importer reads video tasks only")
        done = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
        results = done[-1].get("result", []) if done else []
        tracks = [t for i, r in enumerate(results) if (t := _track(r, f"{path}: task {n} result {i}")) is not None]
        tasks.append(LsTask(video, tuple(tracks)))
    return tasks


def find_video(url: str, videos_dir: Path) -> Path:
    name = url.rsplit("/", 1)[-1].split("?", 1)[0]
    candidates = [videos_dir / name]
    if "-" in name:
        candidates.append(videos_dir / name.split("-", 1)[1])
    for c in candidates:
        if c.is_file():
            return c
    raise DatasetError(f"video {url!r} not found as {[str(c) for c in candidates]}; set `videos:` to the folder "
                       f"holding the task videos")


def _to_box(label: str, xywh: tuple[float, ...], rotation: float, w: int, h: int) -> Box | None:
    x, y, bw, bh = (xywh[0] / 100 * w, xywh[1] / 100 * h, xywh[2] / 100 * w, xywh[3] / 100 * h)
    if rotation:
        c, s = math.cos(math.radians(rotation)), math.sin(math.radians(rotation))
        xs = [x + px * c - py * s for px, py in ((0, 0), (bw, 0), (bw, bh), (0, bh))]
        ys = [y + px * s + py * c for px, py in ((0, 0), (bw, 0), (bw, bh), (0, bh))]
        return Box(label, min(xs) / w, min(ys) / h, max(xs) / w, max(ys) / h).clipped()
    return Box(label, x / w, y / h, (x + bw) / w, (y + bh) / h).clipped()


def boxes_at(task: LsTask, frame: int, size: tuple[int, int]) -> tuple[Box, ...]:
    out = []
    for tr in task.tracks:
        tb = box_at(tr.keys, frame, tr.frames - 1 if tr.frames > 0 else 1 << 30)
        if tb is None:
            continue
        i = bisect.bisect_right([k.frame for k in tr.keys], frame) - 1  # the keyframe this box comes from
        box = _to_box(tr.label, tb.box, tr.rotations[i], *size)
        if box is not None:
            out.append(box)
    return tuple(out)


def import_label_studio(path: Path, source: str, sampler: FrameSampler, videos_dir: Path,
                        tick: Callable[[], None] | None = None) -> list[Sample]:
    """Kept frames of every task's video with their interpolated boxes; group = the video."""
    samples = []
    for task in parse_label_studio(path):
        clip = find_video(task.video, videos_dir)
        sampler.reset()
        for index, image in sample_frames(clip, sampler, None, tick):
            h, w = image.shape[:2]
            samples.append(Sample(source, safe_stem(f"{clip.stem}_f{index:06d}"), clip.stem, encode_jpeg(image),
                                  (w, h), boxes_at(task, index, (w, h))))
    return samples
