"""Chaos: incidents from edge gateways to central cases while processes crash, freeze and restart.

    python benchmarks/chaos.py --json out/chaos.json [--events 1000] [--gateways 2] [--outage-s 5]
                               [--faults central-kill,broker-kill,broker-freeze,edge-kill] [--db-url URL]
                               [--broker-setting "autosave_interval 30" ...] [--share-group NAME]
                               [--no-autosave-cost] [--confirm receipt|puback] [--ingest-rate --rate-messages N]

Every scenario starts from nothing: a real Mosquitto broker on a free loopback port with the shipped persistence
settings (the persistence, autosave and queue lines of `deploy/mosquitto/mosquitto.conf`; `--broker-setting`
appends overrides, e.g. `"autosave_on_changes false" "autosave_interval 30"` for the old setting), the central
service as its own process (`gridwatch central run`, SQLite; `--db-url postgresql+psycopg://...` for
PostgreSQL: a fresh schema per scenario), and `--gateways` edge-like processes (this file's `edge` command: the
real `Outbox` + `Publisher` + `MqttTransport`, deleting a row on central's receipt as a gateway does by default;
`--confirm puback` for the old delete-on-PUBACK) that put `--events` incident events between them into their
outboxes at a steady rate, and exit once everything is put and the outbox is empty. A third of the way into the
burst one fault is injected:

- `central-kill`: central SIGKILL, restarted after `--outage-s`;
- `broker-kill`: broker SIGKILL (no save), restarted on the same port after `--outage-s`;
- `broker-kill-backlog`: central SIGKILL, `--outage-s` later (a backlog queued for central's session in the
  broker's memory) broker SIGKILL, then broker and central restarted: what a broker that saves rarely loses;
- `broker-freeze`: broker SIGSTOP for `--outage-s`, then SIGCONT (connections stay open, nothing is answered);
- `edge-kill`: the first gateway SIGKILL mid-burst, restarted from its outbox and progress file.

Then it waits for every gateway to drain and central to hold a case per incident (each event opens its own
incident), stops central with SIGTERM and counts from the store: sent, stored cases, lost (incidents with no case;
those still in a gateway's outbox when the wait timed out are counted too, as `left_in_outboxes`), duplicate cases,
event rows, dead letters. Goals per scenario: 0 lost, 0 duplicate cases, every outbox drained, the cleaner app got
every case's assignment. A cleaner app (a paho client with a persistent session on the dispatch topics, subscribing
again on every connect) counts the case assignments it got: `assignments_missing` is the cases whose assignment
never reached it. `--autosave-cost` (on by default) also measures what saving costs the broker: QoS 1 publishes per
second into a queue that central is (not) draining, the shipped 60 s interval vs. every change vs. every 100
changes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import chaos_attack  # noqa: E402

from gridwatch.app.poll import wait_until  # noqa: E402

SHIPPED_CONF = REPO / "deploy" / "mosquitto" / "mosquitto.conf"
PERSISTENCE_KEYS = ("persistence", "autosave_interval", "autosave_on_changes", "persistent_client_expiration",
                    "max_queued_messages", "max_queued_bytes", "max_inflight_messages", "queue_qos0_messages")
FAULTS = ("central-kill", "broker-kill", "broker-kill-backlog", "broker-freeze", "edge-kill")
PREFIX = "gridwatch/v1"
SITE = "chaos-site"
CENTRAL_DRIVER = "import sys\nfrom gridwatch.app.cli import main\nsys.exit(main(sys.argv[1:]))\n"
T0 = datetime(2026, 11, 30, 8, 0, 0, tzinfo=timezone.utc)


def shipped_settings() -> list[str]:
    """The persistence and queue lines of the shipped broker config (paths and listeners left out)."""
    lines = [ln.strip() for ln in SHIPPED_CONF.read_text().splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#") and ln.split()[0] in PERSISTENCE_KEYS]


# --- the edge-like publisher (child process) -------------------------------------------------------------------
def event_payload(gateway: str, index: int) -> tuple[str, bytes]:
    """Incident `index` of `gateway`: its own incident (a `started`, seq 0), deterministic ids."""
    from gridwatch.wire.events import GeoLocation, ImageBox, IncidentEvent, ModelRef

    event = IncidentEvent(
        event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"gridwatch-chaos/{gateway}/{index}"),
        incident_id=f"inc-chaos-{gateway}-{index:06d}", seq=0, type="illegal_parking", phase="started",
        site_id=SITE, gateway_id=gateway, camera_id="cam-1", zone="kerb",
        started_at=T0, observed_at=T0 + timedelta(seconds=index), dwell_s=120.0, confidence=0.8,
        location=GeoLocation(lat=36.0671, lon=120.3826, accuracy_m=3.5, grid_cell="370203001001"),
        box=ImageBox(x1=10, y1=20, x2=110, y2=220, image_width=1280, image_height=720),
        model=ModelRef(name="chaos", version="1", sha256="ab" * 32),
    )
    return f"{PREFIX}/{SITE}/{gateway}/cam-1/incident", event.to_json().encode()


def edge_main(argv: list[str]) -> int:
    """Put events `progress..events` into the outbox at `rate`/s, publish, exit 0 once all are put and settled
    (receipted by central, or with `--confirm puback` acknowledged by the broker)."""
    from gridwatch.wire.mqtt import BrokerURL
    from gridwatch.wire.outbox import Outbox
    from gridwatch.wire.publisher import MqttTransport, Publisher
    from gridwatch.wire.receipts import ReceiptListener
    from gridwatch.wire.topics import receipt_topic

    parser = argparse.ArgumentParser(prog="chaos.py edge")
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--confirm", choices=("receipt", "puback"), default="receipt")
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    progress = args.dir / "progress"
    outbox = Outbox(args.dir / "outbox.db")
    transport = MqttTransport(BrokerURL.parse(args.broker), f"chaos-{args.gateway}", keepalive_s=10)
    receipts = ReceiptListener(receipt_topic(PREFIX, SITE, args.gateway), outbox)
    if args.confirm == "receipt":
        transport.subscribe(receipts.topic, receipts.on_message)
    publisher = Publisher(outbox, transport, confirm=args.confirm).start()
    start = int(progress.read_text()) if progress.exists() else 0
    t0 = time.monotonic()
    for i in range(start, args.events):
        topic, payload = event_payload(args.gateway, i)
        outbox.put("incident", topic, payload)  # before the progress: a kill in between sends it twice, not never
        _write_atomic(progress, str(i + 1))
        publisher.notify()
        time.sleep(max(0.0, t0 + (i - start + 1) / args.rate - time.monotonic()))
    while len(outbox) > 0:
        time.sleep(0.05)
    print(f"drained {args.gateway}: published {publisher.stats.published}, acked {publisher.stats.acked}, "
          f"refused {publisher.stats.refused}, reconnects {publisher.stats.reconnects}, "
          f"resent {publisher.stats.resent}, receipts {receipts.stats}", flush=True)
    _add_stats(args.dir / "stats.json", {"published": publisher.stats.published, "resent": publisher.stats.resent,
                                         "reconnects": publisher.stats.reconnects,
                                         "settled": receipts.stats.settled})
    publisher.stop()
    outbox.close()
    return 0


def _add_stats(path: Path, stats: dict[str, int]) -> None:
    """Add this run's publisher counters to the ones an earlier (killed and restarted) run of the gateway left."""
    old = json.loads(path.read_text()) if path.exists() else {}
    _write_atomic(path, json.dumps({k: v + int(old.get(k, 0)) for k, v in stats.items()}))


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# --- processes -------------------------------------------------------------------------------------------------
@dataclass
class Child:
    """A child process that can be SIGKILLed and started again with the same command."""

    name: str
    cmd: list[str]
    log: Path
    env: dict[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> Child:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT, env=self.env)
        self.starts += 1
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def terminate(self, timeout_s: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode

    @property
    def exited_ok(self) -> bool:
        return self.proc is not None and self.proc.poll() == 0


@dataclass
class Outcome:
    fault: str
    sent: int
    stored_cases: int
    lost: int
    duplicate_cases: int
    event_rows: int
    dead_letters: int
    drained: bool
    seconds: float
    notes: list[str] = field(default_factory=list)
    left_in_outboxes: int = 0  # rows the gateways still held at the end: late (timeout), not lost
    # How the fault was survived: sends by the gateways (first sends + resends), what central's last run got
    # (`received` counts every copy, `duplicates` the copies it already had), and the seconds from the end of the
    # fault (restart, thaw) until every incident had its case (None: never within the wait).
    published: int = 0
    resent: int = 0
    central_received: int = 0
    central_duplicates: int = 0
    all_stored_after_fault_s: float | None = None
    central_runs: int = 1
    assignments_missing: int = -1  # cases whose assignment the cleaner app never got (-1: not measured)

    @property
    def lost_by_broker(self) -> int | None:
        """Sends that never reached central (accepted by a broker that then crashed, or sent into a broker that
        had lost central's subscription): the resends recovered them. A lower bound when central also got
        redeliveries (they count in `central_received`); None when central ran more than once (the counters are
        its last run's). With `--confirm puback` the broker's losses are `lost` instead."""
        return max(0, self.published - self.central_received) if self.central_runs == 1 else None


def _central(broker_url: str, db_url: str, work: Path, share_group: str) -> Child:
    """`gridwatch central run`, its URLs in the environment as in the shipped unit (never a password on argv)."""
    cmd = [sys.executable, "-c", CENTRAL_DRIVER, "central", "run", "--prefix", PREFIX, "--client-id", "chaos-central",
           "--share-group", share_group]
    env = {**os.environ, "GRIDWATCH_CENTRAL_BROKER": broker_url, "GRIDWATCH_CENTRAL_DB": db_url}
    return Child("central", cmd, work / "central.log", env)


def _edge(gateway: str, broker_url: str, events: int, rate: float, work: Path, confirm: str = "receipt") -> Child:
    cmd = [sys.executable, str(Path(__file__).resolve()), "edge", "--dir", str(work / gateway), "--broker",
           broker_url, "--gateway", gateway, "--events", str(events), "--rate", str(rate), "--confirm", confirm]
    return Child(gateway, cmd, work / f"{gateway}.log")


def _progress(work: Path, gateway: str) -> int:
    path = work / gateway / "progress"
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return 0




def count_cases(db_url: str) -> tuple[set[str], int, int, int]:
    """(incident ids with a case, case rows, event rows, dead letters) in the store."""
    from sqlalchemy import func, select

    from gridwatch.central.store import Case, DeadLetter, EventRow, open_store

    with open_store(db_url, create=False) as store, store.session() as session:
        ids = set(session.scalars(select(Case.incident_id)))
        cases = int(session.scalar(select(func.count()).select_from(Case)) or 0)
        events = int(session.scalar(select(func.count()).select_from(EventRow)) or 0)
        letters = int(session.scalar(select(func.count()).select_from(DeadLetter)) or 0)
    return ids, cases, events, letters


@contextlib.contextmanager
def fresh_schema(db_url: str) -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a new schema, dropped afterwards (the database is left as it was)."""
    from sqlalchemy import create_engine, make_url, text

    schema = f"gw_chaos_{uuid.uuid4().hex[:12]}"
    admin = create_engine(db_url)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        yield make_url(db_url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def run_scenario(fault: str, args: argparse.Namespace, work: Path) -> Outcome:

    work.mkdir(parents=True, exist_ok=True)
    if args.db_url:
        with fresh_schema(args.db_url) as db_url:
            return _scenario(fault, args, work, db_url)
    return _scenario(fault, args, work, f"sqlite:///{work / 'cases.db'}")


def _scenario(fault: str, args: argparse.Namespace, work: Path, db_url: str) -> Outcome:
    from gridwatch.app.broker import MosquittoBroker

    gateways = [f"gw-chaos-{g + 1:02d}" for g in range(args.gateways)]
    per_gateway = args.events // args.gateways
    expected = {f"inc-chaos-{gw}-{i:06d}" for gw in gateways for i in range(per_gateway)}
    notes: list[str] = []
    t0 = time.monotonic()
    broker = MosquittoBroker(persistence=True, settings=shipped_settings() + list(args.broker_setting)).start()
    cleaner = CleanerApp(broker.port).start()
    central = _central(broker.url, db_url, work, args.share_group).start()
    edges = [_edge(gw, broker.url, per_gateway, args.rate, work, args.confirm) for gw in gateways]
    try:
        if not wait_until(lambda: "subscribed" in central.log.read_text(errors="replace"), 60):
            notes.append("central never subscribed")
        for edge in edges:
            edge.start()
        burst = per_gateway * args.gateways
        wait_until(lambda: sum(_progress(work, gw) for gw in gateways) >= burst // 3, 120, 0.05)
        inject(fault, broker, central, edges, args.outage_s)
        fault_end = time.monotonic()
        all_stored_s: float | None = None
        deadline = time.monotonic() + args.timeout_s
        last, still_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            for edge in edges:  # an edge that died (not by our hand) would strand its outbox: say so
                if edge.proc is not None and edge.proc.poll() not in (None, 0):
                    notes.append(f"{edge.name} exited with {edge.proc.returncode}; restarted")
                    edge.start()
            stored = _stored(db_url)
            if all_stored_s is None and stored >= len(expected):
                all_stored_s = round(time.monotonic() - fault_end, 1)
            if stored != last:
                last, still_since = stored, time.monotonic()
            if all(e.exited_ok for e in edges) and ((stored >= len(expected) and cleaner.count() >= len(expected))
                                                    or time.monotonic() - still_since > args.settle_s):
                break  # everything arrived, or the outboxes are empty and central has stopped getting more
            time.sleep(0.5)
        drained = all(e.exited_ok for e in edges)
    finally:
        for edge in edges:
            edge.terminate(10)
        central.terminate(30)
        cleaner.stop()
        broker.stop()
    ids, cases, events, letters = count_cases(db_url)
    mine = ids & expected
    left = sum(_outbox_rows(work / gw / "outbox.db") for gw in gateways)
    sends = [_edge_stats(work / gw) for gw in gateways]
    counters = central_counters(central.log)
    return Outcome(fault, len(expected), len(mine), len(expected - mine), cases - len(ids), events, letters,
                   drained, round(time.monotonic() - t0, 1), notes, left,
                   published=sum(s.get("published", 0) for s in sends), resent=sum(s.get("resent", 0) for s in sends),
                   central_received=counters.get("received", 0), central_duplicates=counters.get("duplicates", 0),
                   all_stored_after_fault_s=all_stored_s, central_runs=central.starts,
                   assignments_missing=len(mine - cleaner.incidents()))


def _edge_stats(folder: Path) -> dict[str, int]:
    path = folder / "stats.json"
    return {k: int(v) for k, v in json.loads(path.read_text()).items()} if path.exists() else {}


def central_counters(log: Path) -> dict[str, int]:
    """The counters central's last run printed when it stopped (`central stopped: {...}`, wrapped by rich)."""
    import ast
    import re

    text = " ".join(log.read_text(errors="replace").split()) if log.exists() else ""
    found = re.findall(r"central stopped: (\{[^}]*\})", text)
    return {str(k): int(v) for k, v in ast.literal_eval(found[-1]).items()} if found else {}


class CleanerApp:
    """A cleaner's app as far as delivery goes: a persistent MQTT 5 session on every dispatch topic, subscribed
    again on every connect (a broker that crashed before saving comes back without the session), paho's
    reconnect; it notes the incident of each assignment it receives (deduplicated, as the app does by
    `assignment_id`)."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.port = port
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="chaos-cleaner", protocol=mqtt.MQTTv5)
        self.client.reconnect_delay_set(1, 2)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def start(self) -> CleanerApp:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect_async("127.0.0.1", self.port, clean_start=False, properties=props)
        self.client.loop_start()
        return self

    def _on_connect(self, client: Any, _ud: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if not reason.is_failure:
            client.subscribe(f"{PREFIX}/dispatch/#", qos=1)

    def _on_message(self, _c: Any, _ud: Any, msg: Any) -> None:
        try:
            incident = json.loads(msg.payload)["incident_id"]
        except (ValueError, KeyError, TypeError):
            return
        with self._lock:
            self._seen.add(str(incident))

    def incidents(self) -> set[str]:
        with self._lock:
            return set(self._seen)

    def count(self) -> int:
        with self._lock:
            return len(self._seen)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _outbox_rows(path: Path) -> int:
    import sqlite3

    if not path.exists():
        return 0
    with contextlib.closing(sqlite3.connect(path)) as db:
        return int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])


def _stored(db_url: str) -> int:
    try:
        return count_cases(db_url)[1]
    except Exception:  # the store may not exist yet, or be locked for a moment
        return 0


def inject(fault: str, broker: Any, central: Child, edges: list[Child], outage_s: float) -> None:
    if fault == "central-kill":
        central.kill()
        time.sleep(outage_s)
        central.start()
    elif fault == "broker-kill":
        broker.kill()
        time.sleep(outage_s)
        broker.start()
    elif fault == "broker-kill-backlog":
        central.kill()
        time.sleep(outage_s)
        broker.kill()
        time.sleep(1.0)
        broker.start()
        central.start()
    elif fault == "broker-freeze":
        broker.freeze()
        time.sleep(outage_s)
        broker.thaw()
    elif fault == "edge-kill":
        edges[0].kill()
        time.sleep(min(outage_s, 1.0))
        edges[0].start()
    else:
        raise ValueError(f"unknown fault {fault!r}; choose from {', '.join(FAULTS)}")


# --- what saving on every change costs the broker ---------------------------------------------------------------
def publish_rate(settings: list[str], messages: int, subscriber_online: bool) -> float:
    """QoS 1 publishes/s (1 KiB, 20 in flight) into a persistent session that is (not) connected."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from gridwatch.app.broker import MosquittoBroker

    with MosquittoBroker(persistence=True, settings=settings) as broker:
        sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="cost-central", protocol=mqtt.MQTTv5)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        sub.connect("127.0.0.1", broker.port, clean_start=False, properties=props)
        sub.subscribe("cost/#", qos=1)
        sub.loop(1.0)
        if subscriber_online:
            sub.loop_start()
        else:
            sub.disconnect()
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="cost-edge", protocol=mqtt.MQTTv5)
        pub.max_inflight_messages_set(20)
        done = threading.Event()
        acked = [0]

        def on_publish(*_a: Any) -> None:
            acked[0] += 1
            if acked[0] >= messages:
                done.set()

        pub.on_publish = on_publish
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        payload = b"x" * 1024
        t0 = time.perf_counter()
        for i in range(messages):
            pub.publish(f"cost/{i % 10}", payload, qos=1)
        done.wait(120)
        rate = acked[0] / (time.perf_counter() - t0)
        pub.disconnect()
        pub.loop_stop()
        if subscriber_online:
            sub.disconnect()
            sub.loop_stop()
    return rate


