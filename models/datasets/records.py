"""What every importer produces: labelled samples with boxes normalised to their image, and the error type.

A `Sample` is one image (a file on disk, or a JPEG-encoded frame cut from a clip) with its boxes under the
*source's* class names; the class mapping (`mapping.py`) renames them later. `group` is the unit the
train/val split keeps together: the clip a frame came from, or the source photo behind augmented copies.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from gridwatch.errors import GridwatchError

Split = Literal["train", "val"]
SPLITS: tuple[Split, ...] = ("train", "val")


class DatasetError(GridwatchError, ValueError):
    """A label export, mapping file or recipe cannot be used; the message names the file/field and the fix."""


@dataclass(frozen=True)
class Box:
    """One labelled box; corners normalised to the image (0..1), clipped on construction by `clipped`."""

    label: str
    x1: float
    y1: float
    x2: float
    y2: float

    def clipped(self) -> Box | None:
        """The box cut to the image, or None when nothing (or only a sliver under 1e-4) is left."""
        x1, y1 = min(max(self.x1, 0.0), 1.0), min(max(self.y1, 0.0), 1.0)
        x2, y2 = min(max(self.x2, 0.0), 1.0), min(max(self.y2, 0.0), 1.0)
        if x2 - x1 < 1e-4 or y2 - y1 < 1e-4:
            return None
        return Box(self.label, x1, y1, x2, y2)

    def relabel(self, label: str) -> Box:
        return replace(self, label=label)

    def yolo_line(self, class_id: int) -> str:
        cx, cy = (self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2
        return f"{class_id} {cx:.6f} {cy:.6f} {self.x2 - self.x1:.6f} {self.y2 - self.y1:.6f}"


@dataclass(frozen=True)
class Sample:
    """One labelled image.

    source: the recipe's name for where it came from; key: unique within the source, safe as a file stem;
    group: the split unit; image: a file path or JPEG bytes; size: (width, height) in pixels;
    split: the split the export already assigned (kept with `split: keep`), else None.
    """

    source: str
    key: str
    group: str
    image: Path | bytes
    size: tuple[int, int]
    boxes: tuple[Box, ...]
    split: Split | None = None

    def with_boxes(self, boxes: tuple[Box, ...]) -> Sample:
        return replace(self, boxes=boxes)

    def with_source(self, source: str) -> Sample:
        return replace(self, source=source, group=f"{source}/{self.group}")


def safe_stem(text: str) -> str:
    """A file-name-safe version of `text` (path separators and spaces become '_')."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text)
