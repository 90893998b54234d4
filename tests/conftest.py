"""Shared fixtures. Real data lives outside the repo (licences allow local testing only)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import yaml

from gridwatch.edge.config import SiteConfig, parse_site_config

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


TRAIN_MODULES = ("torch", "ultralytics")


def missing_train_modules() -> list[str]:
    """The [train] extra's modules this Python cannot import."""
    return [m for m in TRAIN_MODULES if importlib.util.find_spec(m) is None]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `train` need the [train] extra (torch + Ultralytics), which the edge/central suite does not
    install by design: without it they are deselected (`N deselected` in the summary, never a skip), and with
    GRIDWATCH_REQUIRE_TRAIN=1 (the train environment: `make test-train`) they must run, so a broken train install
    fails. No test is ever skipped for a missing module."""
    missing = missing_train_modules()
    if not missing:
        return
    if os.environ.get("GRIDWATCH_REQUIRE_TRAIN") == "1":
        raise pytest.UsageError(f"GRIDWATCH_REQUIRE_TRAIN=1 but {', '.join(missing)} cannot be imported: "
                                "pip install -e '.[train]'")
    train = [item for item in items if item.get_closest_marker("train") is not None]
    if train:
        config.hook.pytest_deselected(items=train)
        items[:] = [item for item in items if item.get_closest_marker("train") is None]


def shared_root() -> Path:
    return Path(os.environ.get("GRIDWATCH_SHARED", REPO.parent / "shared")) / "data" / "real"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data/real (or $GRIDWATCH_SHARED/data/real). Missing data FAILS: it must not hide as a skip."""
    root = shared_root()
    if not (root / "models" / "yolox_nano.onnx").exists():
        pytest.fail(f"real test data not found at {root}; set GRIDWATCH_SHARED to the folder holding data/real")
    return root


def load_fixture_config(name: str, shared: Path) -> SiteConfig:
    text = (FIXTURES / name).read_text().replace("${SHARED}", str(shared))
    return parse_site_config(yaml.safe_load(text), name, base=FIXTURES)
