"""Grid cell -> cleaner roster, loaded from YAML.

Each unit grid (单元网格) has a responsible cleaner; cells that are not listed, and incidents without a grid
cell (uncalibrated cameras), go to `default_cleaner` (usually the dispatcher's queue).

```yaml
default_cleaner: dispatch-desk
cells:
  "370203001001": cleaner-wang
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field

CleanerId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Cleaner id; also an MQTT topic level ({prefix}/dispatch/{cleaner}).",
    ),
]
GridCell = Annotated[str, Field(min_length=1, max_length=15, pattern=r"^[0-9A-Z]+$")]


class Roster(BaseModel):
    """Who cleans which grid cell."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_cleaner: CleanerId = Field(
        "dispatch-desk", description="Assignee for cells not listed and for incidents without a grid cell."
    )
    cells: dict[GridCell, CleanerId] = Field(default_factory=dict, description="Grid cell code -> cleaner id.")

    def cleaners(self) -> frozenset[str]:
        """Every cleaner account the roster names (none of them may speak as a gateway)."""
        return frozenset({self.default_cleaner, *self.cells.values()})

    def cleaner_for(self, grid_cell: str | None) -> str:
        """The cleaner responsible for `grid_cell` (the default cleaner when unknown or None)."""
        if grid_cell is None:
            return self.default_cleaner
        return self.cells.get(grid_cell, self.default_cleaner)


def load_roster(path: str | Path) -> Roster:
    """Load a roster from a YAML file."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    return Roster.model_validate(data)
