"""The seeded randomised composite family: positives and hard negatives on the real backgrounds.

`composite_suite(n, seed)` returns n scenarios cycling through `CASES`, each drawn from its own generator
(``default_rng([seed, k])``), so scenario k is the same whatever n is. Every scenario varies the object (kind,
size, colour, place on the ground, angle), its timing and the conditions (a passing cloud, shake, extra noise,
JPEG quality). Per cycle of ten: two littering, two exposed garbage (a growing pile and a bag or box) and two
fallen wires, and four hard negatives:

* ``neg_scenery``: an object that is there from the first frame (part of the view at setup);
* ``neg_pickup``: the walker sets a bag down and takes it again about a second later;
* ``neg_transient``: a bag or pile lies for 1.5-3 s, then is gone;
* ``neg_effects``: nothing new; a deep cloud, shake up to 3 px, heavy noise and low JPEG quality on the real clip.
"""

from __future__ import annotations

import cv2
import numpy as np

from gridwatch.synth.backgrounds import BACKGROUNDS, Background
from gridwatch.synth.composite import CompositeScenario, PastedObject
from gridwatch.synth.scenario import EffectsSpec, LightKey

Rgb = tuple[int, int, int]
CASES = ("littering", "garbage_pile", "wire", "garbage_bag", "littering", "wire", "neg_scenery", "neg_pickup",
         "neg_transient", "neg_effects")
POSITIVE_TYPE = {"littering": "littering", "garbage_pile": "exposed_garbage", "garbage_bag": "exposed_garbage",
                 "wire": "fallen_wire"}
GROUND_BACKGROUNDS = ("aboda_empty", "lot_aisle")
DURATION_S = {"aboda_empty": 20.0, "lot_aisle": 22.0, "aboda_walker": 15.5}
BAG_COLOURS: tuple[Rgb, ...] = ((22, 22, 24), (235, 235, 235), (40, 80, 170), (60, 120, 60), (200, 200, 60),
                                (150, 110, 70))
PILE_COLOURS: tuple[Rgb, ...] = ((90, 80, 60), (60, 60, 65), (150, 130, 100), (120, 90, 70))
WIRE_COLOURS: tuple[Rgb, ...] = ((18, 18, 20), (30, 30, 32), (60, 55, 50))
DROP_CLIP_S = (30.4, 32.2)
"""Clip seconds of aboda_walker's man at which a drop leaves him >= 3 m to walk away before the clip ends."""


def _pick(rng: np.random.Generator, items: tuple[Rgb, ...]) -> Rgb:
    return items[int(rng.integers(len(items)))]


def _inside(bg: Background, pts: list[tuple[float, float]]) -> bool:
    poly = np.array(bg.ground, np.float32).reshape(-1, 1, 2)
    return all(cv2.pointPolygonTest(poly, (float(x), float(y)), False) >= 0 for x, y in pts)


def _place(rng: np.random.Generator, bg: Background, half_w_m: float, half_h_m: float) -> tuple[float, float]:
    """A ground point whose object (half sizes in metres) lies wholly on the background's ground polygon."""
    xs, ys = [p[0] for p in bg.ground], [p[1] for p in bg.ground]
    for _ in range(200):
        x, y = float(rng.uniform(min(xs), max(xs))), float(rng.uniform(min(ys), max(ys)))
        s = bg.px_per_m(y)
        hw, hh = half_w_m * s, half_h_m * s
        if _inside(bg, [(x - hw, y - hh), (x + hw, y - hh), (x - hw, y + hh), (x + hw, y + hh)]):
            return x, y
    raise RuntimeError(f"no place for a {2 * half_w_m:.1f} m object on {bg.name}'s ground")


def _effects(rng: np.random.Generator, hard: bool = False) -> tuple[EffectsSpec, float, int]:
    """(effects, extra noise sigma, JPEG quality): a cloud half the time, some shake, noise and compression."""
    light: list[LightKey] = []
    if hard or rng.random() < 0.5:
        t0, low = float(rng.uniform(2.0, 8.0)), float(rng.uniform(0.55, 0.7) if hard else rng.uniform(0.7, 0.9))
        light = [LightKey(t=t0, gain=1.0), LightKey(t=t0 + 4.0, gain=low), LightKey(t=t0 + 8.0, gain=1.0)]
    shake = float(rng.uniform(1.5, 3.0)) if hard else float(rng.choice([0.0, rng.uniform(0.5, 2.0)]))
    noise = float(rng.uniform(6.0, 10.0)) if hard else float(rng.uniform(0.0, 5.0))
    jpeg = int(rng.integers(20, 40)) if hard else int(rng.integers(40, 92))
    return EffectsSpec(light=light, shake_px=round(shake, 2)), round(noise, 2), jpeg


