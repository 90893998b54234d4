"""`gridwatch models train` across sessions, for real ([train] extra; see tests/conftest.py for the skip rule).

On a tiny data set (16 frames of coloured boxes, 64 px): a run killed (SIGKILL) after its first epoch continues
with `--resume` to its last epoch; a finished run refuses `--resume`; a second stage starts from the first one's
weights with `--init-weights` and records its history; the export carries both stages into the manifest and runs
on the edge runtime.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from gridwatch.models.onnx_backend import OnnxDetector

pytestmark = pytest.mark.train

CLI = [sys.executable, "-m", "gridwatch.app.cli"]
COLOURS = {0: (40, 40, 220), 1: (220, 120, 40)}  # BGR: red 'car', blue 'stall'


def tiny_dataset(root: Path, n_train: int = 12, n_val: int = 4) -> Path:
    rng = np.random.default_rng(3)
    for split, n in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(n):
            image = np.full((64, 64, 3), 128, np.uint8)
            lines = []
            for cls, colour in COLOURS.items():
                x, y = rng.integers(4, 36, 2)
                w, h = rng.integers(14, 24, 2)
                cv2.rectangle(image, (int(x), int(y)), (int(x + w), int(y + h)), colour, -1)
                lines.append(f"{cls} {(x + w / 2) / 64:.4f} {(y + h / 2) / 64:.4f} {w / 64:.4f} {h / 64:.4f}")
            cv2.imwrite(str(root / "images" / split / f"{i}.jpg"), image)
            (root / "labels" / split / f"{i}.txt").write_text("\n".join(lines) + "\n")
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/val\n"
                                    "names: {0: car, 1: stall}\n")
    return root / "data.yaml"


def gridwatch(*args: str, timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "YOLO_OFFLINE": "1"}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout_s, env=env, check=False)


def epoch_of(run: Path) -> int:
    try:
        return int(json.loads((run / "progress.json").read_text())["epoch"])
    except (OSError, ValueError, KeyError):
        return 0


def kill_after_first_epoch(args: list[str], run: Path) -> int:
    """Start `gridwatch ARGS`, SIGKILL it once progress.json reports an epoch; return that epoch."""
    proc = subprocess.Popen([*CLI, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "YOLO_OFFLINE": "1"})
    try:
        deadline = time.monotonic() + 600
        while epoch_of(run) < 1 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return epoch_of(run)


def test_a_killed_run_resumes_then_a_second_stage_starts_from_it_and_exports(tmp_path: Path) -> None:
    data = tiny_dataset(tmp_path / "data")
    s1, s2 = tmp_path / "runs" / "s1", tmp_path / "runs" / "s2"
    common = ["--data", str(data), "--imgsz", "64", "--batch", "4", "--workers", "0", "--no-cache"]
    killed_at = kill_after_first_epoch(["models", "train", *common, "--out", str(s1), "--epochs", "12"], s1)
    assert 1 <= killed_at < 12 and (s1 / "weights" / "last.pt").is_file()

    resumed = gridwatch("models", "train", "--data", str(data), "--out", str(s1), "--resume")
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert epoch_of(s1) == 12
    printed = [int(m) for m in re.findall(r"\[train\] epoch (\d+)/12", resumed.stdout)]
    # it continues after the last saved epoch (the kill may land after one more save), never from the start
    assert printed and 2 <= printed[0] <= killed_at + 2 and printed[-1] == 12, printed
    info = json.loads((s1 / "training.json").read_text())
    assert len(info["commands"]) == 2 and "--resume" in info["commands"][1]

    again = gridwatch("models", "train", "--data", str(data), "--out", str(s1), "--resume")
    assert again.returncode == 2 and "from a finished run" in again.stderr

    stage2 = gridwatch("models", "train", *common, "--out", str(s2), "--epochs", "2", "--init-weights",
                       str(s1 / "weights" / "last.pt"))
    assert stage2.returncode == 0, stage2.stdout[-2000:] + stage2.stderr[-2000:]
    info2 = json.loads((s2 / "training.json").read_text())
    assert info2["init_weights"] == str(s1 / "weights" / "last.pt")
    assert info2["previous_stage"]["commands"] == info["commands"]
    assert info2["data_fingerprint"] == info["data_fingerprint"]

    out = tmp_path / "release"
    exported = gridwatch("models", "export", str(s2 / "weights" / "last.pt"), "--imgsz", "64", "--out", str(out),
                         "--name", "tiny", "--data", str(data))
    assert exported.returncode == 0, exported.stdout[-2000:] + exported.stderr[-2000:]
    manifest = json.loads((out / "tiny.json").read_text())
    assert manifest["classes"] == ["car", "stall"]
    assert manifest["training"]["previous_stage"]["commands"][0].startswith("gridwatch models train")
    assert manifest["metrics"]["images"] == 4
    detector = OnnxDetector.from_path(out / "tiny.onnx", conf_threshold=0.001)
    assert detector.info.class_names == ("car", "stall")
    detector.detect(cv2.imread(str(data.parent / "images" / "val" / "0.jpg")))  # runs on the edge runtime
