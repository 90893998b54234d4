"""Unstable pixels and the moving -> static sequence: what real cameras show besides new objects.

Each failure mode is shown twice where a knob allows it: with the unstable-pixel mask off (`flicker_changes`
out of reach) the stage reports a region, with the defaults it does not; so the mask, not luck, is what holds.
"""

from __future__ import annotations

import numpy as np
import pytest

from gridwatch.edge.scene.stage import SceneChangeStage
from gridwatch.edge.scene.unstable import FlickerMask, FlickerParams, unstable_share
from tests.edge.scene.test_stage import BG, FPS, OBJ, Image, W, assert_no_regions, cfg, run, with_patch

SEGMENT = (40, 30, 70, 40)  # one segment of a big seconds digit
OFF_DIGITS = {1, 4}  # a segment that is lit for every digit but these (like the top bar of a 7-segment digit)
MASK_OFF = {"flicker_changes": 1000.0}


def seconds_digit_segment(t: float) -> Image:
    """Lit (white) unless the clock's seconds digit is 1 or 4; the first frame shows a 1 (so the long-term
    background learns the segment dark, and every lit second differs from it)."""
    digit = (1 + int(t)) % 10
    return BG if digit in OFF_DIGITS else with_patch(BG, SEGMENT, 235)


def branch(t: float) -> Image:
    """Leaves that grew into view at 2 s and sway: mostly resting, briefly pushed 6 px aside every 2.5 s (the
    leaves are stripes 6 px wide, so a push swaps light and dark leaves)."""
    if t < 2.0:
        return BG
    shift = 0 if (t % 2.5) >= 0.5 else 6
    img = BG.copy()
    x1, y1, x2, y2 = SEGMENT
    cols = (np.arange(x1, x2) + shift) // 6 % 2 == 0
    img[y1:y2, x1:x2][:, cols] = 95
    img[y1:y2, x1:x2][:, ~cols] = 140
    return img


def beacon(t: float) -> Image:
    """A warning light switched on at 2 s: steady, dimmed for a moment every 3 s."""
    if t < 2.0:
        return BG
    return with_patch(BG, SEGMENT, 180 if (t % 3.0) < 0.5 else 235)


@pytest.mark.parametrize("scene", [seconds_digit_segment, branch, beacon], ids=["clock", "branch", "beacon"])
def test_flickering_pixels_are_no_region_while_they_flicker(scene: object) -> None:
    frame_at = scene  # type: ignore[assignment]
    unmasked = run(frame_at, 40, SceneChangeStage(cfg(**MASK_OFF)))  # type: ignore[arg-type]
    assert any(len(o.regions) for _, o in unmasked), "the scene must be a real test: a region without the mask"
    assert_no_regions(run(frame_at, 40))  # type: ignore[arg-type]


def test_a_bag_dropped_beside_a_flickering_clock_is_still_found_on_time() -> None:
    def frame(t: float) -> Image:
        img = seconds_digit_segment(t)
        return with_patch(img, OBJ) if t >= 5 else img

    results = run(frame, 15)
    first = next(t for t, o in results if len(o.regions))
    assert 5 + 3.0 <= first <= 5 + 3.0 + 2.0
    assert len(results[-1][1].regions) == 1


def test_a_flicker_that_stops_frees_the_pixels_again() -> None:
    """A beacon that stops dimming at 15 s: once it has been still for a while its pixels count again (the lamp
    itself is a new static thing)."""
    def frame(t: float) -> Image:
        return beacon(t) if t < 15 else with_patch(BG, SEGMENT, 235)

    results = run(frame, 45)
    assert not any(len(o.regions) for t, o in results if t < 15)
    # free again within 15 s x ln 4 = 21 s of the last dimming, then 3 s to establish
    assert any(len(o.regions) for t, o in results if t <= 15 + 21 + 3 + 1)


