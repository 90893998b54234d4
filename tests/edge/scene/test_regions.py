"""Region judgements on small synthetic arrays: the ghost test beside a dark cover, and fragments of one object."""

from __future__ import annotations

import numpy as np
import pytest

from gridwatch.edge.scene.regions import Region, is_ghost, merge_fragments

BOX = (18, 24, 30, 32)  # x1, y1, x2, y2 of the region in a 60x60 view


def _region(box: tuple[int, int, int, int] = BOX, age_s: float = 3.0) -> Region:
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    return Region(box, (((x1 + x2) / 2, (y1 + y2) / 2), (float(w), float(h)), 0.0), np.ones((h, w), bool),
                  age_s, max(w, h) / min(w, h), 0.2)


def _cornered_ground() -> np.ndarray:
    """Light paving (160, a little texture) with a dark cover (80) above and left of BOX: most of the ring
    around BOX is the cover, so a whole-ring median calls the bare paving there 'standing out'."""
    rng = np.random.default_rng(0)
    ground = np.clip(160 + rng.normal(0, 3, (60, 60)), 0, 255).astype(np.uint8)
    ground[:24, :] = 80
    ground[:, :18] = 80
    return ground


def _with(image: np.ndarray, value: int) -> np.ndarray:
    out = image.copy()
    x1, y1, x2, y2 = BOX
    out[y1:y2, x1:x2] = value
    return out


def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int16) - b.astype(np.int16)) > 20


def test_a_dark_bag_set_down_beside_a_dark_cover_is_no_ghost() -> None:
    ground = _cornered_ground()
    now = _with(ground, 40)  # the bag
    assert not is_ghost(_region(), now, ground, 1.0, changed=_changed(now, ground))


def test_a_dark_thing_that_left_from_beside_a_dark_cover_is_a_ghost() -> None:
    ground = _cornered_ground()
    before = _with(ground, 40)  # it stood there when the long-term background learnt the view
    assert is_ghost(_region(), ground, before, 1.0, changed=_changed(ground, before))


def test_a_fragment_ringed_by_the_rest_of_its_bag_is_no_ghost() -> None:
    """The first established piece of a bag: around it the rest of the bag (not established yet, but changed)."""
    rng = np.random.default_rng(1)
    ground = np.clip(150 + rng.normal(0, 3, (60, 60)), 0, 255).astype(np.uint8)
    now = ground.copy()
    now[20:36, 14:34] = 100  # the bag: four pixels more all round than the fragment (BOX) established so far
    assert is_ghost(_region(), now, ground, 1.0), "predicted from the bag around it, it fits: a ghost"
    assert not is_ghost(_region(), now, ground, 1.0, changed=_changed(now, ground))


def test_fragments_that_came_to_rest_together_merge_into_one_region() -> None:
    left, right = _region((10, 20, 16, 30), 4.0), _region((22, 22, 30, 30), 4.5)  # 6 px apart
    merged = merge_fragments([left, right], gap_px=8, birth_gap_s=1.0)
    assert len(merged) == 1
    m = merged[0]
    assert m.box == (10, 20, 30, 30)
    assert int(m.pixels.sum()) == int(left.pixels.sum() + right.pixels.sum())
    assert m.age_s == pytest.approx(4.5)  # the earlier rest: the drop
    assert m.contrast == pytest.approx(0.2)


@pytest.mark.parametrize(("right_box", "right_age"), [((22, 22, 30, 30), 9.0), ((40, 22, 48, 30), 4.0)],
                         ids=["not-together", "too-far"])
def test_regions_apart_in_time_or_space_stay_apart(right_box: tuple[int, int, int, int], right_age: float) -> None:
    regions = [_region((10, 20, 16, 30), 4.0), _region(right_box, right_age)]
    assert merge_fragments(regions, gap_px=8, birth_gap_s=1.0) == regions
