"""`python -m gridwatch.synth generate SCENARIO --out DIR`, `... dataset --out DIR ...`, `... random --out F.yaml`,
`... composite K --out DIR [--seed S] [--shared DIR]` (scenario K of the composite family on real footage)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import yaml

from gridwatch.synth.composite import generate_composite
from gridwatch.synth.composite_family import composite_suite
from gridwatch.synth.dataset import build_dataset
from gridwatch.synth.generate import generate
from gridwatch.synth.random_scene import random_scenario
from gridwatch.synth.scenario import ScenarioError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gridwatch.synth", description="synthetic street scenes")
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="render a scenario to video + labels + truth.json")
    gen.add_argument("scenario", type=Path)
    gen.add_argument("--out", type=Path, required=True)
    ds = sub.add_parser("dataset", help="write an Ultralytics dataset from the random scenario family")
    ds.add_argument("--out", type=Path, required=True)
    ds.add_argument("--train", type=int, default=1000)
    ds.add_argument("--val", type=int, default=200)
    ds.add_argument("--seed", type=int, default=0)
    rnd = sub.add_parser("random", help="write one scenario YAML from the randomised family")
    rnd.add_argument("--seed", type=int, default=0)
    rnd.add_argument("--duration", type=float, default=20.0)
    rnd.add_argument("--out", type=Path, required=True)
    comp = sub.add_parser("composite", help="render scenario K of the composite family (objects on real footage)")
    comp.add_argument("index", type=int, help="K: the family's scenario number (0-based)")
    comp.add_argument("--seed", type=int, default=2026)
    comp.add_argument("--out", type=Path, required=True)
    comp.add_argument("--shared", type=Path, default=Path(os.environ.get("GRIDWATCH_SHARED", "../shared")),
                      help="the folder holding data/real (default $GRIDWATCH_SHARED or ../shared)")
    args = parser.parse_args(argv)
    try:
        if args.command == "generate":
            video = generate(args.scenario, args.out, progress=True)
            print(f"wrote {video} and {args.out / 'truth.json'}")
        elif args.command == "composite":
            sc = composite_suite(args.index + 1, args.seed)[args.index]
            video = generate_composite(sc, args.shared / "data" / "real", args.out)
            print(f"wrote {video} ({sc.name} on {sc.background}) and {args.out / 'truth.json'}")
        elif args.command == "random":
            sc = random_scenario(np.random.default_rng(args.seed), args.duration, name=f"random{args.seed}")
            args.out.write_text(yaml.safe_dump(sc.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
            print(f"wrote {args.out}")
        else:
            summary = build_dataset(args.out, args.train, args.val, seed=args.seed, progress=True)
            print(f"wrote {summary.data_yaml}: {summary.instances} in {summary.seconds:.0f}s")
    except ScenarioError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