def test_a_slow_local_drift_never_moved_so_it_is_no_region() -> None:
    """A cloud's shadow creeping over one part of the view (foliage, a wall): the look drifts 35 grey levels over
    10 s and back, never in a step, while the rest of the frame stays; nothing arrived."""
    def frame(t: float) -> Image:
        img = BG.astype(np.float32)
        x1, y1, x2, y2 = OBJ
        drift = 35.0 * min(1.0, max(0.0, (t - 2.0) / 10.0)) - 35.0 * min(1.0, max(0.0, (t - 25.0) / 10.0))
        img[y1:y2, x1:x2] -= drift
        return np.clip(img, 0, 255).astype(np.uint8)

    assert_no_regions(run(frame, 40))


def test_the_flicker_count_is_per_change_not_per_frame_and_decays() -> None:
    mask = FlickerMask(FlickerParams(window_s=10.0, min_changes=2.5, step=20.0))
    on, off = np.full((2, 2), 200, np.uint8), np.full((2, 2), 20, np.uint8)
    everywhere = np.ones((2, 2), bool)
    assert not mask.update(off, everywhere, 0.0).any()  # the first frame only starts the history
    for _ in range(4):  # a frame that does not change adds nothing, whatever the rate
        mask.update(off, everywhere, 0.25)
    assert mask.count is not None and float(mask.count.max()) == 0.0
    for i in range(3):  # three changes, 1 s apart
        unstable = mask.update(on if i % 2 == 0 else off, everywhere, 1.0)
    assert unstable.all()
    assert float(mask.count[0, 0]) == pytest.approx(1 + np.exp(-0.1) + np.exp(-0.2), rel=1e-5)
    for i in range(40):  # flickering for long (10 s, one run): the count is capped at 2 x min_changes
        mask.update(on if i % 2 == 0 else off, everywhere, 0.25)
    assert float(mask.count[0, 0]) == 5.0
    still = 0.0
    while mask.update(off, everywhere, 0.5).any():
        still += 0.5
    assert 10.0 * np.log(2.0) < still <= 10.0 * np.log(4.0)  # below half of min_changes: within window x ln 4


def test_masked_pixels_add_no_changes() -> None:
    mask = FlickerMask(FlickerParams(window_s=10.0, min_changes=1.0, step=20.0))
    counted = np.array([[True, False]])
    mask.update(np.zeros((1, 2), np.uint8), counted, 0.0)
    unstable = mask.update(np.full((1, 2), 255, np.uint8), counted, 0.5)
    assert unstable.tolist() == [[True, False]]


def test_unstable_share_counts_the_region_and_the_unstable_pixels_grown_by_one_pixel() -> None:
    unstable = np.zeros((12, 12), bool)
    unstable[2:8, 2:4] = True  # grown: columns 1-4, rows 1-8
    pixels = np.ones((6, 2), bool)
    # the bar 2 px right of the unstable one (columns 6-7, grown 5-8): no overlap
    assert unstable_share(pixels, (6, 2, 8, 8), unstable) == 0.0
    # the bar right beside it (columns 4-5, grown 3-6, rows 1-8): columns 3-4 of rows 1-8 are near
    assert unstable_share(pixels, (4, 2, 6, 8), unstable) == pytest.approx(16 / 32)
    assert unstable_share(pixels, (2, 2, 4, 8), unstable) == pytest.approx(1.0)


def _car_over(t: float, t0: float, looks: tuple[int, ...] = (200, 60, 220, 40, 210, 70, 230)) -> Image | None:
    """An untracked car 80 px long driving right over the dropped thing's spot from `t0`, 20 px per frame; its
    look on each frame is the next of `looks` (body, windows, roof, shadow...). None once it has gone."""
    k = round((t - t0) * FPS)
    x1 = 80 + 20 * k
    if k < 0 or x1 >= W:
        return None
    img = BG.copy()
    img[95:135, max(0, x1):min(W, x1 + 80)] = looks[k % len(looks)]
    return img


