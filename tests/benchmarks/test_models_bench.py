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
