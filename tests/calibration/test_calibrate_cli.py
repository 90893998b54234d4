"""`gridwatch calibrate ...`: points YAML -> fit report and config snippet; datum conversion; demo grid."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from gridwatch.app.cli import main
from gridwatch.calibration.cli import fit_points, gcj02, load_points, register
from gridwatch.calibration.errors import CalibrationInputError
from gridwatch.calibration.gcj02 import wgs84_to_gcj02
from gridwatch.calibration.grid import GridLayer
from gridwatch.calibration.ground import GroundMapping

EXAMPLE = Path(__file__).resolve().parents[2] / "calibration" / "examples" / "points_example.yaml"


def _parser() -> argparse.ArgumentParser:
    """The way `gridwatch.cli` mounts it: it creates the `calibrate` group and hands over its subparsers."""
    parser = argparse.ArgumentParser(prog="gridwatch")
    group = parser.add_subparsers(dest="command", required=True).add_parser("calibrate")
    register(group.add_subparsers(dest="calibrate_cmd", required=True))
    return parser


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return int(args.func(args))


def _write_points(path: Path, points: list[dict[str, object]], **extra: object) -> Path:
    path.write_text(yaml.safe_dump({**extra, "points": points}), encoding="utf-8")
    return path


def test_example_fits_with_small_error(tmp_path: Path) -> None:
    out = tmp_path / "cal.yaml"
    res = fit_points(EXAMPLE, out, quiet=True)
    rep = res.mapping.fit_report
    assert rep is not None and rep.n_points == rep.n_inliers == 8
    assert rep.rms_m < 0.15 and rep.rms_px < 4.0
    assert "RMS error" in res.text and "accuracy for 2 px" in res.text
    snippet = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert snippet["type"] == "points" and len(snippet["points"]) == 8
    assert set(snippet["points"][0]) == {"pixel", "lat", "lon"}
    assert snippet["pixel_error_px"] == 2.0


def test_snippet_refits_to_the_same_mapping(tmp_path: Path) -> None:
    res = fit_points(EXAMPLE, quiet=True)
    pts = res.snippet["points"]
    refit = GroundMapping.from_point_pairs([p["pixel"] for p in pts], [p["lat"] for p in pts], [p["lon"] for p in pts])
    probe = np.array([[640.0, 600.0], [200.0, 400.0]])
    lat_a, lon_a = res.mapping.pixel_to_wgs84(probe)
    lat_b, lon_b = refit.pixel_to_wgs84(probe)
    np.testing.assert_allclose(lat_a, lat_b, atol=1e-7)  # ~1 cm: rounding of the snippet only
    np.testing.assert_allclose(lon_a, lon_b, atol=1e-7)


def test_accuracy_probes_grow_toward_the_top(tmp_path: Path) -> None:
    res = fit_points(EXAMPLE, quiet=True)
    centre_column = [p["accuracy_m"] for p in res.probes if p["u"] == pytest.approx(639.5)]
    assert centre_column == sorted(centre_column)
    assert centre_column[-1] == float("inf")  # the top row of this camera is sky


def test_gcj02_points_give_the_same_fit(tmp_path: Path) -> None:
    base = load_points(EXAMPLE)
    g_lat, g_lon = wgs84_to_gcj02(base.lats, base.lons)
    points = [
        {"pixel": [float(u), float(v)], "lat": float(a), "lon": float(o)}
        for (u, v), a, o in zip(base.pixels, g_lat, g_lon, strict=True)
    ]
    path = _write_points(tmp_path / "gcj.yaml", points, datum="gcj02")
    res = fit_points(path, quiet=True)
    assert res.points.datum == "gcj02"
    np.testing.assert_allclose(res.points.lats, base.lats, atol=2e-7)
    np.testing.assert_allclose(res.points.lons, base.lons, atol=2e-7)


def test_ransac_in_yaml_drops_outlier(tmp_path: Path) -> None:
    base = load_points(EXAMPLE)
    pix = base.pixels.copy()
    pix[2] += [80.0, 50.0]
    points = [
        {"pixel": [float(u), float(v)], "lat": float(a), "lon": float(o)}
        for (u, v), a, o in zip(pix, base.lats, base.lons, strict=True)
    ]
    res = fit_points(_write_points(tmp_path / "p.yaml", points, ransac_px=10.0), quiet=True)
    assert res.mapping.fit_report is not None and res.mapping.fit_report.inliers[2] is False
    assert len(res.snippet["points"]) == 7
    assert "OUTLIER" in res.text


def test_four_points_warn_that_rms_is_meaningless(tmp_path: Path) -> None:
    base = load_points(EXAMPLE)
    points = [
        {"pixel": [float(u), float(v)], "lat": float(a), "lon": float(o)}
        for (u, v), a, o in list(zip(base.pixels, base.lats, base.lons, strict=True))[:4]
    ]
    assert "WARNING" in fit_points(_write_points(tmp_path / "p.yaml", points), quiet=True).text


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("points: 3\n", "'points' list"),
        ("points:\n  - {pixel: [1, 2], lat: 39.9}\n", r"points\[0\]"),
        ("points:\n  - {pixel: [1, 2, 3], lat: 39.9, lon: 116.4}\n", r"points\[0\]"),
        ("datum: utm\npoints: []\n", "datum"),
        ("ransac_px: -1\npoints: []\n", "ransac_px"),
        ("image_size: [1280]\npoints: []\n", "image_size"),
        ("[unclosed\n", "not valid YAML"),
    ],
)
def test_bad_points_files_rejected(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CalibrationInputError, match=match):
        load_points(path)


def test_gcj02_helper_all_datums() -> None:
    out = gcj02(39.9087, 116.3975)
    assert out["wgs84"] == (39.9087, 116.3975)
    assert out["gcj02"] == pytest.approx(wgs84_to_gcj02(39.9087, 116.3975))
    back = gcj02(*out["gcj02"], source="gcj02")["wgs84"]
    assert back == pytest.approx((39.9087, 116.3975), abs=1e-7)
    assert gcj02(*out["bd09"], source="bd09")["wgs84"] == pytest.approx((39.9087, 116.3975), abs=1e-6)


# ------------------------------------------------------------------------------------------ argparse
def test_register_fit_subcommand(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cal.yaml"
    assert _run(["calibrate", "fit", str(EXAMPLE), "-o", str(out)]) == 0
    assert "RMS error" in capsys.readouterr().out
    assert yaml.safe_load(out.read_text(encoding="utf-8"))["type"] == "points"


def test_fit_subcommand_reports_bad_input_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("points:\n  - {pixel: [1, 2], lat: 39.9, lon: 116.4}\n", encoding="utf-8")
    assert main(["calibrate", "fit", str(path)]) == 2  # the console script turns the CalibrationError into a line
    err = capsys.readouterr().err
    assert "at least 4" in err and "Traceback" not in err


def test_register_gcj02_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["calibrate", "gcj02", "39.9087", "116.3975", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["gcj02"]["lat"] == pytest.approx(wgs84_to_gcj02(39.9087, 116.3975)[0])
    assert _run(["calibrate", "gcj02", "39.91", "116.40", "--from", "bd09"]) == 0
    assert "wgs84" in capsys.readouterr().out


def test_register_grid_subcommand(tmp_path: Path) -> None:
    out = tmp_path / "grid.geojson"
    assert _run(["calibrate", "grid", "39.9219", "116.4436", "--rows", "2", "--cols", "2", "-o", str(out)]) == 0
    assert len(GridLayer.from_geojson(out)) == 4


def test_calibrate_requires_a_subcommand() -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["calibrate"])