def test_a_run_of_changes_that_settles_on_a_new_look_counts_as_one_change() -> None:
    """An untracked car rolls over the spot as a bag appears: five different looks on five frames, then the bag
    stays. The car's looks are one arrival, not flicker, once the bag has stayed `settle_s`; the same run ending
    on the ground again is an excursion and counts every change, as a clock's flips do; and a new look that
    does not stay (an edge a jittering registration moves about) forgives nothing. The same brief run ending on
    the ground again was something passing through: entering and leaving, two changes, not unstable."""
    everywhere = np.ones((2, 2), bool)
    for end, then, unstable_after in ((150, 150, False), (100, 100, False), (150, 90, True)):
        mask = FlickerMask(FlickerParams(window_s=15.0, min_changes=2.5, step=20.0, settle_s=1.5))
        mask.update(np.full((2, 2), 100, np.uint8), everywhere, 0.0)
        during = [mask.update(np.full((2, 2), v, np.uint8), everywhere, 0.5) for v in (200, 40, 220, 60, end)]
        assert during[3].all(), "four changes within 2 s are unstable while they go on"
        after = [mask.update(np.full((2, 2), v, np.uint8), everywhere, 0.5) for v in (end, end, then, then, then)]
        assert after[1].all(), "not forgiven before the new look has stayed settle_s"
        assert mask.count is not None
        assert bool(after[-1].all()) is unstable_after, (end, then)
        if not unstable_after:
            kept = 2.0 if end == 100 else 1.0  # passed through: two; settled something new: one (decayed)
            assert 0.8 * kept <= float(mask.count[0, 0]) <= kept


def test_a_long_excursion_back_to_the_old_look_counts_every_change() -> None:
    """Leaves swaying or a sign blinking for 6 s, then the old look again: not something passing through (longer
    than `PASS_MAX_S`), so every change counts and the pixel stays unstable."""
    everywhere = np.ones((2, 2), bool)
    mask = FlickerMask(FlickerParams(window_s=15.0, min_changes=2.5, step=20.0, settle_s=1.5))
    mask.update(np.full((2, 2), 100, np.uint8), everywhere, 0.0)
    for i in range(12):
        mask.update(np.full((2, 2), 200 if i % 2 == 0 else 40, np.uint8), everywhere, 0.5)
    after = [mask.update(np.full((2, 2), 100, np.uint8), everywhere, 0.5) for _ in range(6)]
    assert after[-1].all()


def test_a_bag_that_appears_as_an_untracked_car_rolls_over_it_is_found() -> None:
    """The car passes over the spot between 5 and 8 s and leaves the bag; with the unstable mask counting each
    of the car's looks as a change the bag's pixels stay unstable for up to 21 s and it is dropped."""
    def frame(t: float) -> Image:
        car = _car_over(t, 4.0)
        img = BG if car is None else car
        if t < 5.5:
            return img
        out = with_patch(BG, OBJ)
        if car is not None:  # the car is in front of the bag
            covered = car != BG
            out[covered] = car[covered]
        return out

    results = run(frame, 20)
    first = next((t for t, o in results if len(o.regions)), None)
    assert first is not None and first <= 8.0 + 3.0 + 2.0, f"first region at {first}"
    assert len(results[-1][1].regions) == 1


def test_a_run_that_settles_on_a_new_colour_counts_once_even_at_an_old_grey_level() -> None:
    """Slow traffic rolls over the spot for 5 s as a green box 10 grey levels off the asphalt appears: in grey the
    box is the look the pixel held before (a long excursion, every change counts, unstable), in colour it is new
    (`recoloured`, from the chroma path): one change."""
    everywhere = np.ones((2, 2), bool)
    for recoloured, unstable_after in ((None, True), (everywhere, False)):
        mask = FlickerMask(FlickerParams(window_s=15.0, min_changes=2.5, step=20.0, settle_s=1.5))
        mask.update(np.full((2, 2), 100, np.uint8), everywhere, 0.0)
        for v in (200, 40, 220, 60, 200, 40, 220, 60, 200, 40, 110):
            mask.update(np.full((2, 2), v, np.uint8), everywhere, 0.5, recoloured)
        after = [mask.update(np.full((2, 2), 110, np.uint8), everywhere, 0.5, recoloured) for _ in range(5)]
        assert bool(after[-1].all()) is unstable_after, recoloured is not None
