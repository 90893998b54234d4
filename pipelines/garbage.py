"""exposed_garbage: garbage or piled material is present in a zone for longer than the dwell.

Category 06010 (暴露垃圾) / 06036 (乱堆杂物). Littering catches the moment someone drops a thing; this rule catches
what lies there anyway, whoever left it, after a long dwell (default 10 min), so a bag set down for a moment is
not a case.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from gridwatch.pipelines.dwell import DwellParams, StationaryDwellRule
from gridwatch.pipelines.zones import Zone

GARBAGE = frozenset({"litter", "garbage", "trash_pile"})


def defaults(zones: tuple[Zone, ...], **kw: Any) -> DwellParams:
    return replace(DwellParams(zones=zones, classes=GARBAGE, dwell_s=600.0), **kw)


def rule(params: DwellParams, id_prefix: str) -> StationaryDwellRule:
    return StationaryDwellRule(params, id_prefix, "exposed_garbage")
