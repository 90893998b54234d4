"""Whole-frame effects the scene-change stage must survive: lighting changes over time and camera shake.

They are applied after the look (so noise and JPEG stay per-frame), and are pure functions of the scenario, t
and the frame index, like the rest of the renderer. Labels are not moved by the shake: it is a few pixels,
well inside any matching radius, and a label detector stands in for a detector that does not shake with the
mount either.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from gridwatch.synth.scenario import EffectsSpec

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
    return out
