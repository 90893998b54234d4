"""The wheel installs one package, `gridwatch`, and the layers import only downwards.

Layers, bottom to top: `gridwatch.errors` -> `wire` -> (`calibration`, `models`, `pipelines`) -> `edge` / `central`
-> `app` (the shell: CLI, demo, embedded broker). `synth` (the generator) may use calibration only. One arrow
points up: `wire` reads the incident registry (`pipelines.registry`) for the event's type enum; pipelines imports
nothing of gridwatch but `errors`, so there is no cycle.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PARTS = {"wire": "wire", "edge": "edge", "models": "models", "pipelines": "pipelines", "calibration": "calibration",
         "central": "central", "synth": "synth", "app": "gridwatch/app"}
# which gridwatch.<part> each part may import (besides itself and gridwatch.errors)
ALLOWED: dict[str, set[str]] = {
    # The event's `type` enum is derived from the incident registry (one module per type), so the wire contract
    # reads gridwatch.pipelines.registry: pipelines is pure (no I/O) and its registry imports only pydantic.
    "wire": {"pipelines"},
    "calibration": set(),
    "pipelines": set(),
    "models": {"synth"},  # training renders synthetic data
    "synth": {"calibration"},
    "edge": {"wire", "calibration", "models", "pipelines"},
    "central": {"wire", "calibration"},
    "app": set(PARTS) - {"app"},
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built from a clean copy of the tree: setuptools reuses `build/` in the source folder, where files of an
    older layout would otherwise slip into the wheel."""
    out = tmp_path_factory.mktemp("wheel")
    src = tmp_path_factory.mktemp("src") / "gridwatch"
    junk = shutil.ignore_patterns(".git", ".venv", ".build", "build", "*.egg-info", "__pycache__", ".*_cache",
                                  "demo-out", "out", "runs")
    shutil.copytree(REPO, src, ignore=junk)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(src)], check=True, timeout=300, capture_output=True)
    return next(out.glob("gridwatch-*.whl"))


def test_wheel_installs_only_the_gridwatch_package(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top == {"gridwatch"}
    for part in ("wire/events.py", "wire/incident_event.schema.json", "edge/worker.py", "pipelines/__init__.py",
                 "pipelines/incidents/illegal_parking.py",
                 "central/data/categories.yaml", "models/demo/gridwatch-demo-yolo11n.onnx",
                 "models/street/gridwatch-street-yolo11n.onnx",
                 "synth/scenarios/demo.yaml",
                 "models/datasets/build.py", "models/datasets/recipes/street.yaml", "app/cli.py", "errors.py"):
        assert f"gridwatch/{part}" in names, part
    assert not any(n.startswith("gridwatch/tests") for n in names)


def test_installed_wheel_imports_as_gridwatch(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    code = ("import gridwatch.edge.events, gridwatch.wire.events, gridwatch.pipelines, gridwatch.central, sys; "
            "import gridwatch.app.demo as d; assert d.SCENARIO.exists() and d.MODEL.exists(); "
            "print(gridwatch.wire.events.__file__)")
    # run from an empty folder so the repository's folders cannot be picked up
    out = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); {code}"],
                         cwd=tmp_path, check=True, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().startswith(str(target))


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


@pytest.mark.parametrize("part", sorted(PARTS))
def test_layers_import_only_downwards(part: str) -> None:
    generic = {"edge", "models", "pipelines", "calibration", "central", "synth", "wire"}
    bad: list[str] = []
    for path in sorted((REPO / PARTS[part]).rglob("*.py")):
        for mod in _imports(path):
            bits = mod.split(".")
            if bits[0] in generic:
                bad.append(f"{path.relative_to(REPO)}: generic top-level import {mod}")
            if bits[0] != "gridwatch" or len(bits) < 2 or bits[1] in ("errors", part):
                continue
            if bits[1] not in ALLOWED[part]:
                bad.append(f"{path.relative_to(REPO)} imports {mod}")
    assert not bad, "\n".join(bad)
