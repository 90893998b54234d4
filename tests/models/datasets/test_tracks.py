"""Keyframe interpolation as CVAT and Label Studio define it."""

from __future__ import annotations

import pytest

from gridwatch.models.datasets.tracks import Keyframe, box_at


def test_linear_between_keyframes_and_exact_at_them() -> None:
    keys = [Keyframe(0, (0, 0, 10, 10)), Keyframe(10, (10, 20, 30, 40))]
    assert box_at(keys, 0, 99).box == (0, 0, 10, 10)  # type: ignore[union-attr]
    mid = box_at(keys, 5, 99)
    assert mid is not None and mid.box == pytest.approx((5, 10, 20, 25)) and not mid.keyframe
    assert box_at(keys, 10, 99).keyframe  # type: ignore[union-attr]


def test_outside_hides_until_the_next_shape_and_the_last_shape_is_held() -> None:
    keys = [Keyframe(0, (0, 0, 10, 10)), Keyframe(5, (5, 0, 15, 10), present=False, visible_after=False),
            Keyframe(9, (9, 0, 19, 10), occluded=True)]
    assert box_at(keys, 4, 20) is not None
    assert box_at(keys, 5, 20) is None and box_at(keys, 8, 20) is None
    held = box_at(keys, 20, 20)
    assert held is not None and held.box == (9, 0, 19, 10) and held.occluded
    assert box_at(keys, 21, 20) is None  # past the clip
    assert box_at(keys, -1, 20) is None  # before the first shape


def test_disabled_keyframe_shows_its_box_then_nothing_until_the_next() -> None:
    keys = [Keyframe(0, (0, 0, 10, 10), visible_after=False), Keyframe(6, (6, 0, 16, 10))]
    assert box_at(keys, 0, 10) is not None
    assert box_at(keys, 3, 10) is None
    assert box_at(keys, 6, 10) is not None
