"""The console script's error handling: start-up problems give one clear line and exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gridwatch.app.cli import main

SITE = {
    "site_id": "s1", "gateway_id": "gw1",
    "detector": {"type": "onnx", "model": "missing.onnx"},
    "cameras": [{"id": "cam1", "source": {"type": "file", "path": "clip.mp4"}}],
}


def test_bad_config_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump({**SITE, "cameras": [{"id": "cam1", "source": {"type": "file"}}]}))
    assert main(["analyze", "x.mp4", "--config", str(path), "--camera", "cam1"]) == 2
    err = capsys.readouterr().err
    assert "cameras.0.source.file.path: required field is missing" in err
    assert "Traceback" not in err


def test_missing_model_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(SITE))
    assert main(["analyze", str(tmp_path / "clip.mp4"), "--config", str(path), "--camera", "cam1",
                 "--out", str(tmp_path / "out")]) == 2
    assert "missing.onnx" in capsys.readouterr().err


def test_unknown_camera_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(SITE))
    assert main(["analyze", "x.mp4", "--config", str(path), "--camera", "nope"]) == 2
    assert "known cameras: cam1" in capsys.readouterr().err


# --- one exception root: expected errors are one line and exit 2; bugs keep their traceback ---------------------

def _lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.strip()]


def test_a_bad_broker_url_for_central_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["central", "run", "--broker", "http://x:1", "--db", f"sqlite:///{tmp_path / 'x.db'}"]) == 2
    lines = _lines(capsys.readouterr().err)
    assert len(lines) == 1 and lines[0].startswith("gridwatch: error: ") and "mqtt://" in lines[0], lines


def test_a_bad_site_config_names_the_field_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump({**SITE, "cameras": [{"id": "cam1", "source": {"type": "file"}, "fps": 3}]}))
    assert main(["edge", "run", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gridwatch: error: invalid site config")
    assert "cameras.0.fps: unknown field" in err and "Traceback" not in err


def test_a_missing_site_config_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["edge", "run", "--config", str(tmp_path / "nope.yaml")]) == 2
    lines = _lines(capsys.readouterr().err)
    assert len(lines) == 1 and "nope.yaml" in lines[0], lines


@pytest.mark.parametrize("text", [None, "points: [oops", "points:\n  - {pixel: [1, 2], lat: 39.9, lon: 116.4}\n"])
def test_a_bad_calibration_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             text: str | None) -> None:
    path = tmp_path / "points.yaml"
    if text is not None:
        path.write_text(text)
    assert main(["calibrate", "fit", str(path)]) == 2
    lines = _lines(capsys.readouterr().err)
    assert len(lines) == 1 and lines[0].startswith("gridwatch: error: "), lines


def test_an_unwritable_calibration_output_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calibrate", "grid", "39.9", "116.4", "-o", str(tmp_path / "no" / "such" / "grid.json")]) == 2
    assert _lines(capsys.readouterr().err) == [f"gridwatch: error: cannot write {tmp_path}/no/such/grid.json: "
                                               "No such file or directory"]


def test_verbose_shows_the_traceback_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-v", "calibrate", "fit", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().splitlines()[-1].startswith("gridwatch: error: ")


def test_a_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    import gridwatch.app.cli as cli

    def broken(args: object) -> int:
        raise KeyError("a bug")

    monkeypatch.setattr(cli, "_cmd_schema", broken)
    with pytest.raises(KeyError, match="a bug"):
        main(["schema", "event"])


# --- class names are checked against the model at start-up -------------------------------------------------------

DEMO_MODEL = Path(__file__).resolve().parents[1] / "models" / "demo" / "gridwatch-demo-yolo11n.onnx"


@pytest.mark.parametrize(("detector", "incidents", "needle"), [
    ({"classes": ["cars"]}, {}, "detector.classes: 'cars' is not a class of model"),
    ({}, {"illegal_parking": {"classes": ["cars"]}}, "cameras.0.incidents.illegal_parking.classes: 'cars'"),
])
def test_an_unknown_class_stops_analyze_with_the_path_and_a_suggestion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], detector: dict[str, object], incidents: dict[str, object],
    needle: str,
) -> None:
    cfg = {**SITE, "detector": {"type": "onnx", "model": str(DEMO_MODEL), **detector},
           "cameras": [{"id": "cam1", "source": {"type": "file", "path": "clip.mp4"}, "incidents": incidents}]}
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["analyze", str(tmp_path / "clip.mp4"), "--config", str(path), "--camera", "cam1",
                 "--out", str(tmp_path / "out"), "--quiet"]) == 2
    lines = _lines(capsys.readouterr().err)
    assert len(lines) == 1 and needle in lines[0] and "did you mean 'car'" in lines[0], lines


# --- gridwatch models info ----------------------------------------------------------------------------------------

def test_models_info_prints_a_manifest(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "info", str(DEMO_MODEL.with_suffix(".json"))]) == 0
    assert '"name": "gridwatch-demo-yolo11n"' in capsys.readouterr().out


def test_models_info_on_a_model_prints_the_manifest_next_to_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "info", str(DEMO_MODEL)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"# manifest {DEMO_MODEL.with_suffix('.json')}") and '"decoder": "ultralytics"' in out


def test_models_info_on_a_bare_onnx_prints_its_inputs_and_outputs(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "x.onnx"
    model.symlink_to(DEMO_MODEL)
    assert main(["models", "info", str(model)]) == 0
    out = capsys.readouterr().out
    assert "input  images: tensor(float) [1, 3, 384, 384]" in out and "output output0" in out


@pytest.mark.parametrize(("name", "needle"), [
    ("x.pt", "x.pt is a model, not a manifest"),
    ("x.json", "x.json is not a manifest (not UTF-8 text"),
    ("missing.json", "missing.json does not exist"),
])
def test_models_info_on_the_wrong_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   name: str, needle: str) -> None:
    if not name.startswith("missing"):
        (tmp_path / name).write_bytes(b"\x80\x02binary weights\xff")
    assert main(["models", "info", str(tmp_path / name)]) == 2
    lines = _lines(capsys.readouterr().err)
    assert len(lines) == 1 and needle in lines[0] and "models/demo/" in lines[0], lines


# --- start-up: light commands do not import the heavy stack -------------------------------------------------------

HEAVY = ("onnxruntime", "cv2", "sqlalchemy", "paho", "torch", "ultralytics", "supervision")


@pytest.mark.parametrize("argv", [["schema", "event"], ["--help"], ["central", "--help"], ["models", "--help"]])
def test_light_commands_import_no_heavy_module(argv: list[str]) -> None:
    code = ("import sys\nfrom gridwatch.app.cli import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    heavy = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
    if argv[0] == "central":
        heavy = ",".join(m for m in heavy.split(",") if m not in ("sqlalchemy", "paho"))  # its own stack
    assert heavy == "", f"gridwatch {' '.join(argv)} imported {heavy}"
    if argv == ["schema", "event"]:
        assert '"IncidentEvent"' in proc.stdout or "incident" in proc.stdout.lower()
