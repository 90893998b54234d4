"""The two pictures `gridwatch models eval` writes: a confusion matrix and per-class PR curves (PNG).

matplotlib (a dependency of supervision) is imported lazily with the non-interactive Agg backend, so nothing
here needs a display and importing `gridwatch.models` does not load it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gridwatch.models.detection_metrics import DetectionResult


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_png(result: DetectionResult, path: Path, title: str) -> Path:
    """Rows: true class (+ background = false alarms); columns: predicted class (+ background = misses).
    Cells show counts, coloured by the share of their row."""
    plt = _pyplot()
    labels = [c.name for c in result.classes] + ["background"]
    cm = result.confusion.astype(float)
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    n = len(labels)
    fig, ax = plt.subplots(figsize=(1.2 * n + 2.5, 1.0 * n + 2))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center",
                    color="white" if share[i, j] > 0.6 else "black", fontsize=9)
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}\nconf >= {result.conf}, IoU >= {result.iou}, {result.images} images", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def pr_png(result: DetectionResult, path: Path, title: str, baseline: DetectionResult | None = None,
           baseline_classes: frozenset[str] = frozenset()) -> Path:
    """Precision (envelope) against recall at IoU 0.5, one line per class; the baseline's classes dashed."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 5))
    colours = plt.get_cmap("tab10")
    base = baseline.by_name() if baseline is not None else {}
    for k, c in enumerate(result.classes):
        if c.n_gt == 0:
            continue
        colour = colours(k % 10)
        ax.plot(c.pr50.recall, c.pr50.precision, color=colour, label=f"{c.name} AP50 {c.ap50:.3f}")
        b = base.get(c.name)
        if b is not None and c.name in baseline_classes:
            ax.plot(b.pr50.recall, b.pr50.precision, color=colour, linestyle="--",
                    label=f"{c.name} baseline {b.ap50:.3f}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(f"{title}\nPR at IoU 0.5 (mAP50 {result.map50:.3f})", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
