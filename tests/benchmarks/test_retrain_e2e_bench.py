"""benchmarks/retrain_e2e.py without torch: its labelled clips build into a dataset split by clip, with the boxes the
renderer drew; a failed step is a goal not met, never a crash; without the [train] extra it says so."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from gridwatch.models.datasets import build
from gridwatch.models.datasets.cvat import boxes_at, parse_cvat_video
from gridwatch.synth.random_scene import random_scenario
from gridwatch.synth.scene import Scene

_spec = importlib.util.spec_from_file_location(
    "gridwatch_bench_retrain_e2e", Path(__file__).resolve().parents[2] / "benchmarks" / "retrain_e2e.py")
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = bench  # its dataclasses look their module up
_spec.loader.exec_module(bench)


def test_rendered_clips_are_cvat_tasks_that_build_into_a_dataset_split_by_clip(tmp_path: Path) -> None:
    info = bench.render_clips(tmp_path / "tasks", clips=3, seconds=2.0, seed=5)
    assert info["clips"] == 3 and info["frames"] == 60 and info["boxes"] > 0
    assert info["cvat_shapes"] < info["boxes"]  # keyframes, not a shape per box
    task = parse_cvat_video(tmp_path / "tasks" / "street0.xml")
    assert task.frames == 20 and (tmp_path / "tasks" / "street0.mp4").is_file()
    assert sum(len(boxes_at(task, f, False)) for f in range(20)) > 0
    recipe = bench.write_recipe(tmp_path / "recipe.yaml", tmp_path / "tasks", every=2, seed=1)
    report = build(recipe, tmp_path / "dataset").report["sources"]["cvat_clips"]
    assert sum(report["groups"].values()) == 3 and report["groups"]["val"] >= 1
    assert bench.dataset_counts(tmp_path / "dataset") == report["images"]
    assert_labels_are_the_rendered_boxes(tmp_path / "dataset", seed=5, clips=3, seconds=2.0)


def assert_labels_are_the_rendered_boxes(dataset: Path, seed: int, clips: int, seconds: float) -> None:
    """Every built label (through CVAT keyframes and interpolation) is a box the renderer drew, same class,
    corners within the exporter's 1 px keyframe tolerance; no box lost or added."""
    rng = np.random.default_rng(seed)
    compared = 0
    for i in range(clips):
        sc = random_scenario(rng, seconds, name=f"street{i}")
        scene, (w, h) = Scene.compile(sc), sc.resolution
        for lab in sorted(dataset.glob(f"labels/*/cvat_clips__street{i}_f*.txt")):
            f = int(lab.stem.rsplit("_f", 1)[1])
            drawn = sorted((lb.class_id, lb.x1, lb.y1, lb.x2, lb.y2) for lb in scene.frame_at(f / sc.fps, f).labels)
            rows = [list(map(float, line.split())) for line in lab.read_text().splitlines() if line.strip()]
            built = sorted((int(c), (cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h)
                           for c, cx, cy, bw, bh in rows)
            assert [b[0] for b in built] == [d[0] for d in drawn], lab
            for b in built:  # each built box has a drawn box of its class within 1 px (boxes at a frame edge tie)
                err = min(max(abs(x - y) for x, y in zip(b[1:], d[1:], strict=True)) for d in drawn if d[0] == b[0])
                assert err <= 1.0 + 1e-3, (lab, b, drawn)
            compared += len(built)
    assert compared > 0


def test_a_failed_step_is_a_goal_not_met() -> None:
    steps = [bench.Step("render", True, 1.0), bench.Step("train", False, 2.0, "gridwatch models exited 1: boom")]
    goals = {g["name"]: g for g in bench.goals_of(steps, 3.0, 600.0, {})}
    assert goals["step_ok[render]"]["met"] and not goals["step_ok[train]"]["met"]
    assert "boom" in goals["step_ok[train]"]["note"]
    assert not goals["worker_reports_new_version"]["met"] and not goals["incidents_from_new_model"]["met"]
    assert not goals["refused[corrupted]"]["met"] and goals["refused[unsigned]"]["note"] == "not run"
    assert goals["total_seconds"]["met"]
    assert not goals["new_model_mAP50_clip_val"]["met"] and goals["new_model_mAP50_clip_val"]["note"] == "eval not run"
    ok = [*steps[:1], bench.Step("eval", True, 1.0, details={"mAP50": 0.2})]
    low = {g["name"]: g for g in bench.goals_of(ok, 3.0, 600.0, {})}["new_model_mAP50_clip_val"]
    assert low["value"] == 0.2 and not low["met"]  # a model that finds little is a goal not met


def test_without_the_train_extra_it_says_what_is_missing(capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` fails, as in a venv without [train]
    with pytest.raises(SystemExit) as exc:
        bench.main([])
    assert exc.value.code == 2 and "needs the [train] extra" in capsys.readouterr().err
