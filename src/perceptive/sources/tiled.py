"""Sources read tile by tile into a staging Zarr store, so a crash or a failed tile loses nothing.

A remote or file source (Sentinel Hub, a folder of products) is a :class:`TileReader`: it lists
the acquisitions of the AOI once, then reads one tile (all dates, all bands) at a time.
:func:`read_tiled` writes each tile into its region of a staging store under
``<data_root>/01_raw/staging`` as it arrives and marks it done; a rerun with the same request
reads only the tiles not yet done, whatever stopped the previous run (kill -9 included). Tiles
that fail are named in one error at the end, after every other tile has been kept.

The staging store is not a versioned output: the catalog's versioned ``l1c_cube`` is written
from it (atomically), and downstream links only ever read that.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import dask.array as da
import geopandas as gpd
import numpy as np
import pandas as pd
import xarray as xr
from shapely.geometry.base import BaseGeometry
from tqdm.auto import tqdm

from perceptive.eo.cube import make_l1c_cube
from perceptive.eo.grid import Grid
from perceptive.leftovers import pid_alive

log = logging.getLogger(__name__)


class SourceError(RuntimeError):
    """A source cannot deliver the data asked for; the message says what to do."""


@dataclass(frozen=True)
class SourceRequest:
    """What the ingestion pipeline asks of a source (the first argument of every source)."""

    grid: Grid  # the AOI's pixel grid
    aoi: BaseGeometry  # the AOI polygon, in grid.crs
    tiles: gpd.GeoDataFrame  # tile_id, row_off, col_off, height, width, geometry (grid.crs)
    time_interval: tuple[pd.Timestamp, pd.Timestamp]
    tile_size: int
    staging: Path  # where tiled sources keep finished tiles between runs
    credentials: Mapping[str, Any] = field(default_factory=dict, repr=False)  # never logged


class TileReader(Protocol):
    """A source that lists acquisitions once and reads the AOI one tile at a time."""

    #: Short name used for the staging store and in messages (e.g. "sentinelhub").
    name: str
    #: Band names in the order ``read_tile`` returns them.
    bands: tuple[str, ...]

    def acquisitions(self) -> pd.DatetimeIndex:
        """Sorted, unique UTC acquisition times over the whole AOI and time interval."""

    def read_tile(self, tile: Grid, times: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
        """``(bands, is_data)`` of one tile: (time, band, y, x) uint16 DN and (time, y, x)
        bool, for exactly ``times``; a date without data over the tile is all 0 / False."""

    def fingerprint(self) -> dict[str, Any]:
        """What decides the data (JSON-able, no secrets): same fingerprint, same tiles."""


def read_tiled(reader: TileReader, request: SourceRequest, attrs: dict | None = None) -> xr.Dataset:
    """The lazy L1C cube of ``request.grid`` read tile by tile through ``reader``.

    Tiles that miss the AOI polygon are not read (they stay no data). Each tile read is written
    to the staging store at once; a tile that fails is logged and skipped, and when all tiles
    are tried a :class:`SourceError` names the missing ones (a rerun reads only those).
    """
    times = pd.DatetimeIndex(reader.acquisitions())
    start, end = request.time_interval
    if len(times) == 0:
        raise SourceError(
            f"{reader.name}: no acquisitions between {start.date()} and {end.date()} over the "
            "AOI; widen time_interval, raise max_cloud_cover, or check the AOI location."
        )
    store = _staging_store(reader, request, times)
    done = _done_dir(store)
    wanted = request.tiles[request.tiles.intersects(request.aoi)]
    todo = [t for t in wanted.itertuples() if not (done / t.tile_id).exists()]
    if len(todo) < len(wanted):
        log.info(
            "%s: %d of %d tiles already in %s, reading the other %d",
            reader.name, len(wanted) - len(todo), len(wanted), store, len(todo),
        )  # fmt: skip
    failures: dict[str, str] = {}
    for tile in tqdm(todo, desc=f"{reader.name} tiles", unit="tile", disable=not todo):
        grid = request.grid.window(tile.row_off, tile.col_off, tile.height, tile.width)
        try:
            bands, is_data = reader.read_tile(grid, times)
            _check_tile(bands, is_data, len(times), len(reader.bands), grid)
        except Exception as err:  # any failure of one tile must not cost the others
            failures[tile.tile_id] = f"{type(err).__name__}: {err}"
            log.error("%s: tile %s failed: %s", reader.name, tile.tile_id, failures[tile.tile_id])
            continue
        _write_region(store, tile, bands, is_data)
        (done / tile.tile_id).touch()
    if failures:
        listing = "; ".join(f"{tile}: {why}" for tile, why in failures.items())
        raise SourceError(
            f"{reader.name}: {len(failures)} of {len(wanted)} tiles could not be read ({listing}). "
            f"The other tiles are kept in {store}; run again to read only the missing ones."
        )
    return _open_cube(store, request.grid, reader.bands, attrs)


def _staging_store(reader: TileReader, request: SourceRequest, times: pd.DatetimeIndex) -> Path:
    """The staging store for this exact request, created empty (all no data) if new."""
    key = {
        "reader": reader.fingerprint(),
        "crs": request.grid.crs.to_string(),
        "transform": list(request.grid.transform)[:6],
        "shape": [request.grid.height, request.grid.width],
        "tile_size": request.tile_size,
        "times": [str(t) for t in times],
        "bands": list(reader.bands),
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
    store = Path(request.staging) / f"{reader.name}-{digest[:16]}.zarr"
    if _done_dir(store).is_dir():
        return store
    _remove_leftovers(store.parent)
    tmp = store.with_name(f".partial-{os.getpid()}-{store.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    shape = (len(times), len(reader.bands), request.grid.height, request.grid.width)
    size = request.tile_size
    template = xr.Dataset(
        {
            "bands": (("time", "band", "y", "x"),
                      da.zeros(shape, dtype=np.uint16, chunks=(-1, -1, size, size))),
            "is_data": (("time", "y", "x"),
                        da.zeros((shape[0], *shape[2:]), dtype=bool, chunks=(-1, size, size))),
        },
        attrs={"staging_key": json.dumps(key, default=str)},
    )  # fmt: skip
    tmp.parent.mkdir(parents=True, exist_ok=True)
    template.to_zarr(tmp, compute=False, mode="w-", consolidated=False)
    shutil.rmtree(store, ignore_errors=True)  # a store whose done list never got made
    os.replace(tmp, store)
    _done_dir(store).mkdir()  # last: marks the store as ready for tiles
    return store


def _remove_leftovers(staging: Path) -> None:
    """Delete stores that a killed run began to create (their process is gone)."""
    for partial in staging.glob(".partial-*"):
        pid = partial.name.split("-")[1]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(partial, ignore_errors=True)


def _done_dir(store: Path) -> Path:
    """Beside the store, one empty file per finished tile."""
    return store.with_name(store.name + ".done")


def _check_tile(bands, is_data, n_times: int, n_bands: int, grid: Grid) -> None:
    want = (n_times, n_bands, grid.height, grid.width)
    if bands.shape != want or bands.dtype != np.uint16:
        raise SourceError(f"tile bands are {bands.dtype}{bands.shape}, expected uint16{want}")
    if is_data.shape != (n_times, grid.height, grid.width) or is_data.dtype != bool:
        raise SourceError(f"tile is_data is {is_data.dtype}{is_data.shape}, expected bool mask")


def _write_region(store: Path, tile, bands: np.ndarray, is_data: np.ndarray) -> None:
    region = {
        "y": slice(tile.row_off, tile.row_off + tile.height),
        "x": slice(tile.col_off, tile.col_off + tile.width),
    }
    piece = xr.Dataset(
        {"bands": (("time", "band", "y", "x"), bands), "is_data": (("time", "y", "x"), is_data)}
    )
    piece.to_zarr(
        store, region={"time": slice(None), "band": slice(None), **region}, mode="r+",
        consolidated=False,
    )  # fmt: skip


def _open_cube(store: Path, grid: Grid, band_names, attrs: dict | None) -> xr.Dataset:
    staged = xr.open_zarr(store, consolidated=False, mask_and_scale=False)
    times = json.loads(staged.attrs["staging_key"])["times"]
    cube = make_l1c_cube(staged["bands"].data, pd.DatetimeIndex(times), grid, band_names, attrs)
    cube["is_data"] = (("time", "y", "x"), staged["is_data"].data)
    cube["is_data"].attrs["long_name"] = "the source's own data mask (dataMask / no data)"
    return cube
