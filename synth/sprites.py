"""Synthetic objects drawn in image space for compositing onto real frames: bag, box, pile, wire.

A `Sprite` is a colour layer, an alpha (soft edges: drawn 4x supersampled and shrunk, then blurred a little) and a
shadow alpha, placed at an offset in the frame. Sizes come in metres and are turned into pixels with the
background's ground scale at the object's foot row, so a bag far up the view is smaller than one near the camera.
Pure functions of their arguments (the pile's layout comes from a seeded generator).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

FloatImage = NDArray[np.float32]
SS = 4  # supersampling factor


@dataclass(frozen=True)
class Sprite:
    x0: int  # frame column of the layers' left edge
    y0: int  # frame row of the layers' top edge
    colour: FloatImage  # (h, w, 3) BGR 0-255
    alpha: FloatImage  # (h, w) 0-1
    shadow: FloatImage  # (h, w) 0-1, darkening strength

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(x1, y1, x2, y2) of the visible object (alpha > 0.3) in frame pixels."""
        ys, xs = np.nonzero(self.alpha > 0.3)
        if len(xs) == 0:
            return self.x0, self.y0, self.x0, self.y0
        x0, y0 = self.x0, self.y0
        return x0 + int(xs.min()), y0 + int(ys.min()), x0 + int(xs.max()) + 1, y0 + int(ys.max()) + 1


def _canvas(w: int, h: int) -> tuple[NDArray[np.uint8], NDArray[np.uint8], NDArray[np.uint8]]:
    return (np.zeros((h * SS, w * SS, 3), np.uint8), np.zeros((h * SS, w * SS), np.uint8),
            np.zeros((h * SS, w * SS), np.uint8))


