"""Matching reported incidents to truth, and per-type metrics, on hand-made inputs (synth/incident_match.py)."""

from __future__ import annotations

import pytest

from gridwatch.synth.incident_match import Reported, TruthIncident, match_clip, score

DWELL = {"littering": 2.0, "illegal_parking": 5.0}


def test_a_near_report_of_the_same_type_matches_and_its_delay_is_after_start_plus_dwell() -> None:
    truth = [TruthIncident("littering", 6.0, 0.0, 0.0)]
    res = match_clip(truth, [Reported("littering", 6.5, 9.5, 1.0, 1.0)], 3.0, 2.5, DWELL)
    assert len(res.matches) == 1 and not res.missed and not res.false_positives
    assert res.matches[0].delay_s == pytest.approx(9.5 - (6.0 + 2.0))
    assert res.matches[0].distance == pytest.approx(2 ** 0.5)


@pytest.mark.parametrize("report", [
    Reported("exposed_garbage", 6.5, 9.0, 0.0, 0.0),  # wrong type
    Reported("littering", 6.5, 9.0, 3.1, 0.0),  # too far
    Reported("littering", 3.4, 9.0, 0.0, 0.0),  # started before truth start - tolerance
])
def test_a_report_of_another_type_too_far_or_too_early_is_a_false_positive_and_the_truth_is_missed(
    report: Reported,
) -> None:
    res = match_clip([TruthIncident("littering", 6.0, 0.0, 0.0)], [report], 3.0, 2.5, DWELL)
    assert not res.matches and len(res.missed) == 1 and res.false_positives == [report]


def test_a_duplicate_report_costs_precision_and_the_nearest_one_is_the_match() -> None:
    truth = [TruthIncident("littering", 6.0, 0.0, 0.0)]
    far, near = Reported("littering", 6.0, 10.0, 2.0, 0.0), Reported("littering", 6.0, 11.0, 0.5, 0.0)
    res = match_clip(truth, [far, near], 3.0, 2.5, DWELL)
    assert [m.reported for m in res.matches] == [near] and res.false_positives == [far]
    s = score([res], ["littering"])["littering"]
    assert (s.tp, s.fp, s.fn) == (1, 1, 0)
    assert s.precision == 0.5 and s.recall == 1.0 and s.delay_median_s == pytest.approx(3.0)


def test_scores_over_clips_per_type_with_undefined_metrics_as_none() -> None:
    a = match_clip([TruthIncident("illegal_parking", 5.0, 0, 0), TruthIncident("littering", 6.0, 10, 0)],
                   [Reported("illegal_parking", 5.0, 10.5, 0, 0)], 3.0, 2.5, DWELL)
    b = match_clip([TruthIncident("illegal_parking", 0.0, 0, 0)], [Reported("illegal_parking", 0.0, 6.0, 0, 1),
                                                                    Reported("fallen_wire", 1.0, 2.0, 0, 0)],
                   3.0, 2.5, DWELL)
    s = score([a, b], ["illegal_parking", "littering", "street_vendor"])
    park = s["illegal_parking"]
    assert (park.tp, park.fp, park.fn) == (2, 0, 0)
    assert park.delays == [pytest.approx(0.5), pytest.approx(1.0)] and park.delay_max_s == pytest.approx(1.0)
    assert s["littering"].recall == 0.0 and s["littering"].precision is None
    assert s["street_vendor"].recall is None and s["street_vendor"].delay_median_s is None
    assert s["fallen_wire"].fp == 1 and s["fallen_wire"].precision == 0.0


def test_each_truth_matches_one_report_and_each_report_one_truth() -> None:
    truths = [TruthIncident("exposed_garbage", 5.0, 0, 0), TruthIncident("exposed_garbage", 12.0, 1, 0)]
    res = match_clip(truths, [Reported("exposed_garbage", 12.0, 18.0, 1, 0)], 3.0, 2.5, DWELL)
    # the report started at 12 s: too late for nothing, but it is nearest to the second pile
    assert [m.truth for m in res.matches] == [truths[1]] and res.missed == [truths[0]]


def test_a_littering_dwell_counts_from_when_the_owner_left_and_the_start_error_from_the_drop() -> None:
    # dropped at 6 s, the owner 4 m away at 9.6 s: with a 2 s dwell the rule may fire at 11.6 s, not at 8 s
    truth = [TruthIncident("littering", 6.0, 0.0, 0.0, dwell_from_s=9.6)]
    res = match_clip(truth, [Reported("littering", 6.5, 12.0, 0.0, 0.0)], 3.0, 2.5, DWELL)
    (m,) = res.matches
    assert m.delay_s == pytest.approx(12.0 - (9.6 + 2.0))
    assert m.start_error_s == pytest.approx(0.5)
    s = score([res], ["littering"])["littering"]
    assert s.start_error_max_s == pytest.approx(0.5) and s.delay_max_s == pytest.approx(0.4)


def test_a_truth_with_its_own_radius_matches_a_report_farther_than_the_clip_radius() -> None:
    """A long wire's report box centre can sit far from the truth's centre: its own radius decides."""
    wire = TruthIncident("fallen_wire", 5.0, 100.0, 100.0, radius=130.0)
    bag = TruthIncident("littering", 5.0, 400.0, 100.0)
    res = match_clip([wire, bag], [Reported("fallen_wire", 6.0, 9.0, 200.0, 150.0),
                                   Reported("littering", 6.0, 9.0, 480.0, 100.0)], 40.0, 2.5, DWELL)
    assert [m.truth.type for m in res.matches] == ["fallen_wire"]
    assert [t.type for t in res.missed] == ["littering"] and len(res.false_positives) == 1
