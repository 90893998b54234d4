"""Polling for a condition that no event announces (a process's log line, a row in another process's store)."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0, every_s: float = 0.05) -> bool:
    """Poll `predicate` until it holds or `timeout_s` of monotonic time passed; return whether it held."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every_s)
    return bool(predicate())
