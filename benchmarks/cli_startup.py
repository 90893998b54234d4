"""Start-up time of the `gridwatch` console script: the commands that should not load the edge's heavy stack.

    python benchmarks/cli_startup.py --json out/cli_startup.json [--runs 5]

Each command runs `--runs` times in a fresh interpreter (`python -c "from gridwatch.app.cli import main; ..."`,
the same code path as the installed console script) and the median wall time is reported, together with the heavy
modules it imported. Goals: `gridwatch schema event` and `gridwatch --help` under 1 s (median of 5); on this
project's machines ONNX Runtime + OpenCV + SQLAlchemy alone used to take 3-6 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from report import write_report

TARGET_S = 1.0
HEAVY = ("onnxruntime", "cv2", "sqlalchemy", "paho", "torch", "ultralytics", "supervision")
COMMANDS: dict[str, list[str]] = {"schema event": ["schema", "event"], "--help": ["--help"]}
PROBE = (
    "import sys\n"
    "from gridwatch.app.cli import main\n"
    "try:\n"
    "    main({argv!r})\n"
    "except SystemExit:\n"
    "    pass\n"
    "heavy = [m for m in {heavy!r} if m in sys.modules]\n"
    "sys.stderr.write('HEAVY=' + ','.join(heavy) + '\\n')\n"
)


def run_once(argv: list[str]) -> tuple[float, list[str]]:
    """Wall seconds of one fresh-interpreter run, and the heavy modules it imported."""
    code = PROBE.format(argv=argv, heavy=HEAVY)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    line = next(ln for ln in proc.stderr.splitlines() if ln.startswith("HEAVY="))
    return wall, [m for m in line.removeprefix("HEAVY=").split(",") if m]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, help="write the goals and runs here")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)

    goals: list[dict[str, Any]] = []
    runs: dict[str, Any] = {}
    for name, cmd in COMMANDS.items():
        samples = [run_once(cmd) for _ in range(args.runs)]
        walls = [w for w, _ in samples]
        median = statistics.median(walls)
        runs[name] = {"wall_s": [round(w, 3) for w in walls], "heavy_imported": samples[-1][1]}
        print(f"gridwatch {name:14} median {median:.3f} s  runs {[round(w, 2) for w in walls]}  "
              f"heavy modules: {samples[-1][1] or 'none'}")
        goals.append({"name": f"cli_startup[{name}]", "value": round(median, 3), "target": TARGET_S,
                      "unit": f"s (wall, median of {args.runs})", "met": median < TARGET_S})
    if args.json:
        write_report(args.json, {"goals": goals, "runs": runs})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
