"""A progress bar per import (images read or clip frames decoded), on stderr; silent when disabled."""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class ImportProgress:
    """`with ImportProgress(enabled) as p: tick = p.task("cvat clip", total)`; call `tick()` per unit."""

    def __init__(self, enabled: bool) -> None:
        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), TimeRemainingColumn(), console=Console(file=sys.stderr),
                             disable=not enabled, transient=False)

    def __enter__(self) -> ImportProgress:
        self._bar.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._bar.stop()

    def task(self, description: str, total: int | None) -> Callable[[], None]:
        task_id = self._bar.add_task(description, total=total)
        return lambda: self._bar.advance(task_id)
