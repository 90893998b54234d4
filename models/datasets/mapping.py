"""The class mapping: source class names -> our class names (or `ignore`), from a small YAML file.

    # maps/garbage_cn.yaml
    garbage: garbage
    garbage_bin: garbage_bin
    overflow: overflow
    Tree: ignore          # boxes of this class are dropped, on purpose
    "*": ignore           # optional: every other source class is dropped too (for a teacher's 80 COCO classes)

A source class the mapping does not name (and no `"*"`) stops the build: `check_mapped` raises a
`DatasetError` that lists each unmapped name with its box count and how to fix the file. Nothing is
dropped silently.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from gridwatch.models.datasets.records import DatasetError, Sample

IGNORE = "ignore"
WILDCARD = "*"


@dataclass(frozen=True)
class ClassMap:
    """`rules`: source name -> our name or IGNORE; `origin`: where it was read (for messages)."""

    rules: Mapping[str, str]
    origin: str

    def target(self, name: str) -> str | None:
        """Our class for source class `name`; None = ignored. KeyError when unmapped."""
        rule = self.rules[name] if name in self.rules else self.rules[WILDCARD]
        return None if rule == IGNORE else rule


def parse_class_map(raw: object, origin: str, classes: Sequence[str]) -> ClassMap:
    """Validate a mapping (already parsed YAML); every target must be one of `classes` or `ignore`."""
    if not isinstance(raw, dict) or not raw:
        raise DatasetError(f"{origin}: a class mapping must be a non-empty YAML mapping `source_name: our_name`")
    rules: dict[str, str] = {}
    for key, value in raw.items():
        target = str(value) if value is not None else ""
        if target != IGNORE and target not in classes:
            raise DatasetError(
                f"{origin}: {key!r} maps to {target!r}, which is not one of the dataset's classes {list(classes)}; "
                f"map it to one of them or to `ignore`"
            )
        rules[str(key)] = target
    return ClassMap(rules, origin)


def load_class_map(path: Path, classes: Sequence[str]) -> ClassMap:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DatasetError(f"cannot read class mapping {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise DatasetError(f"class mapping {path} is not valid YAML: {exc}") from exc
    return parse_class_map(raw, str(path), classes)


def label_counts(samples: Iterable[Sample]) -> Counter[str]:
    return Counter(b.label for s in samples for b in s.boxes)


def check_mapped(counts: Mapping[str, int], cmap: ClassMap, source: str) -> None:
    """Raise DatasetError naming every source class `cmap` does not map, with its box count and the fix."""
    if WILDCARD in cmap.rules:
        return
    missing = sorted((n for n in counts if n not in cmap.rules), key=lambda n: (-counts[n], n))
    if not missing:
        return
    listed = ", ".join(f"{n!r} ({counts[n]} box{'es' if counts[n] != 1 else ''})" for n in missing)
    example = "; ".join(f"{n}: <our class> or {n}: ignore" for n in missing[:3])
    raise DatasetError(
        f"source {source!r}: unmapped classes {listed}; add them to the class mapping ({cmap.origin}), "
        f"e.g. `{example}`, or `\"*\": ignore` to drop every class not listed"
    )


def apply_map(samples: Iterable[Sample], cmap: ClassMap) -> tuple[list[Sample], Counter[str]]:
    """Samples with boxes renamed to our classes (ignored boxes dropped), and the ignored counts by source name.

    Call `check_mapped` first; an unmapped name here is a KeyError (a bug, not a user error)."""
    out: list[Sample] = []
    ignored: Counter[str] = Counter()
    for s in samples:
        kept = []
        for b in s.boxes:
            target = cmap.target(b.label)
            if target is None:
                ignored[b.label] += 1
            else:
                kept.append(b.relabel(target))
        out.append(s.with_boxes(tuple(kept)))
    return out, ignored
