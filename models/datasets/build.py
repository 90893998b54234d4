"""`gridwatch data build RECIPE --out DIR`: import every source, map classes, cap, add teacher boxes, split by
group, weight, write an Ultralytics folder and its report.

Every source is imported and its classes checked before anything is written: a recipe with an unmapped class
fails with one message listing every source's unmapped names (and box counts), and the output folder is left
as it was.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gridwatch.models.datasets.layout import check_out, prepare_out, write_data_yaml, write_sample
from gridwatch.models.datasets.mapping import ClassMap, apply_map, check_mapped, label_counts
from gridwatch.models.datasets.progress import ImportProgress
from gridwatch.models.datasets.recipe import Recipe, SourceCommon, class_map_of, load_recipe, resolve_path
from gridwatch.models.datasets.records import SPLITS, DatasetError, Sample, Split
from gridwatch.models.datasets.report import write_report
from gridwatch.models.datasets.sources import load_source
from gridwatch.models.datasets.split import assign
from gridwatch.models.datasets.teacher import fill_in, load_teacher, manifest_for, source_classes


@dataclass(frozen=True)
class BuildResult:
    out: Path
    data_yaml: Path
    report: dict[str, Any]
    seconds: float


@dataclass
class _Loaded:
    spec: SourceCommon
    samples: list[Sample]  # mapped to our classes, capped, teacher boxes added
    imported: int
    notes: dict[str, Any]
    ignored: Counter[str]


def cap_groups(samples: Sequence[Sample], cap: int | None, seed: int) -> list[Sample]:
    """At most `cap` samples, taken as whole groups in a seeded random order (None = all)."""
    if cap is None or len(samples) <= cap:
        return list(samples)
    sizes = Counter(s.group for s in samples)
    groups = sorted(sizes)
    chosen: set[str] = set()
    total = 0
    for i in np.random.default_rng(seed).permutation(len(groups)):
        g = groups[int(i)]
        if total + sizes[g] <= cap:
            chosen.add(g)
            total += sizes[g]
    return [s for s in samples if s.group in chosen]


def weighted(train: Sequence[Sample], weight: float, seed: int) -> list[tuple[Sample, int]]:
    """(sample, copy number) for the train split: floor(weight) copies of each, one more for a seeded random
    fraction (weight 0.5 keeps half of them)."""
    whole, frac = int(weight), weight - int(weight)
    out = [(s, r) for s in train for r in range(whole)]
    extra = np.random.default_rng(seed).permutation(len(train))[: round(frac * len(train))]
    out += [(train[int(i)], whole) for i in sorted(extra)]
    return out


def _load_all(recipe: Recipe, base: Path, work: Path, progress: bool) -> list[_Loaded]:
    loaded: list[_Loaded] = []
    problems: list[str] = []
    with ImportProgress(progress) as bar:
        for i, spec in enumerate(recipe.sources):
            cmap = class_map_of(spec.map, recipe.classes, base, f"sources.{i}.map")
            samples, notes = load_source(spec, base, work, bar)
            samples = [s.with_source(spec.name) for s in samples]
            try:
                check_mapped(label_counts(samples), cmap, spec.name)
            except DatasetError as exc:
                problems.append(str(exc))
                continue
            mapped, ignored = apply_map(samples, cmap)
            capped = cap_groups(mapped, spec.cap, recipe.seed + i)
            if spec.teacher is not None:
                capped, added = _fill_in(spec, capped, cmap, recipe.classes, base, bar, f"sources.{i}")
                notes = {**notes, "teacher_boxes": dict(sorted(added.items()))}
            loaded.append(_Loaded(spec, capped, len(samples), notes, ignored))
    if problems:
        raise DatasetError("\n".join(problems))
    return loaded


def _fill_in(spec: SourceCommon, samples: list[Sample], cmap: ClassMap, classes: list[str], base: Path,
             bar: ImportProgress, where: str) -> tuple[list[Sample], Counter[str]]:
    assert spec.teacher is not None
    t = spec.teacher
    detector = load_teacher(resolve_path(t.model, base), manifest_for(t.manifest, base), t.conf)
    tmap = class_map_of(t.map, classes, base, f"{where}.teacher.map")
    tick = bar.task(f"{spec.name}: teacher", len(samples))
    return fill_in(detector, samples, tmap, source_classes(cmap), spec.name, tick)


def _source_report(item: _Loaded, split: dict[Split, list[Sample]], written: dict[Split, int]
                   ) -> dict[str, Any]:
    return {
        "type": getattr(item.spec, "type", "?"), "imported_images": item.imported, "capped_to": len(item.samples),
        "groups": {s: len({x.group for x in split[s]}) for s in SPLITS},
        "images": {s: len(split[s]) for s in SPLITS}, "written": written, "weight": item.spec.weight,
        "boxes": dict(sorted(label_counts(item.samples).items())),
        "ignored_source_boxes": dict(sorted(item.ignored.items())), **item.notes,
    }


def _write_source(out: Path, item: _Loaded, recipe: Recipe, n: int, class_ids: dict[str, int],
                  sizes: dict[str, tuple[int, int]]) -> dict[str, Any]:
    """Split, weight and write one source's samples; records image sizes in `sizes`; returns its report."""
    split = assign(item.samples, recipe.val_fraction, recipe.seed, item.spec.split == "keep", item.spec.name)
    plan = {"train": weighted(split["train"], item.spec.weight, recipe.seed + n),
            "val": [(s, 0) for s in split["val"]]}
    for s_name in SPLITS:
        for sample, copy in plan[s_name]:
            stem = f"{sample.source}__{sample.key}" + (f"__r{copy}" if copy else "")
            sizes[write_sample(out, s_name, stem, sample, class_ids).name] = sample.size
    return _source_report(item, split, {s: len(plan[s]) for s in SPLITS})


def build(recipe_path: Path, out: Path, *, overwrite: bool = False, progress: bool = False) -> BuildResult:
    """Build the dataset `recipe_path` describes into `out` (see the module doc); returns paths and report."""
    started = time.monotonic()
    recipe = load_recipe(recipe_path)
    check_out(out, overwrite)
    work = out.parent / f".{out.name}.work"
    try:
        loaded = _load_all(recipe, recipe_path.parent, work, progress)
        prepare_out(out, overwrite)
        class_ids = {name: i for i, name in enumerate(recipe.classes)}
        sizes: dict[str, tuple[int, int]] = {}
        sources = {item.spec.name: _write_source(out, item, recipe, n, class_ids, sizes)
                   for n, item in enumerate(loaded)}
        data_yaml = write_data_yaml(out, recipe.classes)
        report = write_report(out, sizes, {"recipe": str(recipe_path), "seed": recipe.seed,
                                           "val_fraction": recipe.val_fraction, "sources": sources},
                              seed=recipe.seed)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return BuildResult(out, data_yaml, report, time.monotonic() - started)
