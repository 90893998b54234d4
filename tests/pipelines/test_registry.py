"""Every registered incident type, table-driven: its config, its defaults, its rule, its category.

A new type module in `pipelines/incidents/` is picked up by every test here; it needs one entry in `SCENES` (a
synthetic scene in which its rule must fire), which `test_every_type_has_a_scene` asks for by name.
"""

from __future__ import annotations

import doctest
import types
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest
from pydantic import BaseModel, Field, ValidationError

import gridwatch.pipelines.registry as registry_module
from gridwatch.central.categories import load_categories
from gridwatch.pipelines.motion import StillnessParams
from gridwatch.pipelines.registry import (
    IncidentType,
    Registry,
    RegistryError,
    UnknownIncidentType,
    default_registry,
    discover,
)
from gridwatch.pipelines.rule_config import DwellRuleConfig, RuleConfig, StillnessConfig
from gridwatch.pipelines.types import IncidentUpdate, Observation
from gridwatch.pipelines.zones import Zone
from tests.pipelines.helpers import obs, times

REGISTRY = default_registry()
TYPES = list(REGISTRY)
SHIPPED = {"illegal_parking", "street_vendor", "littering", "exposed_garbage", "fallen_wire", "overflowing_bin"}
FPS = 2.0
ZONE_A = Zone("a", ((0, 100), (400, 100), (400, 300), (0, 300)))
ZONE_B = Zone("b", ((400, 100), (800, 100), (800, 300), (400, 300)))

Script = Callable[[float], list[Observation]]


@dataclass(frozen=True)
class Scene:
    """Observations over time in which the rule must start one incident at `fires_at` (capture seconds)."""

    script: Script
    duration_s: float
    fires_at: float


def still_object(cfg: Any, x: float, y: float) -> Scene:
    """One object of the rule's first class standing still at (x, y) from t=0: fires after the dwell."""
    cls = cfg.classes[0]
    return Scene(lambda t: [obs(1, cls, x, y)], cfg.dwell_s + 10, cfg.dwell_s)


def dropped_and_left(cfg: Any, x: float, y: float) -> Scene:
    """A person walks to (x, y), drops an object at t=5, walks off from t=7 at 60 px/s (box height 80 px).

    Without calibration the owner is gone beyond `leave_distance_rel` (2) box heights = 160 px, at ~9.7 s.
    """
    owner, thing = cfg.owner_classes[0], cfg.object_classes[0]

    def script(t: float) -> list[Observation]:
        px = x - 200 + 40 * t if t < 5 else (x if t < 7 else x + 60 * (t - 7))
        out = [obs(1, owner, px, y - 2, w=30, h=80)]
        if t >= 5:
            out.append(obs(2, thing, x + 5, y, w=12, h=10))
        return out

    return Scene(script, 10 + cfg.dwell_s + 10, 7 + 160 / 60 + cfg.dwell_s)


def bin_with_garbage(cfg: Any, x: float, y: float) -> Scene:
    """A bin (the first of `bin_classes`) standing at (x, y) with garbage heaped on it from t=0: fires after the
    dwell."""
    bin_, garbage = cfg.bin_classes[0], cfg.garbage_classes[0]
    return Scene(lambda t: [obs(1, bin_, x, y, w=40, h=60), obs(2, garbage, x, y - 50, w=50, h=25)],
                 cfg.dwell_s + 10, cfg.dwell_s)


SCENES: dict[str, Callable[[Any, float, float], Scene]] = {
    "overflowing_bin": bin_with_garbage,
    "illegal_parking": still_object,
    "street_vendor": still_object,
    "exposed_garbage": still_object,
    "fallen_wire": still_object,
    "littering": dropped_and_left,
}


def run(rule: Any, scene: Scene, rename: str | None = None) -> list[IncidentUpdate]:
    out: list[IncidentUpdate] = []
    for t in times(scene.duration_s, fps=FPS):
        seen = scene.script(t)
        if rename is not None:
            seen = [replace(o, class_name=rename) for o in seen]
        out.extend(rule.update(seen, t))
    return out


def by_name(t: IncidentType[Any]) -> str:
    return t.name


def test_the_shipped_types_are_registered_in_name_order() -> None:
    assert set(REGISTRY.names()) >= SHIPPED
    assert list(REGISTRY.names()) == sorted(REGISTRY.names())


