"""Build `.build/typecheck/gridwatch`: the installed package's shape as symlinks into the repository's folders.

The folders (`edge/`, `models/`, ...) are mapped into `gridwatch.<part>` by `[tool.setuptools.package-dir]`.
Python finds them through setuptools' editable import hook, which mypy cannot follow; mypy checks this tree.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent


def build(out: Path) -> Path:
    mapping: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    if out.exists():
        shutil.rmtree(out)
    pkg = out / "gridwatch"
    pkg.mkdir(parents=True)
    for entry in (ROOT / mapping["gridwatch"]).iterdir():
        if entry.name != "__pycache__":
            (pkg / entry.name).symlink_to(entry)
    for name, folder in mapping.items():
        if name != "gridwatch":
            (out / name.replace(".", "/")).symlink_to(ROOT / folder, target_is_directory=True)
    return pkg


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / ".build" / "typecheck"))
