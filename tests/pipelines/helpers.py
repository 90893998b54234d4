"""Tiny synthetic fixtures: observations along scripted paths at a chosen frame rate."""

from __future__ import annotations

from gridwatch.pipelines.types import Observation


def obs(tid: int, cls: str, cx: float, bottom: float, w: float = 40, h: float = 30, conf: float = 0.9,
        ground: tuple[float, float] | None = None) -> Observation:
    box = (cx - w / 2, bottom - h, cx + w / 2, bottom)
    return Observation(tid, cls, conf, box, (cx, bottom), ground)


def times(duration_s: float, fps: float = 10.0, start: float = 0.0) -> list[float]:
    n = round(duration_s * fps)
    return [start + i / fps for i in range(n)]
