"""Ingest rate (issue 8): central's events/s against the raw broker rate, measured in the same run.

    python benchmarks/chaos_rate.py --json out/ingest_rate.json [--rate-messages 3000] [--rate-pg-url URL]
    python benchmarks/chaos.py --faults "" --no-autosave-cost --ingest-rate --json out/chaos.json   (the same)

Each leg starts a fresh Mosquitto with the shipped persistence settings (`chaos.shipped_settings()`, plus any
`--broker-setting`) and the same paho publisher (MQTT 5, QoS 1, 20 in flight: the broker's receive maximum)
sending the same `--rate-messages` incident events (two gateways, four events per incident: started, two
updates, ended gone) as fast as the broker acknowledges them:

- raw: a paho subscriber doing no work (persistent session, QoS 1, acknowledges on receipt);
- sqlite / postgresql: the central service as its own process (`gridwatch central run`, shipped defaults; a
  fresh SQLite file, or a fresh schema in `--rate-pg-url`), with a cleaner app (`chaos.CleanerApp`) subscribed to
  the case assignments (without one, the broker answers each "no matching subscribers" and central sends it again).

A leg's rate is messages / (last one received or stored - first one published); central's count is the
`events` rows in its store, polled every 50 ms. Goals: SQLite >= 0.5x raw, PostgreSQL >= 0.8x raw (the
issue's "close to it"), every event stored exactly once. Each central leg also reports central's own CPU (user +
system, from /proc) per stored message (the postgresql leg also the PostgreSQL server's processes'; `--rate-profile`
samples central there with py-spy), and each leg the load average: on a shared machine the raw rate swings
with the load, so the CPU per message says more about central than one ratio does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import chaos

from gridwatch.app.poll import wait_until

SQLITE_GOAL, PG_GOAL = 0.5, 0.8
PG_DEFAULT = os.environ.get("GRIDWATCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
GATEWAYS = ("gw-rate-01", "gw-rate-02")
EVENTS_PER_INCIDENT = 4
INFLIGHT = 20


@dataclass
class Leg:
    """One measured leg: what was sent, what arrived (or was stored), and how fast."""

    name: str
    messages: int
    arrived: int
    seconds: float
    rate: float
    publish_seconds: float
    cpu_ms_per_msg: float | None = None  # central's own CPU (user + system) from the first publish to the last row
    db_cpu_ms_per_msg: float | None = None  # the PostgreSQL server's processes' CPU over the same span (pg leg)
    loadavg_1m: float = 0.0  # the machine's 1-minute load average when the leg ended (a shared machine)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the ingest-rate scenario (`chaos.py` registers them as well)."""
    group = parser.add_argument_group("ingest rate (issue 8)")
    group.add_argument("--ingest-rate", action=argparse.BooleanOptionalAction, default=False,
                       help="measure central's ingest rate against the raw broker rate (chaos.py: off by default)")
    group.add_argument("--rate-messages", type=int, default=3000, help="incident events per leg")
    group.add_argument("--rate-rounds", type=int, default=1, help="repeat raw/sqlite/postgresql this often "
                       "(interleaved); the goals use the median ratio")
    group.add_argument("--rate-profile", action="store_true", help="sample central on the postgresql leg with "
                       "py-spy (pip install py-spy): stacks per thread in the leg folder, central.pyspy.txt")
    group.add_argument("--rate-pg-url", default=PG_DEFAULT, help="PostgreSQL for the postgresql leg (a fresh "
                       "schema, dropped after); 'none' skips it")


