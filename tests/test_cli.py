"""The console script's error handling: start-up problems give one clear line and exit code 2."""

from __future__ import annotations

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
