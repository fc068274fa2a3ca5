"""The area of interest as the pipelines use it: tiles, a pixel mask, its size before download.

A polygon AOI stays a polygon: pixels whose centre lies outside it are no data in the cube, so
they count in no valid fraction, no sample and no map. Tiles come from the ``sentinelhub``
splitter over the grid, aligned with the cube's chunks (the unit of download and of Zarr
writes), and only tiles touching the polygon are ever read.
"""

from __future__ import annotations

import logging
import math

import dask.array as da
import geopandas as gpd
import numpy as np
import pandas as pd
import xarray as xr
from pyproj import CRS
from rasterio.features import geometry_mask
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from perceptive.eo.cube import S2_BANDS
from perceptive.eo.grid import Grid, GridError, aoi_lonlat, utm_crs_for

log = logging.getLogger(__name__)

#: Sentinel-2 revisit with both satellites at the equator (days): more often at higher
#: latitudes, where orbits overlap, so estimates from it are a floor.
NOMINAL_REVISIT_DAYS = 5


def split_tiles(grid: Grid, aoi: BaseGeometry, tile_size: int) -> gpd.GeoDataFrame:
    """``tile_size`` px tiles of the grid from the ``sentinelhub`` BBoxSplitter, numbered from
    the top-left like the cube's chunks (``r000c000``), clipped to the grid, with ``in_aoi``
    saying which touch the AOI polygon (the others are never read)."""
    from sentinelhub import CRS as ShCRS
    from sentinelhub import BBoxSplitter

    rows, cols = math.ceil(grid.height / tile_size), math.ceil(grid.width / tile_size)
    left, bottom, right, top = grid.bounds
    padded = box(left, top - rows * tile_size * (top - bottom) / grid.height,
                 left + cols * tile_size * (right - left) / grid.width, top)  # fmt: skip
    splitter = BBoxSplitter([padded], ShCRS(grid.crs.to_epsg()), split_shape=(cols, rows))
    tiles = []
    for info in splitter.get_info_list():
        row, col = rows - 1 - info["index_y"], info["index_x"]  # the splitter counts from below
        row_off, col_off = row * tile_size, col * tile_size
        sub = grid.window(row_off, col_off, min(tile_size, grid.height - row_off),
                          min(tile_size, grid.width - col_off))  # fmt: skip
        footprint = box(*sub.bounds)
        tiles.append({"tile_id": f"r{row:03d}c{col:03d}", "row_off": row_off,
                      "col_off": col_off, "height": sub.height, "width": sub.width,
                      "in_aoi": footprint.intersects(aoi), "geometry": footprint})  # fmt: skip
    frame = gpd.GeoDataFrame(tiles, crs=grid.crs).sort_values("tile_id", ignore_index=True)
    return frame


def estimated_cube_gb(grid: Grid, aoi: BaseGeometry, start, end) -> float:
    """Uncompressed size of the L1C cube (13 uint16 bands, one frame per nominal revisit) of
    the AOI's bounding grid, in GB: what a download and the staging store must hold."""
    days = (pd.Timestamp(end) - pd.Timestamp(start)).days + 1
    frames = math.ceil(days / NOMINAL_REVISIT_DAYS)
    return grid.width * grid.height * len(S2_BANDS) * 2 * frames / 1e9


def check_size(grid: Grid, aoi: BaseGeometry, start, end, max_cube_gb: float) -> float:
    """Refuse an AOI whose cube would exceed ``max_cube_gb``, naming its size."""
    size = estimated_cube_gb(grid, aoi, start, end)
    if size > max_cube_gb:
        raise GridError(
            f"The AOI is too large: {grid.width} x {grid.height} px at {grid.resolution:g} m "
            f"(about {grid.width * grid.height * grid.resolution**2 / 1e6:,.0f} km2) makes an "
            f"L1C cube of about {size:,.1f} GB for this time interval, over the limit "
            f"max_cube_gb={max_cube_gb:g}. Split the AOI, shorten time_interval, or raise "
            "max_cube_gb if the disk holds it."
        )
    return size


def utm_zones_crossed(aoi: BaseGeometry, crs: CRS) -> list[str]:
    """The UTM zones the AOI spans (west to east); more than one means it is reprojected
    into the zone of its centre, with growing distortion away from it."""
    west, south, east, north = aoi_lonlat(aoi, crs).bounds
    lat = (south + north) / 2
    lons = (np.linspace(west, east, 64) + 180) % 360 - 180
    zones = {utm_crs_for(lon, lat).to_string(): None for lon in lons}
    return list(zones)


def aoi_mask(grid: Grid, aoi: BaseGeometry, tile_size: int) -> xr.DataArray:
    """(y, x) bool, lazy in ``tile_size`` chunks: true where the pixel centre is in the AOI."""

    def block(block_info=None):
        (r0, r1), (c0, c1) = block_info[None]["array-location"]
        sub = grid.window(r0, c0, r1 - r0, c1 - c0)
        if not aoi.intersects(box(*sub.bounds)):
            return np.zeros((sub.height, sub.width), bool)
        return geometry_mask([aoi], (sub.height, sub.width), sub.transform, invert=True)

    mask = da.map_blocks(
        block, chunks=da.core.normalize_chunks(tile_size, (grid.height, grid.width)), dtype=bool,
        meta=np.empty((0, 0), bool),
    )  # fmt: skip
    return xr.DataArray(
        mask, dims=("y", "x"), attrs={"long_name": "pixel centre inside the AOI polygon"}
    )
