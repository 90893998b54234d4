"""The seeded randomised families: enough positives per type, hard negatives, and the same scenario per (seed, k)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from gridwatch.synth.composite import truth
from gridwatch.synth.composite_family import CASES, composite_suite
from gridwatch.synth.scenario import load_scenario
from gridwatch.synth.scene import Scene
from gridwatch.synth.suite_family import suite_variants
from gridwatch.synth.truth import build_truth

SUITE = Path(__file__).resolve().parents[2] / "synth" / "scenarios" / "suite"


def test_thirty_composites_hold_five_positives_per_type_and_twelve_negatives() -> None:
    suite = composite_suite(30, seed=2026)
    types = Counter(i["type"] for sc in suite for i in truth(sc)["incidents"])
    assert types == {"littering": 6, "exposed_garbage": 6, "fallen_wire": 6}
    negatives = [sc for sc in suite if not truth(sc)["incidents"]]
    assert len(negatives) == 12 and {sc.name.split("_", 1)[1] for sc in negatives} == {
        c for c in CASES if c.startswith("neg_")}


def test_composite_k_depends_only_on_seed_and_k() -> None:
    assert composite_suite(4, seed=7)[3] == composite_suite(12, seed=7)[3]
    assert composite_suite(4, seed=7) != composite_suite(4, seed=8)
    varied = {(sc.objects[0].x, sc.objects[0].y, sc.jpeg_quality) for sc in composite_suite(20, seed=7) if sc.objects}
    assert len(varied) > 10  # positions and conditions really vary


def test_forty_variants_bring_every_type_to_five_positives_with_exact_truth() -> None:
    templates = {p.stem: load_scenario(p) for p in sorted(SUITE.glob("*.yaml"))}
    variants = suite_variants(templates, 40, seed=2026)
    assert variants == suite_variants(templates, 40, seed=2026)
    counts = Counter(i.type for sc in [*templates.values(), *variants]
                     for i in build_truth(Scene.compile(sc)).incidents)
    assert min(counts[t] for t in ("illegal_parking", "littering", "exposed_garbage", "street_vendor",
                                   "fallen_wire")) >= 5, counts
    assert sum(1 for v in variants if v.name.split("_", 1)[1].startswith("neg_")) == 20
    first = build_truth(Scene.compile(variants[0])).incidents  # a pos_vendor variant: its stall moved and later
    orig = build_truth(Scene.compile(templates["pos_vendor"])).incidents
    assert len(first) == len(orig) == 1 and first[0].start_s >= orig[0].start_s
    assert (first[0].east, first[0].north) != (orig[0].east, orig[0].north)
