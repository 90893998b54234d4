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


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked `train` (and only those) skip when the [train] extra is not installed: the edge/central suite
    runs without torch by design. With GRIDWATCH_REQUIRE_TRAIN=1 (the train environment) they fail instead, so a
    broken train install cannot pass as skips. No other test is ever skipped for a missing module."""
    if item.get_closest_marker("train") is None:
        return
    missing = missing_train_modules()
    if not missing:
        return
    why = f"needs the [train] extra (pip install -e '.[train]'): {', '.join(missing)} not installed"
    if os.environ.get("GRIDWATCH_REQUIRE_TRAIN") == "1":
        pytest.fail(f"GRIDWATCH_REQUIRE_TRAIN=1 but the test {why}")
    pytest.skip(why)


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
