"""fallen_wire: a wire or cable lies on, or hangs low over, the road or sidewalk, seen on several frames.

Category 10002 (架空线缆脱落). Unlike parking, the dwell is short (a few seconds: the point is to confirm the
detection over several frames, not to wait), and the stillness tolerance is wider, because a thin cable's box
changes a lot with small detector differences.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from gridwatch.pipelines.dwell import DwellParams, StationaryDwellRule
from gridwatch.pipelines.motion import StillnessParams
from gridwatch.pipelines.zones import Zone

WIRES = frozenset({"wire", "cable"})


def defaults(zones: tuple[Zone, ...], **kw: Any) -> DwellParams:
    base = DwellParams(zones=zones, classes=WIRES, dwell_s=3.0, stillness=StillnessParams(tolerance_m=1.5,
                                                                                         tolerance_rel=0.4))
    return replace(base, **kw)


def rule(params: DwellParams, id_prefix: str) -> StationaryDwellRule:
    return StationaryDwellRule(params, id_prefix, "fallen_wire")
