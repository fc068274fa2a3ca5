"""Nodes of the ingestion pipeline: read parameters, call perceptive.eo / sources."""

from __future__ import annotations

import logging

import geopandas as gpd
import pandas as pd
import xarray as xr
from shapely.geometry import box

from perceptive.eo.cube import validate_l1c_cube
from perceptive.eo.grid import Grid, aoi_geometry, grid_for_aoi
from perceptive.sources import get_source

log = logging.getLogger(__name__)


def parse_time_interval(time_interval) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[start, end] as timestamps; a clear error when malformed or reversed."""
    if not isinstance(time_interval, list | tuple) or len(time_interval) != 2:
        raise ValueError(
            f"Parameter 'time_interval' must be [start, end], e.g. ['2017-01-01', '2017-12-31']; "
            f"got {time_interval!r}."
        )
    try:
        start, end = (pd.Timestamp(t) for t in time_interval)
    except ValueError as err:
        raise ValueError(f"Parameter 'time_interval' has a date pandas cannot read: {err}") from err
    if start > end:
        raise ValueError(
            f"Parameter 'time_interval' is reversed: start {start.date()} is after end {end.date()}; "
            "swap the two dates."
        )
    return start, end


def define_aoi(aoi: dict, resolution: float, tile_size: int) -> tuple[Grid, gpd.GeoDataFrame]:
    """The AOI's pixel grid and its split into ``tile_size`` px tiles (the processing unit)."""
    if int(tile_size) < 16:
        raise ValueError(f"Parameter 'tile_size' must be at least 16 px, got {tile_size}.")
    geometry, crs = aoi_geometry(aoi)
    grid = grid_for_aoi(geometry, crs, float(resolution))
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
    grid: Grid, source: str, time_interval, tile_size: int, source_options: dict | None
) -> tuple[xr.Dataset, gpd.GeoDataFrame | None]:
    """One year of L1C over the grid from the chosen source (lazy; written by the catalog)."""
    fetch = get_source(source)
    start, end = parse_time_interval(time_interval)
    options = dict((source_options or {}).get(source) or {})
    cube, labels = fetch(grid, (start, end), int(tile_size), options)
    validate_l1c_cube(cube)
    cube.attrs.update(source=source, time_interval=[str(start.date()), str(end.date())])
    log.info("L1C cube from %r: %d frames, %s", source, cube.sizes["time"], dict(cube.sizes))
    return cube, labels


def import_reference_labels(
    source_labels: gpd.GeoDataFrame | None, reference: dict, grid: Grid
) -> gpd.GeoDataFrame:
    """Snapshot the reference labels into the versioned catalog: the user's file if given,
    else the source's own labels; either way in the grid CRS, so a run can be traced."""
    path = (reference or {}).get("file")
    if path:
        labels = gpd.read_file(path, engine="pyogrio")
        if labels.crs is None:
            raise ValueError(f"Reference labels {path} have no CRS; assign one and retry.")
        labels = labels.to_crs(grid.crs)
    elif source_labels is not None:
        labels = source_labels.to_crs(grid.crs)
    else:
        raise ValueError(
            "No reference labels: this source has none of its own; set parameter "
            "'reference.file' to a GeoPackage/GeoJSON of labelled polygons."
        )
    if labels.empty:
        raise ValueError("Reference labels are empty; give a file with labelled polygons.")
    log.info("Reference labels: %d polygons", len(labels))
    return labels