def test_every_type_has_a_scene() -> None:
    missing = set(REGISTRY.names()) - set(SCENES)
    assert not missing, f"add a synthetic scene for {sorted(missing)} to SCENES in this file"


@pytest.mark.parametrize("incident", TYPES, ids=by_name)
def test_config_defaults_validate_and_unknown_keys_are_errors(incident: IncidentType[Any]) -> None:
    cfg = incident.config.model_validate({})
    assert isinstance(cfg, RuleConfig) and cfg.enabled and cfg.zones == []
    with pytest.raises(ValidationError, match="Extra inputs"):
        incident.config.model_validate({"dwel_s": 3})
    with pytest.raises(ValidationError, match="dwell_s"):
        incident.config.model_validate({"dwell_s": 0})


def _fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for name, info in model.model_fields.items():
        out.append((prefix + name, info))
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            out += _fields(info.annotation, f"{prefix}{name}.")
    return out


@pytest.mark.parametrize("incident", TYPES, ids=by_name)
def test_config_fields_have_descriptions_and_numbers_have_bounds(incident: IncidentType[Any]) -> None:
    for path, info in _fields(incident.config):
        assert info.description, f"{incident.name}.{path}: add a description (it is the user's documentation)"
        if info.annotation in (int, float):
            bounds = [m for m in info.metadata if type(m).__name__ in ("Gt", "Ge", "Lt", "Le")]
            assert len(bounds) >= 2, f"{incident.name}.{path}: give it a lower and an upper bound"


@pytest.mark.parametrize("incident", TYPES, ids=by_name)
def test_factory_builds_a_rule_of_its_type(incident: IncidentType[Any]) -> None:
    rule = incident.build(incident.config.model_validate({}), (ZONE_A,), "cam1")
    assert rule.incident_type == incident.name
    assert rule.update([], 0.0) == [] and rule.flush(0.0, "shutdown") == [] and rule.export() == []


@pytest.mark.parametrize("incident", TYPES, ids=by_name)
def test_rule_starts_after_the_default_dwell_on_a_synthetic_track(incident: IncidentType[Any]) -> None:
    cfg = incident.config.model_validate({})
    scene = SCENES[incident.name](cfg, 200, 200)
    ups = run(incident.build(cfg, (), "cam1"), scene)
    started = [u for u in ups if u.phase == "started"]
    assert len(started) == 1, ups
    assert started[0].type == incident.name
    assert started[0].ts == pytest.approx(scene.fires_at, abs=1.5 / FPS)
    assert started[0].ts - started[0].started_ts >= cfg.dwell_s - 1 / FPS


@pytest.mark.parametrize("incident", TYPES, ids=by_name)
def test_rule_ignores_classes_its_config_does_not_name(incident: IncidentType[Any]) -> None:
    cfg = incident.config.model_validate({})
    assert run(incident.build(cfg, (), "cam1"), SCENES[incident.name](cfg, 200, 200), rename="zebra") == []


@pytest.mark.parametrize("incident", TYPES, ids=by_name)
def test_rule_watches_only_the_zones_its_config_names(incident: IncidentType[Any]) -> None:
    cfg = incident.config.model_validate({"zones": ["b"]})
    rule = incident.build(cfg, (ZONE_A, ZONE_B), "cam1")
    assert [u for u in run(rule, SCENES[incident.name](cfg, 200, 200)) if u.phase == "started"] == []
    rule = incident.build(cfg, (ZONE_A, ZONE_B), "cam1")
    started = [u for u in run(rule, SCENES[incident.name](cfg, 600, 200)) if u.phase == "started"]
    assert [u.zone for u in started] == ["b"]


@pytest.mark.parametrize("incident", TYPES, ids=by_name)
def test_shipped_category_table_has_the_types_default_code(incident: IncidentType[Any]) -> None:
    table = load_categories()
    category = table.for_type(incident.name)
    assert category is not None, f"add {incident.name} to central/data/categories.yaml"
    assert category.code == incident.default_category, (incident.name, category.code, incident.categories)


