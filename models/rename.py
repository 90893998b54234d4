"""A detector whose classes go by other names: the site config's `detector.rename` (`{person: street_person}`).

Two models that both know `person` report the same class, and the edge merges their boxes by name (see
`gridwatch.edge.detectors`). To keep one model's class apart, rename it: the rules, the tracker and the events then
see the new name. Renaming is applied once, here, at the backend boundary, so `info.class_names` and every
detection agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np
import supervision as sv

from gridwatch.models.base import Detector, ModelConfigError, ModelInfo


def check_rename(rename: Mapping[str, str], class_names: tuple[str, ...], *, where: str, model: str) -> None:
    """Raise ModelConfigError unless every key is a class of the model and no two classes end up with one name."""
    for old in rename:
        if old not in class_names:
            raise ModelConfigError(f"{where}.{old}: {old!r} is not a class of model {model}; rename one of "
                                   f"{list(class_names)}")
    final = [rename.get(name, name) for name in class_names]
    clashes = sorted({name for name in final if final.count(name) > 1})
    if clashes:
        raise ModelConfigError(f"{where}: renaming gives two classes of model {model} the name {clashes[0]!r}; "
                               "pick a name the model does not use")


class RenamedDetector:
    """`inner`'s detections with `class_name` renamed (class ids unchanged)."""

    def __init__(self, inner: Detector, rename: Mapping[str, str]) -> None:
        self.inner = inner
        self.rename = dict(rename)
        self.info: ModelInfo = replace(inner.info, class_names=tuple(self.rename.get(n, n)
                                                                     for n in inner.info.class_names))

    def detect(self, image: np.ndarray) -> sv.Detections:
        found = self.inner.detect(image)
        names = found.data.get("class_name")
        if names is not None and len(found):
            found.data["class_name"] = np.array([self.rename.get(str(n), str(n)) for n in names], dtype=str)
        return found
