"""The `gridwatch` console script: one entry point, one subcommand per job.

    gridwatch demo        the whole loop on one machine (broker, central, edge) on a generated clip
    gridwatch analyze     the edge pipeline on one clip, offline
    gridwatch edge run    the gateway worker (cameras -> MQTT)
    gridwatch central     run the case service, list cases, dead letters
    gridwatch calibrate   fit a camera's ground mapping, convert coordinates
    gridwatch models      inspect, train, evaluate, export, sign and publish models to gateways
    gridwatch data        build a training dataset from labelled exports, report on it, pull hard examples
    gridwatch schema      print the wire contract's JSON Schema
    gridwatch synth       generate a synthetic street clip from a scenario YAML

Subcommand modules are imported lazily so `gridwatch schema event` does not load ONNX Runtime.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable, Collection, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gridwatch.errors import GridwatchError

if TYPE_CHECKING:
    pass

TTA_CHOICES = ["none", "flip", "multiscale"]  # gridwatch.models.tta.TTA_MODES (not imported here: it loads OpenCV)


def _cmd_schema(args: argparse.Namespace) -> int:
    from gridwatch.wire.events import event_json_schema_text

    sys.stdout.write(event_json_schema_text())
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    import signal
    import threading

    from rich.console import Console

    from gridwatch.edge.analyze import analyze_clip, incidents_table, summary_line
    from gridwatch.edge.config import load_site_config

    cfg = load_site_config(args.config)
    stop = threading.Event()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        # Ctrl-C / SIGTERM end a stream (or a long clip) cleanly: open incidents are ended and written.
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda signum, frame: stop.set())
    try:
        # A stream URL stays a string: Path() would collapse rtsp:// to rtsp:/.
        report = analyze_clip(args.clip, cfg, args.camera, Path(args.out), progress=not args.quiet,
                              write_video=not args.no_video, start_wall=args.start_at, stop=stop,
                              record=Path(args.record) if args.record else None)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    console = Console()
    console.print(incidents_table(report, console.width))
    console.print(summary_line(report, Path(args.out)), soft_wrap=True)
    report.raise_if_failed()
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    from gridwatch.pipelines.replay import replay_text

    try:
        with open(args.recording, encoding="utf-8") as f:
            rows = replay_text(f)
    except (OSError, ValueError, KeyError) as exc:  # a missing file, a malformed line or header
        print(f"gridwatch replay: {args.recording}: {exc}", file=sys.stderr)
        return 2
    for row in rows:
        print(json.dumps(row))
    return 0


def _default_cache() -> Path:
    """Where rendered scenario clips are kept between runs: $XDG_CACHE_HOME/gridwatch/scenarios."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gridwatch" / "scenarios"


