"""GridLayer: point-in-polygon over a tiny 2x2 grid (with a hole), shared edges, validation, regular grids."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gridwatch.calibration.errors import GridLayerError
from gridwatch.calibration.gcj02 import wgs84_to_gcj02
from gridwatch.calibration.geo import wgs84_to_enu
from gridwatch.calibration.grid import GridCell, GridLayer, make_regular_grid

W, M, E = 116.40, 116.41, 116.42  # lon of the west edge, the middle line, the east edge
S, C, N = 39.90, 39.91, 39.92  # lat of the south edge, the middle line, the north edge


def _square(w: float, s: float, e: float, n: float) -> list[list[float]]:
    return [[w, s], [e, s], [e, n], [w, n], [w, s]]


def _feature(code: Any, geometry: dict[str, Any], **props: Any) -> dict[str, Any]:
    return {"type": "Feature", "properties": {"grid_code": code, **props}, "geometry": geometry}


def _polygon(*rings: list[list[float]]) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": list(rings)}


HOLE = _square(116.403, 39.903, 116.407, 39.907)[::-1]  # clockwise, as RFC 7946 wants for holes

TINY: dict[str, Any] = {
    "type": "FeatureCollection",
    "features": [
        _feature("110105001", _polygon(_square(W, S, M, C), HOLE), name="SW", cleaner="c-01"),
        _feature("110105002", _polygon(_square(M, S, E, C)), name="SE"),
        _feature("110105003", _polygon(_square(W, C, M, N)), name="NW"),
        _feature("110105004", _polygon(_square(M, C, E, N)), name="NE"),
        _feature(
            "ISLAND",
            {
                "type": "MultiPolygon",
                "coordinates": [
                    [_square(116.43, S, 116.44, C)],
                    [_square(116.45, S, 116.46, C)],
                ],
            },
        ),
    ],
}


@pytest.fixture(scope="module")
def layer() -> GridLayer:
    return GridLayer.from_geojson(TINY)


@pytest.mark.parametrize(
    ("lat", "lon", "code"),
    [
        (39.901, 116.401, "110105001"),  # SW, outside its hole
        (39.902, 116.402, "110105001"),
        (39.905, 116.405, None),  # inside the hole
        (39.9035, 116.4065, None),  # inside the hole, off-centre
        (39.905, 116.415, "110105002"),
        (39.915, 116.405, "110105003"),
        (39.915, 116.415, "110105004"),
        (39.905, M, "110105002"),  # on the shared SW|SE edge: the eastern cell
        (C, 116.405, "110105003"),  # on the shared SW|NW edge: the northern cell
        (C, M, "110105004"),  # on the corner shared by all four: the north-eastern cell
        (39.93, 116.41, None),  # north of the layer
        (39.905, 116.435, "ISLAND"),  # first part of a MultiPolygon
        (39.905, 116.455, "ISLAND"),  # second part
        (39.905, 116.445, None),  # between the parts
        (float("nan"), 116.405, None),
    ],
)
def test_cell_at(layer: GridLayer, lat: float, lon: float, code: str | None) -> None:
    cell = layer.cell_at(lat, lon)
    assert (cell.code if cell else None) == code


def test_cell_carries_name_and_properties(layer: GridLayer) -> None:
    cell = layer.cell_at(39.901, 116.401)
    assert cell == GridCell("110105001", "SW")
    assert cell is not None and cell.cleaner == "c-01" and cell.properties["name"] == "SW"
    with pytest.raises(TypeError):
        cell.properties["cleaner"] = "someone else"  # type: ignore[index]
    assert layer.cell_at(39.905, 116.415).cleaner is None  # type: ignore[union-attr]


def test_points_on_shared_edges_belong_to_exactly_one_cell(layer: GridLayer) -> None:
    """Every point of the interior grid lines is claimed by one cell, whatever the feature order."""
    reordered = GridLayer.from_geojson({**TINY, "features": TINY["features"][::-1]})
    on_lines = [(39.90 + k * 0.001, M) for k in range(11, 20)] + [(C, 116.40 + k * 0.001) for k in range(1, 20)]
    for lat, lon in on_lines:
        a, b = layer.cell_at(lat, lon), reordered.cell_at(lat, lon)
        assert a is not None and a == b


def test_overlapping_cells_resolve_to_smallest_code() -> None:
    feats = [_feature("B2", _polygon(_square(W, S, M, C))), _feature("A1", _polygon(_square(W, S, E, C)))]
    for order in (feats, feats[::-1]):
        lay = GridLayer.from_geojson({"type": "FeatureCollection", "features": order})
        assert lay.cell_at(39.905, 116.405).code == "A1"  # type: ignore[union-attr]


def test_cells_at_vectorised(layer: GridLayer) -> None:
    cells = layer.cells_at([39.901, 39.905, 39.915], [116.401, 116.405, 116.415])
    assert [c.code if c else None for c in cells] == ["110105001", None, "110105004"]


def test_integer_codes_and_custom_property_name() -> None:
    doc: dict[str, Any] = {
        "type": "FeatureCollection",
        "features": [_feature(370202001, _polygon(_square(W, S, M, C)))],
    }
    assert GridLayer.from_geojson(doc).cells[0].code == "370202001"
    props: dict[str, Any] = copy.deepcopy(doc)
    props["features"][0]["properties"] = {"WGBM": "370202001001"}
    assert GridLayer.from_geojson(props, code_property="WGBM").cells[0].code == "370202001001"


def _with_bad_third_feature(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(TINY)
    doc["features"][2].update(changes)
    return doc


@pytest.mark.parametrize(
    ("code", "match"),
    [
        ("110105abc", "feature 2: property 'grid_code'"),  # lower case
        ("1101050010010012", "feature 2"),  # 16 characters
        ("", "feature 2"),
        (None, "feature 2"),  # missing
        (True, "feature 2"),
        (3.5, "feature 2"),
        ("1101-05", "feature 2"),
    ],
)
def test_bad_codes_rejected_with_feature_index(code: Any, match: str) -> None:
    doc = copy.deepcopy(TINY)
    doc["features"][2]["properties"]["grid_code"] = code
    with pytest.raises(GridLayerError, match=match):
        GridLayer.from_geojson(doc)


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ({"type": "Feature"}, "FeatureCollection"),
        ({"type": "FeatureCollection", "features": []}, "no features"),
        (_with_bad_third_feature(geometry={"type": "Point", "coordinates": [W, S]}), "feature 2: geometry"),
        (_with_bad_third_feature(geometry=None), "feature 2: missing geometry"),
        (_with_bad_third_feature(geometry=_polygon([[W, S], [M, S], [W, S]])), "3 distinct"),
        (_with_bad_third_feature(geometry=_polygon(_square(450000, 4400000, 450100, 4400100))), "lon/lat"),
        ({**TINY, "crs": {"type": "name", "properties": {"name": "EPSG:3857"}}}, "crs"),
    ],
    ids=["not-collection", "empty", "point", "no-geometry", "degenerate-ring", "projected", "crs"],
)
def test_bad_layers_rejected(doc: dict[str, Any], match: str) -> None:
    with pytest.raises(GridLayerError, match=match):
        GridLayer.from_geojson(doc)


def test_cgcs2000_crs_member_accepted() -> None:
    doc = {**TINY, "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::4490"}}}
    assert len(GridLayer.from_geojson(doc)) == 5


def test_from_file(tmp_path: Path) -> None:
    path = tmp_path / "grid.geojson"
    path.write_text(json.dumps(TINY), encoding="utf-8")
    assert GridLayer.from_geojson(path).cell_at(39.915, 116.415).code == "110105004"  # type: ignore[union-attr]
    (tmp_path / "bad.geojson").write_text("{not json", encoding="utf-8")
    with pytest.raises(GridLayerError, match="cannot read"):
        GridLayer.from_geojson(tmp_path / "bad.geojson")


# ----------------------------------------------------------------------------------- regular grid
LAT0, LON0 = 39.9219, 116.4436


def test_regular_grid_shape_codes_and_cleaners() -> None:
    doc = make_regular_grid(LAT0, LON0, rows=3, cols=4, cell_m=50.0, code_prefix="110105")
    feats = doc["features"]
    assert len(feats) == 12
    codes = [f["properties"]["grid_code"] for f in feats]
    assert codes[0] == "1101050000" and codes[-1] == "1101050203" and len(set(codes)) == 12
    assert feats[5]["properties"]["cleaner"] == "cleaner-06"
    assert (
        make_regular_grid(LAT0, LON0, 1, 1, 10.0, cleaner_prefix=None)["features"][0]["properties"].get("cleaner")
        is None
    )


def test_regular_grid_cells_measure_cell_m() -> None:
    doc = make_regular_grid(LAT0, LON0, rows=2, cols=2, cell_m=80.0, code_prefix="X")
    ring = np.array(doc["features"][0]["geometry"]["coordinates"][0])
    e, n = wgs84_to_enu(ring[:, 1], ring[:, 0], LAT0, LON0)
    assert np.ptp(e) == pytest.approx(80.0, abs=1e-3) and np.ptp(n) == pytest.approx(80.0, abs=1e-3)
    assert e.min() == pytest.approx(-80.0, abs=1e-3) and n.min() == pytest.approx(-80.0, abs=1e-3)


def test_regular_grid_lookup() -> None:
    layer = GridLayer.from_geojson(make_regular_grid(LAT0, LON0, 3, 4, 50.0, "110105"))
    # the centre lies on the line between columns 1 and 2 of row 1: the shared-edge rule picks the east cell
    assert layer.cell_at(LAT0, LON0).code == "1101050102"  # type: ignore[union-attr]
    assert layer.cell_at(LAT0 - 0.0005, LON0 - 0.0010).code == "1101050000"  # type: ignore[union-attr]
    assert layer.cell_at(LAT0 + 0.01, LON0) is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rows": 0}, "rows and cols"),
        ({"cell_m": -1.0}, "cell_m"),
        ({"code_prefix": "110105abc"}, "code_prefix"),
        ({"code_prefix": "123456789012"}, "code_prefix"),
    ],
)
def test_regular_grid_rejects_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"rows": 2, "cols": 2, "cell_m": 50.0, "code_prefix": "110105", **kwargs}
    with pytest.raises(GridLayerError, match=match):
        make_regular_grid(LAT0, LON0, **args)


def test_gcj02_layer_is_converted_on_load() -> None:
    """A layer exported from a Chinese platform in GCJ-02 must answer WGS-84 queries after conversion."""
    wgs_doc = make_regular_grid(LAT0, LON0, 3, 3, 100.0, "110105")
    gcj_doc = copy.deepcopy(wgs_doc)
    for f in gcj_doc["features"]:
        ring = np.array(f["geometry"]["coordinates"][0])
        g_lat, g_lon = wgs84_to_gcj02(ring[:, 1], ring[:, 0])
        f["geometry"]["coordinates"][0] = np.column_stack([g_lon, g_lat]).tolist()
    probe = (LAT0 + 0.0003, LON0 - 0.0004)
    want = GridLayer.from_geojson(wgs_doc).cell_at(*probe)
    assert want is not None
    assert GridLayer.from_geojson(gcj_doc, datum="gcj02").cell_at(*probe) == want
    assert GridLayer.from_geojson(gcj_doc).cell_at(*probe) != want  # read as WGS-84 it is ~500 m off
