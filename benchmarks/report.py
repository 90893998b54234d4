"""The JSON report every benchmark writes with `--json PATH`: its own payload plus the machine it ran on."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    """CPUs, platform and load average: what a reader needs to compare runs across machines."""
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "loadavg": os.getloadavg()}


def write_report(path: Path, payload: dict[str, Any]) -> None:
    """`payload` (its `goals` and runs) and `machine()` as indented JSON at `path`, folders made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**payload, "machine": machine()}, indent=2))
