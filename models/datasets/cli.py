"""`gridwatch data ...`: build a training dataset from labelled exports, report on one, list source classes.

    gridwatch data build RECIPE.yaml --out DIR [--overwrite] [--quiet]
    gridwatch data report DIR [--json]
    gridwatch data classes RECIPE.yaml
    gridwatch data pull DIR --out OUT [--format yolo|cvat]

`gridwatch.app.cli` wires this in with `register(<subparsers of the data group>)`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

RECIPE_HELP = ("recipe YAML: classes (id order), seed, val_fraction, sources (each: name, type yolo|coco|cvat_video|"
               "label_studio_video|synth|teacher, its path(s), map, split group|keep, cap, weight); see "
               "models/datasets/recipe.py and the README's Retraining section")


def _cmd_build(args: argparse.Namespace) -> int:
    from gridwatch.models.datasets.build import build
    from gridwatch.models.datasets.report import report_text

    result = build(Path(args.recipe), Path(args.out), overwrite=args.overwrite, progress=not args.quiet)
    sys.stdout.write(report_text(result.report))
    print(f"wrote {result.data_yaml} ({result.seconds:.1f} s); report: {result.out}/report.txt, report.json, "
          f"contact_sheet.png")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from gridwatch.models.datasets.report import report_text, write_report

    report = write_report(Path(args.root))
    sys.stdout.write(json.dumps(report, indent=2, ensure_ascii=False) + "\n" if args.json else report_text(report))
    return 0


def _cmd_classes(args: argparse.Namespace) -> int:
    from gridwatch.models.datasets.mapping import WILDCARD, label_counts
    from gridwatch.models.datasets.progress import ImportProgress
    from gridwatch.models.datasets.recipe import class_map_of, load_recipe
    from gridwatch.models.datasets.sources import load_source

    path = Path(args.recipe)
    recipe = load_recipe(path)
    with tempfile.TemporaryDirectory(prefix="gridwatch-data-") as tmp, ImportProgress(not args.quiet) as bar:
        work = Path(tmp)
        for i, spec in enumerate(recipe.sources):
            cmap = class_map_of(spec.map, recipe.classes, path.parent, f"sources.{i}.map")
            samples, _ = load_source(spec, path.parent, work, bar)
            print(f"source {spec.name} ({len(samples)} images):")
            for name, n in label_counts(samples).most_common():
                unmapped = f"UNMAPPED: add `{name}: <our class>` or `{name}: ignore` to {cmap.origin}"
                rule = cmap.rules.get(name, cmap.rules.get(WILDCARD, unmapped))
                print(f"  {name!r}: {n} boxes -> {rule}")
    return 0


def _cmd_pull(args: argparse.Namespace) -> int:
    from gridwatch.models.pull import pull

    print(pull(Path(args.dir), Path(args.out), args.format).line())
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `build`, `report`, `classes` and `pull` to the subparsers of the `data` group."""
    p = subparsers.add_parser("build", help="mix labelled sources into an Ultralytics dataset + report",
                              description=f"{RECIPE_HELP}. Writes DIR/data.yaml, images/, labels/, report.txt, "
                                          f"report.json (with the fingerprint) and contact_sheet.png.")
    p.add_argument("recipe", help="recipe YAML")
    p.add_argument("--out", required=True, help="output folder (must be empty, or an earlier build with --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace a dataset built in --out before")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_build)

    p = subparsers.add_parser("report", help="counts per class and split, box sizes, contact sheet, fingerprint",
                              description="(Re)write report.txt, report.json and contact_sheet.png for an "
                                          "Ultralytics dataset folder (data.yaml + images/ + labels/).")
    p.add_argument("root", help="dataset folder holding data.yaml")
    p.add_argument("--json", action="store_true", help="print the JSON report instead of the text")
    p.set_defaults(func=_cmd_report)

    p = subparsers.add_parser("classes", help="list each recipe source's class names, box counts and mapping",
                              description="Import each source of the recipe and print its class names with box "
                                          "counts and what the mapping does with each (UNMAPPED ones stop a build).")
    p.add_argument("recipe", help="recipe YAML")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_classes)

    p = subparsers.add_parser("pull", help="collect hard examples gateways saved as a labelling task",
                              description="Collect the hard examples gateways saved (hard_examples.dir) as a YOLO "
                                          "folder or a CVAT task, with the models' guesses as pre-labels.")
    p.add_argument("dir", help="folder of hard examples (copied off one or more gateways)")
    p.add_argument("--out", required=True, help="new (or empty) folder for the labelling task")
    p.add_argument("--format", choices=["yolo", "cvat"], default="yolo")
    p.set_defaults(func=_cmd_pull)
