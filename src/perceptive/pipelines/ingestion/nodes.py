"""Nodes of the ingestion pipeline: read parameters, call perceptive.eo / sources."""

from __future__ import annotations

import logging

import geopandas as gpd
import pandas as pd
import xarray as xr
from shapely.geometry import box

from perceptive.eo.cube import validate_l1c_cube
from perceptive.eo.grid import Grid
from perceptive.eo.reference import (
    RASTER_CODE_COLUMN,
    is_raster,
    keep_over_aoi,
    map_codes,
    raster_polygons,
)
from perceptive.params import Aoi, Reference
from perceptive.sources import METHODS as SOURCES

log = logging.getLogger(__name__)


def define_aoi(aoi: Aoi, resolution: float, tile_size: int) -> tuple[Grid, gpd.GeoDataFrame]:
    """The AOI's pixel grid and its split into ``tile_size`` px tiles (the processing unit)."""
    grid = aoi.grid(resolution)
    tiles = []
    for row in range(0, grid.height, tile_size):
        for col in range(0, grid.width, tile_size):
            sub = grid.window(
                row, col, min(tile_size, grid.height - row), min(tile_size, grid.width - col)
            )
            tiles.append({"tile_id": f"r{row // tile_size:03d}c{col // tile_size:03d}",
                          "row_off": row, "col_off": col, "height": sub.height, "width": sub.width,
                          "geometry": box(*sub.bounds)})  # fmt: skip
    log.info(
        "AOI grid: %d x %d px at %g m in %s, %d tiles of %d px",
        grid.width, grid.height, grid.resolution, grid.crs.to_string(), len(tiles), tile_size,
    )  # fmt: skip
    return grid, gpd.GeoDataFrame(tiles, crs=grid.crs)


def fetch_l1c(
    grid: Grid, source: dict, time_interval: list[str], tile_size: int
) -> tuple[xr.Dataset, gpd.GeoDataFrame | None]:
    """One year of L1C over the grid from the chosen source (lazy; written by the catalog).

    The cube records its source and time interval, which downstream links read from it."""
    start, end = (pd.Timestamp(t) for t in time_interval)
    cube, labels = SOURCES.run(source, grid, (start, end), tile_size)
    validate_l1c_cube(cube)
    cube.attrs.update(source=dict(source), time_interval=[str(start.date()), str(end.date())])
    log.info(
        "L1C cube from %r: %d frames, %s", source["method"], cube.sizes["time"], dict(cube.sizes)
    )
    return cube, labels


def import_reference_labels(
    source_labels: gpd.GeoDataFrame | None, reference: Reference, grid: Grid
) -> gpd.GeoDataFrame:
    """Snapshot the reference labels into the versioned catalog: the user's file if given
    (vector, or a raster turned into polygons, see :mod:`perceptive.eo.reference`), else the
    source's own labels; either way in the grid CRS, only the features over the AOI, with the
    legend ids (through ``reference.class_mapping`` when given) in ``class_id``, so a run can
    be traced and sampling needs no knowledge of the file's columns or codes."""
    column = reference.class_column
    if reference.file and is_raster(reference.file):
        labels, column = raster_polygons(reference.file, grid), RASTER_CODE_COLUMN
    elif reference.file:
        labels = gpd.read_file(reference.file, engine="pyogrio")
    elif source_labels is not None:
        labels = source_labels
    else:
        raise ValueError(
            "No reference labels: this source has none of its own; set parameter "
            "'reference.file' to a vector file of labelled polygons or a raster of class codes."
        )
    what = f"Reference labels {reference.file}" if reference.file else "The source's labels"
    if labels.empty:
        raise ValueError(f"{what} are empty; give a file with labelled polygons.")
    if labels.crs is None:
        raise ValueError(f"{what} have no CRS; assign one and retry.")
    if column not in labels.columns:
        columns = [c for c in labels.columns if c != labels.geometry.name]
        raise ValueError(
            f"{what} have no column {column!r} (parameter 'reference.class_column'); their "
            f"columns are {columns}."
        )
    labels = keep_over_aoi(labels, grid, what)
    codes = labels[column]
    if reference.class_mapping is not None:
        codes = map_codes(codes, reference.class_mapping, column)
    labels = labels.assign(class_id=codes.to_numpy())
    log.info("Reference labels: %d polygons over the AOI", len(labels))
    return labels
