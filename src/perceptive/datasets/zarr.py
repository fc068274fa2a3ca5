"""Versioned xarray cubes stored as Zarr directories.

kedro-datasets has no xarray/Zarr dataset and NetCDF is not versioned there. Loads are lazy
(dask); saves compute the cube chunk by chunk, with a progress bar, into the new version.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import xarray as xr
from dask.diagnostics import ProgressBar
from kedro.io.core import DatasetError

from perceptive.datasets.local import LocalVersionedDataset

log = logging.getLogger(__name__)


class ZarrDataset(LocalVersionedDataset[xr.Dataset]):
    """``xarray.Dataset`` <-> Zarr store. ``save_args`` go to ``to_zarr``, ``load_args`` to
    ``open_zarr``; ``progress: false`` hides the progress bar."""

    def __init__(self, *, progress: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._progress = progress

    def _read(self, path: Path) -> xr.Dataset:
        # decode_coords="all" brings back spatial_ref (the CRS) as a coordinate
        args = {"consolidated": True, "decode_coords": "all", **self._load_args}
        return xr.open_zarr(path, **args)

    def _write(self, data: xr.Dataset, path: Path) -> None:
        if not isinstance(data, xr.Dataset):
            raise DatasetError(f"ZarrDataset saves an xarray.Dataset, got {type(data).__name__}.")
        data = data.copy(deep=False)
        for var in data.variables.values():  # encodings from a loaded store may not fit new chunks
            for key in ("chunks", "preferred_chunks", "shards"):
                var.encoding.pop(key, None)
        log.info("Writing %s (%.0f MB uncompressed)", self._filepath.name, data.nbytes / 1e6)
        args = {"consolidated": True, "mode": "w-", **self._save_args}
        with ProgressBar(minimum=2) if self._progress else nullcontext():
            data.to_zarr(str(path), **args)
