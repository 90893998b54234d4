"""`gridwatch data pull DIR --out OUT --format yolo|cvat`: hard examples from the field, as a labelling task.

DIR is a folder of hard examples copied off one or more gateways (`hard_examples.dir`; see
`gridwatch.models.hard_examples`). The models' guesses become pre-labels, so the labeller corrects boxes instead of
drawing them all:

- `yolo`: `OUT/images/*.jpg`, `OUT/labels/*.txt` (`class cx cy w h`, normalised), `OUT/classes.txt` and
  `OUT/data.yaml` (Ultralytics: every image under `train`; split it when the labels are done);
- `cvat`: `OUT/images/*.jpg` and `OUT/annotations.xml` in "CVAT for images 1.1" (one `<box source="auto">` per
  guess), to upload as a task's annotations.

Classes are every class name the guesses use, sorted (`unknown_object` = a scene-change region the rules could not
name: relabel it). Images are renamed `<camera>_<stem>.jpg` so cameras never collide. OUT must not exist or be
empty: a pull never overwrites a labeller's work.
"""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from gridwatch.models.base import ModelConfigError
from gridwatch.models.hard_examples import HardExample, read_examples

Format = Literal["yolo", "cvat"]


@dataclass(frozen=True)
class PullReport:
    images: int
    boxes: int
    classes: tuple[str, ...]
    out: Path

    def line(self) -> str:
        return (f"{self.images} images, {self.boxes} pre-labelled boxes, {len(self.classes)} classes "
                f"({', '.join(self.classes) or 'none'}) -> {self.out}")


def pull(source: Path, out: Path, fmt: Format) -> PullReport:
    examples = read_examples(source)
    if not examples:
        raise ModelConfigError(f"{source}: no hard examples found (*.json sidecars next to their *.jpg)")
    if out.exists() and any(out.iterdir()):
        raise ModelConfigError(f"{out} is not empty; give a new folder for the labelling task")
    classes = tuple(sorted({b.class_name for _, ex in examples for b in ex.boxes}))
    (out / "images").mkdir(parents=True, exist_ok=True)
    named = [(f"{ex.camera_id}_{image.name}", image, ex) for image, ex in examples]
    for name, image, _ in named:
        shutil.copyfile(image, out / "images" / name)
    if fmt == "yolo":
        write_yolo(out, [(n, ex) for n, _, ex in named], classes)
    else:
        write_cvat(out / "annotations.xml", [(n, ex) for n, _, ex in named], classes, task=source.name or "field")
    return PullReport(len(examples), sum(len(ex.boxes) for _, ex in examples), classes, out)


def yolo_line(class_id: int, box: tuple[float, float, float, float], width: int, height: int) -> str:
    x1, y1, x2, y2 = (max(0.0, min(v, lim)) for v, lim in zip(box, (width, height, width, height), strict=True))
    cx, cy = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
    return f"{class_id} {cx:.6f} {cy:.6f} {(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}"


def write_yolo(out: Path, examples: list[tuple[str, HardExample]], classes: tuple[str, ...]) -> None:
    labels = out / "labels"
    labels.mkdir(parents=True, exist_ok=True)
    index = {c: i for i, c in enumerate(classes)}
    for name, ex in examples:
        rows = [yolo_line(index[b.class_name], b.box, ex.width, ex.height) for b in ex.boxes]
        (labels / Path(name).with_suffix(".txt").name).write_text("".join(r + "\n" for r in rows))
    (out / "classes.txt").write_text("".join(c + "\n" for c in classes))
    data = {"path": str(out.resolve()), "train": "images", "val": "images", "names": dict(enumerate(classes))}
    (out / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def write_cvat(path: Path, examples: list[tuple[str, HardExample]], classes: tuple[str, ...], task: str) -> None:
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    meta = ET.SubElement(ET.SubElement(root, "meta"), "task")
    ET.SubElement(meta, "name").text = f"gridwatch hard examples: {task}"
    ET.SubElement(meta, "size").text = str(len(examples))
    ET.SubElement(meta, "mode").text = "annotation"
    labels = ET.SubElement(meta, "labels")
    for c in classes:
        label = ET.SubElement(labels, "label")
        ET.SubElement(label, "name").text = c
        ET.SubElement(label, "type").text = "rectangle"
        ET.SubElement(label, "attributes")
    for i, (name, ex) in enumerate(examples):
        image = ET.SubElement(root, "image", id=str(i), name=name, width=str(ex.width), height=str(ex.height))
        for b in ex.boxes:
            x1, y1, x2, y2 = b.box
            ET.SubElement(image, "box", label=b.class_name, source="auto", occluded="0", xtl=f"{x1:.2f}",
                          ytl=f"{y1:.2f}", xbr=f"{x2:.2f}", ybr=f"{y2:.2f}", z_order="0")
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
