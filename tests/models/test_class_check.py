"""Class names in the config are checked against the model's classes at start-up (defect: `classes: [cars]`
was accepted and the camera silently reported nothing)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gridwatch.edge.config import SiteConfig, parse_site_config
from gridwatch.models.base import ModelConfigError
from gridwatch.models.classes import class_lists, verify_classes_known
from gridwatch.models.registry import load_detector
from tests.models.conftest import DEMO_CLASSES, ModelFactory


def site(model: Path, detector: dict[str, Any] | None = None, **incidents: Any) -> SiteConfig:
    return parse_site_config({
        "site_id": "s1", "gateway_id": "gw1",
        "detector": {"type": "onnx", "model": str(model), **(detector or {})},
        "cameras": [{"id": "cam1", "source": {"type": "file", "path": "clip.mp4"}, "incidents": incidents}],
    })


@pytest.mark.parametrize(("used", "needle"), [
    ({"detector.classes": ["cars"]}, "detector.classes: 'cars' is not a class of model m; did you mean 'car'?"),
    ({"cameras.0.incidents.littering.owner_classes": ["persn"]}, "did you mean 'person'?"),
    ({"cameras.0.incidents.fallen_wire.classes": ["zebra"]}, "'zebra' is not a class of model m; the model knows"),
])
def test_an_unknown_class_names_the_path_the_name_and_the_closest_known(used: dict[str, list[str]],
                                                                         needle: str) -> None:
    with pytest.raises(ModelConfigError) as err:
        verify_classes_known(used, DEMO_CLASSES, model="m")
    assert needle in str(err.value)


def test_known_classes_and_usable_presets_pass() -> None:
    verify_classes_known({"detector.classes": ["car", "person"]}, DEMO_CLASSES, model="m",
                         defaults={"cameras.0.incidents.illegal_parking.classes": ["car", "truck", "bus"]})


def test_a_preset_none_of_whose_classes_exist_is_an_error() -> None:
    with pytest.raises(ModelConfigError, match=r"cameras\.0\.incidents\.littering\.object_classes: none of"):
        verify_classes_known({}, ["person", "car"], model="coco",
                             defaults={"cameras.0.incidents.littering.object_classes": ["litter"]})


def test_class_lists_finds_every_list_with_its_path_and_skips_disabled_rules(tmp_path: Path) -> None:
    cfg = site(tmp_path / "m.onnx", {"classes": ["car"]},
               illegal_parking={"classes": ["cars"]}, littering={}, street_vendor={"enabled": False})
    explicit, default = class_lists(cfg)
    assert explicit == {"detector.classes": ["car"], "cameras.0.incidents.illegal_parking.classes": ["cars"]}
    assert default == {"cameras.0.incidents.littering.object_classes": ["litter", "unknown_object"],
                       "cameras.0.incidents.littering.owner_classes": ["person"]}


def _tiny(tiny_model: ModelFactory) -> Path:
    onnx_path, _ = tiny_model(np.zeros((1, 9, 4), dtype=np.float32))
    return onnx_path


def test_load_detector_rejects_an_unknown_detector_class(tiny_model: ModelFactory) -> None:
    cfg = site(_tiny(tiny_model), {"classes": ["cars"]})
    with pytest.raises(ModelConfigError, match=r"detector\.classes: 'cars' .*did you mean 'car'"):
        load_detector(cfg.detector, site=cfg)


def test_load_detector_rejects_an_unknown_rule_class(tiny_model: ModelFactory) -> None:
    cfg = site(_tiny(tiny_model), illegal_parking={"classes": ["cars"]})
    load_detector(cfg.detector)  # the detector alone is fine: only the site's rules are wrong
    with pytest.raises(ModelConfigError, match=r"cameras\.0\.incidents\.illegal_parking\.classes: 'cars'"):
        load_detector(cfg.detector, site=cfg)


def test_a_rule_class_the_detector_filter_drops_is_an_error(tiny_model: ModelFactory) -> None:
    cfg = site(_tiny(tiny_model), {"classes": ["car"]}, littering={"object_classes": ["litter"]})
    with pytest.raises(ModelConfigError, match=r"littering\.object_classes: 'litter' .*filtered by detector"):
        load_detector(cfg.detector, site=cfg)


def test_a_valid_site_loads(tiny_model: ModelFactory) -> None:
    cfg = site(_tiny(tiny_model), illegal_parking={}, littering={"owner_classes": ["person"]})
    assert load_detector(cfg.detector, site=cfg).info.class_names == tuple(DEMO_CLASSES)


def test_scene_change_regions_are_known_whatever_the_model() -> None:
    from gridwatch.models.classes import NOT_FROM_THE_MODEL
    from gridwatch.pipelines.rule_config import REGION_CLASS

    assert {REGION_CLASS} == NOT_FROM_THE_MODEL
    verify_classes_known({"cameras.0.incidents.exposed_garbage.classes": ["unknown_object"]}, ["car"], model="coco",
                         defaults={"cameras.0.incidents.littering.object_classes": ["litter", "unknown_object"]})