def _iso_time(text: str) -> datetime:
    """`--start-at`: an ISO 8601 time; without a zone it is taken as UTC."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r} (e.g. 2026-03-01T08:00:00Z)") from exc
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def _cmd_edge_run(args: argparse.Namespace) -> int:
    from gridwatch.edge.config import load_site_config
    from gridwatch.edge.worker import run_worker

    cfg = load_site_config(args.config)
    return run_worker(cfg, broker=args.broker, max_seconds=args.max_seconds)


def _cmd_demo(args: argparse.Namespace) -> int:
    from gridwatch.app.demo import run_demo

    return run_demo(Path(args.out), broker=args.broker, regenerate=args.regenerate, protocol=args.protocol)


def _cmd_synth(args: argparse.Namespace) -> int:
    from gridwatch import synth

    path = synth.generate(Path(args.scenario), Path(args.out), progress=True)
    print(f"wrote {path}")
    return 0


def _cmd_models_info(args: argparse.Namespace) -> int:
    from gridwatch.models.info import describe

    print(describe(Path(args.manifest)))
    return 0


def _cmd_models_train(args: argparse.Namespace) -> int:
    """Everything after `train` goes to `python -m gridwatch.models.train` (see its --help); needs the [train] extra."""
    train = importlib.import_module("gridwatch.models.train")
    result: int = train.main(list(args.rest))
    return result


def _cmd_models_keygen(args: argparse.Namespace) -> int:
    from gridwatch.wire.model_signing import generate

    key_path, pub_path, public = generate(Path(args.out))
    print(f"private key {key_path} (mode 600: keep it with whoever publishes models; never in a site config)")
    print(f"public key  {pub_path} (key id {public.key_id}); trust it on a gateway with, in its site.yaml:")
    print(f"model_update:\n  trusted_keys:\n    - \"{public.text}\"")
    return 0


def _cmd_models_publish(args: argparse.Namespace) -> int:
    import re

    from rich.console import Console
    from rich.table import Table

    from gridwatch.central.cli import broker_url
    from gridwatch.central.model_publish import MqttControlChannel, publish_model
    from gridwatch.wire.model_signing import SigningKeyError, load_private_key
    from gridwatch.wire.model_update import read_bundle
    from gridwatch.wire.mqtt import BrokerURL

    key_path = args.key or os.environ.get("GRIDWATCH_MODEL_KEY")
    if not key_path:
        raise SigningKeyError("no signing key: pass --key PATH or set GRIDWATCH_MODEL_KEY to the .key file that "
                              "`gridwatch models keygen` wrote")
    gateways = [g.strip() for g in args.gateways.split(",") if g.strip()]
    ident = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    bad = [x for x in [args.site, *gateways] if not ident.match(x)]
    if bad or not gateways:
        raise GridwatchError(f"--site/--gateways: {bad or 'no gateway'}: ids are 1-64 letters, digits, _ . - "
                             "(the site_id and gateway_id of each gateway's site.yaml)")
    key = load_private_key(Path(key_path))
    bundle = read_bundle(Path(args.model))
    url = BrokerURL.parse(broker_url(args))
    with MqttControlChannel(url, args.prefix, args.site, gateways, protocol=args.protocol,
                            ca_file=args.ca_file) as channel:
        results = publish_model(bundle, args.site, gateways, key, channel, prefix=args.prefix, staged=args.staged,
                                timeout_s=args.timeout, chunk_size=args.chunk_kb * 1024)
    table = Table(title=f"{bundle.name} {bundle.version} ({bundle.sha256[:12]}) -> {args.site}")
    for col in ("gateway", "result", "seconds", "reason"):
        table.add_column(col)
    for r in results:
        table.add_row(r.gateway, r.result, f"{r.seconds:.1f}", r.reason)
    Console().print(table)
    return 0 if all(r.ok for r in results) else 1


def _cmd_models_eval(args: argparse.Namespace) -> int:
    from gridwatch.models.eval_command import EvalRequest, run_eval

    req = EvalRequest(model=Path(args.model), data=Path(args.data), split=args.split,
                      baseline=Path(args.baseline) if args.baseline else None, out=Path(args.out),
                      margin=args.margin, limit=args.limit, threads=args.threads, quiet=args.quiet,
                      tta=args.tta, baseline_tta=args.baseline_tta)
    _, _, text = run_eval(req)
    print(text)
    if args.scenarios != 0:
        print()
        print(_incident_eval(args, req.out / "metrics.json"))
    print(f"wrote {req.out}/metrics.json, confusion_matrix.png, pr_curves.png")
    return 0


def _incident_eval(args: argparse.Namespace, metrics: Path) -> str:
    """The scenario suite with the model and the baseline; its part goes into metrics.json as `incidents`."""
    from gridwatch.app.incident_eval import IncidentRequest, run_incident_eval

    req = IncidentRequest(model=Path(args.model), baseline=Path(args.baseline) if args.baseline else None,
                          cache=Path(args.scenario_cache), scenarios=args.scenarios, variants=args.scenario_variants,
                          names=tuple(args.scenario or ()), conf=args.incident_conf, threads=args.threads,
                          quiet=args.quiet, tta=args.tta, baseline_tta=args.baseline_tta,
                          **({"suite": Path(args.suite)} if args.suite else {}))
    _, text, part = run_incident_eval(req)
    report = json.loads(metrics.read_text(encoding="utf-8"))
    report["incidents"] = part
    metrics.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return text


def _wxh(text: str) -> tuple[int, int]:
    """`--imgsz`: WIDTHxHEIGHT (384x224) or one number for a square input; each a multiple of 32."""
    parts = text.lower().split("x")
    try:
        w, h = (int(parts[0]), int(parts[-1])) if len(parts) in (1, 2) else (0, 0)
    except ValueError:
        w = h = 0
    if w <= 0 or h <= 0 or w % 32 or h % 32:
        raise argparse.ArgumentTypeError(f"{text!r}: give WIDTHxHEIGHT with multiples of 32, e.g. 384x224 or 320")
    return w, h


def _cmd_models_export(args: argparse.Namespace) -> int:
    from gridwatch.models.export import ExportRequest, export_model

    req = ExportRequest(weights=Path(args.weights), input_wh=args.imgsz, out=Path(args.out), name=args.name,
                        version=args.version, data=Path(args.data) if args.data else None, int8=args.int8,
                        calib_images=args.calib_images, evaluate=not args.no_eval, split=args.split,
                        licence=args.licence)
    for line in export_model(req):
        print(line)
    return 0


def _add(sub: argparse._SubParsersAction, name: str, func: Callable[[argparse.Namespace], int],
         help_: str) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, help=help_, description=help_)
    p.set_defaults(func=func)
    return p


LAZY_GROUPS: dict[str, tuple[str, str]] = {
    "central": ("gridwatch.central.cli", "the central case service"),
    "calibrate": ("gridwatch.calibration.cli", "camera calibration and coordinate tools"),
    "data": ("gridwatch.models.datasets.cli", "training datasets from labelled exports (build, report, classes, pull)"),
}
"""Command groups whose package defines its own subcommands through `register(subparsers)`. Their modules import
SQLAlchemy, paho, numpy..., so they are imported only when the command line asks for that group."""


def build_parser(groups: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The whole command tree. `groups`: which of `LAZY_GROUPS` get their subcommands (their modules are imported
    for it); None = all of them (complete parser, for tests and docs). `main` passes only the group it runs."""
    parser = argparse.ArgumentParser(prog="gridwatch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging; tracebacks with errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = _add(sub, "schema", _cmd_schema, "print the JSON Schema of a wire message")
    p.add_argument("which", choices=["event"], help="which message")

    p = _add(sub, "analyze", _cmd_analyze, "run the edge pipeline on one clip offline (no broker)")
    p.add_argument("clip", help="video file, or stream URL (rtsp://, rtsps://, rtmp://, http(s)://)")
    p.add_argument("--config", required=True, help="site config YAML")
    p.add_argument("--camera", required=True, help="camera id in the site config whose zones/rules apply")
    p.add_argument("--out", default="analyze-out")
    p.add_argument("--no-video", action="store_true", help="skip the annotated video (faster)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--start-at", type=_iso_time, default=None, metavar="ISO8601",
                   help="wall time of the clip's first frame (default: now); fix it to make runs reproducible")
    p.add_argument("--record", default=None, metavar="PATH",
                   help="also write what the rules saw per frame (tracked detections and regions) as a replay "
                        "recording for `gridwatch replay`")

    p = _add(sub, "replay", _cmd_replay,
             "run the incident rules over a recording (`analyze --record`) and print their updates as JSON lines")
    p.add_argument("recording", help="recording .jsonl (header line, then one line per analysed frame)")

    p = _add(sub, "demo", _cmd_demo, "broker + central + edge on a generated street clip, on this machine")
    p.add_argument("--out", default="demo-out")
    p.add_argument("--broker", default=None, help="use this broker (mqtt://HOST:PORT) instead of an embedded one")
    p.add_argument("--regenerate", action="store_true", help="re-render the demo clip even if cached")
    p.add_argument("--protocol", choices=["5", "3.1.1"], default="5",
                   help="MQTT version for edge and central (3.1.1 for brokers such as amqtt, RabbitMQ, NATS)")

    edge = sub.add_parser("edge", help="the gateway worker").add_subparsers(dest="edge_cmd", required=True)
    p = _add(edge, "run", _cmd_edge_run, "run every camera of a site config and publish incidents over MQTT")
    p.add_argument("--config", required=True)
    p.add_argument("--broker", default=None, help="override mqtt.broker")
    p.add_argument("--max-seconds", type=float, default=None, help="stop after this long (tests, soak runs)")

    for name, (module, help_) in LAZY_GROUPS.items():
        _register(module, sub, name, help_, load=groups is None or name in groups)

    models = sub.add_parser("models", help="detector models").add_subparsers(dest="models_cmd", required=True)
    p = _add(models, "info", _cmd_models_info,
             "validate and print a model manifest; for a model file, its manifest or its ONNX inputs/outputs")
    p.add_argument("manifest", help="manifest .json/.yaml, or a model .onnx/.pt")
    p = models.add_parser("train", add_help=False, help="train YOLO11 on an Ultralytics data set (--data) or on "
                          "generated synthetic data ([train] extra); `gridwatch models train --help` for options")
    p.set_defaults(func=_cmd_models_train, passthrough=True)
    p.add_argument("rest", nargs=argparse.REMAINDER, help="--data DATA.yaml --out DIR --epochs E --resume ...")

    p = _add(models, "eval", _cmd_models_eval,
             "mAP50 / mAP50-95 per class of an ONNX model on a labelled split, through the edge's ONNX runtime, "
             "side by side with a baseline (better / worse / unchanged per class); writes PNGs and metrics.json")
    p.add_argument("model", help="the model .onnx (its manifest next to it)")
    p.add_argument("--data", required=True, help="Ultralytics data YAML, or a folder with classes.txt and split/images")
    p.add_argument("--split", default="val", help="split of the data set (default val)")
    p.add_argument("--baseline", default=None, help="the deployed model .onnx to compare with")
    p.add_argument("--out", default="eval-out", help="folder for metrics.json and the PNGs")
    p.add_argument("--margin", type=float, default=0.02, help="AP50 change that counts as better/worse")
    p.add_argument("--limit", type=int, default=None, help="only the first N images (quick look)")
    p.add_argument("--threads", type=int, default=None, help="inference threads (default: all cores)")
    p.add_argument("--quiet", action="store_true", help="no progress")
    p.add_argument("--tta", choices=TTA_CHOICES, default="none",
                   help="test-time augmentation, as a detector entry's `tta:` runs it (flip: the image and its "
                        "mirror, one batch of 2; multiscale: the image, its 0.83 shrink mirrored and its 0.67 "
                        "shrink, one batch of 3; merged by class-aware NMS)")
    p.add_argument("--baseline-tta", choices=TTA_CHOICES, default=None,
                   help="the baseline's test-time augmentation (default: as --tta); `--baseline MODEL --tta flip "
                        "--baseline-tta none` measures what TTA adds to one model")
    p.add_argument("--scenarios", type=int, default=None, metavar="N",
                   help="incident level: the first N scenarios of the synthetic suite (positives and negatives "
                        "alternate; 10 cover every type; default: all 17; 0: skip the incident level)")
    p.add_argument("--scenario", action="append", metavar="NAME", help="run only this scenario (repeatable)")
    p.add_argument("--suite", default=None, metavar="DIR",
                   help="a folder of scenario YAMLs instead of the shipped suite (synth/scenarios/suite)")
    p.add_argument("--scenario-variants", type=int, default=0, metavar="K",
                   help="add K seeded variants of the suite's scenarios (synth/suite_family.py)")
    p.add_argument("--scenario-cache", default=str(_default_cache()),
                   help="rendered scenario clips, reused while a scenario is unchanged")
    p.add_argument("--incident-conf", type=float, default=0.25,
                   help="detector confidence threshold for the incident level (a gateway's default)")

    p = _add(models, "export", _cmd_models_export,
             "Ultralytics .pt -> ONNX (fixed W x H, dynamic batch; optional INT8) + manifest with sha256, classes, "
             "metrics and the training data's fingerprint ([train] extra)")
    p.add_argument("weights", help="the .pt to export (a run's weights/last.pt or best.pt)")
    p.add_argument("--imgsz", type=_wxh, default=(384, 224), help="network input WIDTHxHEIGHT (default 384x224)")
    p.add_argument("--out", required=True, help="folder for NAME.onnx, NAME.json (and NAME-int8.*)")
    p.add_argument("--name", required=True, help="model name, e.g. gridwatch-street-yolo11n")
    p.add_argument("--version", default="0.1.0")
    p.add_argument("--data", default=None,
                   help="data YAML for the fingerprint, INT8 calibration and evaluation (default: the run's)")
    p.add_argument("--split", default="val", help="split evaluated into the manifest's metrics")
    p.add_argument("--int8", action="store_true", help="also write a static INT8 model calibrated on --data images")
    p.add_argument("--calib-images", type=int, default=128, help="training images used to calibrate INT8")
    p.add_argument("--no-eval", action="store_true", help="skip evaluating the export into the manifest")
    p.add_argument("--licence", default="AGPL-3.0-or-later (weights trained with Ultralytics YOLO11, AGPL-3.0)")
    p = _add(models, "keygen", _cmd_models_keygen,
             "make an Ed25519 key pair for signing model updates: OUT.key (mode 600) and OUT.pub")
    p.add_argument("--out", required=True, help="path and name without suffix, e.g. keys/models-2026")
    p = _add(models, "publish", _cmd_models_publish,
             "sign a model and send it to gateways over their control topics; wait until each runs it")
    p.add_argument("model", help="folder with one .onnx and its .json manifest (or the .onnx itself)")
    p.add_argument("--site", required=True, help="site id (topic level)")
    p.add_argument("--gateways", required=True, help="comma-separated gateway ids, e.g. gw-pole-017,gw-pole-018")
    p.add_argument("--staged", action="store_true",
                   help="the first gateway first: the rest only after it reports the new model running")
    p.add_argument("--key", default=None,
                   help="Ed25519 private key file, mode 600 (default $GRIDWATCH_MODEL_KEY)")
    p.add_argument("--broker", default=os.environ.get("GRIDWATCH_CENTRAL_BROKER", "mqtt://127.0.0.1:1883"),
                   help="mqtt://host:port or mqtts://... (default $GRIDWATCH_CENTRAL_BROKER); no password in it")
    p.add_argument("--username", default=os.environ.get("GRIDWATCH_MQTT_USERNAME"),
                   help="broker user, the central account (default $GRIDWATCH_MQTT_USERNAME); password from "
                   "$GRIDWATCH_MQTT_PASSWORD")
    p.add_argument("--ca-file", default=None, help="CA bundle that signed the broker's certificate (mqtts://)")
    p.add_argument("--prefix", default="gridwatch/v1", help="topic prefix")
    p.add_argument("--protocol", choices=["5", "3.1.1"], default="5")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds to wait for each gateway's status to report the outcome (per stage)")
    p.add_argument("--chunk-kb", type=int, default=256, choices=[64, 128, 256, 512, 1024],
                   help="chunk size in KiB (the broker's max_packet_size must exceed it)")

    p = _add(sub, "synth", _cmd_synth, "render a synthetic street scenario to video + labels + truth")
    p.add_argument("scenario")
    p.add_argument("--out", required=True)
    return parser


def _register(module: str, sub: argparse._SubParsersAction, name: str, help_: str, *, load: bool) -> None:
    """Subcommand groups owned by other packages add their own parsers via `register(subparsers)`; without
    `load` the group is listed in `--help` but its module (and what it imports) is not loaded."""
    group = sub.add_parser(name, help=help_, description=help_).add_subparsers(dest=f"{name}_cmd", required=True)
    if load:
        importlib.import_module(module).register(group)


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line (the first word that is not a top-level option)."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line `argv` (default: sys.argv[1:]); returns the exit code.

    Errors a user can act on (`gridwatch.errors.GridwatchError`) print `gridwatch: error: <message>` on stderr
    and exit 2, without a traceback unless `-v`; anything else is a bug and keeps its traceback. Example:
    `main(["schema", "event"])` prints the event's JSON Schema and returns 0, loading only pydantic.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command_of(argv)
    parser = build_parser({command} if command else set())
    args, unknown = parser.parse_known_args(argv)
    if getattr(args, "passthrough", False):  # `models train` hands all its options to the trainer's own parser
        args.rest = argv[argv.index("train") + 1 :]
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        code: int = args.func(args)
        return code
    except GridwatchError as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"gridwatch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
