"""Unit grids (单元网格): which grid cell, and so which cleaner, owns a point on the ground.

A city publishes its grid layer as polygons with a grid code; a case goes to the cell that contains the
incident's WGS-84 position. This module reads that layer from GeoJSON and answers `cell_at(lat, lon)` with a
pure-numpy point-in-polygon test (no shapely on the edge box).

Rules worth knowing:

- Holes are respected (even-odd rule over all rings of a polygon): a park cut out of a street grid is not
  in it.
- A point on an edge shared by two cells belongs to exactly one of them: the crossing test is half-open (a
  point on a shared edge goes to the cell east / north of it), and every edge is evaluated with its
  endpoints in a canonical order, so two neighbours compute bit-identical answers for their common edge.
- If cells overlap (bad layer data), the lexicographically smallest code wins, so the answer never depends on
  feature order.
- GeoJSON is WGS-84 (RFC 7946). Chinese platforms often export their layers in GCJ-02 or BD-09: pass
  `datum="gcj02"` / `"bd09"` and the vertices are converted to WGS-84 on load.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from gridwatch.calibration.errors import GridLayerError
from gridwatch.calibration.geo import enu_to_wgs84

FloatArray = npt.NDArray[np.float64]
Datum = Literal["wgs84", "gcj02", "bd09"]

GRID_CODE_RE = re.compile(r"^[0-9A-Z]{1,15}$")


@dataclass(frozen=True)
class GridCell:
    """One unit grid: its code (the case-routing key), display name and all feature properties.

    Equality and hashing use `code` and `name` only; `properties` is a read-only view when loaded from a layer.
    """

    code: str
    name: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def cleaner(self) -> str | None:
        """The responsible cleaner / grid worker id, when the layer carries a `cleaner` property."""
        value = self.properties.get("cleaner")
        return None if value is None else str(value)


@dataclass(frozen=True)
class _Polygon:
    """One polygon: rings as (M, 2) [lon, lat] arrays (first = exterior, rest = holes) and its bbox."""

    rings: tuple[FloatArray, ...]
    bbox: tuple[float, float, float, float]  # lon_min, lat_min, lon_max, lat_max


def _ring_crossings(ring: FloatArray, lon: float, lat: float) -> int:
    """Number of ring edges crossed by a ray from (lon, lat) towards +lon (half-open rule)."""
    a, b = ring[:-1], ring[1:]
    # Canonical endpoint order (lower latitude first) so a shared edge is computed identically by both cells.
    swap = b[:, 1] < a[:, 1]
    lo = np.where(swap[:, None], b, a)
    hi = np.where(swap[:, None], a, b)
    straddles = (lo[:, 1] <= lat) & (hi[:, 1] > lat)
    if not np.any(straddles):
        return 0
    lo, hi = lo[straddles], hi[straddles]
    x_cross = lo[:, 0] + (lat - lo[:, 1]) * (hi[:, 0] - lo[:, 0]) / (hi[:, 1] - lo[:, 1])
    return int(np.count_nonzero(lon < x_cross))


def _polygon_contains(poly: _Polygon, lon: float, lat: float) -> bool:
    x0, y0, x1, y1 = poly.bbox
    if not (x0 <= lon <= x1 and y0 <= lat <= y1):
        return False
    return sum(_ring_crossings(r, lon, lat) for r in poly.rings) % 2 == 1


def _to_wgs84(ring: FloatArray, datum: Datum) -> FloatArray:
    if datum == "wgs84":
        return ring
    from gridwatch.calibration.gcj02 import bd09_to_gcj02, gcj02_to_wgs84

    lat, lon = ring[:, 1], ring[:, 0]
    if datum == "bd09":
        lat, lon = bd09_to_gcj02(lat, lon)
    w_lat, w_lon = gcj02_to_wgs84(lat, lon)
    return np.column_stack([w_lon, w_lat])


def _parse_ring(raw: object, where: str, datum: Datum) -> FloatArray:
    try:
        ring = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise GridLayerError(f"{where}: ring is not a list of [lon, lat] positions ({exc})") from None
    if ring.ndim != 2 or ring.shape[1] < 2:
        raise GridLayerError(f"{where}: ring must be a list of [lon, lat] positions, got shape {ring.shape}")
    ring = ring[:, :2]
    if not np.all(np.isfinite(ring)):
        raise GridLayerError(f"{where}: ring has non-finite coordinates")
    if np.any(np.abs(ring[:, 0]) > 180) or np.any(np.abs(ring[:, 1]) > 90):
        raise GridLayerError(
            f"{where}: coordinates outside lon/lat range; GeoJSON must be in degrees (WGS-84 / CGCS2000), "
            "reproject a projected layer (e.g. a Gauss-Kruger CRS) before loading"
        )
    if not np.array_equal(ring[0], ring[-1]):
        ring = np.vstack([ring, ring[:1]])  # tolerate unclosed rings; RFC 7946 requires closure
    if len(np.unique(ring[:-1], axis=0)) < 3:
        raise GridLayerError(f"{where}: ring needs at least 3 distinct positions")
    return _to_wgs84(ring, datum)


def _parse_polygon(raw: object, where: str, datum: Datum) -> _Polygon:
    if not isinstance(raw, Sequence) or isinstance(raw, str) or len(raw) == 0:
        raise GridLayerError(f"{where}: polygon must be a non-empty list of rings")
    rings = tuple(_parse_ring(r, f"{where} ring {i}", datum) for i, r in enumerate(raw))
    ext = rings[0]
    bbox = (float(ext[:, 0].min()), float(ext[:, 1].min()), float(ext[:, 0].max()), float(ext[:, 1].max()))
    return _Polygon(rings=rings, bbox=bbox)


def _parse_geometry(geom: object, where: str, datum: Datum) -> tuple[_Polygon, ...]:
    if not isinstance(geom, Mapping):
        raise GridLayerError(f"{where}: missing geometry")
    kind, coords = geom.get("type"), geom.get("coordinates")
    if kind == "Polygon":
        return (_parse_polygon(coords, where, datum),)
    if kind == "MultiPolygon" and isinstance(coords, Sequence) and len(coords) > 0:
        return tuple(_parse_polygon(p, f"{where} part {i}", datum) for i, p in enumerate(coords))
    raise GridLayerError(f"{where}: geometry must be a Polygon or a non-empty MultiPolygon, got {kind!r}")


def _parse_code(value: object, where: str, code_property: str) -> str:
    """Grid codes are strings; non-negative integers are accepted (some exports write codes as numbers)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        value = str(value)
    if not isinstance(value, str) or not GRID_CODE_RE.match(value):
        raise GridLayerError(f"{where}: property {code_property!r} must be 1-15 characters of [0-9A-Z], got {value!r}")
    return value