def _finish(x0: int, y0: int, col: NDArray[np.uint8], alpha: NDArray[np.uint8], shadow: NDArray[np.uint8],
            shadow_blur: float) -> Sprite:
    h, w = alpha.shape[0] // SS, alpha.shape[1] // SS
    a = np.asarray(cv2.GaussianBlur(cv2.resize(alpha, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0,
                                    (0, 0), 0.6), np.float32)
    # colour is premultiplied on the canvas: un-premultiply after shrinking so the edges do not go dark
    c = cv2.resize(col, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
    cov = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)[..., None] / 255.0
    c = np.where(cov > 1e-3, c / np.maximum(cov, 1e-3), 0.0).astype(np.float32)
    s = np.asarray(cv2.GaussianBlur(cv2.resize(shadow, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0,
                                    (0, 0), shadow_blur), np.float32)
    return Sprite(x0, y0, np.clip(c, 0, 255).astype(np.float32), np.clip(a, 0, 1), np.clip(s, 0, 1))


def _shade(bgr: tuple[int, int, int], f: float) -> tuple[int, int, int]:
    return (min(255, int(bgr[0] * f)), min(255, int(bgr[1] * f)), min(255, int(bgr[2] * f)))


def _texture(rng: np.random.Generator, shape: tuple[int, int], amp: float) -> NDArray[np.float32]:
    small = rng.normal(0.0, amp, (max(1, shape[0] // 6), max(1, shape[1] // 6))).astype(np.float32)
    return np.asarray(cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR), np.float32)


def bag(cx: float, cy: float, size_px: float, bgr: tuple[int, int, int], seed: int) -> Sprite:
    """A tied plastic bag seen from above at an angle: a lumpy ellipse with a knot, lit from the top."""
    rng = np.random.default_rng([seed, 1])
    w, h = max(4.0, size_px), max(3.0, 0.75 * size_px)
    pad = int(0.4 * w) + 4
    bw, bh = int(w + 2 * pad), int(h + 2 * pad)
    col, alpha, shadow = _canvas(bw, bh)
    c = (int(pad * SS + w * SS / 2), int(pad * SS + h * SS * 0.55))
    axes = (int(w * SS / 2), int(h * SS / 2 * 0.8))
    for k, f in enumerate((0.75, 0.95, 1.2)):  # darker bottom, lit top
        shift = int((1 - k) * axes[1] * 0.25)
        cv2.ellipse(col, (c[0], c[1] + shift), (int(axes[0] * (1 - 0.12 * k)), int(axes[1] * (1 - 0.2 * k))), 0, 0,
                    360, _shade(bgr, f), -1, cv2.LINE_AA)
    cv2.ellipse(alpha, c, axes, 0, 0, 360, 255, -1, cv2.LINE_AA)
    knot = (c[0] + int(rng.uniform(-0.15, 0.15) * axes[0]), c[1] - axes[1])
    kr = max(2, int(axes[0] * 0.22))
    cv2.circle(col, knot, kr, _shade(bgr, 1.1), -1, cv2.LINE_AA)
    cv2.circle(alpha, knot, kr, 255, -1, cv2.LINE_AA)
    cv2.ellipse(shadow, (c[0] + axes[0] // 8, c[1] + axes[1] * 3 // 4), (int(axes[0] * 1.1), max(2, axes[1] // 3)), 0,
                0, 360, 255, -1, cv2.LINE_AA)
    col = np.where(alpha[..., None] > 0, col, 0).astype(np.uint8)
    col = _premultiply(col, alpha)
    sp = _finish(round(cx - pad - w / 2), round(cy - pad - h * 0.9), col, alpha, shadow, 2.0)
    tex = _texture(rng, sp.alpha.shape, 10.0)
    return Sprite(sp.x0, sp.y0, np.clip(sp.colour + tex[..., None], 0, 255).astype(np.float32), sp.alpha, sp.shadow)


def box(cx: float, cy: float, size_px: float, bgr: tuple[int, int, int], seed: int) -> Sprite:
    """A cardboard box: a lighter top face over a front face."""
    rng = np.random.default_rng([seed, 2])
    w = max(4.0, size_px)
    front, depth = 0.55 * w, 0.35 * w
    pad = int(0.3 * w) + 4
    bw, bh = int(w + 2 * pad), int(front + depth + 2 * pad)
    col, alpha, shadow = _canvas(bw, bh)
    x1, y_top = pad * SS, pad * SS
    x2 = int((pad + w) * SS)
    y_mid, y_bot = int((pad + depth) * SS), int((pad + depth + front) * SS)
    skew = int(0.15 * w * SS)
    top = np.array([[x1 + skew, y_top], [x2 + skew, y_top], [x2, y_mid], [x1, y_mid]], np.int32)
    face = np.array([[x1, y_mid], [x2, y_mid], [x2, y_bot], [x1, y_bot]], np.int32)
    cv2.fillPoly(col, [top], _shade(bgr, 1.25), cv2.LINE_AA)
    cv2.fillPoly(col, [face], _shade(bgr, 0.85), cv2.LINE_AA)
    for poly in (top, face):
        cv2.fillPoly(alpha, [poly], 255, cv2.LINE_AA)
    foot = np.array([[x1, y_bot - SS * 2], [x2 + skew * 2, y_bot - SS * 2], [x2 + skew * 2, y_bot + skew],
                     [x1 + skew, y_bot + skew]], np.int32)
    cv2.fillPoly(shadow, [foot], 255, cv2.LINE_AA)
    col = _premultiply(col, alpha)
    sp = _finish(round(cx - pad - w / 2), round(cy - pad - depth - front), col, alpha, shadow, 2.0)
    tex = _texture(rng, sp.alpha.shape, 6.0)
    return Sprite(sp.x0, sp.y0, np.clip(sp.colour + tex[..., None], 0, 255).astype(np.float32), sp.alpha, sp.shadow)


PILE_COLOURS: tuple[tuple[int, int, int], ...] = (
    (60, 70, 90), (40, 40, 45), (200, 200, 205), (70, 100, 140), (50, 90, 60), (30, 30, 160), (150, 140, 120),
    (90, 120, 150),
)


def pile(cx: float, cy: float, size_px: float, bgr: tuple[int, int, int], seed: int, shown: float = 1.0) -> Sprite:
    """A heap of bags and scraps: overlapping lumps around the base colour; `shown` (0-1) grows it lump by lump."""
    rng = np.random.default_rng([seed, 3])
    n = int(rng.integers(7, 12))
    lumps = []
    for _ in range(n):
        r = rng.uniform(0.16, 0.3) * size_px
        ang = rng.uniform(0, 2 * math.pi)
        dist = rng.uniform(0, 0.32) * size_px
        colour = bgr if rng.random() < 0.45 else PILE_COLOURS[int(rng.integers(len(PILE_COLOURS)))]
        lumps.append((dist * math.cos(ang), 0.6 * dist * math.sin(ang), r, colour, rng.uniform(0.8, 1.2)))
    lumps.sort(key=lambda lp: lp[1])  # far (up) first, near (down) last: near lumps cover far ones
    k = max(1, math.ceil(shown * n))
    pad = int(0.8 * size_px) + 4
    bw = bh = int(2 * pad)
    col, alpha, shadow = _canvas(bw, bh)
    base = (int(0.6 * size_px * SS), int(0.22 * size_px * SS))
    cv2.ellipse(shadow, (pad * SS, int((pad + 0.25 * size_px) * SS)), base, 0, 0, 360, 255, -1, cv2.LINE_AA)
    for dx, dy, r, colour, light in lumps[:k]:
        c = (int((pad + dx) * SS), int((pad + dy) * SS))
        axes = (int(r * SS), int(0.75 * r * SS))
        cv2.ellipse(col, c, axes, 0, 0, 360, _shade(colour, 0.8 * light), -1, cv2.LINE_AA)
        cv2.ellipse(col, (c[0], c[1] - axes[1] // 4), (axes[0] * 3 // 4, axes[1] // 2), 0, 0, 360,
                    _shade(colour, 1.15 * light), -1, cv2.LINE_AA)
        cv2.ellipse(alpha, c, axes, 0, 0, 360, 255, -1, cv2.LINE_AA)
    col = _premultiply(col, alpha)
    sp = _finish(round(cx - pad), round(cy - pad), col, alpha, shadow, 3.0)
    tex = _texture(rng, sp.alpha.shape, 12.0)
    return Sprite(sp.x0, sp.y0, np.clip(sp.colour + tex[..., None], 0, 255).astype(np.float32), sp.alpha, sp.shadow)


def wire_points(cx: float, cy: float, length_px: float, angle_deg: float, seed: int) -> NDArray[np.float64]:
    """(n, 2) frame points of a cable lying on the ground: a gentle random wave about a straight line."""
    rng = np.random.default_rng([seed, 4])
    n = 48
    s = np.linspace(-0.5, 0.5, n) * length_px
    periods, amp, phase = rng.uniform(0.6, 1.6), rng.uniform(0.02, 0.06) * length_px, rng.uniform(0, 2 * math.pi)
    off = amp * np.sin(2 * math.pi * periods * (s / length_px) + phase)
    a = math.radians(angle_deg)
    ux, uy, nx, ny = math.cos(a), math.sin(a), -math.sin(a), math.cos(a)
    return np.stack([cx + s * ux + off * nx, cy + s * uy + off * ny], axis=1)


def wire(cx: float, cy: float, length_px: float, thickness_px: float, angle_deg: float, bgr: tuple[int, int, int],
         seed: int) -> Sprite:
    """A cable lying across the ground, with a thin soft shadow beside it."""
    pts = wire_points(cx, cy, length_px, angle_deg, seed)
    th = max(1.5, thickness_px)
    pad = int(th * 2) + 6
    x0, y0 = math.floor(pts[:, 0].min()) - pad, math.floor(pts[:, 1].min()) - pad
    bw = math.ceil(pts[:, 0].max()) + pad - x0
    bh = math.ceil(pts[:, 1].max()) + pad - y0
    col, alpha, shadow = _canvas(bw, bh)
    local = ((pts - [x0, y0]) * SS).astype(np.int32).reshape(-1, 1, 2)
    lw = max(1, round(th * SS))
    offset = np.array([int(th * SS * 0.8), int(th * SS * 1.2)], np.int32)
    cv2.polylines(shadow, [local + offset], False, 255, int(lw * 1.6), cv2.LINE_AA)
    cv2.polylines(col, [local], False, bgr, lw, cv2.LINE_AA)
    cv2.polylines(alpha, [local], False, 255, lw, cv2.LINE_AA)
    lit = local - np.array([0, max(1, lw // 4)], np.int32)  # a highlight along the top of the cable
    cv2.polylines(col, [lit], False, _shade(bgr, 1.6), max(1, lw // 3), cv2.LINE_AA)
    col = _premultiply(col, alpha)
    return _finish(x0, y0, col, alpha, shadow, 1.2)


def _premultiply(col: NDArray[np.uint8], alpha: NDArray[np.uint8]) -> NDArray[np.uint8]:
    return (col.astype(np.float32) * (alpha[..., None].astype(np.float32) / 255.0)).astype(np.uint8)
