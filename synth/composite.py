"""Composite scenarios: synthetic objects pasted onto real footage, with ground truth the benchmark scores.

    >>> spec = CompositeScenario(background="lot_aisle", duration_s=20, objects=[
    ...     PastedObject(id="pile", kind="pile", t=6.0, x=300, y=220, size_m=0.9, colour=(90, 80, 60))])
    >>> generate_composite(spec, shared_root, out_dir)          # doctest: +SKIP

A composite plays a real clip's frames (synth/backgrounds.py: real people and cars moving, real sensor noise and
compression) and pastes objects into them (synth/sprites.py), each at its ground scale, with a soft contact
shadow and its colour scaled by the local brightness of the background around it. Real movers stay in front:
where the real frame differs from the clip's median background (a person or car passing) the object is hidden.
Then the scenario's effects (lighting keys, shake: synth/effects.py), extra sensor noise and a JPEG round trip are
applied to the whole frame. Everything is a function of the scenario (and its seed) and the clip: the same inputs
give the same video and truth.

Outputs, like `synth.generate`: ``video.mp4``, ``truth.json`` (`camera` is null: truth is in frame pixels, each
incident with its `pixel` centre, `box` and a matching `radius_px`), ``scenario.json``.

What the truth counts (the objects' own meaning, not any rule's dwell):

* an object pasted from the first frame (``t`` < `SCENERY_S`) is part of the view when the camera was set up: none;
* an object that stays less than `MIN_STAY_S` (picked up, blown away) is not an incident;
* otherwise: a wire is ``fallen_wire`` (from when it has come to rest), an object dropped by a walker (``owner``)
  is ``littering`` (from the drop), anything else is ``exposed_garbage`` (from its first appearance).

A littering truth also says when its owner was first more than `LEAVE_DISTANCE_M` from the object on the ground
(the background's pixels-per-metre scale at each point), or out of the walker's path (``owner_left_s``, as
synth/truth.py: the littering rule's dwell is the time the object lies unattended).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gridwatch.synth import sprites
from gridwatch.synth.backgrounds import BACKGROUNDS, Background
from gridwatch.synth.effects import apply_effects
from gridwatch.synth.scenario import EffectsSpec, ScenarioError
from gridwatch.synth.truth import LEAVE_DISTANCE_M

Rgb = tuple[int, int, int]
Image = NDArray[np.uint8]

SCENERY_S = 0.5
MIN_STAY_S = 10.0
OWNER_MAX_PX = 80.0
"""A dropped object lies at most this far (frame pixels) from its owner's feet at the drop."""
_LEAVE_STEP_S = 0.05
MEDIAN_SAMPLES = 25
OCCLUDER_DIFF = 40
"""A real pixel differing this much (max over channels) from the clip's median background is a mover in front."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PastedObject(_Strict):
    id: str = Field(min_length=1)
    kind: Literal["bag", "box", "pile", "wire"]
    t: float = Field(0.0, ge=0.0, description="Appearance (drop, dump, fall start), seconds into the scenario.")
    until_s: float | None = Field(None, description="Removed at this time (None = stays).")
    x: float = Field(description="Ground contact centre, frame column.")
    y: float = Field(description="Ground contact centre, frame row.")
    size_m: float = Field(0.5, ge=0.1, le=8.0, description="Width of a bag/box/pile; length of a wire.")
    colour: Rgb = (25, 25, 25)
    angle_deg: float = Field(0.0, description="Wire direction in the image (0 = left to right).")
    thickness_m: float = Field(0.04, ge=0.01, le=0.2, description="Wire thickness.")
    grow_s: float = Field(0.0, ge=0.0, le=600.0, description="A pile grows to full size over this time.")
    fall_s: float = Field(0.6, gt=0.0, le=5.0, description="A wire fades in over this time (it falls).")
    owner: str | None = Field(None, description="The background walker who drops it at t (littering).")

    @model_validator(mode="after")
    def verify_scenery_still(self) -> PastedObject:
        if self.t < SCENERY_S and self.grow_s > 0:
            raise ValueError(f"object {self.id!r} is scenery (t < {SCENERY_S} s): it cannot grow; set grow_s: 0")
        return self

    @model_validator(mode="after")
    def verify_until_after_t(self) -> PastedObject:
        if self.until_s is not None and self.until_s <= self.t:
            raise ValueError(f"until_s {self.until_s} must be after t {self.t}")
        return self


class CompositeScenario(_Strict):
    name: str = "composite"
    seed: int = 0
    background: str = Field(description=f"One of {sorted(BACKGROUNDS)} (synth/backgrounds.py).")
    duration_s: float = Field(20.0, gt=0.0, le=600.0)
    fps: float = Field(10.0, gt=0.0, le=30.0)
    objects: list[PastedObject] = Field(default_factory=list)
    effects: EffectsSpec = EffectsSpec()
    noise_sigma: float = Field(0.0, ge=0.0, le=30.0, description="Extra Gaussian sensor noise, grey levels.")
    jpeg_quality: int = Field(90, ge=5, le=100)

    @model_validator(mode="after")
    def verify_background(self) -> CompositeScenario:
        bg = BACKGROUNDS.get(self.background)
        if bg is None:
            raise ValueError(f"background {self.background!r} unknown: use one of {sorted(BACKGROUNDS)}")
        longest = bg.window.max_duration_s()
        if longest is not None and self.duration_s > longest + 1e-6:
            raise ValueError(f"duration_s {self.duration_s} exceeds background {bg.name}'s {longest:.1f} s window")
        for o in self.objects:
            if o.owner is not None and o.owner not in bg.walkers:
                raise ValueError(f"objects.{o.id}.owner {o.owner!r} unknown: {bg.name} has {sorted(bg.walkers)}")
        return self

    @property
    def frame_count(self) -> int:
        return max(1, round(self.duration_s * self.fps))

    @property
    def bg(self) -> Background:
        return BACKGROUNDS[self.background]


# --- reading the real clip ------------------------------------------------------------------------------------
def _clip_fps(path: Path) -> float:
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise ScenarioError(f"cannot open background clip {path}")
        return float(cap.get(cv2.CAP_PROP_FPS))
    finally:
        cap.release()


def source_indices(sc: CompositeScenario, clip_fps: float) -> list[int]:
    """Source frame index shown at each output frame."""
    return [round(sc.bg.window.clip_time(i / sc.fps) * clip_fps) for i in range(sc.frame_count)]


def read_frames(path: Path, indices: list[int]) -> Iterator[Image]:
    """The frames at `indices` (in that order), decoding the clip once, sequentially; a clip shorter than an
    index repeats its last frame. Non-decreasing indices stream; others (pingpong) keep the wanted frames."""
    if all(a <= b for a, b in itertools.pairwise(indices)):
        yield from _stream(path, indices)
        return
    wanted = sorted(set(indices))
    cache: dict[int, Image] = dict(zip(wanted, _stream(path, wanted), strict=True))
    for idx in indices:
        yield cache[idx]


def _stream(path: Path, indices: list[int]) -> Iterator[Image]:
    cap = cv2.VideoCapture(str(path))
    try:
        i = 0
        last: Image | None = None
        for w in indices:
            while i <= w:
                ok, frame = cap.read()
                if not ok:
                    break
                last = np.asarray(frame, np.uint8)
                i += 1
            if last is None:
                raise ScenarioError(f"{path}: no frame decodes")
            yield last
    finally:
        cap.release()


def median_background(frames: list[Image]) -> Image:
    return np.median(np.stack(frames), axis=0).astype(np.uint8)


# --- objects ---------------------------------------------------------------------------------------------------
def _sprite(obj: PastedObject, bg: Background, seed: int, t: float) -> sprites.Sprite:
    s = bg.px_per_m(obj.y)
    bgr = (obj.colour[2], obj.colour[1], obj.colour[0])
    obj_seed = seed * 1009 + sum(map(ord, obj.id))
    if obj.kind == "bag":
        return sprites.bag(obj.x, obj.y, obj.size_m * s, bgr, obj_seed)
    if obj.kind == "box":
        return sprites.box(obj.x, obj.y, obj.size_m * s, bgr, obj_seed)
    if obj.kind == "pile":
        shown = 1.0 if obj.grow_s <= 0 else min(1.0, max(0.0, (t - obj.t) / obj.grow_s) * 0.7 + 0.3)
        return sprites.pile(obj.x, obj.y, obj.size_m * s, bgr, obj_seed, shown)
    return sprites.wire(obj.x, obj.y, obj.size_m * s, obj.thickness_m * s, obj.angle_deg, bgr, obj_seed)


def visible(obj: PastedObject, t: float) -> bool:
    return obj.t <= t and (obj.until_s is None or t < obj.until_s)


def _fade(obj: PastedObject, t: float) -> float:
    return min(1.0, (t - obj.t) / obj.fall_s) if obj.kind == "wire" else 1.0


def paste(img: Image, sp: sprites.Sprite, median: Image, strength: float, noise: NDArray[np.float32]) -> None:
    """Blend `sp` into `img` in place: shadow, then the object, hidden where a real mover is in front."""
    h, w = img.shape[:2]
    x1, y1 = max(0, sp.x0), max(0, sp.y0)
    x2, y2 = min(w, sp.x0 + sp.alpha.shape[1]), min(h, sp.y0 + sp.alpha.shape[0])
    if x2 <= x1 or y2 <= y1:
        return
    sl = (slice(y1 - sp.y0, y2 - sp.y0), slice(x1 - sp.x0, x2 - sp.x0))
    region = img[y1:y2, x1:x2].astype(np.float32)
    bgm = median[y1:y2, x1:x2].astype(np.float32)
    front = (np.abs(region - bgm).max(axis=2) > OCCLUDER_DIFF).astype(np.uint8)
    front = cv2.dilate(front, np.ones((5, 5), np.uint8)).astype(np.float32)
    keep = 1.0 - front
    # colour matched to the local background: as bright as the ground around it is relative to the whole frame
    local = float(bgm.mean()) / max(1.0, float(median.mean()))
    gain = float(np.clip(local, 0.6, 1.4))
    shadow = sp.shadow[sl] * 0.45 * strength * keep
    out = region * (1.0 - shadow[..., None])
    a = (sp.alpha[sl] * strength * keep)[..., None]
    colour = sp.colour[sl] * gain + noise[: y2 - y1, : x2 - x1, None]
    out = out * (1.0 - a) + colour * a
    img[y1:y2, x1:x2] = np.clip(out, 0, 255).astype(np.uint8)


def sensor_noise(src: Image, median: Image) -> float:
    """The clip's per-pixel noise (robust sigma of frame minus median background: movers do not inflate it)."""
    d = (src[::4, ::4].astype(np.float32) - median[::4, ::4].astype(np.float32)).ravel()
    return float(np.clip(1.4826 * np.median(np.abs(d - np.median(d))), 1.0, 6.0))


