"""Nodes of the ingestion pipeline: read parameters, call perceptive.eo / sources."""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import xarray as xr
from shapely.geometry.base import BaseGeometry

from perceptive.eo.aoi import aoi_mask, check_size, split_tiles, utm_zones_crossed
from perceptive.eo.cube import validate_l1c_cube
from perceptive.eo.grid import Grid, aoi_geometry, grid_of, reproject_geometry
from perceptive.eo.reference import (
    RASTER_CODE_COLUMN,
    is_raster,
    keep_over_aoi,
    map_codes,
    raster_polygons,
)
from perceptive.params import Aoi, Reference
from perceptive.sources import METHODS as SOURCES
from perceptive.sources import SourceRequest

log = logging.getLogger(__name__)


def define_aoi(
    aoi: Aoi, resolution: float, tile_size: int, time_interval: list[str], max_cube_gb: float
) -> tuple[Grid, BaseGeometry, gpd.GeoDataFrame]:
    """The AOI's pixel grid (10 m, UTM zone of its centre), its polygon in the grid CRS, and
    its split into ``tile_size`` px tiles (the unit of download and processing). An AOI whose
    cube would exceed ``max_cube_gb`` is refused before anything is read."""
    geometry, crs = aoi_geometry(aoi.model_dump())
    grid = aoi.grid(resolution)
    zones = utm_zones_crossed(geometry, crs)
    if len(zones) > 1:
        log.warning(
            "The AOI spans UTM zones %s; it is reprojected into %s (its centre's zone), where "
            "pixels far from the zone get distorted. Split the AOI by zone for exact 10 m "
            "pixels everywhere.",
            ", ".join(zones), grid.crs.to_string(),
        )  # fmt: skip
    polygon = reproject_geometry(geometry, crs, grid.crs)
    size = check_size(grid, polygon, *time_interval, max_cube_gb)
    tiles = split_tiles(grid, polygon, tile_size)
    log.info(
        "AOI grid: %d x %d px at %g m in %s, %d tiles of %d px (%d touch the AOI), L1C cube "
        "about %.1f GB uncompressed",
        grid.width, grid.height, grid.resolution, grid.crs.to_string(), len(tiles), tile_size,
        int(tiles["in_aoi"].sum()), size,
    )  # fmt: skip
    return grid, polygon, tiles


def fetch_l1c(
    grid: Grid,
    aoi_shape: BaseGeometry,
    aoi_tiles: gpd.GeoDataFrame,
    source: dict,
    time_interval: list[str],
    tile_size: int,
    staging: Path,
    credentials: dict,
) -> tuple[xr.Dataset, gpd.GeoDataFrame | None]:
    """One year of L1C over the AOI from the chosen source (lazy; written by the catalog).

    Pixels outside the AOI polygon become no data (``aoi_mask`` says which). The cube records
    its source and time interval, which downstream links read from it."""
    start, end = (pd.Timestamp(t) for t in time_interval)
    request = SourceRequest(
        grid=grid, aoi=aoi_shape, tiles=aoi_tiles, time_interval=(start, end),
        tile_size=tile_size, staging=Path(staging),
        credentials=dict((credentials or {}).get(source["method"]) or {}),
    )  # fmt: skip
    cube, labels = SOURCES.run(source, request)
    validate_l1c_cube(cube)
    if same_grid(grid_of(cube), grid):
        cube = mask_outside_aoi(cube, aoi_mask(grid, aoi_shape, tile_size))
    else:  # a source with its own grid (an EOPatch): its extent is the AOI
        log.info("The %r source brings its own grid; its extent is the AOI.", source["method"])
    cube.attrs.update(source=dict(source), time_interval=[str(start.date()), str(end.date())])
    log.info(
        "L1C cube from %r: %d frames, %s", source["method"], cube.sizes["time"], dict(cube.sizes)
    )
    if labels is None:  # Kedro cannot hand over None: no labels is an empty frame
        labels = gpd.GeoDataFrame(geometry=[], crs=cube.rio.crs)
    return cube, labels


def same_grid(a: Grid, b: Grid) -> bool:
    """Whether two grids are the same pixels (CRS, transform and shape)."""
    return (
        a.crs == b.crs
        and (a.width, a.height) == (b.width, b.height)
        and np.allclose(list(a.transform)[:6], list(b.transform)[:6], rtol=0, atol=1e-6)
    )


def mask_outside_aoi(cube: xr.Dataset, inside: xr.DataArray) -> xr.Dataset:
    """No data (DN 0, ``is_data`` false) outside the AOI polygon, and the mask kept as
    ``aoi_mask`` so valid fractions count only the AOI's pixels."""
    inside = inside.assign_coords(x=cube["x"], y=cube["y"])
    cube = cube.assign(aoi_mask=inside)
    if "bands" in cube:
        cube["bands"] = cube["bands"].where(inside, np.uint16(0))
    if "is_data" in cube:
        cube["is_data"] = cube["is_data"] & inside
    return cube


def import_reference_labels(
    source_labels: gpd.GeoDataFrame, reference: Reference, l1c_cube: xr.Dataset
) -> gpd.GeoDataFrame:
    """Snapshot the reference labels into the versioned catalog: the user's file if given
    (vector, or a raster turned into polygons, see :mod:`perceptive.eo.reference`), else the
    source's own labels; either way in the grid CRS, only the features over the AOI, with the
    legend ids (through ``reference.class_mapping`` when given) in ``class_id``, so a run can
    be traced and sampling needs no knowledge of the file's columns or codes."""
    grid = grid_of(l1c_cube)
    column = reference.class_column
    if reference.file and is_raster(reference.file):
        labels, column = raster_polygons(reference.file, grid), RASTER_CODE_COLUMN
    elif reference.file:
        labels = read_vector_labels(reference.file)
    elif source_labels is not None and not source_labels.empty:
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
    if (labels.geometry.isna() | labels.geometry.is_empty).all():
        raise ValueError(f"{what}: every geometry is empty or missing; give labelled polygons.")
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


def read_vector_labels(path: str) -> gpd.GeoDataFrame:
    """A vector file of labelled polygons, or an error naming ``reference.file`` and why."""
    try:
        labels = gpd.read_file(path, engine="pyogrio")
    except Exception as err:  # pyogrio raises DataSourceError and others, file or format
        raise ValueError(
            f"reference.file {path!r} cannot be read as a vector file ({err}); give a "
            "GeoPackage, GeoJSON or Shapefile of labelled polygons, or a GeoTIFF of codes."
        ) from None
    if not isinstance(labels, gpd.GeoDataFrame):
        raise ValueError(
            f"reference.file {path!r} has no geometry (a plain table); give labelled polygons."
        )
    return labels
