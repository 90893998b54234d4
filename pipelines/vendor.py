"""street_vendor: a stall, cart or vendor stays in a sidewalk/road zone longer than the dwell.

Category 09006 (占道经营) / 09001 (无照经营游商). A cart that is pushed along and never stops is a moving vendor,
not road occupation; it is reported once it stands still for `dwell_s` (default 2 min).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from gridwatch.pipelines.dwell import DwellParams, StationaryDwellRule
from gridwatch.pipelines.zones import Zone

STALLS = frozenset({"stall", "cart"})


def defaults(zones: tuple[Zone, ...], **kw: Any) -> DwellParams:
    return replace(DwellParams(zones=zones, classes=STALLS, dwell_s=120.0), **kw)


def rule(params: DwellParams, id_prefix: str) -> StationaryDwellRule:
    return StationaryDwellRule(params, id_prefix, "street_vendor")
