"""ModelManifest validation and loading from JSON/YAML."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from gridwatch.models.base import ModelConfigError
from gridwatch.models.manifest import ModelManifest, load_manifest, manifest_path_for

REPO = Path(__file__).resolve().parents[2]
MakeManifest = Callable[..., dict[str, Any]]


def test_demo_shaped_manifest_loads_from_json_and_yaml(tmp_path: Path, make_manifest: MakeManifest) -> None:
    data = make_manifest(name="gridwatch-demo-yolo11n", input_size=[640, 384])
    (tmp_path / "a.json").write_text(json.dumps(data))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(data))
    for path in (tmp_path / "a.json", tmp_path / "b.yaml"):
        m = load_manifest(path)
        assert m.name == "gridwatch-demo-yolo11n"
        assert m.input_size == (640, 384)
        assert m.classes == ["car", "person", "litter", "stall", "wire"]
        assert m.metrics == {"map50": 0.5} and m.training == {"epochs": 1}


def test_metrics_and_training_are_free_form_and_optional(make_manifest: MakeManifest) -> None:
    m = ModelManifest.model_validate(make_manifest(metrics={"per_class": {"car": {"ap50": 0.9}}}, training=None))
    assert m.metrics == {"per_class": {"car": {"ap50": 0.9}}} and m.training is None
    data = make_manifest()
    del data["metrics"], data["training"]
    assert ModelManifest.model_validate(data).metrics is None


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"extra_key": 1}, "extra_key"),
        ({"decoder": "detr"}, "decoder"),
        ({"color": "rgb"}, "color"),
        ({"scale": "0-256"}, "scale"),
        ({"letterbox": "bottom"}, "letterbox"),
        ({"pad_value": 300}, "pad_value"),
        ({"sha256": "ABC"}, "sha256"),
        ({"sha256": "A" * 64}, "sha256"),  # digests are lower-case hex
        ({"classes": []}, "classes"),
        ({"classes": ["car", "car"]}, "duplicated"),
        ({"classes": ["car", " "]}, "non-empty"),
        ({"input_size": [640]}, "input_size"),
        ({"input_size": [0, 640]}, "input_size"),
        ({"name": ""}, "name"),
        ({"licence": ""}, "licence"),
    ],
)
def test_invalid_manifests_name_the_field(
    tmp_path: Path, make_manifest: MakeManifest, overrides: dict[str, Any], field: str
) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps(make_manifest(**overrides)))
    with pytest.raises(ModelConfigError, match=field) as err:
        load_manifest(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    ("name", "text"),
    [("broken.json", "{not json"), ("list.json", "[1, 2]"), ("broken.yaml", "a: [unclosed")],
)
def test_unreadable_manifests(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ModelConfigError, match=name):
        load_manifest(path)
    with pytest.raises(ModelConfigError, match="cannot read"):
        load_manifest(tmp_path / "missing.json")


def test_manifest_path_for_prefers_json_beside_the_model(tmp_path: Path) -> None:
    model = tmp_path / "det.onnx"
    with pytest.raises(ModelConfigError, match=r"det\.json"):
        manifest_path_for(model)
    (tmp_path / "det.yaml").write_text("")
    assert manifest_path_for(model) == tmp_path / "det.yaml"
    (tmp_path / "det.json").write_text("")
    assert manifest_path_for(model) == tmp_path / "det.json"


def test_shipped_yolox_manifest() -> None:
    m = load_manifest(REPO / "models" / "manifests" / "yolox_nano_coco80.json")
    assert (m.decoder, m.input_size, m.color, m.scale, m.letterbox, m.pad_value) == (
        "yolox",
        (416, 416),
        "BGR",
        "0-255",
        "top-left",
        114,
    )
    assert len(m.classes) == 80 and m.classes[:3] == ["person", "bicycle", "car"]


def test_the_demo_training_script_writes_a_manifest_this_loader_accepts(tmp_path: Path) -> None:
    """Contract with models/train.py (owned elsewhere): its manifest JSON must validate here unchanged."""
    from gridwatch.models import train
    from gridwatch.synth import CLASSES

    manifest = train.Manifest(
        name=train.MODEL_NAME,
        version=train.MODEL_VERSION,
        decoder="ultralytics",
        input_size=[320, 320],
        classes=list(CLASSES),
        color="RGB",
        scale="0-1",
        letterbox="center",
        pad_value=114,
        sha256="0" * 64,
        licence=train.LICENCE,
        metrics=train.Metrics(mAP50=0.5, mAP50_95=0.3, val_images=10, per_class_mAP50={"car": 0.7}),
        training=train.TrainingInfo("cmd", 7, 1, 320, 100, 10, 12.5),
    )
    path = tmp_path / f"{train.MODEL_NAME}.json"
    path.write_text(manifest.to_json())
    loaded = load_manifest(path)
    assert loaded.classes == ["car", "person", "litter", "stall", "wire"]
    assert loaded.input_size == (320, 320) and loaded.metrics is not None and loaded.training is not None


def test_a_missing_manifest_names_the_config_key_and_the_shipped_manifests(tmp_path: Path) -> None:
    with pytest.raises(ModelConfigError) as err:
        manifest_path_for(tmp_path / "det.onnx")
    msg = str(err.value)
    assert "detector.manifest" in msg and "manifest_path" not in msg
    assert str(REPO / "models" / "manifests" / "yolox_nano_coco80.json") in msg
    assert str(REPO / "models" / "demo" / "gridwatch-demo-yolo11n.json") in msg


def test_a_binary_file_given_as_manifest_is_a_model_config_error(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_bytes(b"\x08\x07\x12\x07pytorch\xff\xfe\x00")
    with pytest.raises(ModelConfigError, match=r"model\.json is not a manifest \(not UTF-8 text"):
        load_manifest(path)
