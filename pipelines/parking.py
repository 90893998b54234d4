"""illegal_parking: a motor vehicle stays still inside a no-parking zone longer than the zone's dwell.

Category 09009 (机动车乱停放). A car waiting at a red light inside the zone is not parked: the dwell (60 s by
default; cities use 2-5 min) separates the two. See `pipelines.dwell` for the mechanics.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from gridwatch.pipelines.dwell import DwellParams, StationaryDwellRule
from gridwatch.pipelines.zones import Zone

VEHICLES = frozenset({"car", "truck", "bus", "motorcycle", "van"})


def defaults(zones: tuple[Zone, ...], **kw: Any) -> DwellParams:
    """Parking defaults: vehicle classes, 60 s dwell."""
    params = DwellParams(zones=zones, classes=VEHICLES, dwell_s=60.0, end_after_s=15.0)
    return replace(params, **kw)


def rule(params: DwellParams, id_prefix: str) -> StationaryDwellRule:
    return StationaryDwellRule(params, id_prefix, "illegal_parking")