# --- the messages --------------------------------------------------------------------------------------------
def messages(n: int) -> list[tuple[str, bytes]]:
    """`n` incident events in publish order: per incident started, updated, updated, ended (gone)."""
    from gridwatch.wire.events import IncidentEvent

    out: list[tuple[str, bytes]] = []
    for i in range(n):
        gateway = GATEWAYS[(i // EVENTS_PER_INCIDENT) % len(GATEWAYS)]
        incident, seq = i // EVENTS_PER_INCIDENT, i % EVENTS_PER_INCIDENT
        topic, first = chaos.event_payload(gateway, incident)
        base = IncidentEvent.model_validate_json(first)
        phase = "started" if seq == 0 else "ended" if seq == EVENTS_PER_INCIDENT - 1 else "updated"
        event = base.model_copy(update={
            "event_id": uuid.uuid5(uuid.NAMESPACE_URL, f"gridwatch-rate/{gateway}/{incident}/{seq}"),
            "incident_id": f"inc-rate-{gateway}-{incident:06d}", "seq": seq, "phase": phase,
            "observed_at": base.started_at + timedelta(seconds=30 * seq),
            "ended_at": base.started_at + timedelta(seconds=30 * seq) if phase == "ended" else None,
            "end_reason": "gone" if phase == "ended" else None})
        out.append((topic, IncidentEvent.model_validate(event.model_dump()).to_json().encode()))
    return out


# --- the clients ---------------------------------------------------------------------------------------------
def publish_all(port: int, batch: list[tuple[str, bytes]]) -> tuple[float, float]:
    """Publish at QoS 1 as fast as the broker acknowledges; (monotonic start, seconds until the last PUBACK)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"rate-edge-{uuid.uuid4().hex[:6]}",
                      protocol=mqtt.MQTTv5)
    pub.max_inflight_messages_set(INFLIGHT)
    pub.max_queued_messages_set(0)
    done, acked = threading.Event(), [0]

    def on_publish(*_a: Any) -> None:
        acked[0] += 1
        if acked[0] >= len(batch):
            done.set()

    pub.on_publish = on_publish
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    t0 = time.monotonic()
    for topic, payload in batch:
        pub.publish(topic, payload, qos=1)
    done.wait(600)
    seconds = time.monotonic() - t0
    pub.disconnect()
    pub.loop_stop()
    return t0, seconds


def raw_leg(settings: list[str], batch: list[tuple[str, bytes]]) -> Leg:
    """paho publisher -> Mosquitto -> paho subscriber that only counts (and acknowledges)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    from gridwatch.app.broker import MosquittoBroker

    with MosquittoBroker(persistence=True, settings=settings) as broker:
        sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="rate-raw-central", protocol=mqtt.MQTTv5)
        got, last, done = [0], [0.0], threading.Event()

        def on_message(*_a: Any) -> None:
            got[0] += 1
            last[0] = time.monotonic()
            if got[0] >= len(batch):
                done.set()

        sub.on_message = on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        sub.connect("127.0.0.1", broker.port, clean_start=False, properties=props)
        sub.subscribe(f"{chaos.PREFIX}/+/+/+/incident", qos=1)
        sub.loop_start()
        time.sleep(0.5)
        t0, pub_s = publish_all(broker.port, batch)
        done.wait(600)
        sub.disconnect()
        sub.loop_stop()
    return _leg("raw", len(batch), got[0], last[0] - t0, pub_s)


def central_leg(name: str, settings: list[str], batch: list[tuple[str, bytes]], db_url: str, work: Path,
                profile: bool = False) -> Leg:
    """paho publisher -> Mosquitto -> `gridwatch central run` (its own process) -> the store."""
    from gridwatch.app.broker import MosquittoBroker

    work.mkdir(parents=True, exist_ok=True)
    with MosquittoBroker(persistence=True, settings=settings) as broker:
        app = chaos.CleanerApp(broker.port).start()  # takes the case assignments, as a deployment's apps do
        central = chaos._central(broker.url, db_url, work, "").start()
        try:
            if not wait_until(lambda: "subscribed" in central.log.read_text(errors="replace"), 60):
                raise RuntimeError(f"central never subscribed; see {central.log}")
            profiler = _profile(central.proc.pid, work / "central.pyspy.txt") if profile and central.proc else None
            cpu0 = _cpu_seconds(central.proc.pid) if central.proc is not None else None
            db0 = _postgres_cpu_seconds()
            t0, pub_s = publish_all(broker.port, batch)
            stored, at = _poll_events(db_url, len(batch), stall_s=60.0)
            cpu1 = _cpu_seconds(central.proc.pid) if central.proc is not None else None
            db1 = _postgres_cpu_seconds()
            if profiler is not None:
                profiler.send_signal(2)  # py-spy writes its report on SIGINT
                profiler.wait(30)
        finally:
            central.terminate(30)
            app.stop()
    leg = _leg(name, len(batch), stored, at - t0, pub_s)
    if cpu0 is not None and cpu1 is not None and stored:
        leg.cpu_ms_per_msg = round(1000 * (cpu1 - cpu0) / stored, 3)
    if name == "postgresql" and stored:
        leg.db_cpu_ms_per_msg = round(1000 * (db1 - db0) / stored, 3)
    return leg


def _postgres_cpu_seconds() -> float:
    """User + system CPU seconds of every `postgres` process on this machine so far (the server's backends and
    its writer, WAL writer, ...; Linux /proc). Only meaningful as a difference, with no other PostgreSQL load."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if "(postgres)" in text:
            total += _cpu_seconds(int(stat.parent.name)) or 0.0
    return total


def _profile(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling `pid`, every thread, into `out` (collapsed stacks with thread names; `--profile`)."""
    exe = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen([str(exe if exe.exists() else "py-spy"), "record", "--pid", str(pid), "--threads",
                             "--format", "raw", "--rate", "200", "--output", str(out), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process `pid` so far (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14, 15)


def _poll_events(db_url: str, expected: int, stall_s: float) -> tuple[int, float]:
    """Wait for `expected` event rows (or no progress for `stall_s`); (rows, monotonic time they were seen)."""
    last, seen_at = -1, time.monotonic()
    while True:
        count = _events(db_url)
        now = time.monotonic()
        if count != last:
            last, seen_at = count, now
        if count >= expected or now - seen_at > stall_s:
            return count, seen_at
        time.sleep(0.05)


def _events(db_url: str) -> int:
    from sqlalchemy import create_engine, func, select

    from gridwatch.central.store import EventRow

    engine = _engines.get(db_url) or _engines.setdefault(db_url, create_engine(db_url))
    try:
        with engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(EventRow)) or 0)
    except Exception:  # the schema may not exist yet
        return 0


_engines: dict[str, Any] = {}


def _leg(name: str, sent: int, arrived: int, seconds: float, publish_seconds: float) -> Leg:
    seconds = max(seconds, 1e-6)
    return Leg(name, sent, arrived, round(seconds, 2), round(arrived / seconds, 1), round(publish_seconds, 2),
               loadavg_1m=round(os.getloadavg()[0], 2))


# --- the scenario --------------------------------------------------------------------------------------------
def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Every leg, `--rate-rounds` times interleaved; the goals and legs as a JSON-able dict."""
    settings = chaos.shipped_settings() + list(args.broker_setting)
    batch = messages(args.rate_messages)
    legs: list[Leg] = []
    for r in range(args.rate_rounds):
        legs.append(_report(raw_leg(settings, batch)))
        sqlite = f"sqlite:///{work / f'rate-{r}' / 'cases.db'}"
        legs.append(_report(central_leg("sqlite", settings, batch, sqlite, work / f"rate-{r}")))
        if args.rate_pg_url != "none":
            with chaos.fresh_schema(args.rate_pg_url) as pg:
                legs.append(_report(central_leg("postgresql", settings, batch, pg, work / f"rate-{r}-pg",
                                                profile=args.rate_profile)))
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()
    return {"goals": goals_of(legs), "legs": [asdict(leg) for leg in legs]}


def _report(leg: Leg) -> Leg:
    print(f"  ingest rate {leg.name:10}: {leg.arrived}/{leg.messages} in {leg.seconds:.2f} s = {leg.rate:.0f} "
          f"msg/s (publisher done after {leg.publish_seconds:.2f} s)"
          + (f", central {leg.cpu_ms_per_msg:.3f} ms CPU/msg" if leg.cpu_ms_per_msg is not None else "")
          + (f", PostgreSQL {leg.db_cpu_ms_per_msg:.3f} ms CPU/msg" if leg.db_cpu_ms_per_msg is not None else "")
          + f", load {leg.loadavg_1m:.2f}", flush=True)
    return leg


def ratios(legs: list[Leg], name: str) -> list[float]:
    """Each round's `name` rate over the raw rate of the same round."""
    raws = [leg.rate for leg in legs if leg.name == "raw"]
    mine = [leg.rate for leg in legs if leg.name == name]
    return [round(m / r, 3) for m, r in zip(mine, raws, strict=False) if r > 0]


def goals_of(legs: list[Leg]) -> list[dict[str, Any]]:
    goals: list[dict[str, Any]] = []
    for name, target in (("sqlite", SQLITE_GOAL), ("postgresql", PG_GOAL)):
        measured = ratios(legs, name)
        if not measured:
            continue
        value = statistics.median(measured)
        goals.append({"name": f"ingest_rate[{name}].ratio_to_raw>={target}", "value": value, "target": target,
                      "unit": "x raw broker rate", "met": value >= target, "rounds": measured})
        complete = all(leg.arrived == leg.messages for leg in legs if leg.name == name)
        goals.append({"name": f"ingest_rate[{name}].all_stored", "value": complete, "target": True,
                      "unit": "every event stored once", "met": complete})
    return goals


def print_summary(result: dict[str, Any]) -> None:
    for goal in result["goals"]:
        print(f"  {goal['name']}: {goal['value']} ({'met' if goal['met'] else 'NOT met'})")


def main(argv: list[str] | None = None) -> int:
    import json
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--broker-setting", action="append", default=[], metavar="LINE")
    parser.add_argument("--work", type=Path)
    add_arguments(parser)
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="gridwatch-rate-"))
    result = run(args, work)
    print_summary(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {**result, "settings": {"messages": args.rate_messages, "rounds": args.rate_rounds,
                                          "broker": chaos.shipped_settings() + args.broker_setting},
                   "machine": {"cpus": os.cpu_count(), "loadavg": os.getloadavg()}}
        args.json.write_text(json.dumps(payload, indent=2))
    return 0 if all(g["met"] for g in result["goals"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
