"""`gridwatch models eval MODEL --data DATA.yaml [--baseline DEPLOYED]`: evaluate, compare, draw, print.

Writes into ``--out``: ``metrics.json`` (everything printed, plus the confusion matrix), ``confusion_matrix.png``
and ``pr_curves.png``; ``baseline_confusion_matrix.png`` too when a baseline is given.

``--tta flip`` (or ``multiscale``) evaluates the model as a gateway with that ``tta`` runs it; the baseline runs
with ``--baseline-tta`` (default: the same), so ``eval M --tta flip --baseline M --baseline-tta none`` measures
what TTA adds.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gridwatch.models.eval_plots import confusion_png, pr_png
from gridwatch.models.evaluate import (
    DEFAULT_MARGIN,
    ModelEval,
    compare,
    evaluate_detector,
    load_for_eval,
    report_dict,
    table,
    write_json,
)
from gridwatch.models.yolo_data import load_dataset


@dataclass(frozen=True)
class EvalRequest:
    model: Path
    data: Path
    split: str = "val"
    baseline: Path | None = None
    out: Path = Path("eval-out")
    margin: float = DEFAULT_MARGIN
    limit: int | None = None
    threads: int | None = None
    quiet: bool = False
    tta: str = "none"  # the model's test-time augmentation ('none' / 'flip' / 'multiscale')
    baseline_tta: str | None = None  # the baseline's; None = the same as `tta`


def _progress(label: str, quiet: bool) -> Callable[[int, int], None]:
    def show(done: int, total: int) -> None:
        if not quiet and (done == total or done % 25 == 0):
            print(f"\r[eval] {label}: {done}/{total} images", end="\n" if done == total else "",
                  file=sys.stderr, flush=True)

    return show


def run_eval(req: EvalRequest) -> tuple[ModelEval, ModelEval | None, str]:
    """Evaluate the model (and the baseline) on the split; write JSON and PNGs; return them and the table."""
    dataset = load_dataset(req.data)
    images = dataset.images(req.split)[: req.limit] if req.limit else dataset.images(req.split)
    new = evaluate_detector(load_for_eval(req.model, req.threads, req.tta), images, dataset.names,
                            progress=_progress(str(req.model.name), req.quiet))
    baseline = None
    if req.baseline is not None:
        base_tta = req.tta if req.baseline_tta is None else req.baseline_tta
        baseline = evaluate_detector(load_for_eval(req.baseline, req.threads, base_tta), images, dataset.names,
                                     progress=_progress(str(req.baseline.name), req.quiet))
    rows = compare(new, baseline, req.margin)
    text = table(rows, new, baseline, req.margin)
    write_json(req.out / "metrics.json", report_dict(rows, new, baseline, req.margin, req.split, req.data))
    confusion_png(new.result, req.out / "confusion_matrix.png", f"{new.model} on {req.data.name}:{req.split}")
    kept = frozenset(n for n in dataset.names if baseline is not None and n not in baseline.missing)
    pr_png(new.result, req.out / "pr_curves.png", f"{new.model} on {req.data.name}:{req.split}",
           baseline.result if baseline else None, kept)
    if baseline is not None:
        confusion_png(baseline.result, req.out / "baseline_confusion_matrix.png",
                      f"baseline {baseline.model} on {req.data.name}:{req.split}")
    return new, baseline, text
