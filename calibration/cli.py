"""`gridwatch calibrate ...`: fit a camera from surveyed points, convert map coordinates, make demo grids.

The installer's loop: click >= 4 (better 6-10) ground landmarks in a camera frame, look up the same
landmarks on a map, write them into a points YAML (see `calibration/examples/points_example.yaml`), run
`calibrate fit`, read the RMS error and the accuracy at a few image points, and paste the printed
`{type: points, points: [...]}` snippet into the gateway config. Points clicked on Amap/Tencent (GCJ-02) or
Baidu (BD-09) are converted to WGS-84 first (`datum:` in the YAML), because that is what the system stores.

`gridwatch.cli` wires this in with `register(<subparsers of the calibrate group>)`; each subcommand sets
`func(args) -> int` (exit code).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, cast

import numpy as np
import numpy.typing as npt
import yaml

from gridwatch.calibration.errors import CalibrationInputError
from gridwatch.calibration.gcj02 import bd09_to_wgs84, gcj02_to_bd09, gcj02_to_wgs84, wgs84_to_gcj02
from gridwatch.calibration.grid import Datum, make_regular_grid
from gridwatch.calibration.ground import FitReport, GroundMapping

FloatArray = npt.NDArray[np.float64]
_DATUMS: tuple[Datum, ...] = ("wgs84", "gcj02", "bd09")


@dataclass(frozen=True)
class PointsFile:
    """A parsed points YAML: pixels (N,2) and WGS-84 lat/lon (N,), already converted from `datum`."""

    pixels: FloatArray
    lats: FloatArray
    lons: FloatArray
    datum: Datum
    ransac_px: float | None
    pixel_error_px: float
    image_size: tuple[int, int] | None
    origin: tuple[float, float] | None


@dataclass(frozen=True)
class FitPointsResult:
    """What `fit_points` computed: the mapping, the probe table and the config snippet."""

    mapping: GroundMapping
    points: PointsFile
    probes: list[dict[str, float]]
    snippet: dict[str, Any]
    text: str


# ------------------------------------------------------------------------------------------- parsing
def load_points(path: str | Path) -> PointsFile:
    """Read a points YAML; raises `CalibrationInputError` naming the bad entry."""
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CalibrationInputError(f"cannot read points file {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise CalibrationInputError(f"points file {path} is not valid YAML: {_yaml_problem(exc)}") from exc
    if not isinstance(doc, Mapping) or not isinstance(doc.get("points"), list):
        raise CalibrationInputError(f"{path}: expected a mapping with a 'points' list")
    datum = doc.get("datum", "wgs84")
    if datum not in _DATUMS:
        raise CalibrationInputError(f"{path}: datum must be one of {', '.join(_DATUMS)}, got {datum!r}")
    rows = [_parse_point(p, i, str(path)) for i, p in enumerate(doc["points"])]
    pix = np.array([r[0] for r in rows], dtype=np.float64).reshape(-1, 2)
    lats, lons = _to_wgs84(np.array([r[1] for r in rows]), np.array([r[2] for r in rows]), datum)
    return PointsFile(
        pixels=pix,
        lats=lats,
        lons=lons,
        datum=datum,
        ransac_px=_opt_float(doc, "ransac_px", path),
        pixel_error_px=_opt_float(doc, "pixel_error_px", path) or 2.0,
        image_size=_image_size(doc.get("image_size"), path),
        origin=_origin(doc.get("origin"), path),
    )


def _parse_point(p: object, i: int, where: str) -> tuple[list[float], float, float]:
    try:
        assert isinstance(p, Mapping)
        uv = [float(x) for x in p["pixel"]]
        lat, lon = float(p["lat"]), float(p["lon"])
        assert len(uv) == 2 and -90 <= lat <= 90 and -180 <= lon <= 180
    except (AssertionError, KeyError, TypeError, ValueError):
        raise CalibrationInputError(
            f"{where}: points[{i}] must look like {{pixel: [u, v], lat: <deg>, lon: <deg>}}, got {p!r}"
        ) from None
    return uv, lat, lon


def _to_wgs84(lats: FloatArray, lons: FloatArray, datum: str) -> tuple[FloatArray, FloatArray]:
    if datum == "gcj02":
        return gcj02_to_wgs84(lats, lons)
    if datum == "bd09":
        return bd09_to_wgs84(lats, lons)
    return lats, lons


def _opt_float(doc: Mapping[str, Any], key: str, path: str | Path) -> float | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise CalibrationInputError(f"{path}: {key} must be a positive number, got {value!r}")
    return float(value)


def _image_size(value: object, path: str | Path) -> tuple[int, int] | None:
    if value is None:
        return None
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value)):
        raise CalibrationInputError(f"{path}: image_size must be [width, height] in pixels, got {value!r}")
    return int(value[0]), int(value[1])


def _origin(value: object, path: str | Path) -> tuple[float, float] | None:
    if value is None:
        return None
    if not (isinstance(value, Mapping) and "lat" in value and "lon" in value):
        raise CalibrationInputError(f"{path}: origin must be {{lat: <deg>, lon: <deg>}}, got {value!r}")
    return float(value["lat"]), float(value["lon"])


# ------------------------------------------------------------------------------------------- fitting
def fit_points(
    points_yaml_path: str | Path,
    out_path: str | Path | None = None,
    stream: TextIO | None = None,
    quiet: bool = False,
) -> FitPointsResult:
    """Fit a ground homography from a points YAML, print a report, optionally write the config snippet.

    The report goes to `stream` (default: the current `sys.stdout`) unless `quiet`.

    The snippet holds the (WGS-84, RANSAC-inlier) points, not the matrix: the gateway refits at start-up, so
    the file stays readable and editable when a landmark is re-surveyed.
    """
    pts = load_points(points_yaml_path)
    mapping = GroundMapping.from_point_pairs(
        pts.pixels,
        pts.lats,
        pts.lons,
        origin=pts.origin,
        ransac_px=pts.ransac_px,
        pixel_error_px=pts.pixel_error_px,
    )
    probes = probe_table(mapping, _probe_pixels(pts))
    snippet = points_snippet(mapping, pts)
    text = format_report(mapping, pts, probes, snippet)
    if not quiet:
        (stream or sys.stdout).write(text)
    if out_path is not None:
        _write(Path(out_path), dump_snippet(snippet))
    return FitPointsResult(mapping=mapping, points=pts, probes=probes, snippet=snippet, text=text)


def _probe_pixels(pts: PointsFile) -> FloatArray:
    """Where to report accuracy: bottom, middle and upper rows of the image (or of the points' extent)."""
    if pts.image_size is not None:
        w, h = pts.image_size
        x0, y0, x1, y1 = 0.0, 0.0, float(w - 1), float(h - 1)
    else:
        (x0, y0), (x1, y1) = pts.pixels.min(axis=0), pts.pixels.max(axis=0)
    xs, ys = (x0 + x1) / 2.0, np.linspace(y1, y0, 5)
    return np.array([[x0 + (x1 - x0) * 0.1, y1], *[[xs, y] for y in ys], [x1 - (x1 - x0) * 0.1, y1]])


def probe_table(mapping: GroundMapping, uv: FloatArray) -> list[dict[str, float]]:
    """Position and accuracy at each probe pixel (NaN position / inf accuracy above the horizon)."""
    lat, lon = mapping.pixel_to_wgs84(uv)
    acc = mapping.accuracy_m(uv)
    return [
        {"u": float(p[0]), "v": float(p[1]), "lat": float(a), "lon": float(o), "accuracy_m": float(c)}
        for p, a, o, c in zip(uv, lat, lon, acc, strict=True)
    ]


def points_snippet(mapping: GroundMapping, pts: PointsFile) -> dict[str, Any]:
    """`{type: points, points: [...], pixel_error_px}`: inlier pairs in WGS-84, for the gateway config."""
    report = mapping.fit_report
    keep = report.inliers if report is not None else (True,) * len(pts.pixels)
    rows = zip(pts.pixels, pts.lats, pts.lons, keep, strict=True)
    points = [_snippet_point(uv, la, lo) for uv, la, lo, k in rows if k]
    return {"type": "points", "points": points, "pixel_error_px": mapping.pixel_error_px}


def _snippet_point(uv: FloatArray, lat: float, lon: float) -> dict[str, Any]:
    """Centipixels and 1e-8 degrees (~1 mm): finer digits are noise and make diffs unreadable."""
    pixel = [round(float(uv[0]), 2), round(float(uv[1]), 2)]
    return {"pixel": pixel, "lat": round(float(lat), 8), "lon": round(float(lon), 8)}


def dump_snippet(snippet: Mapping[str, Any]) -> str:
    """YAML with one line per point (`pixel: [u, v]` inline), so a diff shows which landmark changed."""
    return yaml.safe_dump(dict(snippet), sort_keys=False, default_flow_style=None)


def format_report(
    mapping: GroundMapping, pts: PointsFile, probes: Sequence[Mapping[str, float]], snippet: Mapping[str, Any]
) -> str:
    """Human-readable fit report: matrix, residuals, warnings, accuracy probes, config snippet."""
    rep = mapping.fit_report
    origin = f"{mapping.origin_lat:.7f}, {mapping.origin_lon:.7f}"
    lines = [f"origin (WGS-84): {origin}   input datum: {pts.datum}"]
    lines.append("homography pixel -> (east, north) m, scaled so H[2,2] = 1:")
    h = mapping.H / mapping.H[2, 2] if abs(mapping.H[2, 2]) > 1e-12 else mapping.H
    lines += ["  [" + ", ".join(f"{x: .6e}" for x in row) + "]" for row in h]
    if rep is not None:
        lines += _residual_lines(rep)
    lines.append(f"accuracy for {mapping.pixel_error_px:g} px of image error:")
    lines.append("       u       v          lat          lon  accuracy_m")
    lines += [
        f"  {p['u']:6.0f}  {p['v']:6.0f}  {p['lat']:11.7f}  {p['lon']:11.7f}  {p['accuracy_m']:10.2f}" for p in probes
    ]
    lines.append("calibration snippet (paste under the camera's `calibration:` key):")
    lines.append(dump_snippet(snippet).rstrip())
    return "\n".join(lines) + "\n"


def _residual_lines(rep: FitReport) -> list[str]:
    lines = [
        f"points: {rep.n_points}, inliers: {rep.n_inliers}",
        f"RMS error: {rep.rms_m:.3f} m on the ground, {rep.rms_px:.2f} px in the image "
        f"(max {rep.max_m:.3f} m, {rep.max_px:.2f} px)",
    ]
    lines += [
        f"  point {i}: {m:8.3f} m {p:8.2f} px{'' if ok else '   OUTLIER (dropped)'}"
        for i, (m, p, ok) in enumerate(zip(rep.residuals_m, rep.residuals_px, rep.inliers, strict=True))
    ]
    if rep.redundancy == 0:
        lines.append("WARNING: exactly 4 points fit exactly, so the RMS says nothing; add 2-6 more points")
    return lines


# ------------------------------------------------------------------------------------------ datums
def gcj02(lat: float, lon: float, source: Datum = "wgs84") -> dict[str, tuple[float, float]]:
    """One point in all three datums, given in `source` (e.g. a point clicked on Amap is `gcj02`)."""
    if source == "wgs84":
        w = (lat, lon)
    elif source == "gcj02":
        w = gcj02_to_wgs84(lat, lon)
    else:
        w = bd09_to_wgs84(lat, lon)
    g = wgs84_to_gcj02(*w)
    return {"wgs84": w, "gcj02": g, "bd09": gcj02_to_bd09(*g)}


# --------------------------------------------------------------------------------------- argparse
def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `fit`, `gcj02` and `grid` to the subparsers of the `calibrate` group.

    `gridwatch.cli` creates the `calibrate` parser and passes its subparsers here, so the commands read
    `gridwatch calibrate fit ...`; each sets `func(args) -> int`.
    """
    sub = subparsers

    fit = sub.add_parser("fit", help="fit a ground homography from a points YAML and print its accuracy")
    fit.add_argument("points", type=Path, help="points YAML (see calibration/examples/points_example.yaml)")
    fit.add_argument("-o", "--out", type=Path, help="write the {type: points} calibration snippet here")
    fit.set_defaults(func=_cmd_fit)

    conv = sub.add_parser("gcj02", help="convert one point between WGS-84, GCJ-02 (Amap) and BD-09 (Baidu)")
    conv.add_argument("lat", type=float)
    conv.add_argument("lon", type=float)
    conv.add_argument("--from", dest="source", choices=_DATUMS, default="wgs84", help="datum of lat/lon")
    conv.add_argument("--json", action="store_true", help="print JSON instead of a table")
    conv.set_defaults(func=_cmd_gcj02)

    grid = sub.add_parser("grid", help="write a regular demo grid layer (GeoJSON) around a point")
    grid.add_argument("lat", type=float)
    grid.add_argument("lon", type=float)
    grid.add_argument("--rows", type=int, default=3)
    grid.add_argument("--cols", type=int, default=3)
    grid.add_argument("--cell-m", type=float, default=50.0)
    grid.add_argument("--prefix", default="110105", help="code prefix (<= 11 of [0-9A-Z])")
    grid.add_argument("-o", "--out", type=Path, required=True)
    grid.set_defaults(func=_cmd_grid)


def _cmd_fit(args: argparse.Namespace) -> int:
    fit_points(args.points, args.out)
    return 0


def _cmd_gcj02(args: argparse.Namespace) -> int:
    out = gcj02(args.lat, args.lon, cast(Datum, args.source))
    if args.json:
        print(json.dumps({k: {"lat": v[0], "lon": v[1]} for k, v in out.items()}))
    else:
        for name, (la, lo) in out.items():
            print(f"{name:6s} {la:.8f}, {lo:.8f}")
    return 0


def _cmd_grid(args: argparse.Namespace) -> int:
    doc = make_regular_grid(args.lat, args.lon, args.rows, args.cols, args.cell_m, args.prefix)
    _write(args.out, json.dumps(doc, indent=1))
    print(f"wrote {len(doc['features'])} cells to {args.out}")
    return 0


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's multi-line error as one line: what is wrong and where."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"{exc.problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(exc).split())


def _write(path: Path, text: str) -> None:
    """Write an output file; a folder that does not exist is the user's to fix, so it is a CalibrationError."""
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CalibrationInputError(f"cannot write {path}: {exc.strerror or exc}") from exc
