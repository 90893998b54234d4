"""Tiny synthetic fixtures: observations along scripted paths at a chosen frame rate."""

from __future__ import annotations

from typing import Any

from gridwatch.pipelines.lifecycle import TokenFactory
from gridwatch.pipelines.registry import default_registry
from gridwatch.pipelines.types import Observation
from gridwatch.pipelines.zones import Zone


def obs(tid: int, cls: str, cx: float, bottom: float, w: float = 40, h: float = 30, conf: float = 0.9,
        ground: tuple[float, float] | None = None) -> Observation:
    box = (cx - w / 2, bottom - h, cx + w / 2, bottom)
    return Observation(tid, cls, conf, box, (cx, bottom), ground)


def times(duration_s: float, fps: float = 10.0, start: float = 0.0) -> list[float]:
    n = round(duration_s * fps)
    return [start + i / fps for i in range(n)]


def build_rule(
    name: str, zones: tuple[Zone, ...] = (), prefix: str = "cam1-run", new_token: TokenFactory | None = None,
    **settings: object,
) -> Any:
    """The registered type's rule, as a camera's YAML `incidents: {name: {settings}}` would build it.

    The rule watches every zone in `zones` (the config names them all); unset settings take the type's config
    defaults, the same defaults users get.
    """
    incident = default_registry().get(name)
    cfg = incident.config.model_validate({"zones": [z.name for z in zones], **settings})
    return incident.build(cfg, zones, prefix, new_token)
