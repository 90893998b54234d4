"""`gridwatch edge run` as a process: SIGTERM ends open incidents, drains the outbox and exits 0 within 5 s."""

from __future__ import annotations

import os
import re
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
from gridwatch.wire.outbox import Outbox
from tests.conftest import FIXTURES

pytestmark = [pytest.mark.e2e, pytest.mark.realdata]

# systemd and container runtimes kill after 30 s; the worker must be well inside that.
STOP_WITHIN_S = 5.0


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
        central = CentralService(broker.url, f"sqlite:///{tmp_path / 'cases.db'}", client_id="cli-central",
                                 evidence_dir=tmp_path / "snaps").start()  # it receipts the snapshots too
        try:
            proc = subprocess.Popen([sys.executable, "-m", "gridwatch.app.cli", "edge", "run", "--config", str(cfg),
                                     "--broker", broker.url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    env={**os.environ})
            assert central.wait_for(lambda: central.counters.stored >= 4, 60), "no incidents within 60 s"
            time.sleep(1.0)
            proc.send_signal(signal.SIGTERM)
            t0 = time.monotonic()
            try:
                output, _ = proc.communicate(timeout=STOP_WITHIN_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                output, _ = proc.communicate()
                pytest.fail(f"edge run still running {STOP_WITHIN_S} s after SIGTERM: {output[-3000:]!r}")
            stopped_in = time.monotonic() - t0
            assert proc.returncode == 0, output[-3000:]  # 0 = the outbox drained (1 = rows kept for next start)
            assert b"outbox drained" in output
            assert central.wait_for(lambda: _all_ended(central), 20), "open incidents left"
            rows = _rows(central)
        finally:
            central.stop()
    assert len(rows) >= 4
    assert stopped_in < STOP_WITHIN_S


def test_sigterm_with_the_broker_gone_exits_within_5_s_and_keeps_the_rows(shared_data: Path, tmp_path: Path) -> None:
    cfg = write_config(shared_data, tmp_path)
    broker = MosquittoBroker().start()
    central = CentralService(broker.url, f"sqlite:///{tmp_path / 'cases.db'}", client_id="cli-central",
                             evidence_dir=tmp_path / "snaps").start()  # it receipts the snapshots too
    try:
        proc = subprocess.Popen([sys.executable, "-m", "gridwatch.app.cli", "edge", "run", "--config", str(cfg),
                                 "--broker", broker.url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env={**os.environ})
        assert central.wait_for(lambda: central.counters.stored >= 4, 60), "no incidents within 60 s"
    finally:
        central.stop()
        broker.kill()
    proc.send_signal(signal.SIGTERM)  # the open incidents' `ended` events now have nowhere to go
    t0 = time.monotonic()
    try:
        output, _ = proc.communicate(timeout=STOP_WITHIN_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        pytest.fail(f"edge run still running {STOP_WITHIN_S} s after SIGTERM: {output[-3000:]!r}")
    assert time.monotonic() - t0 < STOP_WITHIN_S
    assert proc.returncode == 1, output[-3000:]
    assert re.search(rb"outbox kept [1-9]\d* pending row", output), output[-3000:]
    outbox = Outbox(tmp_path / "outbox.db")
    try:
        assert any(item.kind == "incident" for item in outbox.pending())  # kept for the next start, not lost
    finally:
        outbox.close()


def _all_ended(central: CentralService) -> bool:
    rows = _rows(central)
    return bool(rows) and all(r.ended_at for r in rows)


def _rows(central: CentralService) -> list:  # type: ignore[type-arg]
    with central.store.session() as session:
        return cases_as_rows(session)