@dataclass(frozen=True)
class _Entry:
    cell: GridCell
    polygons: tuple[_Polygon, ...]


class GridLayer:
    """A city's grid layer: answers which `GridCell` contains a WGS-84 point."""

    def __init__(self, entries: Sequence[_Entry]) -> None:
        self._entries = tuple(entries)
        self._polys = tuple(p for e in self._entries for p in e.polygons)
        self._owner = np.array([i for i, e in enumerate(self._entries) for _ in e.polygons], dtype=np.int64)
        self._boxes = np.array([p.bbox for p in self._polys], dtype=np.float64).reshape(-1, 4)

    @classmethod
    def from_geojson(
        cls,
        source: str | Path | Mapping[str, Any],
        code_property: str = "grid_code",
        name_property: str = "name",
        datum: Datum = "wgs84",
    ) -> GridLayer:
        """Read a FeatureCollection of Polygon / MultiPolygon features.

        `code_property` names the property holding the grid code (layers differ: `grid_code`, `WGBM`, ...).
        `datum` is the datum the file's coordinates are in; anything but WGS-84 is converted on load.
        Raises `GridLayerError` naming the feature index for any feature that cannot be used.
        """
        doc = _load(source)
        if doc.get("type") != "FeatureCollection" or not isinstance(doc.get("features"), list):
            raise GridLayerError("grid layer must be a GeoJSON FeatureCollection with a 'features' list")
        _check_crs(doc)
        entries = [_parse_feature(f, i, code_property, name_property, datum) for i, f in enumerate(doc["features"])]
        if not entries:
            raise GridLayerError("grid layer has no features")
        return cls(entries)

    @property
    def cells(self) -> tuple[GridCell, ...]:
        """All cells, in file order."""
        return tuple(e.cell for e in self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def cell_at(self, lat: float, lon: float) -> GridCell | None:
        """The cell containing (lat, lon) in WGS-84, or None if no cell covers it or the input is NaN."""
        if not (np.isfinite(lat) and np.isfinite(lon)):
            return None
        b = self._boxes
        near = (b[:, 0] <= lon) & (lon <= b[:, 2]) & (b[:, 1] <= lat) & (lat <= b[:, 3])
        hits = {
            int(self._owner[k])
            for k in np.flatnonzero(near)
            if _polygon_contains(self._polys[k], float(lon), float(lat))
        }
        if not hits:
            return None
        return min((self._entries[i].cell for i in hits), key=lambda c: c.code)

    def cells_at(self, lats: npt.ArrayLike, lons: npt.ArrayLike) -> list[GridCell | None]:
        """`cell_at` for many points."""
        la = np.asarray(lats, dtype=np.float64).ravel()
        lo = np.asarray(lons, dtype=np.float64).ravel()
        return [self.cell_at(float(a), float(o)) for a, o in zip(la, lo, strict=True)]


def _load(source: str | Path | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(source, Mapping):
        return source
    path = Path(source)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise GridLayerError(f"cannot read grid layer {path}: {exc}") from exc
    if not isinstance(doc, Mapping):
        raise GridLayerError(f"{path}: not a GeoJSON object")
    return doc


def _check_crs(doc: Mapping[str, Any]) -> None:
    """Reject a (pre-RFC 7946) `crs` member naming a projected CRS; WGS-84 / CGCS2000 degrees pass."""
    crs = doc.get("crs")
    if crs is None:
        return
    name = str(crs.get("properties", {}).get("name", "")) if isinstance(crs, Mapping) else str(crs)
    if not re.search(r"(4326|4490|CRS84)\b", name):
        raise GridLayerError(
            f"grid layer crs {name!r} is not WGS-84 / CGCS2000 degrees; reproject it to EPSG:4326 first"
        )


def _parse_feature(feature: object, index: int, code_property: str, name_property: str, datum: Datum) -> _Entry:
    where = f"feature {index}"
    if not isinstance(feature, Mapping) or feature.get("type") != "Feature":
        raise GridLayerError(f"{where}: not a GeoJSON Feature")
    props = feature.get("properties") or {}
    if not isinstance(props, Mapping):
        raise GridLayerError(f"{where}: properties must be an object")
    code = _parse_code(props.get(code_property), where, code_property)
    name = props.get(name_property)
    cell = GridCell(code, None if name is None else str(name), MappingProxyType(dict(props)))
    return _Entry(cell=cell, polygons=_parse_geometry(feature.get("geometry"), where, datum))


def make_regular_grid(
    lat0: float,
    lon0: float,
    rows: int,
    cols: int,
    cell_m: float,
    code_prefix: str = "110105",
    cleaner_prefix: str | None = "cleaner-",
) -> dict[str, Any]:
    """GeoJSON FeatureCollection of `rows` x `cols` square cells of `cell_m` metres, centred on (lat0, lon0).

    For demos and tests: the synthetic camera gets a grid layer around it. Row 0 is the southernmost,
    column 0 the westernmost; the code is `code_prefix` + 2-digit row + 2-digit column (the default prefix
    is a GB/T 2260 county code, Beijing Chaoyang). Neighbouring cells share exactly the same vertex
    coordinates, so the shared-edge rule of `GridLayer.cell_at` applies. Cells carry `cleaner` =
    `cleaner_prefix` + 2-digit index (1-based, row-major).
    """
    if rows < 1 or cols < 1 or rows > 100 or cols > 100:
        raise GridLayerError(f"rows and cols must be in 1..100, got {rows} x {cols}")
    if not cell_m > 0:
        raise GridLayerError(f"cell_m must be positive, got {cell_m}")
    if not GRID_CODE_RE.match(code_prefix + "0000"):
        raise GridLayerError(f"code_prefix must be at most 11 characters of [0-9A-Z], got {code_prefix!r}")
    lat_v, lon_v = _lattice(lat0, lon0, rows, cols, cell_m)
    features = [
        _regular_cell(lat_v, lon_v, r, c, f"{code_prefix}{r:02d}{c:02d}", _cleaner(cleaner_prefix, r * cols + c))
        for r in range(rows)
        for c in range(cols)
    ]
    return {"type": "FeatureCollection", "features": features}


def _cleaner(prefix: str | None, index: int) -> str | None:
    return None if prefix is None else f"{prefix}{index + 1:02d}"


def _lattice(lat0: float, lon0: float, rows: int, cols: int, cell_m: float) -> tuple[FloatArray, FloatArray]:
    """Vertex latitudes (rows + 1) and longitudes (cols + 1), via the local tangent plane at the centre."""
    north = (np.arange(rows + 1, dtype=np.float64) - rows / 2.0) * cell_m
    east = (np.arange(cols + 1, dtype=np.float64) - cols / 2.0) * cell_m
    lat_v, _ = enu_to_wgs84(np.zeros_like(north), north, lat0, lon0)
    _, lon_v = enu_to_wgs84(east, np.zeros_like(east), lat0, lon0)
    return np.asarray(lat_v, dtype=np.float64), np.asarray(lon_v, dtype=np.float64)


def _regular_cell(
    lat_v: FloatArray, lon_v: FloatArray, r: int, c: int, code: str, cleaner: str | None
) -> dict[str, Any]:
    w, e, s, n = float(lon_v[c]), float(lon_v[c + 1]), float(lat_v[r]), float(lat_v[r + 1])
    props: dict[str, Any] = {"grid_code": code, "name": f"row {r} col {c}"}
    if cleaner is not None:
        props["cleaner"] = cleaner
    ring = [[w, s], [e, s], [e, n], [w, n], [w, s]]  # counter-clockwise exterior (RFC 7946)
    return {"type": "Feature", "properties": props, "geometry": {"type": "Polygon", "coordinates": [ring]}}
