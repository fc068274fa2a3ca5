"""Versioned single-band GeoTIFF maps with nodata, colour table and class names.

kedro-datasets' experimental GeoTIFF dataset writes no colour table; a land-cover map without
one opens grey in QGIS. Written tiled, compressed, with overviews, so it streams well.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
import rioxarray
import xarray as xr
from kedro.io.core import DatasetError
from rasterio.enums import Resampling

from perceptive.datasets.local import LocalVersionedDataset


class GeoTiffDataset(LocalVersionedDataset[xr.DataArray]):
    """A (y, x) ``xarray.DataArray`` with a CRS (rioxarray) <-> GeoTIFF.

    Optional attrs used on save: ``nodata``; ``colormap`` {value: "#rrggbb"}; ``class_names``
    {value: name} (written as tags ``CLASS_<value>``); ``provenance`` (a JSON string, written
    as the tag ``PROVENANCE``, see perceptive.provenance).
    """

    def _read(self, path: Path) -> xr.DataArray:
        return rioxarray.open_rasterio(path, **self._load_args).squeeze("band", drop=True)

    def _write(self, data: xr.DataArray, path: Path) -> None:
        if not isinstance(data, xr.DataArray) or data.dims != ("y", "x"):
            raise DatasetError("GeoTiffDataset saves a (y, x) xarray.DataArray.")
        if data.rio.crs is None:
            raise DatasetError(
                "The map has no CRS; write one with .rio.write_crs(...) before saving."
            )
        array = np.asarray(data.values)
        profile = {
            "driver": "GTiff",
            "height": array.shape[0],
            "width": array.shape[1],
            "count": 1,
            "dtype": array.dtype.name,
            "crs": data.rio.crs,
            "transform": data.rio.transform(recalc=True),
            "nodata": data.attrs.get("nodata"),
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
            "compress": "deflate",
            **self._save_args,
        }
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(array, 1)
            colormap = data.attrs.get("colormap")
            if colormap:
                dst.write_colormap(1, {int(k): _rgb(v) for k, v in colormap.items()})
            names = data.attrs.get("class_names") or {}
            dst.update_tags(**{f"CLASS_{int(k)}": str(v) for k, v in names.items()})
            if data.attrs.get("provenance"):
                dst.update_tags(PROVENANCE=str(data.attrs["provenance"]))
            factors = [f for f in (2, 4, 8, 16) if min(array.shape) // f >= 64]
            if factors:
                dst.build_overviews(factors, Resampling.nearest)


def _rgb(colour) -> tuple[int, int, int, int]:
    if isinstance(colour, str):
        return (*(int(colour[i : i + 2], 16) for i in (1, 3, 5)), 255)
    return (*map(int, colour[:3]), 255)
