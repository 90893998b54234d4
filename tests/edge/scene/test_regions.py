"""Region judgements on small synthetic arrays: the ghost test beside a dark cover, and fragments of one object."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from gridwatch.edge.scene.background import thin_pieces
from gridwatch.edge.scene.regions import Region, find_regions, is_ghost, merge_fragments

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


def _random_blobs(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    mask = np.zeros(shape, bool)
    for _ in range(int(rng.integers(1, 12))):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        piece = mask[y:y + int(rng.integers(1, 30)), x:x + int(rng.integers(1, 40))]
        piece[...] = rng.random(piece.shape) < rng.uniform(0.05, 1.0)
    return mask


def test_regions_labelled_in_the_established_box_are_the_whole_frame_labelling() -> None:
    """`find_regions` closes and labels only around the established pixels: the blobs, their pixels and their
    order must be those of closing and labelling the whole frame (odd offsets included: the labelling scans 2x2
    blocks, and a crop on an odd row numbered two blobs the other way round)."""
    rng = np.random.default_rng(3)
    found = 0
    for trial in range(300):
        shape = (180, 320) if trial % 3 else (int(rng.integers(20, 200)), int(rng.integers(20, 340)))
        established = _random_blobs(rng, shape)
        closed = cv2.morphologyEx(established.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
        _, labels, stats, _ = cv2.connectedComponentsWithStats(closed, connectivity=8)
        expected = [((x, y, x + w, y + h), labels[y:y + h, x:x + w] == i)
                    for i, (x, y, w, h, area) in enumerate(stats.tolist()) if i > 0 and area >= 10]
        rest = np.ones(shape, np.float32)
        regions = find_regions(established, rest, rest * 40.0, 10)
        assert [r.box for r in regions] == [box for box, _ in expected], trial
        assert all(np.array_equal(r.pixels, pixels) for r, (_, pixels) in zip(regions, expected, strict=True))
        found += len(regions)
    assert found > 1000


def test_thin_pieces_keeps_exactly_the_long_pieces_inside_the_margin() -> None:
    rng = np.random.default_rng(0)
    for _ in range(100):
        thin = rng.random((int(rng.integers(10, 200)), int(rng.integers(10, 340)))) < rng.uniform(0.01, 0.6)
        _, labels, stats, _ = cv2.connectedComponentsWithStats(thin.astype(np.uint8), connectivity=8)
        h, w = thin.shape
        x, y, bw, bh = stats[:, 0], stats[:, 1], stats[:, 2], stats[:, 3]
        keep = (np.hypot(bw, bh) >= 6.0) & (x >= 4) & (y >= 4) & (x + bw <= w - 4) & (y + bh <= h - 4)
        keep[0] = False
        assert np.array_equal(thin_pieces(thin, 6.0, 4), keep[labels])