def composite_frame(sc: CompositeScenario, src: Image, median: Image, index: int) -> Image:
    """One output frame: the real frame with the scenario's objects pasted, effects, noise and JPEG applied."""
    t = index / sc.fps
    img = src.copy()
    noise_sd = sensor_noise(src, median)
    for k, obj in enumerate(sc.objects):
        if not visible(obj, t):
            continue
        sp = _sprite(obj, sc.bg, sc.seed, t)
        rng = np.random.default_rng([sc.seed, index, k, 11])
        noise = rng.normal(0.0, noise_sd, sp.alpha.shape).astype(np.float32)
        paste(img, sp, median, _fade(obj, t), noise)
    img = apply_effects(img, sc.effects, t, sc.seed, index)
    if sc.noise_sigma > 0:
        rng = np.random.default_rng([sc.seed, index, 13])
        img = np.clip(img.astype(np.float32) + rng.normal(0.0, sc.noise_sigma, img.shape), 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, sc.jpeg_quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return np.asarray(cv2.imdecode(buf, cv2.IMREAD_COLOR), np.uint8)


# --- truth -------------------------------------------------------------------------------------------------------
def incident_type(obj: PastedObject, duration_s: float) -> str | None:
    if obj.t < SCENERY_S:
        return None
    stays = (obj.until_s if obj.until_s is not None else math.inf) - obj.t
    if stays < MIN_STAY_S:
        return None
    if obj.kind == "wire":
        return "fallen_wire"
    return "littering" if obj.owner is not None else "exposed_garbage"


def object_box(sc: CompositeScenario, obj: PastedObject) -> tuple[int, int, int, int]:
    """The object's box when fully there (frame pixels, clipped to the frame)."""
    x1, y1, x2, y2 = _sprite(obj, sc.bg, sc.seed, math.inf).box
    w, h = sc.bg.size
    return max(0, x1), max(0, y1), min(w, x2), min(h, y2)


def owner_left_s(sc: CompositeScenario, obj: PastedObject) -> float:
    """Scenario seconds at which `obj`'s owner is first more than `LEAVE_DISTANCE_M` from it on the ground (the
    pixel distance over the mean ground scale of the two points), or past the end of their keyframed path (the
    walker may still be in view there; the path is what the truth knows); the scenario's end if never."""
    if obj.owner is None:
        raise ValueError(f"object {obj.id!r} has no owner")
    walker, bg = sc.bg.walkers[obj.owner], sc.bg
    steps = max(0, math.ceil((sc.duration_s - obj.t) / _LEAVE_STEP_S))
    for k in range(steps + 1):
        t = min(sc.duration_s, obj.t + k * _LEAVE_STEP_S)
        foot = walker.foot_at(bg.window.clip_time(t))
        if foot is None:
            return t
        scale = 0.5 * (bg.px_per_m(foot[1]) + bg.px_per_m(obj.y))
        if math.hypot(foot[0] - obj.x, foot[1] - obj.y) / scale > LEAVE_DISTANCE_M:
            return t
    return sc.duration_s


def truth(sc: CompositeScenario) -> dict[str, Any]:
    incidents: list[dict[str, Any]] = []
    for obj in sc.objects:
        kind = incident_type(obj, sc.duration_s)
        if kind is None:
            continue
        x1, y1, x2, y2 = object_box(sc, obj)
        start = obj.t + (obj.fall_s if obj.kind == "wire" else 0.0)
        incident: dict[str, Any] = {
            "type": kind, "actor": obj.id if obj.owner is None else f"{obj.owner}/{obj.id}",
            "start_s": round(start, 3), "end_s": obj.until_s,
            "pixel": [round((x1 + x2) / 2, 1), round((y1 + y2) / 2, 1)], "box": [x1, y1, x2, y2],
            "radius_px": round(max(40.0, 0.5 * math.hypot(x2 - x1, y2 - y1)), 1),
            "in_view": True,
        }
        if kind == "littering":
            incident["owner_left_s"] = round(owner_left_s(sc, obj), 3)
        incidents.append(incident)
    w, h = sc.bg.size
    win = sc.bg.window
    return {"scenario": sc.name, "seed": sc.seed, "fps": sc.fps, "frame_count": sc.frame_count, "width": w,
            "height": h, "camera": None, "zones": [],
            "background": {"name": sc.bg.name, "clip": sc.bg.clip, "window": [win.start_s, win.end_s, win.mode]},
            "incidents": sorted(incidents, key=lambda i: (i["start_s"], i["type"]))}


def check_owners(sc: CompositeScenario) -> None:
    """Each dropped object lies by its owner's feet at the drop (else the truth would call a non-drop littering)."""
    for obj in sc.objects:
        if obj.owner is None:
            continue
        foot = sc.bg.walkers[obj.owner].foot_at(sc.bg.window.clip_time(obj.t))
        if foot is None or math.hypot(foot[0] - obj.x, foot[1] - obj.y) > OWNER_MAX_PX:
            raise ScenarioError(f"{sc.name}: objects.{obj.id} is not at {obj.owner}'s feet at t={obj.t} "
                                f"(feet at {foot}); place it within {OWNER_MAX_PX} px")


# --- render ------------------------------------------------------------------------------------------------------
def render_frames(sc: CompositeScenario, shared: Path) -> Iterator[Image]:
    """The scenario's frames, in order. `shared` is the real data folder (../shared/data/real)."""
    clip = shared / sc.bg.clip
    if not clip.exists():
        raise ScenarioError(f"background clip {clip} not found; set GRIDWATCH_SHARED to the folder holding data/real")
    check_owners(sc)
    fps = _clip_fps(clip)
    win = sc.bg.window
    sample_t = np.linspace(win.start_s, win.end_s, MEDIAN_SAMPLES)
    median = median_background(list(read_frames(clip, [round(t * fps) for t in sample_t])))
    for i, src in enumerate(read_frames(clip, source_indices(sc, fps))):
        yield composite_frame(sc, src, median, i)


def generate_composite(sc: CompositeScenario, shared: Path, out_dir: Path) -> Path:
    """Render `sc` into `out_dir` (video.mp4, truth.json, scenario.json); returns the video path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    w, h = sc.bg.size
    video = out_dir / "video.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"mp4v"), sc.fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"cannot open a video writer for {video}")
    try:
        for frame in render_frames(sc, shared):
            writer.write(frame)
    finally:
        writer.release()
    (out_dir / "truth.json").write_text(json.dumps(truth(sc), indent=2) + "\n", encoding="utf-8")
    (out_dir / "scenario.json").write_text(sc.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return video