def autosave_cost(messages: int) -> dict[str, float]:
    """Publish rates with the shipped autosave (every 60 s), on every change (the old shipped setting), and every
    100 changes."""
    shipped = shipped_settings()
    others = [ln for ln in shipped if not ln.startswith(("autosave_interval", "autosave_on_changes"))]
    variants = {"shipped": shipped,
                "every_change": [*others, "autosave_on_changes true", "autosave_interval 1"],
                "every_100_changes": [*others, "autosave_on_changes true", "autosave_interval 100"]}
    out: dict[str, float] = {}
    for label, settings in variants.items():
        for online in (True, False):
            key = f"{label}/{'central_online' if online else 'central_offline'}"
            out[key] = round(publish_rate(settings, messages, online), 1)
    return out


# --- report ----------------------------------------------------------------------------------------------------
def goals_of(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    goals: list[dict[str, Any]] = []
    for o in outcomes:
        goals.append({"name": f"chaos[{o.fault}].lost", "value": o.lost, "target": 0, "unit": "incidents",
                      "met": o.lost == 0})
        goals.append({"name": f"chaos[{o.fault}].duplicate_cases", "value": o.duplicate_cases, "target": 0,
                      "unit": "cases", "met": o.duplicate_cases == 0})
        goals.append({"name": f"chaos[{o.fault}].drained", "value": o.drained, "target": True,
                      "unit": "every outbox empty", "met": o.drained})
        goals.append({"name": f"chaos[{o.fault}].assignments_missing", "value": o.assignments_missing, "target": 0,
                      "unit": "cases whose assignment the cleaner app never got", "met": o.assignments_missing == 0})
    return goals


def outcome_dict(o: Outcome) -> dict[str, Any]:
    return {**asdict(o), "lost_by_broker": o.lost_by_broker}


def print_table(outcomes: list[Outcome]) -> None:
    head = f"{'fault':19} {'sent':>6} {'stored':>7} {'lost':>5} {'dup cases':>9} {'events':>7} {'dead':>5} " \
           f"{'drained':>8} {'s':>6} {'resent':>6} {'undelivered':>11} {'stored_s':>8} {'no assignment':>13}"
    print(head)
    print("-" * len(head))
    for o in outcomes:
        notes = ([f"{o.left_in_outboxes} still in the outboxes"] if o.left_in_outboxes else []) + o.notes
        print(f"{o.fault:19} {o.sent:6d} {o.stored_cases:7d} {o.lost:5d} {o.duplicate_cases:9d} {o.event_rows:7d} "
              f"{o.dead_letters:5d} {o.drained!s:>8} {o.seconds:6.1f} {o.resent:6d} {_dash(o.lost_by_broker):>11} "
              f"{_dash(o.all_stored_after_fault_s):>8} "
              f"{o.assignments_missing:13d}"
              + (f"  {'; '.join(notes)}" if notes else ""))


def _dash(value: object) -> str:
    return "-" if value is None else str(value)


def _exit_on_sigterm(_signum: int, _frame: object) -> None:
    raise SystemExit(143)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["edge"]:
        return edge_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="write the goals and outcomes here")
    parser.add_argument("--events", type=int, default=1000, help="incident events per scenario, over all gateways")
    parser.add_argument("--gateways", type=int, default=2)
    parser.add_argument("--rate", type=float, default=40.0, help="events put per second per gateway")
    parser.add_argument("--outage-s", type=float, default=5.0, help="how long a killed or frozen process stays so")
    parser.add_argument("--timeout-s", type=float, default=90.0, help="wait this long after the fault for delivery")
    parser.add_argument("--settle-s", type=float, default=20.0, help="once every outbox is empty, stop waiting "
                        "after central stored nothing new for this long")
    parser.add_argument("--faults", default=",".join(FAULTS), help="comma-separated, from " + ", ".join(FAULTS))
    parser.add_argument("--db-url", help="a PostgreSQL database for central (postgresql+psycopg://user@host/db; "
                        "each scenario uses a fresh schema, dropped after); default: a fresh SQLite file per scenario")
    parser.add_argument("--broker-setting", action="append", default=[], metavar="LINE",
                        help="a mosquitto.conf line appended after the shipped settings (repeatable)")
    parser.add_argument("--share-group", default="", help="run central with this $share group (default: the "
                        "shipped plain subscription)")
    parser.add_argument("--autosave-cost", action=argparse.BooleanOptionalAction, default=True,
                        help="also measure the broker's publish rate with the shipped autosave vs saving on every "
                        "change and every 100 changes")
    parser.add_argument("--cost-messages", type=int, default=3000)
    parser.add_argument("--confirm", choices=("receipt", "puback"), default="receipt",
                        help="when the edge deletes a row: on central's receipt (the default) or on the PUBACK")
    parser.add_argument("--work", type=Path, help="keep logs and stores here (default: a temporary folder)")
    import chaos_rate  # the ingest-rate scenario (issue 8) lives in its own module

    chaos_rate.add_arguments(parser)
    chaos_attack.add_arguments(parser)  # hostile payloads and the privilege chain (benchmarks/chaos_attack.py)
    args = parser.parse_args(argv)
    faults = [f.strip() for f in args.faults.split(",") if f.strip()]
    if unknown := [f for f in faults if f not in FAULTS]:
        parser.error(f"--faults: unknown {unknown}; choose from {', '.join(FAULTS)}")

    import tempfile

    root = args.work or Path(tempfile.mkdtemp(prefix="gridwatch-chaos-"))
    print(f"broker settings: {'; '.join(shipped_settings() + args.broker_setting)}\nwork: {root}")
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # so each scenario's `finally` stops its processes
    outcomes = []
    for n, fault in enumerate(faults, 1):
        outcome = run_scenario(fault, args, root / f"{n}-{fault}")
        outcomes.append(outcome)
        print(f"  {fault}: {outcome_dict(outcome)}", flush=True)
    print_table(outcomes)
    cost = autosave_cost(args.cost_messages) if args.autosave_cost else {}
    for key, rate in cost.items():
        print(f"broker QoS 1 publish rate, {key}: {rate:.0f} msg/s")
    ingest = chaos_rate.run(args, root / "ingest-rate") if args.ingest_rate else {"goals": [], "legs": []}
    attack_goals, attack = chaos_attack.run(args, root)
    goals = goals_of(outcomes) + ingest["goals"] + attack_goals
    met = sum(g["met"] for g in goals)
    print(f"{met} of {len(goals)} goals met")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"goals": goals, "outcomes": [outcome_dict(o) for o in outcomes], "autosave_cost_msgs_per_s": cost,
                   "ingest_rate": ingest["legs"],
                   "attack": attack,
                   "settings": {"events": args.events, "gateways": args.gateways, "rate": args.rate,
                                "outage_s": args.outage_s, "db": "postgresql" if args.db_url else "sqlite",
                                "share_group": args.share_group or None, "confirm": args.confirm,
                                "broker": shipped_settings() + args.broker_setting},
                   "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                               "loadavg": os.getloadavg()}}
        args.json.write_text(json.dumps(payload, indent=2))
    return 0 if met == len(goals) else 1


if __name__ == "__main__":
    raise SystemExit(main())
