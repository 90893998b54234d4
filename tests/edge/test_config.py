from __future__ import annotations

from pathlib import Path

import pytest

from gridwatch.edge.config import ConfigError, load_site_config, parse_site_config

BASE = {
    "site_id": "s1",
    "gateway_id": "gw1",
    "detector": {"type": "onnx", "model": "m.onnx"},
    "cameras": [{
        "id": "cam1",
        "source": {"type": "file", "path": "clip.mp4"},
        "zones": [{"name": "kerb", "points": [[0, 0], [10, 0], [10, 10]]}],
        "incidents": {"illegal_parking": {"zones": ["kerb"], "dwell_s": 30}},
    }],
}


def with_camera(**changes: object) -> dict:  # type: ignore[type-arg]
    cam = {**BASE["cameras"][0], **changes}  # type: ignore[index]
    return {**BASE, "cameras": [cam]}


def test_example_configs_load() -> None:
    for path in Path("deploy/examples").glob("*.yaml"):
        cfg = load_site_config(path)
        assert cfg.cameras


@pytest.mark.parametrize(
    "data, path, hint",
    [
        ({**BASE, "sitee_id": "x"}, "sitee_id", "unknown field"),
        (with_camera(analysis_fps=0), "cameras.0.analysis_fps", "greater than 0"),
        (with_camera(incidents={"illegal_parking": {"zones": ["nope"]}}), "cameras.0.incidents.illegal_parking.zones",
         "add it under cameras.0.zones"),
        (with_camera(zones=[{"name": "kerb", "ground": [[0, 0], [0, 1], [1, 1]]}]), "cameras.0.zones.0.ground",
         "add cameras.0.calibration"),
        (with_camera(zones=[{"name": "z"}]), "cameras.0.zones.0", "exactly one of"),
        (with_camera(source={"type": "ftp"}), "cameras.0.source", "tag"),
        ({**BASE, "cameras": [BASE["cameras"][0], BASE["cameras"][0]]}, "cameras.1.id", "used twice"),  # type: ignore[index]
        ({k: v for k, v in BASE.items() if k != "detector"}, "detector", "required field is missing"),
    ],
)
def test_bad_config_names_the_path_and_the_fix(data: dict, path: str, hint: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError) as info:
        parse_site_config(data)
    msg = str(info.value)
    assert path in msg, msg
    assert hint in msg, msg


def test_password_comes_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDWATCH_MQTT_PASSWORD", "s3cret")
    assert parse_site_config(BASE).mqtt.password == "s3cret"


def test_relative_paths_resolve_against_the_file(tmp_path: Path) -> None:
    import yaml

    (tmp_path / "site.yaml").write_text(yaml.safe_dump(BASE))
    cfg = load_site_config(tmp_path / "site.yaml")
    assert cfg.detector.model == (tmp_path / "m.onnx").resolve()


def test_unreadable_and_non_mapping_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_site_config(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_site_config(tmp_path / "list.yaml")
