"""Train/val split by group: every sample of one clip or one source photo lands on the same side.

Deterministic for a given seed: groups are sorted by name, shuffled with `numpy.random.default_rng(seed)`,
and taken into val until val holds `val_fraction` of the samples (so a large group cannot tip it far over).
Samples whose export already assigned a split keep it with `keep=True`; a group whose samples disagree is an
error then (the export itself leaks a scene across the split).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from gridwatch.models.datasets.records import DatasetError, Sample, Split


def split_by_group(samples: Sequence[Sample], val_fraction: float, seed: int) -> dict[str, Split]:
    """group -> split."""
    if not 0.0 <= val_fraction < 1.0:
        raise DatasetError(f"val_fraction: {val_fraction} must be in [0, 1)")
    sizes: dict[str, int] = defaultdict(int)
    for s in samples:
        sizes[s.group] += 1
    groups = sorted(sizes)
    order = np.random.default_rng(seed).permutation(len(groups))
    target = val_fraction * len(samples)
    out: dict[str, Split] = {}
    in_val = 0
    for i in order:
        g = groups[int(i)]
        if in_val < target and in_val + sizes[g] / 2 <= target:
            out[g], in_val = "val", in_val + sizes[g]
        else:
            out[g] = "train"
    return out


def kept_split(samples: Sequence[Sample], source: str) -> dict[str, Split]:
    """group -> the split the export gave it; raise when an export split is missing or leaks a group."""
    out: dict[str, Split] = {}
    for s in samples:
        if s.split is None:
            raise DatasetError(f"source {source!r}: `split: keep` but {s.key} has no split in the export; "
                               f"use `split: group` (folders train/ and val/ give a YOLO export its split)")
        if out.setdefault(s.group, s.split) != s.split:
            raise DatasetError(f"source {source!r}: group {s.group!r} is in both train and val of the export; "
                               f"use `split: group` to re-split it by source photo/clip")
    return out


def assign(samples: Sequence[Sample], val_fraction: float, seed: int, keep: bool, source: str
           ) -> dict[Split, list[Sample]]:
    by_group = kept_split(samples, source) if keep else split_by_group(samples, val_fraction, seed)
    out: dict[Split, list[Sample]] = {"train": [], "val": []}
    for s in samples:
        out[by_group[s.group]].append(s)
    return out
