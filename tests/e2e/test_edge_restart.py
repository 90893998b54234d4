"""Killing and restarting `gridwatch edge run` continues the same incidents and cases (issue 5, defect 1).

The real chain: a looping real clip (parked kerb cars, YOLOX-Nano), a real Mosquitto broker, the central service
with its SQLite store. The worker is stopped with SIGTERM (it ends its incidents with `shutdown` and keeps them) or
killed with SIGKILL (no goodbye: the resume file the worker rewrites whenever its incidents change is all there
is). After the restart the same cars continue the same incident ids: no new case for them, none resolved.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from gridwatch.app.broker import MosquittoBroker
from gridwatch.central.service import CentralService
from gridwatch.central.store import Case, EventRow
from tests.e2e.test_edge_cli import write_config

pytestmark = [pytest.mark.e2e, pytest.mark.realdata]


def _start_edge(cfg: Path, broker: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:  # the child holds its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", "gridwatch.app.cli", "edge", "run", "--config", str(cfg),
                                 "--broker", broker], stdout=out, stderr=subprocess.STDOUT, env={**os.environ})


def _events(central: CentralService) -> list[EventRow]:
    with central.store.session() as session:
        return list(session.scalars(select(EventRow).order_by(EventRow.received_at)))


def _cases(central: CentralService) -> dict[str, str]:
    with central.store.session() as session:
        return {c.incident_id: c.status for c in session.scalars(select(Case))}


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_restarted_gateway_continues_the_same_incidents_and_cases(
    shared_data: Path, tmp_path: Path, how: signal.Signals,
) -> None:
    cfg = write_config(shared_data, tmp_path)
    log = tmp_path / "edge.log"
    with MosquittoBroker() as broker:
        central = CentralService(broker.url, f"sqlite:///{tmp_path / 'cases.db'}", client_id="restart-central",
                                 share_group="").start()
        try:
            first = _start_edge(cfg, broker.url, log)
            try:
                assert central.wait_for(lambda: len(_cases(central)) >= 4, 90), log.read_text()[-3000:]
                time.sleep(2.0)  # a margin: the resume file is rewritten on the frame that starts an incident
                before = _cases(central)
                first.send_signal(how)
                assert first.wait(timeout=10) is not None
            finally:
                first.kill()
            seq_before = {e.incident_id: e.seq for e in _events(central)}

            second = _start_edge(cfg, broker.url, log)
            try:
                continued = lambda: {e.incident_id for e in _events(central)  # noqa: E731
                                     if e.seq > seq_before.get(e.incident_id, 10**9)}
                assert central.wait_for(lambda: set(before) <= continued(), 60), (
                    f"not continued: {set(before) - continued()}\n{log.read_text()[-3000:]}")
            finally:
                second.send_signal(signal.SIGTERM)
                second.wait(timeout=10)
            after = _cases(central)
            events = _events(central)
        finally:
            central.stop()
    assert set(before) <= set(after)
    assert len(after) == len(before), f"new cases after the restart: {set(after) - set(before)}"
    assert "resolved_on_camera" not in after.values(), after
    starts = [e.incident_id for e in events if e.phase == "started" and e.incident_id in before]
    assert sorted(starts) == sorted(before), "an incident was started again instead of continued"
