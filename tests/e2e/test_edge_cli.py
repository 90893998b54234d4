"""`gridwatch edge run` as a process: SIGTERM ends open incidents, drains the outbox and exits by itself.

The bound asserted here is about correctness, not speed: the process exits on its own (it is never killed) before
a supervisor would kill it, and it reports its stop. How long its waits may take together (`STOP_BUDGET_S`, 5 s)
is asserted deterministically in tests/edge/test_worker.py with fakes; the wall time from SIGTERM to exit adds
CPU work that a loaded machine stretches (this test took over 5 s with 8 test runs sharing 2 cores)."""

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

# systemd and container runtimes kill after 30 s (or less, configured): the worker must exit by itself before.
SUPERVISOR_KILL_S = 30.0
STOPPED = re.compile(rb"edge worker stopped in (\d+\.\d) s")


def stop_report(output: bytes) -> float:
    """The stop time the process reports (its waits are bounded by STOP_BUDGET_S; see tests/edge/test_worker.py)."""
    assert b"edge worker stopping (waits bounded by 5.0 s)" in output, output[-3000:]
    found = STOPPED.search(output)
    assert found, output[-3000:]
    return float(found.group(1))


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
            try:
                output, _ = proc.communicate(timeout=SUPERVISOR_KILL_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                output, _ = proc.communicate()
                pytest.fail(f"edge run still running {SUPERVISOR_KILL_S} s after SIGTERM: {output[-3000:]!r}")
            stop_report(output)
            assert proc.returncode == 0, output[-3000:]  # 0 = the outbox drained (1 = rows kept for next start)
            assert b"outbox drained" in output
            assert central.wait_for(lambda: _all_ended(central), 20), "open incidents left"
            rows = _rows(central)
        finally:
            central.stop()
    assert len(rows) >= 4


def test_sigterm_with_the_broker_gone_exits_by_itself_and_keeps_the_rows(shared_data: Path, tmp_path: Path) -> None:
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
    try:
        output, _ = proc.communicate(timeout=SUPERVISOR_KILL_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        pytest.fail(f"edge run still running {SUPERVISOR_KILL_S} s after SIGTERM: {output[-3000:]!r}")
    stop_report(output)  # the drain gave up at its bound (the broker is gone), as the process says
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
