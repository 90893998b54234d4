"""Group split (deterministic, no group on both sides), caps and weights, and the class mapping's errors."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from gridwatch.models.datasets.build import cap_groups, weighted
from gridwatch.models.datasets.mapping import apply_map, check_mapped, label_counts, parse_class_map
from gridwatch.models.datasets.records import Box, DatasetError, Sample
from gridwatch.models.datasets.split import assign, split_by_group


def _samples(groups: dict[str, int], labels: tuple[str, ...] = ("bag",)) -> list[Sample]:
    return [Sample("s", f"{g}_{i}", g, Path(f"{g}_{i}.jpg"), (10, 10),
                   tuple(Box(lb, 0.1, 0.1, 0.5, 0.5) for lb in labels))
            for g, n in groups.items() for i in range(n)]


def test_group_split_keeps_every_group_on_one_side_and_is_deterministic() -> None:
    samples = _samples({f"photo{i:03d}": 1 + i % 3 for i in range(100)})  # 1-3 augmented copies each
    a = split_by_group(samples, 0.2, seed=3)
    assert a == split_by_group(list(reversed(samples)), 0.2, seed=3)  # order of import does not matter
    assert a != split_by_group(samples, 0.2, seed=4)
    parts = assign(samples, 0.2, 3, keep=False, source="s")
    train_groups = {s.group for s in parts["train"]}
    assert not train_groups & {s.group for s in parts["val"]}
    assert 0.17 <= len(parts["val"]) / len(samples) <= 0.23


def test_keep_split_refuses_an_export_that_leaks_a_group() -> None:
    a, b = _samples({"p1": 2})
    with pytest.raises(DatasetError, match="'p1' is in both train and val"):
        assign([replace(a, split="train"), replace(b, split="val")], 0.2, 0, True, "s")


def test_cap_takes_whole_groups_and_weight_repeats_train_images() -> None:
    samples = _samples({f"clip{i}": 5 for i in range(10)})
    capped = cap_groups(samples, 12, seed=1)
    assert len(capped) == 10 and all(n == 5 for n in Counter(s.group for s in capped).values())
    assert len(weighted(capped, 2.0, 0)) == 20
    half = weighted(capped, 0.5, 0)
    assert len(half) == 5 and len({s.key for s, _ in half}) == 5
    assert len(weighted(capped, 1.5, 0)) == 15


def test_unmapped_classes_are_listed_with_counts_and_the_fix() -> None:
    samples = _samples({"p": 3}, labels=("Bag", "Tree", "sign", "Tree"))
    cmap = parse_class_map({"Bag": "garbage", "junk": "ignore"}, "maps/x.yaml", ["garbage"])
    with pytest.raises(DatasetError) as err:
        check_mapped(label_counts(samples), cmap, "cams")
    msg = str(err.value)
    assert "'Tree' (6 boxes), 'sign' (3 boxes)" in msg and "maps/x.yaml" in msg and "Tree: ignore" in msg


def test_ignore_and_wildcard_drop_boxes_on_purpose_and_are_counted() -> None:
    samples = _samples({"p": 2}, labels=("person", "car", "kite"))
    cmap = parse_class_map({"person": "person", "*": "ignore"}, "inline", ["person"])
    check_mapped(label_counts(samples), cmap, "teacher")  # no error: the wildcard covers the rest
    mapped, ignored = apply_map(samples, cmap)
    assert label_counts(mapped) == Counter({"person": 2}) and ignored == Counter({"car": 2, "kite": 2})


def test_mapping_to_a_class_the_dataset_does_not_have_is_an_error() -> None:
    with pytest.raises(DatasetError, match="'Bag' maps to 'litter', which is not one of the dataset's classes"):
        parse_class_map({"Bag": "litter"}, "m.yaml", ["garbage"])
