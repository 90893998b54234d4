"""Seeded variants of the synthetic suite's scenarios, so the suite can be made as large as a measurement needs.

`variant(template, rng, name)` keeps what a template stages (who drops what, which car parks, the cloud) and
varies how: the whole scene moves along the street (-4..4 m, one shift for every actor so an owner stays by their
bag and a vendor by their stall), everything happens later (0-2.5 s), objects are 20 % smaller or 25 % larger, the
camera's pose moves a little, and the look (brightness, colour temperature, noise, JPEG quality) and shake change.
Truth is computed from the varied world (synth/truth.py), so it stays exact. `suite_variants(templates, n, seed)`
draws n variants, alternating a positive and a negative template (templates named ``pos_*`` carry incidents), so
a larger suite adds positives of every type quickly.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from gridwatch.synth.scenario import Scenario, parse_scenario

POSITIVE_ORDER = ("pos_vendor", "pos_wire", "pos_garbage", "pos_parking", "pos_littering", "pos_littering_box_shake")
"""Positive templates in the order variants use them: the types with one positive per template first."""


def _shift_times(actor: dict[str, Any], dt: float) -> None:
    for w in actor.get("waypoints", []):
        w["t"] += dt
    for key in ("t", "until_s", "fall_s"):
        if actor.get(key) is not None:
            actor[key] += dt
    drop = actor.get("drop")
    if drop:
        drop["t"] += dt
        if drop.get("pickup_s") is not None:
            drop["pickup_s"] += dt


def _shift_along(actor: dict[str, Any], da: float) -> None:
    for w in actor.get("waypoints", []):
        w["along"] += da
    for key in ("along", "pole_along"):
        if key in actor:
            actor[key] += da


def _scale_sizes(actor: dict[str, Any], f: float) -> None:
    if "size_m" in actor:
        actor["size_m"] = float(np.clip(actor["size_m"] * f, 0.15, 1.5 if actor.get("kind") == "litter" else 1.0))
    drop = actor.get("drop")
    if drop:
        drop["size_m"] = float(np.clip(drop["size_m"] * f, 0.15, 1.0))
    if actor.get("kind") == "wire":
        actor["lie_length_m"] = float(np.clip(actor["lie_length_m"] * f, 1.0, 30.0))
        actor["thickness_m"] = float(np.clip(actor["thickness_m"] * f, 0.01, 0.3))


def variant(template: Scenario, rng: np.random.Generator, name: str) -> Scenario:
    d = template.model_dump(mode="json")
    dt, da, f = float(rng.uniform(0.0, 2.5)), float(rng.uniform(-4.0, 4.0)), float(rng.uniform(0.8, 1.25))
    for actor in d["actors"]:
        if actor["kind"] == "car" and not _parks(actor):
            _shift_times(actor, dt)  # through traffic keeps its place: it only passes
            continue
        _shift_times(actor, dt)
        _shift_along(actor, da)
        _scale_sizes(actor, f)
    d["effects"]["light"] = [{**k, "t": k["t"] + dt} for k in d["effects"]["light"]]
    shake = d["effects"]["shake_px"]
    d["effects"]["shake_px"] = round(shake * float(rng.uniform(0.7, 1.3)) if shake else
                                     float(rng.choice([0.0, 0.0, rng.uniform(0.5, 2.0)])), 2)
    cam = d["camera"]
    cam["tilt_deg"] += float(rng.uniform(-2.0, 2.0))
    cam["heading_deg"] += float(rng.uniform(-5.0, 5.0))
    cam["height_m"] = float(np.clip(cam["height_m"] + rng.uniform(-0.5, 0.8), 1.0, 60.0))
    look = d["look"]
    look["brightness"] = float(np.clip(look["brightness"] * rng.uniform(0.85, 1.15), 0.2, 2.0))
    look["colour_temp_k"] = float(np.clip(look["colour_temp_k"] + rng.uniform(-1200, 1200), 2500, 12000))
    look["noise_sigma"] = float(np.clip(look["noise_sigma"] * rng.uniform(0.8, 1.6), 0.0, 30.0))
    look["jpeg_quality"] = int(np.clip(look["jpeg_quality"] + rng.integers(-15, 11), 5, 100))
    d["duration_s"] = d["duration_s"] + dt
    d["name"], d["seed"] = name, int(rng.integers(0, 2**31 - 1))
    return parse_scenario(d, name)


def _parks(car: dict[str, Any]) -> bool:
    """A car that comes to rest (two waypoints at the same place) or stands from its first waypoint."""
    ws = car["waypoints"]
    return len(ws) == 1 or any(a["along"] == b["along"] and a["out"] == b["out"] for a, b in itertools.pairwise(ws)) \
        or ws[-1]["out"] > -2.0


def suite_variants(templates: dict[str, Scenario], n: int, seed: int = 0) -> list[Scenario]:
    """n variants: even k from the positive templates in POSITIVE_ORDER (cycling), odd k from the negative ones
    (`neg_*`). Other positive templates (e.g. `pos_littering_osd`) run as they are, without variants."""
    positives = [templates[p] for p in POSITIVE_ORDER if p in templates]
    negatives = [s for name, s in sorted(templates.items()) if name.startswith("neg_")]
    out: list[Scenario] = []
    for k in range(n):
        pool = positives if k % 2 == 0 or not negatives else negatives
        tpl = pool[(k // 2) % len(pool)]
        out.append(variant(tpl, np.random.default_rng([seed, k]), f"v{k:03d}_{tpl.name}"))
    return out
