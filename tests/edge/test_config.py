from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field, ValidationError

from gridwatch.edge.camera import build_rules
from gridwatch.edge.config import (
    ConfigError,
    enabled_incidents,
    incidents_config_model,
    load_site_config,
    parse_site_config,
)
from gridwatch.pipelines.registry import IncidentType, Registry, default_registry
from gridwatch.pipelines.rule_config import DwellRuleConfig
from gridwatch.pipelines.zones import Zone

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


def test_example_configs_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERB_CAM_PASSWORD", "from-the-environment")  # the example's camera password reference
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
        (with_camera(incidents={"fallen_wire": {"zones": ["nope"], "enabled": False}}),
         "cameras.0.incidents.fallen_wire.zones", "add it under cameras.0.zones"),
        (with_camera(incidents={"ilegal_parking": {}}), "cameras.0.incidents",
         "unknown incident type 'ilegal_parking'; did you mean 'illegal_parking'? known types: exposed_garbage, "
         "fallen_wire, illegal_parking, littering, overflowing_bin, street_vendor"),
        (with_camera(incidents={"littering": {"dwel_s": 3}}), "cameras.0.incidents.littering.dwel_s", "unknown field"),
        (with_camera(incidents={"street_vendor": {"dwell_s": -1}}), "cameras.0.incidents.street_vendor.dwell_s",
         "greater than 0"),
        (with_camera(zones=[{"name": "kerb", "ground": [[0, 0], [0, 1], [1, 1]]}]), "cameras.0.zones.0.ground",
         "add cameras.0.calibration"),
        (with_camera(zones=[{"name": "z"}]), "cameras.0.zones.0", "exactly one of"),
        (with_camera(source={"type": "ftp"}), "cameras.0.source", "tag"),
        ({**BASE, "cameras": [BASE["cameras"][0], BASE["cameras"][0]]}, "cameras.1.id", "used twice"),  # type: ignore[index]
        ({k: v for k, v in BASE.items() if k != "detector"}, "detector", "required field is missing"),
        (with_camera(ignore=[{"name": "clock", "points": [[0, 0], [10, 0]]}]), "cameras.0.ignore.0.points",
         "at least 3 items"),
        (with_camera(ignore=[{"name": "clock", "points": [[0, 0], [5, 5], [10, 10]]}]), "cameras.0.ignore.0",
         "points: ignore mask 'clock' encloses no area; give at least 3 points that are not on one line"),
        (with_camera(ignore=[{"name": "clock", "points": [[-1, 0], [5, 0], [5, 5]]}]), "cameras.0.ignore.0",
         "negative coordinate"),
        (with_camera(ignore=[{"name": "osd", "points": [[0, 0], [5, 0], [5, 5]]},
                             {"name": "osd", "points": [[9, 0], [15, 0], [15, 5]]}]), "cameras.0.ignore.1.name",
         "'osd' is used twice on camera 'cam1'; give each ignore mask its own name"),
        (with_camera(ignore=[{"name": "osd", "polygon": [[0, 0], [5, 0], [5, 5]]}]), "cameras.0.ignore.0.polygon",
         "unknown field"),
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


def test_incidents_follow_the_registry_with_the_config_models_defaults() -> None:
    cfg = parse_site_config(with_camera(incidents={
        "street_vendor": {}, "illegal_parking": {"zones": ["kerb"]}, "littering": {"enabled": False},
    }))
    cam = cfg.cameras[0]
    assert [t.name for t, _ in cam.incidents.configured()] == ["illegal_parking", "littering", "street_vendor"]
    enabled = dict((t.name, c) for t, c in enabled_incidents(cam))
    assert list(enabled) == ["illegal_parking", "street_vendor"]
    assert enabled["street_vendor"].end_after_s == 15.0  # the old vendor preset said 5
    assert enabled["illegal_parking"].end_after_s == 15.0
    assert set(type(cam.incidents).model_fields) == set(default_registry().names())


def test_build_rules_builds_one_rule_per_enabled_type_on_its_zones() -> None:
    cfg = parse_site_config(with_camera(incidents={
        "street_vendor": {}, "illegal_parking": {"zones": ["kerb"]}, "littering": {"enabled": False},
    }))
    zones = (Zone("kerb", ((0, 0), (10, 0), (10, 10))), Zone("other", ((0, 0), (5, 0), (5, 5))))
    rules = build_rules(cfg.cameras[0], zones, "cam1")
    assert [r.incident_type for r in rules] == ["illegal_parking", "street_vendor"]
    assert [z.name for z in rules[0].params.zones] == ["kerb"]  # type: ignore[attr-defined]
    assert rules[1].params.zones == ()  # type: ignore[attr-defined]  # no zones named = the whole frame


