"""Class names a config uses, checked against the classes a model has, once at start-up.

A class name the model does not have (`classes: [cars]`) is not a crash at run time: the filter simply never
matches, and the camera reports nothing, forever. So every class list in the config is checked when the detector
is built, and the error names the config path, the unknown name and the closest names the model does have.

Lists the user wrote must name only known classes. Lists left at their defaults (the parking rule's
`[car, truck, bus, motorcycle]` on a model that only knows `car`) are "any of these" presets: they only need one
known name, since a rule none of whose classes exist can never fire.

Example: `verify_classes_known({"detector.classes": ["cars"]}, ["car", "person"], model="demo")` raises
`ModelConfigError("detector.classes: 'cars' is not a class of model demo; did you mean 'car'? the model knows
['car', 'person']")`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence

from pydantic import BaseModel

from gridwatch.models.base import ModelConfigError

CLASS_LIST_FIELDS = frozenset({"classes", "object_classes", "owner_classes"})
"""Config fields (at any depth) that hold class names of the detector's model."""

CHECKED_WHEN_SET = frozenset({"bin_classes", "garbage_classes"})
"""Class lists that are checked only when the user wrote them: at their defaults they name optional evidence (a
model without bins simply never sees garbage at a bin), not a rule that could never fire."""

NOT_FROM_THE_MODEL = frozenset({"unknown_object"})
"""Class names another stage produces, known whatever the model: the scene-change stage's regions
(`gridwatch.pipelines.rule_config.REGION_CLASS`; models may not import pipelines, a test keeps them equal)."""


def verify_classes_known(
    used: Mapping[str, Sequence[str]], model_classes: Sequence[str], *, model: str,
    defaults: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Raise ModelConfigError for the first class name in `used` (config path -> names) the model lacks, and
    for the first list in `defaults` (presets the user did not write) of which the model knows no name."""
    known = list(model_classes)
    for path, names in used.items():
        for name in names:
            if name not in known and name not in NOT_FROM_THE_MODEL:
                raise ModelConfigError(
                    f"{path}: {name!r} is not a class of model {model}; {_suggest(name, known)}"
                )
    for path, names in (defaults or {}).items():
        if names and not any(name in known or name in NOT_FROM_THE_MODEL for name in names):
            raise ModelConfigError(
                f"{path}: none of the default classes {list(names)} is a class of model {model}, so this rule can "
                f"never fire; set {path} to some of {known} or disable the rule"
            )


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    return f"{hint}the model knows {known}"


def class_lists(config: BaseModel, prefix: str = "") -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(set by the user, left at defaults): every class list in `config`, keyed by its dotted path.

    Walks the pydantic tree generically (any field named in `CLASS_LIST_FIELDS`), so a new incident type's
    config is covered without an edit here. Sub-configs with `enabled: false` are skipped.
    """
    explicit: dict[str, list[str]] = {}
    default: dict[str, list[str]] = {}
    if getattr(config, "enabled", True) is False:
        return explicit, default
    for name in type(config).model_fields:
        value = getattr(config, name)
        path = f"{prefix}{name}"
        if name in CLASS_LIST_FIELDS and isinstance(value, list):
            (explicit if name in config.model_fields_set else default)[path] = [str(v) for v in value]
        elif name in CHECKED_WHEN_SET and isinstance(value, list) and name in config.model_fields_set:
            explicit[path] = [str(v) for v in value]
        for sub_path, sub in _children(path, value):
            e, d = class_lists(sub, f"{sub_path}.")
            explicit.update(e)
            default.update(d)
    return explicit, default


def _children(path: str, value: object) -> list[tuple[str, BaseModel]]:
    if isinstance(value, BaseModel):
        return [(path, value)]
    if isinstance(value, list | tuple):
        return [(f"{path}.{i}", v) for i, v in enumerate(value) if isinstance(v, BaseModel)]
    if isinstance(value, dict):
        return [(f"{path}.{k}", v) for k, v in value.items() if isinstance(v, BaseModel)]
    return []
