"""Replay recorded per-frame observations through the rules: the rules' regression, like a tracker's MOT one.

A recording is JSON Lines. The first line is the header, `{"incidents": {<type>: {<settings>}}, "zones":
[{"name": ..., "points": [[x, y], ...]}]}` (the same shape as a camera's YAML); every other line is one analysed
frame, `{"ts": <capture seconds>, "objects": [{"track_id", "class_name", "confidence", "box": [x1, y1, x2, y2],
"ground": [e, n] | null, "age_s", "area_m2", "width_m", "elongation"}]}` (the last four optional: a scene-change
region's age, area and elongation, a calibrated width). The rules are built from the registry exactly as a
camera builds them, with deterministic incident ids; at the end they are flushed (`source_ended`) like a file
that ends.

`summarise` turns the updates into what a reviewer compares: type, phase, the incident by order of first
appearance (`#1`, `#2`, ...), its start and the update's time rounded to 0.1 s, and the tracks by role. A rule
change then shows its effect as a diff of the committed expected summary. Pure: text in, dicts out (the test
reads and writes the files).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gridwatch.pipelines.base import Rule
from gridwatch.pipelines.registry import Registry, default_registry
from gridwatch.pipelines.types import IncidentUpdate, Observation, anchor_of
from gridwatch.pipelines.zones import Zone


@dataclass(frozen=True)
class Recording:
    incidents: Mapping[str, Mapping[str, Any]]
    zones: tuple[Zone, ...]
    frames: tuple[tuple[float, tuple[Observation, ...]], ...]


def parse_recording(lines: Iterable[str]) -> Recording:
    """A recording from its JSONL lines (blank lines are skipped); errors name the line."""
    rows = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    if not rows:
        raise ValueError("empty recording: the first line must be the header")
    header = json.loads(rows[0][1])
    zones = tuple(Zone(z["name"], tuple((float(x), float(y)) for x, y in z["points"])) for z in header.get("zones", []))
    frames = []
    for n, line in rows[1:]:
        try:
            row = json.loads(line)
            frames.append((float(row["ts"]), tuple(_observation(o) for o in row["objects"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"recording line {n}: {exc!r}") from None
    return Recording(dict(header["incidents"]), zones, tuple(frames))


def _observation(o: Mapping[str, Any]) -> Observation:
    x1, y1, x2, y2 = (float(v) for v in o["box"])
    ground = o.get("ground")

    def opt(key: str) -> float | None:
        v = o.get(key)
        return None if v is None else float(v)

    return Observation(
        int(o["track_id"]), str(o["class_name"]), float(o["confidence"]), (x1, y1, x2, y2),
        anchor_of((x1, y1, x2, y2)), (float(ground[0]), float(ground[1])) if ground else None,
        age_s=opt("age_s"), area_m2=opt("area_m2"), width_m=opt("width_m"), elongation=opt("elongation"),
    )


def observation_row(o: Observation) -> dict[str, Any]:
    """One object of a frame line (the inverse of parsing it; used to record a scenario)."""
    row: dict[str, Any] = {"track_id": o.track_id, "class_name": o.class_name, "confidence": round(o.confidence, 3),
                           "box": [round(v, 1) for v in o.box]}
    if o.ground is not None:
        row["ground"] = [round(v, 2) for v in o.ground]
    for key in ("age_s", "area_m2", "width_m", "elongation"):
        value = getattr(o, key)
        if value is not None:
            row[key] = round(value, 2)
    return row


def build_rules(recording: Recording, registry: Registry | None = None) -> list[Rule]:
    """The header's rules, in registry order, as a camera builds them (config defaults for unset settings)."""
    registry = registry or default_registry()
    rules: list[Rule] = []
    for incident in registry:
        settings = recording.incidents.get(incident.name)
        if settings is None:
            continue
        cfg = incident.config.model_validate(settings)
        if cfg.enabled:
            rules.append(incident.build(cfg, recording.zones, "replay"))
    return rules


def replay(recording: Recording, rules: Sequence[Rule]) -> list[IncidentUpdate]:
    """Every update the rules produce over the recording, then the end-of-file flush."""
    out: list[IncidentUpdate] = []
    for ts, observations in recording.frames:
        for rule in rules:
            out.extend(rule.update(observations, ts))
    if recording.frames:
        last = recording.frames[-1][0]
        for rule in rules:
            out.extend(rule.flush(last, "source_ended"))
    return out


def summarise(updates: Iterable[IncidentUpdate]) -> list[dict[str, Any]]:
    """What a reviewer compares (see the module docstring); incident ids become `#n` by first appearance."""
    order: dict[str, str] = {}
    out = []
    for u in updates:
        ref = order.setdefault(u.incident_id, f"#{len(order) + 1}")
        row: dict[str, Any] = {
            "incident": ref, "type": u.type, "phase": u.phase, "zone": u.zone,
            "started": round(u.started_ts, 1), "ts": round(u.ts, 1),
            "tracks": [[o.role, o.track_id] for o in u.objects],
        }
        if u.end_reason is not None:
            row["end_reason"] = u.end_reason
        out.append(row)
    return out


def replay_text(lines: Iterable[str]) -> list[dict[str, Any]]:
    """parse -> build the rules -> replay -> summarise."""
    recording = parse_recording(lines)
    return summarise(replay(recording, build_rules(recording)))