class PotholeConfig(DwellRuleConfig):
    dwell_s: float = Field(30.0, gt=0, le=3600, description="Seconds a pothole must be seen.")
    classes: list[str] = Field(default_factory=lambda: ["pothole"], min_length=1, description="Pothole classes.")


def test_a_type_registered_at_runtime_flows_into_the_config_tree() -> None:
    parking = default_registry().get("illegal_parking")
    extra = IncidentType("pothole", PotholeConfig, parking.factory, ("10003",), "A hole in the road.")
    registry = Registry([*default_registry(), extra])
    model = incidents_config_model(registry)
    cfg = model.model_validate({"pothole": {"dwell_s": 5}, "littering": {}})
    assert [(t.name, type(c).__name__) for t, c in cfg.enabled()] == [
        ("littering", "LitteringRuleConfig"), ("pothole", "PotholeConfig")]
    assert cfg.enabled()[1][1].classes == ["pothole"]  # type: ignore[attr-defined]
    with pytest.raises(ValidationError, match=r"known types: .*pothole"):
        model.model_validate({"potholes": {}})
    with pytest.raises(ValidationError, match="unknown incident type 'pothole'"):
        incidents_config_model(default_registry()).model_validate({"pothole": {}})


POTHOLE_MODULE = """
from pydantic import Field

from gridwatch.pipelines.registry import IncidentType
from gridwatch.pipelines.rule_config import DwellRuleConfig


class PotholeConfig(DwellRuleConfig):
    dwell_s: float = Field(30.0, gt=0, le=3600, description="Seconds a pothole must be seen.")
    classes: list[str] = Field(default_factory=lambda: ["pothole"], min_length=1, description="Pothole classes.")


def build(cfg, zones, id_prefix, new_token=None):
    from gridwatch.pipelines.dwell import DwellParams, StationaryDwellRule

    return StationaryDwellRule(DwellParams.from_config(cfg, zones), id_prefix, "pothole", new_token)


INCIDENT = IncidentType("pothole", PotholeConfig, build, ("10003",), "A hole in the road.")
"""

PROBE = """
import json, sys
import gridwatch.pipelines.incidents as pkg
pkg.__path__.append(sys.argv[1])  # as if pothole.py had been dropped into pipelines/incidents/
from gridwatch.edge.camera import build_rules
from gridwatch.edge.config import parse_site_config
from gridwatch.wire.events import INCIDENT_TYPES, IncidentEvent, event_json_schema
site = json.loads(sys.argv[2])
site["cameras"][0]["incidents"] = {"pothole": {"zones": ["kerb"], "dwell_s": 12}}
cam = parse_site_config(site).cameras[0]
rules = build_rules(cam, (), "cam1")
event = json.loads(sys.argv[3])
print(json.dumps({
    "types": list(INCIDENT_TYPES),
    "enum": event_json_schema()["properties"]["type"]["enum"],
    "rules": [[r.incident_type, r.params.dwell_s, sorted(r.params.classes)] for r in rules],
    "event_type": IncidentEvent.model_validate(event).type,
}))
"""


def test_a_new_type_module_flows_into_config_rules_and_event_enum_without_other_edits(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    from tests.edge.test_events_schema import event

    (tmp_path / "pothole.py").write_text(POTHOLE_MODULE)
    ev = event(type="pothole", incident_id="cam1-pothole-00001")
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path), json.dumps(BASE), json.dumps(ev)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout)
    assert got["types"] == sorted([*default_registry().names(), "pothole"])  # name order
    assert got["enum"] == got["types"]
    assert got["rules"] == [["pothole", 12.0, ["pothole"]]]
    assert got["event_type"] == "pothole"


def test_a_trusted_model_key_that_is_not_an_ed25519_line_names_the_path_and_the_fix() -> None:
    from gridwatch.edge.config import ConfigError, parse_site_config

    with pytest.raises(ConfigError) as err:
        parse_site_config({"site_id": "s", "gateway_id": "g", "detector": {"type": "onnx", "model": "m.onnx"},
                           "model_update": {"trusted_keys": ["ed25519:AAAA", "ssh-ed25519 AAAAC3Nz"]},
                           "cameras": [{"id": "c", "source": {"type": "usb"}}]})
    assert "model_update.trusted_keys: entry 0" in str(err.value)
    assert "gridwatch models keygen" in str(err.value)


def test_ignore_masks_parse_in_pixels() -> None:
    cfg = parse_site_config(with_camera(ignore=[{"name": "clock", "points": [[0, 0], [120, 0], [120, 20], [0, 20]]}]))
    assert [(m.name, m.points[2]) for m in cfg.cameras[0].ignore] == [("clock", (120.0, 20.0))]
    assert parse_site_config(BASE).cameras[0].ignore == []