def test_defaults_users_get_are_the_config_models() -> None:
    """What the deleted `defaults()` presets checked, now on the one source of defaults (the config models)."""
    cfg = {t.name: t.config.model_validate({}) for t in REGISTRY}
    assert (cfg["illegal_parking"].dwell_s, cfg["illegal_parking"].end_after_s) == (60.0, 15.0)
    assert (cfg["street_vendor"].dwell_s, cfg["street_vendor"].end_after_s) == (120.0, 15.0)
    assert cfg["fallen_wire"].dwell_s < 10.0
    assert cfg["exposed_garbage"].dwell_s >= 300.0
    assert cfg["littering"].dwell_s == 5.0
    assert cfg["fallen_wire"].stillness.tolerance_rel > cfg["illegal_parking"].stillness.tolerance_rel
    assert cfg["illegal_parking"].classes == ["car", "truck", "bus", "motorcycle"]
    assert cfg["street_vendor"].classes == ["stall", "cart"]
    assert cfg["street_vendor"].goods_classes == cfg["fallen_wire"].classes[1:] == ["unknown_object"]


def test_stillness_config_defaults_match_the_stillness_params() -> None:
    cfg, params = StillnessConfig(), StillnessParams()
    assert StillnessParams.from_config(cfg) == params


# --- the registry itself -------------------------------------------------------------------------------------
class _ThingConfig(DwellRuleConfig):
    dwell_s: float = Field(4.0, gt=0, le=100, description="d")
    classes: list[str] = Field(default_factory=lambda: ["thing"], min_length=1, description="c")


def _thing(name: str = "thing_left", **kw: Any) -> IncidentType[Any]:
    fields: dict[str, Any] = {"config": _ThingConfig, "factory": REGISTRY.get("illegal_parking").factory,
                              "categories": ("06036",), "description": "A thing is left."}
    fields.update(kw)
    return IncidentType(name, **fields)


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(UnknownIncidentType) as info:
        REGISTRY.get("ilegal_parking")
    msg = str(info.value)
    assert "did you mean 'illegal_parking'" in msg
    assert all(name in msg for name in REGISTRY.names())


def test_register_rejects_duplicates() -> None:
    reg = Registry([_thing()])
    with pytest.raises(RegistryError, match="registered twice"):
        reg.register(_thing())


@pytest.mark.parametrize(
    "kw, fragment",
    [
        ({"name": "Thing-Left"}, "lower_snake_case"),
        ({"config": BaseModel}, "RuleConfig"),
        ({"config": DwellRuleConfig}, "give these fields a default: dwell_s, classes"),
        ({"categories": ()}, "five-digit"),
        ({"categories": ("9009",)}, "five-digit"),
        ({"description": ""}, "one-line description"),
    ],
)
def test_bad_types_are_refused_with_the_fix(kw: dict[str, Any], fragment: str) -> None:
    with pytest.raises(RegistryError, match=fragment):
        _thing(**kw)


def test_discovery_wants_one_type_per_module_named_after_it(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import sys

    pkg = types.ModuleType(tmp_path.name)
    pkg.__path__ = [str(tmp_path)]
    monkeypatch.setitem(sys.modules, pkg.__name__, pkg)

    def discover_fresh() -> Registry:
        importlib.invalidate_caches()  # files were just written: do not trust the finders' directory cache
        for name in [m for m in sys.modules if m.startswith(f"{pkg.__name__}.")]:
            del sys.modules[name]
        return discover(pkg)

    (tmp_path / "renamed.py").write_text("from gridwatch.pipelines.registry import default_registry\n"
                                         "INCIDENT = default_registry().get('illegal_parking')\n")
    with pytest.raises(RegistryError, match=r"name the module after its type \(illegal_parking.py\)"):
        discover_fresh()
    (tmp_path / "renamed.py").unlink()
    (tmp_path / "helper.py").write_text("X = 1\n")
    with pytest.raises(RegistryError, match="defines no INCIDENT"):
        discover_fresh()
    (tmp_path / "helper.py").rename(tmp_path / "_helper.py")
    assert len(discover_fresh()) == 0
    (tmp_path / "_helper.py").unlink()
    discover_fresh()  # leaves no test modules behind in sys.modules


def test_the_how_to_example_in_the_registry_docstring_runs() -> None:
    result = doctest.testmod(registry_module, raise_on_error=False, verbose=False)
    assert result.attempted >= 5 and result.failed == 0
