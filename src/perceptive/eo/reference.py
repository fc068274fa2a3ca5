"""Reference data as labelled polygons in the grid CRS: vector or raster files, source codes
mapped to legend ids, and the checks that catch a wrong file early.

A **vector** file (GeoPackage, GeoJSON, Shapefile…, any CRS) is read as it is. A **raster**
(any file rasterio reads, any grid and CRS) of class codes is turned into polygons on its own
grid (:func:`raster_polygons`): each 4-connected patch of one code becomes one polygon, and
nodata (or masked) pixels none. Burnt onto the cube grid with the pixel-centre rule of
:func:`perceptive.eo.labels.rasterize_labels`, a cube pixel then takes the code of the
reference pixel that holds its centre, which is nearest-neighbour resampling
(``rasterio.warp.reproject`` with ``Resampling.nearest``), and a patch is a "parcel" that
the train/validation split keeps on one side. Only the part of the raster over the AOI is read.

Reference data that does not overlap the AOI is refused with both extents in the grid CRS
(:func:`keep_over_aoi`); features wholly outside the AOI are dropped. A mapping
``{source code: legend id}`` (:func:`map_codes`) turns a register's own codes into legend ids,
and lists every code it lacks, with counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
from rasterio import features as rio_features
from rasterio.errors import RasterioIOError
from rasterio.warp import transform_bounds
from rasterio.windows import Window, from_bounds
from shapely.geometry import box, shape

from perceptive.eo.grid import Grid

#: The column of the polygons made from a raster that holds its pixel values.
RASTER_CODE_COLUMN = "code"


class ReferenceDataError(ValueError):
    """Reference data that cannot give labels for the AOI; the message names the fix."""


def is_raster(path: str | Path) -> bool:
    """True when rasterio (GDAL's raster drivers) opens ``path``; vector files it refuses."""
    try:
        with rasterio.open(path):
            return True
    except RasterioIOError:
        return False


def raster_polygons(path: str | Path, grid: Grid) -> gpd.GeoDataFrame:
    """The part of a raster of class codes over ``grid`` as polygons in the raster's CRS: one
    per 4-connected patch of one code, its code in :data:`RASTER_CODE_COLUMN`; nodata and
    masked pixels give none. Boundaries are densified to one vertex per pixel edge, so they
    stay on the raster's pixel edges when reprojected. Band 1 is read."""
    with rasterio.open(path) as src:
        if src.crs is None:
            raise ReferenceDataError(
                f"Reference raster {path} has no CRS; assign one (e.g. gdal_edit.py -a_srs "
                "EPSG:32633) and retry."
            )
        window = _window_over(src, grid, path)
        data = src.read(1, window=window, masked=True)
        transform, crs = src.window_transform(window), src.crs
    codes = np.ma.getdata(data)
    integer = np.issubdtype(codes.dtype, np.integer)
    codes = codes.astype(np.int32 if integer else np.float32, copy=False)  # what shapes() takes
    found = rio_features.shapes(
        codes, mask=~np.ma.getmaskarray(data), transform=transform, connectivity=4
    )
    rows = [(shape(geom), int(code) if integer else code) for geom, code in found]
    if not rows:
        raise ReferenceDataError(
            f"Reference raster {path} has no labelled pixel (only nodata) over the AOI; give a "
            "raster with class codes there, or check its nodata value."
        )
    geoms, values = zip(*rows, strict=True)
    polygons = gpd.GeoDataFrame({RASTER_CODE_COLUMN: list(values)}, geometry=list(geoms), crs=crs)
    polygons.geometry = polygons.geometry.segmentize(min(abs(transform.a), abs(transform.e)))
    return polygons


def _window_over(src, grid: Grid, path: str | Path) -> Window:
    """The raster's pixel window over the grid, one pixel wider on each side."""
    left, bottom, right, top = transform_bounds(grid.crs, src.crs, *grid.bounds, densify_pts=21)
    window = from_bounds(left, bottom, right, top, transform=src.transform)
    col0 = max(math.floor(window.col_off) - 1, 0)
    row0 = max(math.floor(window.row_off) - 1, 0)
    col1 = min(math.ceil(window.col_off + window.width) + 1, src.width)
    row1 = min(math.ceil(window.row_off + window.height) + 1, src.height)
    if col1 <= col0 or row1 <= row0:
        extent = transform_bounds(src.crs, grid.crs, *src.bounds, densify_pts=21)
        raise no_overlap(f"Reference raster {path}", extent, grid)
    return Window(col0, row0, col1 - col0, row1 - row0)


def no_overlap(what: str, extent, grid: Grid) -> ReferenceDataError:
    """The error for reference data outside the AOI: both extents, in the grid CRS."""

    def rounded(bounds) -> tuple[float, ...]:
        return tuple(round(float(v), 1) for v in bounds)

    return ReferenceDataError(
        f"{what} does not overlap the AOI. In {grid.crs.to_string()}, it spans "
        f"{rounded(extent)} and the AOI grid spans {rounded(grid.bounds)} (left, bottom, "
        "right, top); give reference data for this AOI, or check the CRS of the file."
    )


def keep_over_aoi(labels: gpd.GeoDataFrame, grid: Grid, what: str) -> gpd.GeoDataFrame:
    """``labels`` in the grid CRS, without the features wholly outside the AOI; raises a
    :class:`ReferenceDataError` with both extents when none is left."""
    projected = labels.to_crs(grid.crs)
    over = projected.intersects(box(*grid.bounds))
    if not over.any():
        raise no_overlap(what, projected.total_bounds, grid)
    return projected[over]


def map_codes(codes: pd.Series, mapping: Mapping[str, int], column: str) -> pd.Series:
    """Legend ids for the source's ``codes`` through ``mapping`` (keys: the codes as text, so
    ``211``, ``211.0`` and ``"211"`` are one code). Every code missing from the mapping is
    listed, with its number of features, in one :class:`ReferenceDataError`. Empty codes stay
    empty."""
    keys = codes.map(_code_key)
    ids = keys.map(dict(mapping))
    missing = keys[ids.isna() & keys.notna()].value_counts()
    if len(missing):
        listed = ", ".join(f"{code!r}: {n}" for code, n in missing.items())
        raise ReferenceDataError(
            f"{len(missing)} code(s) of column {column!r} are not in parameter "
            f"'reference.class_mapping' (code: number of polygons): {listed}. Add each to the "
            "mapping as `code: legend id` (0 leaves its polygons unlabelled)."
        )
    return ids if ids.isna().any() else ids.astype(np.int64)


def _code_key(value) -> str | None:
    if pd.isna(value):
        return None
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)
