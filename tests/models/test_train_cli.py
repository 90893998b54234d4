"""`gridwatch models train|export` argument handling that needs no torch: every refusal happens before
Ultralytics is imported (the training itself is exercised in the train env, see README "Train, evaluate, export")."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from gridwatch.app.cli import _wxh, main


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


def test_resume_needs_a_started_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(["models", "train", "--out", str(tmp_path / "run"), "--resume"], capsys)
    assert code == 2 and "has no training.json; pass --data DATA.yaml" in err
    code, err = _run(["models", "train", "--data", str(tmp_path / "d.yaml"), "--out", str(tmp_path / "run"),
                      "--resume"], capsys)
    assert code == 2 and "weights/last.pt does not exist; start the run without --resume first" in err


def test_an_existing_run_is_never_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    (run / "weights").mkdir(parents=True)
    (run / "weights" / "last.pt").write_bytes(b"weights")
    (run / "training.json").write_text('{"data": "d.yaml"}')
    code, err = _run(["models", "train", "--data", "d.yaml", "--out", str(run), "--epochs", "3"], capsys)
    assert code == 2 and "continue it with --resume" in err and f"--init-weights {run}/weights/last.pt" in err
    # without --data this would be the synthetic demo training: refused for a --data run folder
    code, err = _run(["models", "train", "--out", str(run)], capsys)
    assert code == 2 and "is a --data training run" in err
    code, err = _run(["models", "train", "--out", str(run), "--resume", "--init-weights", "x.pt"], capsys)
    assert code == 2 and "drop --init-weights" in err
    assert (run / "weights" / "last.pt").read_bytes() == b"weights"


def test_learning_rate_options_are_checked_before_training(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    base = ["models", "train", "--data", "d.yaml", "--out", str(tmp_path / "run"), "--epochs", "3"]
    code, err = _run([*base, "--lr0", "0.002"], capsys)
    assert code == 2 and "add --optimizer SGD or AdamW" in err
    code, err = _run([*base, "--optimizer", "SGD", "--lr0", "5"], capsys)
    assert code == 2 and "--lr0 5.0: give a learning rate in (0, 1]" in err
    code, err = _run([*base, "--close-mosaic", "-1"], capsys)
    assert code == 2 and "--close-mosaic -1" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("text", "wh"), [("384x224", (384, 224)), ("320", (320, 320)), ("640X384", (640, 384))])
def test_imgsz_is_width_x_height(text: str, wh: tuple[int, int]) -> None:
    assert _wxh(text) == wh


@pytest.mark.parametrize("text", ["384x225", "x", "0x224", "384x224x3", "abc"])
def test_imgsz_must_be_multiples_of_32(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="multiples of 32"):
        _wxh(text)


@pytest.mark.parametrize(("spec", "fix"), [("mixup", "give KEY=VALUE"), ("data=x.yaml", "give KEY=VALUE"),
                                           ("mixup=lots", "is not a number"), ("mixup=1.5", "[0, 1]"),
                                           ("scale=nan", "[0, 0.95]"), ("cls=-1", "[0, 50]")])
def test_a_bad_hyperparameter_is_refused_before_training(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         spec: str, fix: str) -> None:
    code, err = _run(["models", "train", "--data", "d.yaml", "--out", str(tmp_path / "run"), "--hyp", spec], capsys)
    assert code == 2 and f"--hyp {spec!r}" in err and fix in err
    assert not (tmp_path / "run").exists()
    code, err = _run(["models", "train", "--data", "d.yaml", "--out", str(tmp_path / "run"), "--resume",
                      "--hyp", "mixup=0.1"], capsys)
    assert code == 2


def test_hyperparameters_parse_to_floats_and_the_last_one_wins() -> None:
    from gridwatch.models.hyp import parse_hyp

    assert parse_hyp(["mixup=0.1", "copy_paste=0", "mixup=0.2", " cls = 1.5"]) == {
        "mixup": 0.2, "copy_paste": 0.0, "cls": 1.5}
    assert parse_hyp([]) == {}
