"""benchmarks/models.py reports the street goals as not met, with the reason, instead of crashing."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from tests.models.conftest import manifest_dict

# loaded by path: the name `models` is also the repository's models/ folder
_spec = importlib.util.spec_from_file_location(
    "gridwatch_bench_models", Path(__file__).resolve().parents[2] / "benchmarks" / "models.py")
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_no_street_model_means_goals_not_met_with_model_missing(tmp_path: Path) -> None:
    assert bench.street_model(tmp_path) is None
    goals, info = bench.street_goals(None, tmp_path / "no-data", None)
    assert [g["name"] for g in goals] == ["street_ap50[garbage]", "street_ap50[overflow]"]
    assert all(g["met"] is False and g["value"] is None and "model missing" in g["note"] for g in goals)
    assert info == {"model": None}


def test_a_broken_street_model_is_a_result_not_a_crash(tmp_path: Path) -> None:
    model = tmp_path / "street.onnx"
    model.write_bytes(b"not a model")
    model.with_suffix(".json").write_text(json.dumps(manifest_dict(classes=["garbage", "overflow"])))
    (tmp_path / "street-int8.onnx").write_bytes(b"")
    assert bench.street_model(tmp_path) == model  # the float model, not the -int8 copy
    goals, info = bench.street_goals(model, tmp_path / "no-data", None)
    assert all(not g["met"] and "sha256 mismatch" in g["note"] for g in goals)
    assert "sha256 mismatch" in info["error"]


def test_the_goal_variant_is_the_shipped_configs_tta() -> None:
    assert bench.deployed_street_tta() == "none"  # deploy/examples/site-two-models.yaml: detectors.street.tta


def test_street_rows_with_and_without_tta_and_goals_on_the_asked_variant(tmp_path: Path) -> None:
    import cv2

    from tests.models.test_tta import build_bright_box_onnx, left_object

    model = build_bright_box_onnx(tmp_path / "bb.onnx")
    (tmp_path / "data" / "val" / "images").mkdir(parents=True)
    (tmp_path / "data" / "val" / "labels").mkdir(parents=True)
    for i in range(2):
        cv2.imwrite(str(tmp_path / "data" / "val" / "images" / f"{i}.png"), left_object())
        (tmp_path / "data" / "val" / "labels" / f"{i}.txt").write_text("2 0.1953125 0.390625 0.234375 0.46875\n")
    (tmp_path / "data" / "classes.txt").write_text("garbage\ngarbage_bin\noverflow\n")  # like garbage_cn_street
    goals, info = bench.street_goals(model, tmp_path / "data", None, tta="flip", cost_frames=2)
    assert [(g["name"], g["tta"]) for g in goals] == [("street_ap50[garbage]", "flip"),
                                                       ("street_ap50[overflow]", "flip")]
    overflow = goals[1]
    assert overflow["value"] == 1.0 and overflow["value_none_tta"] == 1.0 and overflow["met"]
    assert overflow["value_multiscale_tta"] == 1.0 and "value_flip_tta" not in overflow
    assert "flip TTA, as deploy/examples/site-two-models.yaml runs the street model" in overflow["note"]
    assert [(v["tta"], v["deployed"]) for v in info["variants"]] == [("none", False), ("flip", True),
                                                                     ("multiscale", False)]
    cost = info["cost"]
    assert cost["frame_wh"] == [640, 360] and cost["frames"] == 2 and set(cost["ms_per_frame"]) == {
        "none", "flip_batch2", "flip_2runs", "multiscale_batch3"}
    assert all(v["ms_per_frame"] is not None and v["ms_per_frame"] > 0 for v in info["variants"])


def test_false_alarms_count_frames_with_any_box_per_variant_on_a_real_video_file(tmp_path: Path) -> None:
    import cv2
    import numpy as np

    from tests.models.test_tta import build_bright_box_onnx, left_object

    model = build_bright_box_onnx(tmp_path / "bb.onnx")
    clip = tmp_path / "street.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"MJPG"), 10, (64, 64))
    for i in range(20):  # an object in the first 10 frames, an empty view after
        writer.write(left_object() if i < 10 else np.zeros((64, 64, 3), np.uint8))
    writer.release()
    rows = bench.street_false_alarms(model, [clip], every=5)
    row = rows["street.avi"]
    assert row["frames"] == 4
    for mode in ("none", "flip", "multiscale"):
        assert row[mode] == {"frames_with_box": 2, "boxes": {"overflow": 2}}
    assert "2/4" in bench.false_alarm_table(rows)
