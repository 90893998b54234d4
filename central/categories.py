"""Incident type -> case category table (GB/T 47678.5-2026 codes), loaded from YAML.

Category codes are data, never enums: the national catalogue changed in 2026 and cities override it. The
table carries a `version` that is stored on every case, so a case keeps the category it was filed under after
the table changes. `auto_file` is per category because many cities require a person to confirm the category
of a video-discovered case before it is filed.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

DEFAULT_CATEGORIES_PATH = Path(__file__).parent / "data" / "categories.yaml"


class Category(BaseModel):
    """One case category that an incident type maps to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(
        pattern=r"^[0-9]{5}$",
        description="Five-digit category code; quote it in YAML so the leading zero is kept.",
    )
    name: str = Field(min_length=1, max_length=64, description="Category name as in the catalogue.")
    auto_file: bool = Field(False, description="File the case on intake without an operator confirming the category.")


class CategoryTable(BaseModel):
    """The versioned mapping from incident `type` to `Category`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1, max_length=64, description="Stored on each case as category_version.")
    standard: str = Field("GB/T 47678.5-2026", max_length=64, description="Catalogue the codes come from.")
    categories: dict[str, Category] = Field(description="Incident type -> category.")

    def for_type(self, incident_type: str) -> Category | None:
        """The category of `incident_type`, or None when the table has no entry for it."""
        return self.categories.get(incident_type)


def load_categories(path: str | Path | None = None) -> CategoryTable:
    """Load a category table from YAML (the shipped table when `path` is None)."""
    source = Path(path) if path is not None else DEFAULT_CATEGORIES_PATH
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    return CategoryTable.model_validate(data)