def _garbage(rng: np.random.Generator, bg: Background, oid: str, kind: str, t: float,
             until_s: float | None = None) -> PastedObject:
    if kind == "pile":
        size = float(rng.uniform(0.7, 1.4))
        x, y = _place(rng, bg, 0.8 * size, 0.6 * size)
        return PastedObject(id=oid, kind="pile", t=t, until_s=until_s, x=x, y=y, size_m=round(size, 2),
                            colour=_pick(rng, PILE_COLOURS),
                            grow_s=round(float(rng.uniform(0.0, 6.0)), 1) if t > 0 else 0.0)  # scenery never grows
    item = "bag" if kind == "bag" and rng.random() < 0.7 else "box"
    size = float(rng.uniform(0.4, 0.7))
    x, y = _place(rng, bg, 0.7 * size, 0.9 * size)
    return PastedObject(id=oid, kind=item, t=t, until_s=until_s, x=x, y=y, size_m=round(size, 2),
                        colour=_pick(rng, BAG_COLOURS))


def _wire(rng: np.random.Generator, bg: Background, oid: str, t: float) -> PastedObject:
    length = float(rng.uniform(2.0, 4.5))
    angle = float(rng.uniform(-60.0, 60.0))
    ux, uy = np.cos(np.radians(angle)), np.sin(np.radians(angle))
    for _ in range(50):
        x, y = _place(rng, bg, 0.2, 0.2)
        half = 0.55 * length * bg.px_per_m(y)
        if _inside(bg, [(x - half * ux, y - half * uy), (x + half * ux, y + half * uy)]):
            return PastedObject(id=oid, kind="wire", t=t, x=x, y=y, size_m=round(length, 2),
                                angle_deg=round(angle, 1), thickness_m=round(float(rng.uniform(0.03, 0.06)), 3),
                                colour=_pick(rng, WIRE_COLOURS))
        length *= 0.85
    raise RuntimeError(f"no place for a wire on {bg.name}")


def _drop(rng: np.random.Generator, until: float | None) -> PastedObject:
    bg = BACKGROUNDS["aboda_walker"]
    clip_t = float(rng.uniform(*DROP_CLIP_S))
    foot = bg.walkers["man"].foot_at(clip_t)
    assert foot is not None  # DROP_CLIP_S lies inside the walker's path
    side = float(rng.choice([-1.0, 1.0])) * float(rng.uniform(15.0, 35.0))
    t = round(clip_t - bg.window.start_s, 2)
    return PastedObject(id="bag", kind="bag" if rng.random() < 0.75 else "box", t=t,
                        until_s=None if until is None else round(t + until, 2), x=round(foot[0] + side, 1),
                        y=round(foot[1] + float(rng.uniform(-5.0, 5.0)), 1),
                        size_m=round(float(rng.uniform(0.35, 0.6)), 2),
                        colour=_pick(rng, BAG_COLOURS), owner="man")


def _ground_case(rng: np.random.Generator, case: str) -> tuple[str, list[PastedObject]]:
    name = GROUND_BACKGROUNDS[int(rng.integers(len(GROUND_BACKGROUNDS)))]
    bg = BACKGROUNDS[name]
    t = round(float(rng.uniform(6.0, 9.0)), 2)
    if case == "garbage_pile":
        return name, [_garbage(rng, bg, "pile", "pile", t)]
    if case == "garbage_bag":
        return name, [_garbage(rng, bg, "bag", "bag", t)]
    if case == "wire":
        return name, [_wire(rng, bg, "wire", t)]
    if case == "neg_scenery":
        kind = str(rng.choice(["pile", "bag", "wire"]))
        if kind == "wire":
            return name, [_wire(rng, bg, "wire", 0.0)]
        return name, [_garbage(rng, bg, kind, kind, 0.0)]
    # neg_transient
    kind = str(rng.choice(["pile", "bag"]))
    return name, [_garbage(rng, bg, kind, kind, t, until_s=round(t + float(rng.uniform(1.5, 3.0)), 2))]


def random_composite(rng: np.random.Generator, case: str, name: str, seed: int) -> CompositeScenario:
    if case not in CASES:
        raise ValueError(f"unknown composite case {case!r}: use one of {sorted(set(CASES))}")
    if case == "littering":
        background, objects = "aboda_walker", [_drop(rng, None)]
    elif case == "neg_pickup":
        background, objects = "aboda_walker", [_drop(rng, float(rng.uniform(0.8, 1.5)))]
    elif case == "neg_effects":
        background, objects = str(rng.choice(["aboda_empty", "lot_aisle", "aboda_walker"])), []
    else:
        background, objects = _ground_case(rng, case)
    effects, noise, jpeg = _effects(rng, hard=case == "neg_effects")
    return CompositeScenario(name=name, seed=seed, background=background, duration_s=DURATION_S[background],
                             objects=objects, effects=effects, noise_sigma=noise, jpeg_quality=jpeg)


def composite_suite(n: int, seed: int = 0) -> list[CompositeScenario]:
    """n scenarios, case k % len(CASES); scenario k depends only on (seed, k)."""
    out = []
    for k in range(n):
        case = CASES[k % len(CASES)]
        out.append(random_composite(np.random.default_rng([seed, k]), case, f"c{k:03d}_{case}", seed * 100003 + k))
    return out
