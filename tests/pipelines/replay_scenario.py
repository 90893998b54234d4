"""The synthetic street recorded in `tests/fixtures/replay/street.jsonl` (regenerate: `python -m
tests.pipelines.replay_scenario`). 90 s at 2 fps, uncalibrated 640x360 view:

- a car drives in and parks in the `kerb` zone at ~10 s, stays until 70 s, drives off (illegal_parking);
- through traffic in the carriageway never stops;
- an overhead sign the detector calls a bus, its box cut by the top of the frame (not a case);
- a person sets a bag down at 30 s and walks off; the scene-change stage emits the region at 33 s (littering);
- a region nobody put down appears at 20 s (the stage emits it at 23 s) and stays (exposed_garbage);
- a person waits at a bus stop from 40 s with their bag next to them (nothing);
- a vendor stops at 12 s and lays out three bundles of goods at 14-16 s (regions from 17 s) (street_vendor);
- a cable falls across the far lane at 50 s (a long thin region from 53 s) (fallen_wire; exposed_garbage takes
  it too after its 30 s dwell: nobody put it down);
- a street model that runs every 5 s (its boxes change only then) sees a garbage bin, garbage heaped on it
  from 40 s to 70 s (overflowing_bin), and a loose heap of garbage on the pavement from 55 s (exposed_garbage; the
  heap on the bin is not exposed garbage).
"""

from __future__ import annotations

import json
from pathlib import Path

from gridwatch.pipelines.replay import observation_row
from gridwatch.pipelines.types import Observation, anchor_of

PATH = Path(__file__).resolve().parent.parent / "fixtures" / "replay" / "street.jsonl"
FPS = 2.0
HEADER = {
    "zones": [{"name": "kerb", "points": [[0, 250], [640, 250], [640, 360], [0, 360]]}],
    "incidents": {
        "illegal_parking": {"zones": ["kerb"], "dwell_s": 20.0},
        "littering": {"dwell_s": 2.0},
        "exposed_garbage": {"dwell_s": 30.0},
        "street_vendor": {"dwell_s": 30.0},
        "fallen_wire": {"dwell_s": 3.0},
        "overflowing_bin": {"dwell_s": 20.0, "end_after_s": 10.0},
    },
}


def _o(tid: int, cls: str, conf: float, cx: float, bottom: float, w: float, h: float, **extra: float) -> Observation:
    box = (cx - w / 2, bottom - h, cx + w / 2, bottom)
    return Observation(tid, cls, conf, box, anchor_of(box), None, **extra)  # type: ignore[arg-type]


def frame(t: float) -> list[Observation]:
    out: list[Observation] = []
    # The parked car: drives in along the kerb, stops at x=200 at 10 s, leaves at 70 s.
    if t < 78:
        x = 40 + 16 * t if t < 10 else (200 if t < 70 else 200 + 60 * (t - 70))
        out.append(_o(1, "car", 0.8, x, 330, 120, 70))
    # Through traffic: a car every 6 s, crossing in 5 s.
    for k in range(15):
        dt = t - 6 * k
        if 0 <= dt < 5:
            out.append(_o(100 + k, "car", 0.75, 20 + 120 * dt, 230, 90, 55))
    # The overhead sign "bus": box top at the frame's top edge, never moves.
    out.append(_o(2, "bus", 0.5, 420, 18, 80, 18))
    # Littering: the owner walks to x=500, sets the bag down at 30 s, walks off at 31 s.
    if t >= 24:
        px = 440 + 10 * (t - 24) if t < 30 else (500 if t < 31 else 500 + 50 * (t - 31))
        if px < 660:
            out.append(_o(3, "person", 0.85, px, 300, 35, 90))
    if t >= 33:
        out.append(_o(30, "unknown_object", 0.6, 505, 302, 24, 16, age_s=t - 30, area_m2=0.15))
    # A region nobody put down: from 20 s (emitted at 23 s).
    if t >= 23:
        out.append(_o(40, "unknown_object", 0.55, 120, 290, 50, 25, age_s=t - 20, area_m2=0.6))
    # Bus stop: a person waits from 40 s with their bag beside them.
    if t >= 38:
        out.append(_o(4, "person", 0.8, 600 if t >= 40 else 560 + 20 * (t - 38), 300, 35, 90))
    if t >= 43:
        out.append(_o(50, "unknown_object", 0.6, 615, 302, 20, 14, age_s=t - 40, area_m2=0.1))
    # A vendor: walks in, stands at x=330 from 12 s, lays out goods at 14, 15 and 16 s.
    if t >= 8:
        out.append(_o(5, "person", 0.85, 330 if t >= 12 else 250 + 20 * (t - 8), 300, 35, 90))
    for k, (gx, drop) in enumerate([(290, 14.0), (370, 15.0), (330, 16.0)]):
        if t >= drop + 3:
            out.append(_o(70 + k, "unknown_object", 0.6, gx, 310 if gx == 330 else 302, 40, 16, age_s=t - drop,
                          area_m2=0.3))
    # The street model (every 5 s: its boxes move a pixel only when it runs): a bin, garbage on it, a loose heap.
    run = int(t // 5) % 2
    if 35 <= t < 75:  # the bin is there all along; recorded only around its overflow, to keep the file small
        out.append(_o(80, "garbage_bin", 0.8, 40 + run, 300, 30, 45))
    if 40 <= t < 70:
        out.append(_o(81, "garbage", 0.6, 40 + run, 265, 40, 20))
    if t >= 55:
        out.append(_o(82, "garbage", 0.7, 560 + run, 345, 40, 20))
    # A fallen cable across the far lane: 240 x 12 px, elongation 20.
    if t >= 53:
        out.append(_o(60, "unknown_object", 0.6, 500, 200, 240, 12, age_s=t - 50, elongation=20.0))
    return out


def lines() -> list[str]:
    rows = [json.dumps(HEADER)]
    for i in range(int(90 * FPS)):
        t = i / FPS
        rows.append(json.dumps({"ts": t, "objects": [observation_row(o) for o in frame(t)]}))
    return rows


if __name__ == "__main__":
    PATH.parent.mkdir(parents=True, exist_ok=True)
    PATH.write_text("\n".join(lines()) + "\n")
    print(f"wrote {PATH} ({PATH.stat().st_size} bytes)")
