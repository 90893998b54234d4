from __future__ import annotations

import pytest

from gridwatch.pipelines.littering import LitteringRule
from gridwatch.pipelines.types import IncidentUpdate, Observation
from tests.pipelines.helpers import build_rule, obs, times


def run(settings: dict[str, object], script) -> list[IncidentUpdate]:  # type: ignore[no-untyped-def]
    """Run the littering rule built from `settings` (the YAML under incidents.littering) over 30 s at 10 fps."""
    r = build_rule("littering", **settings)
    assert isinstance(r, LitteringRule)
    out: list[IncidentUpdate] = []
    for t in times(30):
        out.extend(r.update(script(t), t))
    return out


def drop_and_leave(t: float) -> list[Observation]:
    """Person walks to x=300, drops a bag at t=5, walks away right from t=7."""
    person_x = 100 + 40 * t if t < 5 else (300 if t < 7 else 300 + 60 * (t - 7))
    out = [obs(1, "person", person_x, 200, w=30, h=80)] if person_x < 900 else []
    if t >= 5:
        out.append(obs(2, "litter", 305, 202, w=12, h=10))
    return out


def test_dropped_and_left_object_is_littering_started_at_the_drop() -> None:
    ups = run({"dwell_s": 5.0}, drop_and_leave)
    assert ups and ups[0].phase == "started"
    assert ups[0].started_ts == pytest.approx(5.0, abs=0.2)
    # Owner walks off at 7 s at 60 px/s and is beyond 2 x 80 px at ~9.7 s; fires 5 s after that.
    assert 14.4 <= ups[0].ts <= 15.0
    assert ups[0].zone is None
    roles = {o.role for o in ups[0].objects}
    assert roles == {"subject", "owner"}


def test_owner_staying_next_to_object_is_not_littering() -> None:
    def stays(t: float) -> list[Observation]:
        return [obs(1, "person", 300, 200, w=30, h=80), obs(2, "litter", 305, 202, w=12, h=10)]

    assert run({"dwell_s": 5.0}, stays) == []


@pytest.mark.parametrize("require_owner, expected", [(True, 0), (False, 1)])
def test_object_without_owner(require_owner: bool, expected: int) -> None:
    def lone(t: float) -> list[Observation]:
        return [obs(2, "litter", 305, 202, w=12, h=10)]

    ups = run({"dwell_s": 5.0, "require_owner": require_owner}, lone)
    assert len([u for u in ups if u.phase == "started"]) == expected


def test_picked_up_object_ends_the_incident() -> None:
    def script(t: float) -> list[Observation]:
        return [o for o in drop_and_leave(t) if not (o.class_name == "litter" and t > 20)]

    ups = run({"dwell_s": 5.0, "end_after_s": 2.0}, script)
    assert next(u.phase for u in ups) == "started"
    assert ups[-1].phase == "ended"
    assert ups[-1].ts == pytest.approx(20.0, abs=0.2)
