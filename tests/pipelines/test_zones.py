"""Zone membership: the debounce decides whether a track entered, the first frame of the run says when."""

from __future__ import annotations

import pytest

from gridwatch.pipelines.zones import Zone, ZoneMembership

SQUARE = Zone("kerb", ((0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0)))
INSIDE, OUTSIDE = (5.0, 5.0), (50.0, 5.0)


@pytest.mark.parametrize("gap_s", [0.1, 1.0])
def test_entry_is_stamped_at_the_first_frame_inside_not_when_the_debounce_agrees(gap_s: float) -> None:
    zones = ZoneMembership(inertia=3)
    assert zones.update(1, SQUARE, OUTSIDE, 0.0) is None
    times = [gap_s * k for k in (1, 2, 3)]
    seen = [zones.update(1, SQUARE, INSIDE, t) for t in times]
    assert seen[:2] == [None, None]  # two frames inside are not yet an entry
    assert seen[2] == pytest.approx(times[0])  # the third decides, the first says when


def test_a_jitter_across_the_edge_does_not_restart_the_entry_time() -> None:
    zones = ZoneMembership(inertia=3)
    assert zones.update(1, SQUARE, INSIDE, 0.0) == 0.0
    assert zones.update(1, SQUARE, OUTSIDE, 1.0) == 0.0
    assert zones.update(1, SQUARE, OUTSIDE, 2.0) == 0.0
    assert zones.update(1, SQUARE, INSIDE, 3.0) == 0.0  # back in: the streak out is broken
    assert [zones.update(1, SQUARE, OUTSIDE, t) for t in (4.0, 5.0, 6.0)] == [0.0, 0.0, None]
    assert [zones.update(1, SQUARE, INSIDE, t) for t in (7.0, 8.0, 9.0)] == [None, None, 7.0]


def test_a_new_track_decides_on_its_first_frame() -> None:
    zones = ZoneMembership(inertia=3)
    assert zones.update(7, SQUARE, INSIDE, 4.5) == 4.5
    assert zones.update(8, SQUARE, OUTSIDE, 4.5) is None
    zones.forget({7, 8})
    assert len(zones) == 0
