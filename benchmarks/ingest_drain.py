"""Central's worker alone on PostgreSQL: a backlog drained with and without parsing the next batch ahead (issue 8).

    python benchmarks/ingest_drain.py --json out/ingest_drain.json [--messages 16000] [--rounds 3]
                                      [--pg-url URL] [--batch-size 400]

`CentralService` with an in-memory session (`transport.FakeSession`: no broker, assignments acknowledged at once)
on a fresh schema of `--pg-url` gets `--messages` incident events (`chaos_rate.messages`: two gateways, four events
per incident) put in its inbox at once, as a broker delivers a backlog, and the time until every event is stored is
taken. Each round runs the worker as shipped (`ahead`: it parses the next batch while PostgreSQL executes a
batch's writes, `CentralService._prefetch`) and with that turned off (`inline`), alternately, each in a fresh
schema; the ratio of the medians says what parsing ahead is worth on this machine, whatever its speed today.
Nothing here is a goal of the issue (its goal is end to end: `chaos_rate.py`), so `goals` is empty.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import chaos
import chaos_rate
from report import write_report

from gridwatch.central.service import CentralService, settle_heap
from gridwatch.central.transport import FakeSession, Inbound


def drain(pg_url: str, batch: list[tuple[str, bytes]], batch_size: int, ahead: bool) -> dict[str, float]:
    """One drain in a fresh schema: messages/s and the process's CPU ms per message."""
    with chaos.fresh_schema(pg_url) as url:
        svc = CentralService("mqtt://127.0.0.1:1", url, session=lambda: FakeSession(), batch_size=batch_size)
        with svc:
            if not ahead:
                assert svc._handler is not None
                svc._handler.meanwhile = None
            settle_heap()
            session = svc._session
            assert isinstance(session, FakeSession)
            inbound = [Inbound(t, p, i % 65535 + 1, 1, {}, session._generation) for i, (t, p) in enumerate(batch)]
            cpu0, t0 = time.process_time(), time.perf_counter()
            for msg in inbound:
                svc._inbox.put(msg)
            if not svc.wait_for(lambda: svc.counters.stored >= len(batch), 600):
                raise RuntimeError(f"stored only {svc.counters.stored} of {len(batch)}")
            seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {"rate": len(batch) / seconds, "cpu_ms_per_msg": 1000 * cpu / len(batch)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="write the runs here")
    parser.add_argument("--messages", type=int, default=16000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=400)
    parser.add_argument("--pg-url", default=chaos_rate.PG_DEFAULT)
    args = parser.parse_args(argv)

    batch = chaos_rate.messages(args.messages)
    runs: dict[str, list[dict[str, float]]] = {"inline": [], "ahead": []}
    for round_no in range(args.rounds):
        for name in ("inline", "ahead"):
            run = drain(args.pg_url, batch, args.batch_size, ahead=name == "ahead")
            runs[name].append(run)
            print(f"  round {round_no + 1} {name:6}: {run['rate']:7.0f} msg/s, "
                  f"{run['cpu_ms_per_msg']:.3f} ms CPU/msg (whole process)")
    medians = {name: statistics.median(r["rate"] for r in rs) for name, rs in runs.items()}
    ratio = medians["ahead"] / medians["inline"]
    print(f"{'worker':8} {'median msg/s':>13}  runs")
    for name, rs in runs.items():
        print(f"{name:8} {medians[name]:13.0f}  {[round(r['rate']) for r in rs]}")
    print(f"parsing ahead: {ratio:.2f}x the inline worker ({args.messages} messages, batch {args.batch_size})")
    if args.json:
        write_report(args.json, {"goals": [], "runs": runs, "median_rate": medians, "ahead_over_inline": ratio,
                                 "messages": args.messages, "batch_size": args.batch_size})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
