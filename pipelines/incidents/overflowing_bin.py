"""overflowing_bin: a garbage bin overflows, seen for longer than the dwell.

Category 06042 (垃圾满溢): a different case from exposed garbage (06010, loose garbage with no container; that rule
leaves garbage at a bin to this one). Evidence, per analysed frame (`pipelines.bins`):

- a detection of an overflow class (`overflow`: the street model's "overflowing bin");
- or a bin (`bin_classes`) with garbage (`garbage_classes`) or an overflow at it: at least `min_overlap` of the
  smaller box inside the bin's box widened by `bin_margin`. The bin is then the incident's subject (it stays put
  while the garbage boxes on it come and go).

The incident starts once the evidence has been seen for `dwell_s` (bins overflow for minutes; someone resting a
bag on a lid for a moment is not a case) and ends, `gone`, when it has not been seen for `end_after_s`. A street
model that runs every few seconds keeps its detections valid between its runs (`edge.detectors`), so the rule sees
the bin on every frame; `end_after_s` only has to outlast a run or two that miss it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from gridwatch.pipelines.registry import IncidentType
from gridwatch.pipelines.rule_config import ClassName, DwellRuleConfig

if TYPE_CHECKING:
    from gridwatch.pipelines.base import Rule
    from gridwatch.pipelines.lifecycle import TokenFactory
    from gridwatch.pipelines.zones import Zone


class OverflowingBinConfig(DwellRuleConfig):
    """A bin with garbage heaped on or around it."""

    dwell_s: float = Field(120.0, gt=0, le=86400, description="Seconds a bin must be seen overflowing.")
    end_after_s: float = Field(
        30.0, gt=0, le=3600,
        description="Unseen this long = emptied (a passer-by or a slow model's missed run must not end it).",
    )
    classes: list[ClassName] = Field(
        default_factory=lambda: ["overflow", "garbage_bin"], min_length=1,
        description="What can be the subject: an overflow class counts by itself; a class also listed in "
        "bin_classes counts only with garbage at it.",
    )
    bin_classes: list[ClassName] = Field(
        default_factory=lambda: ["garbage_bin"],
        description="Detector classes that are bins; empty = only overflow detections count.",
    )
    garbage_classes: list[ClassName] = Field(
        default_factory=lambda: ["garbage"], description="Detector classes that make a bin overflow when at it."
    )
    min_overlap: float = Field(
        0.3, gt=0, le=1,
        description="Share of the smaller box (garbage or bin) that must lie inside the widened bin box.",
    )
    bin_margin: float = Field(
        0.2, ge=0, le=2,
        description="The bin's box is widened by this share of its size on each side (garbage heaped above it, "
        "bags dumped beside it).",
    )


def build(
    cfg: OverflowingBinConfig, zones: tuple[Zone, ...], id_prefix: str, new_token: TokenFactory | None = None
) -> Rule:
    from gridwatch.pipelines.bins import BinGeometry, OverflowGatedRule  # numpy/OpenCV: load when built
    from gridwatch.pipelines.dwell import DwellParams, StationaryDwellRule

    bins = frozenset(cfg.bin_classes)
    inner = StationaryDwellRule(DwellParams.from_config(cfg, zones), id_prefix, INCIDENT.name, new_token)
    return OverflowGatedRule(inner, BinGeometry(bins, cfg.min_overlap, cfg.bin_margin),
                             garbage_classes=frozenset(cfg.garbage_classes),
                             overflow_classes=frozenset(cfg.classes) - bins, min_confidence=cfg.min_confidence,
                             end_after_s=cfg.end_after_s)


INCIDENT = IncidentType(
    name="overflowing_bin",
    config=OverflowingBinConfig,
    factory=build,
    categories=("06042",),
    description="A garbage bin overflows (garbage heaped on or around it) for longer than the dwell.",
)
