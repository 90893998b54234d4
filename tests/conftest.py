"""Shared fixtures. Real data lives outside the repo (licences allow local testing only)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from gridwatch.edge.config import SiteConfig, parse_site_config

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


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
