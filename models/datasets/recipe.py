"""The dataset recipe: one YAML that says which sources to mix into one dataset, with what classes.

    # recipes/street.yaml
    classes: [garbage, garbage_bin, overflow, person, car, truck, bus, motorcycle]   # id order of the output
    seed: 0
    val_fraction: 0.2
    sources:
      - name: cn_street                      # file prefix and report key; unique
        type: yolo                           # yolo | coco | cvat_video | label_studio_video | synth | teacher
        path: ${GRIDWATCH_SHARED}/data/real/garbage_cn_street
        map: maps/garbage_cn.yaml            # class mapping file, or inline {source_name: ours | ignore}
        split: keep                          # keep the export's train/val; default `group` (re-split by group)
        teacher:                             # optional: a teacher adds boxes of classes this source does not label
          model: ${GRIDWATCH_SHARED}/data/real/models/yolox_nano.onnx
          manifest: yolox_nano_coco80
          map: {person: person, car: car, "*": ignore}
      - name: people
        type: teacher                        # pseudo-labels from a teacher model on frames of real clips
        model: ${GRIDWATCH_SHARED}/data/real/models/yolox_nano.onnx
        manifest: yolox_nano_coco80          # a shipped manifest's name, or a path (default: next to the model)
        clips: [${GRIDWATCH_SHARED}/data/real/videos/arlington_crystal_dr_curb_parked.avi]
        every: 15
        conf: 0.4
        map: {person: person, car: car, truck: truck, bus: bus, motorcycle: motorcycle, "*": ignore}
        cap: 200                             # at most 200 images from this source (whole groups)
        weight: 0.5                          # train oversampling: 2 = every train image twice, 0.5 = half

`${VAR}` is taken from the environment; relative paths resolve against the recipe's folder. Unknown keys
are errors naming the field path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gridwatch.models.datasets.mapping import ClassMap, load_class_map, parse_class_map
from gridwatch.models.datasets.records import DatasetError


class TeacherSpec(BaseModel):
    """A teacher model that adds its boxes to a source's images, for our classes the source does not label."""

    model_config = ConfigDict(extra="forbid")

    model: str
    manifest: str | None = Field(default=None, description="shipped manifest name or path; default: beside model")
    conf: float = Field(default=0.4, gt=0, lt=1)
    map: str | dict[str, str] = Field(description="a mapping file, or inline teacher class -> ours | ignore")


class SourceCommon(BaseModel):
    """The fields every source has."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="unique source name (file prefix, report key)")
    map: str | dict[str, str] = Field(description="class mapping: a YAML file, or inline {source: ours|ignore}")
    split: Literal["group", "keep"] = "group"
    cap: int | None = Field(default=None, ge=1, description="at most this many images (whole groups)")
    weight: float = Field(default=1.0, gt=0, le=20, description="train oversampling factor")
    teacher: TeacherSpec | None = Field(default=None, description="fill in classes this source does not label")


class _ClipOptions(BaseModel):
    every: int = Field(default=10, ge=1, description="take every N-th frame")
    min_diff: float = Field(default=2.0, ge=0, description="skip frames this close (grey levels) to the last kept")


class YoloSource(SourceCommon):
    type: Literal["yolo"]
    path: str


class CocoSource(SourceCommon):
    type: Literal["coco"]
    path: str
    images: str | None = None


class CvatVideoSource(SourceCommon, _ClipOptions):
    type: Literal["cvat_video"]
    path: str = Field(description="a CVAT for video 1.1 XML, or a folder of them (one task per clip)")
    video: str | None = None
    drop_occluded: bool = False


class LabelStudioVideoSource(SourceCommon, _ClipOptions):
    type: Literal["label_studio_video"]
    path: str
    videos: str


class SynthSource(SourceCommon):
    type: Literal["synth"]
    train: int = Field(ge=1)
    val: int = Field(ge=0, default=0)
    seed: int = 0
    split: Literal["group", "keep"] = "keep"


class TeacherSource(SourceCommon, _ClipOptions):
    type: Literal["teacher"]
    model: str
    manifest: str | None = None
    clips: list[str] = Field(min_length=1)
    conf: float = Field(default=0.4, gt=0, lt=1)
    every: int = Field(default=15, ge=1)


SourceSpec = Annotated[
    YoloSource | CocoSource | CvatVideoSource | LabelStudioVideoSource | SynthSource | TeacherSource,
    Field(discriminator="type"),
]


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    classes: list[str] = Field(min_length=1, description="our class names, in id order")
    seed: int = 0
    val_fraction: float = Field(default=0.2, ge=0, lt=1)
    sources: list[SourceSpec] = Field(min_length=1)

    @field_validator("classes")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value) or "ignore" in value:
            raise ValueError(f"class names must be unique and not 'ignore': {value}")
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> Recipe:
        names = [s.name for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be unique; repeated: {dupes}")
        return self


def resolve_path(text: str, base: Path) -> Path:
    expanded = os.path.expandvars(text)
    if "${" in expanded or expanded.startswith("$"):
        raise DatasetError(f"path {text!r} names an environment variable that is not set; set it or write the path")
    path = Path(expanded).expanduser()
    return path if path.is_absolute() else base / path


def class_map_of(value: str | dict[str, str], classes: list[str], base: Path, where: str) -> ClassMap:
    """A `map:` field: inline (named by its field path in messages) or a file relative to the recipe."""
    if isinstance(value, dict):
        return parse_class_map(value, where, classes)
    return load_class_map(resolve_path(value, base), classes)


def parse_recipe(raw: object, origin: str) -> Recipe:
    try:
        return Recipe.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise DatasetError(f"{origin}: {loc}: {first['msg']} ({exc.error_count()} problem(s) in all; "
                           f"see the recipe format in `gridwatch data build --help`)") from None


def load_recipe(path: Path) -> Recipe:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DatasetError(f"cannot read recipe {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise DatasetError(f"recipe {path} is not valid YAML: {exc}") from exc
    return parse_recipe(raw, str(path))
