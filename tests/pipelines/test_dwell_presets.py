"""Each incident type built on the stationary-dwell rule fires for its own classes only."""

from __future__ import annotations

from types import ModuleType

import pytest

from gridwatch.pipelines import garbage, parking, vendor, wire
from gridwatch.pipelines.zones import Zone
from tests.pipelines.helpers import obs, times

AREA = Zone("area", ((0, 0), (400, 0), (400, 300), (0, 300)))


@pytest.mark.parametrize(
    "module, incident_type, positive, negative",
    [
        (parking, "illegal_parking", "car", "stall"),
        (vendor, "street_vendor", "stall", "car"),
        (wire, "fallen_wire", "wire", "person"),
        (garbage, "exposed_garbage", "litter", "car"),
    ],
)
def test_preset_fires_for_its_classes(module: ModuleType, incident_type: str, positive: str, negative: str) -> None:
    for cls, expected in ((positive, 1), (negative, 0)):
        r = module.rule(module.defaults((AREA,), dwell_s=3.0), "cam")
        ups = [u for t in times(8) for u in r.update([obs(1, cls, 200, 150)], t)]
        started = [u for u in ups if u.phase == "started"]
        assert len(started) == expected, (incident_type, cls)
        assert all(u.type == incident_type for u in ups)


def test_defaults_carry_domain_dwell() -> None:
    assert parking.defaults(()).dwell_s == 60.0
    assert vendor.defaults(()).dwell_s == 120.0
    assert wire.defaults(()).dwell_s < 10.0
    assert garbage.defaults(()).dwell_s >= 300.0
    assert wire.defaults(()).stillness.tolerance_rel > parking.defaults(()).stillness.tolerance_rel
