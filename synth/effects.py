"""Effects the scene-change stage must survive: lighting changes over time, camera shake, and the things real
cameras show besides the street: a burnt-in clock, swaying foliage, blinking lights.

Lighting and shake are applied after the look (so noise and JPEG stay per-frame); flicker patches (foliage, lamps)
are part of the scene, drawn before the look (`draw_flicker_patches`); the on-screen clock is drawn last, over the
shaken image, as a camera's encoder burns it in. All are pure functions of the scenario, t and the frame index,
like the rest of the renderer. Labels are not moved by the shake: it is a few pixels,
well inside any matching radius, and a label detector stands in for a detector that does not shake with the
mount either.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from numpy.typing import NDArray

from gridwatch.synth.scenario import EffectsSpec, FlickerPatchSpec, OsdClockSpec

Image = NDArray[np.uint8]


def light_gain(effects: EffectsSpec, t: float) -> float:
    """Global brightness gain at `t`: piecewise linear between the keys, held before the first and after the last.

    A cloud is two keys seconds apart; street lights switching on are two keys one frame apart."""
    keys = effects.light
    if not keys:
        return 1.0
    times = [k.t for k in keys]
    gains = [k.gain for k in keys]
    return float(np.interp(t, times, gains))


def shake_offset(effects: EffectsSpec, seed: int, index: int) -> tuple[float, float]:
    """(dx, dy) pixels of camera shake for frame `index`: uniform in +-shake_px, seeded per frame."""
    if effects.shake_px <= 0:
        return 0.0, 0.0
    rng = np.random.default_rng([seed, index, 7])
    dx, dy = rng.uniform(-effects.shake_px, effects.shake_px, size=2)
    return float(dx), float(dy)


def apply_effects(img: Image, effects: EffectsSpec, t: float, seed: int, index: int) -> Image:
    gain = light_gain(effects, t)
    out = img
    if abs(gain - 1.0) > 1e-6:
        out = np.clip(out.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    dx, dy = shake_offset(effects, seed, index)
    if dx or dy:
        h, w = out.shape[:2]
        m = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]], dtype=np.float32)
        out = np.asarray(cv2.warpAffine(out, m, (w, h), borderMode=cv2.BORDER_REPLICATE), dtype=np.uint8)
    if effects.osd_clock is not None:
        out = draw_osd_clock(out, effects.osd_clock, t)
    return out


def osd_text(clock: OsdClockSpec, t: float) -> str:
    """The clock's text at `t`: date and HH:MM:SS, whole seconds (wraps at midnight)."""
    s = math.floor(clock.start_s + t) % 86400
    return f"{clock.date} {s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def draw_osd_clock(img: Image, clock: OsdClockSpec, t: float) -> Image:
    """A copy of `img` with the clock burnt in: white text with a black outline, as camera OSDs draw it."""
    text = osd_text(clock, t)
    glyphs = np.zeros(img.shape[:2], np.uint8)
    cv2.putText(glyphs, text, clock.origin, cv2.FONT_HERSHEY_SIMPLEX, clock.scale, 255,
                clock.thickness or max(1, round(clock.scale * 2)), cv2.LINE_AA)
    outline = np.asarray(cv2.dilate(glyphs, np.ones((3, 3), np.uint8)))
    out = img.astype(np.float32)
    for layer, value in ((outline, 0.0), (glyphs, 255.0)):
        a = layer.astype(np.float32)[..., None] / 255.0
        out = out * (1.0 - a) + value * a
    return np.clip(out, 0, 255).astype(np.uint8)


def draw_flicker_patches(img: Image, effects: EffectsSpec, t: float, seed: int) -> Image:
    """`img` with every flicker patch drawn at `t` (the input is returned unchanged when there are none)."""
    if not effects.flicker_patches:
        return img
    out = img.copy()
    h, w = out.shape[:2]
    for k, patch in enumerate(effects.flicker_patches):
        x1, y1 = min(patch.box[0], w - 1), min(patch.box[1], h - 1)
        x2, y2 = min(patch.box[2], w), min(patch.box[3], h)
        if x2 > x1 and y2 > y1:
            region = out[y1:y2, x1:x2]
            draw = _sway if patch.kind == "sway" else _blink
            region[:] = draw(region, patch, t, [seed, k])
    return out


def _blink(region: Image, patch: FlickerPatchSpec, t: float, seed: list[int]) -> Image:
    """A lamp: bright warm light for the first half of each period, a dark housing for the second."""
    on = (t % patch.period_s) < patch.period_s / 2
    out = np.empty_like(region)
    out[:] = (120, 230, 255) if on else (40, 45, 50)
    return out


def _sway(region: Image, patch: FlickerPatchSpec, t: float, seed: list[int]) -> Image:
    """Foliage: a fixed leafy texture in an elliptical crown, shifted sideways by a sine of the period (with a
    second, faster gust), over whatever the crown uncovers."""
    h, w = region.shape[:2]
    pad = math.ceil(patch.amplitude_px) + 2
    rng = np.random.default_rng(seed)
    leaves = cv2.GaussianBlur(rng.uniform(0, 1, (h, w + 2 * pad)).astype(np.float32), (0, 0), 1.2)
    leaves = (leaves - leaves.min()) / max(1e-6, float(leaves.max() - leaves.min()))
    green = np.stack([30 + 50 * leaves, 70 + 120 * leaves, 25 + 45 * leaves], axis=-1)
    crown = np.zeros((h, w + 2 * pad), np.float32)
    cv2.ellipse(crown, (pad + w // 2, h // 2), (max(1, w // 2 - 1), max(1, h // 2 - 1)), 0, 0, 360, 1.0, -1)
    phase = 2 * math.pi * t / patch.period_s
    shift = patch.amplitude_px * (0.8 * math.sin(phase) + 0.2 * math.sin(3.1 * phase + 1.0))
    m = np.array([[1.0, 0.0, shift], [0.0, 1.0, 0.0]], np.float32)
    size = (w + 2 * pad, h)
    green = cv2.warpAffine(green.astype(np.float32), m, size, borderMode=cv2.BORDER_REFLECT)[:, pad:pad + w]
    crown = cv2.warpAffine(crown, m, size)[:, pad:pad + w, None]
    out = region.astype(np.float32) * (1.0 - crown) + green * crown
    return np.clip(out, 0, 255).astype(np.uint8)
