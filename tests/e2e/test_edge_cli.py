"""`gridwatch edge run` as a process: SIGTERM ends open incidents, drains the outbox and exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from gridwatch.app.broker import MosquittoBroker
from gridwatch.central.service import CentralService
from gridwatch.central.views import cases_as_rows
from tests.conftest import FIXTURES

pytestmark = [pytest.mark.e2e, pytest.mark.realdata]


def write_config(shared: Path, tmp: Path) -> Path:
    data = yaml.safe_load((FIXTURES / "arlington.yaml").read_text().replace("${SHARED}", str(shared)))
    data["detector"]["manifest"] = str((FIXTURES / data["detector"]["manifest"]).resolve())
    data["cameras"][0]["source"]["loop"] = True  # a camera that never ends, like a live stream
    data["cameras"][0]["source"]["realtime"] = True
    data["outbox"] = {"path": str(tmp / "outbox.db")}
    data["evidence"] = {"dir": str(tmp / "evidence")}
    path = tmp / "site.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_sigterm_ends_open_incidents_and_exits_cleanly(shared_data: Path, tmp_path: Path) -> None:
    cfg = write_config(shared_data, tmp_path)
    with MosquittoBroker() as broker:
        central = CentralService(broker.url, f"sqlite:///{tmp_path / 'cases.db'}", client_id="cli-central").start()
        try:
            proc = subprocess.Popen([sys.executable, "-m", "gridwatch.app.cli", "edge", "run", "--config", str(cfg),
                                     "--broker", broker.url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    env={**os.environ})
            assert central.wait_for(lambda: central.counters.stored >= 4, 60), "no incidents within 60 s"
            time.sleep(1.0)
            proc.send_signal(signal.SIGTERM)
            output, _ = proc.communicate(timeout=60)
            assert proc.returncode == 0, output[-3000:]
            with central.store.session() as session:
                rows = cases_as_rows(session)
            assert central.wait_for(lambda: all(r.ended_at for r in _rows(central)), 20), "open incidents left"
        finally:
            central.stop()
    assert len(rows) >= 4
    assert b"drained" in output


def _rows(central: CentralService) -> list:  # type: ignore[type-arg]
    with central.store.session() as session:
        return cases_as_rows(session)
