"""Versioned single-band Cloud-Optimised GeoTIFF maps with nodata, colour table and class names.

kedro-datasets' experimental GeoTIFF dataset writes no colour table; a land-cover map without
one opens grey in QGIS. A lazy (dask) map is written chunk by chunk (windowed writes into a
tiled GeoTIFF), then GDAL's COG driver copies it into a Cloud-Optimised GeoTIFF with
overviews, so memory is bounded by a chunk and GDAL's cache at any map size.

Class names: GeoTIFF has no place for band category names, and rasterio offers no API for
them or for raster attribute tables, so they go where GDAL itself puts them, a PAM sidecar
``<file>.aux.xml`` with ``<CategoryNames>`` (GDAL, hence QGIS, reads it with the file); they
are also kept as tags ``CLASS_<value>`` inside the file, which survive copying it alone.
"""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape

import dask
import dask.array as da
import numpy as np
import rasterio
import rasterio.shutil
import rioxarray
import xarray as xr
from kedro.io.core import DatasetError
from rasterio.windows import Window

from perceptive.datasets.versioned import VersionedFileDataset


class GeoTiffDataset(VersionedFileDataset[xr.DataArray]):
    """A (y, x) ``xarray.DataArray`` with a CRS (rioxarray) <-> Cloud-Optimised GeoTIFF.

    Optional attrs used on save: ``nodata``; ``colormap`` {value: "#rrggbb"}; ``class_names``
    {value: name} (category names in ``<file>.aux.xml`` and tags ``CLASS_<value>``);
    ``long_name`` (the band description); ``provenance`` (a JSON string, written as the tag
    ``PROVENANCE``, see perceptive.provenance). ``save_args``: ``overview_resampling``
    (``nearest`` by default; ``mode`` suits class maps, ``average`` continuous ones) and
    other creation options of GDAL's COG driver. ``load_args`` go to
    ``rioxarray.open_rasterio`` (e.g. ``chunks: true`` for a lazy map).

    Integrity: each version has ``<file>.manifest.json`` with the size and CRC-32C of the
    map, verified in full on every load (a map is small and one read of it with a hardware
    CRC costs milliseconds), because GDAL reads a tile whose bytes were overwritten without
    complaint whenever deflate still decodes them. GDAL's ``.aux.xml`` is not listed: GDAL
    and QGIS may rewrite it legitimately (statistics, histograms), and it holds only the
    category names, which are also tags inside the file. See perceptive.datasets.manifest.
    """

    with_manifest = True
    checksum_below = None  # verify the whole file on every load

    def _read(self, path: Path) -> xr.DataArray:
        return rioxarray.open_rasterio(path, **self._load_args).squeeze("band", drop=True)

    def _write(self, data: xr.DataArray, path: Path) -> None:
        if not isinstance(data, xr.DataArray) or data.dims != ("y", "x"):
            raise DatasetError("GeoTiffDataset saves a (y, x) xarray.DataArray.")
        if data.rio.crs is None:
            raise DatasetError(
                "The map has no CRS; write one with .rio.write_crs(...) before saving."
            )
        stream = path.with_name(path.name + "-stream.tif")  # not a sidecar (see save)
        try:
            _write_tiled(data, stream)
            options = {"compress": "deflate", "blocksize": 512, **self._save_args}
            options.setdefault("overview_resampling", "nearest")
            rasterio.shutil.copy(stream, path, driver="COG", **options)
        finally:
            stream.unlink(missing_ok=True)
        names = data.attrs.get("class_names") or {}
        if names:
            _write_category_names(path, {int(k): str(v) for k, v in names.items()})

    def _sidecars(self, path: Path) -> list[Path]:
        aux = path.with_name(path.name + ".aux.xml")
        return [aux] if aux.exists() else []


def _write_tiled(data: xr.DataArray, path: Path) -> None:
    """A tiled GeoTIFF with the map's grid, nodata, colours, tags and description, written
    one chunk at a time when the map is lazy."""
    profile = {
        "driver": "GTiff",
        "height": data.sizes["y"],
        "width": data.sizes["x"],
        "count": 1,
        "dtype": data.dtype.name,
        "crs": data.rio.crs,
        "transform": data.rio.transform(recalc=True),
        "nodata": data.attrs.get("nodata"),
        "tiled": True,
        "blockxsize": 512,
        "blockysize": 512,
        "compress": "deflate",
        "BIGTIFF": "IF_SAFER",
    }
    with rasterio.open(path, "w", **profile) as dst:
        if isinstance(data.data, da.Array):
            _write_blocks(data.data, dst)
        else:
            dst.write(np.asarray(data.values), 1)
        colormap = data.attrs.get("colormap")
        if colormap:
            dst.write_colormap(1, {int(k): _rgb(v) for k, v in colormap.items()})
        names = data.attrs.get("class_names") or {}
        dst.update_tags(**{f"CLASS_{int(k)}": str(v) for k, v in names.items()})
        if data.attrs.get("provenance"):
            dst.update_tags(PROVENANCE=str(data.attrs["provenance"]))
        if data.attrs.get("synthetic_demo"):  # the map of an invented place says so
            dst.update_tags(synthetic_demo="true")
        if data.attrs.get("long_name"):
            dst.set_band_description(1, str(data.attrs["long_name"]))


def _write_blocks(array: da.Array, dst, batch: int = 8) -> None:
    """Compute the map ``batch`` chunks at a time on whatever scheduler is in use and write
    each to its window here: the open file stays in this process (a dask.distributed worker
    cannot be handed it), and memory holds a batch of chunks, not the map."""
    windows = list(da.core.slices_from_chunks(array.chunks))
    blocks = array.to_delayed().ravel()  # row-major, like the windows
    for start in range(0, len(blocks), batch):
        values = dask.compute(*blocks[start : start + batch])
        for (rows, cols), block in zip(windows[start : start + batch], values, strict=True):
            dst.write(block, 1, window=Window.from_slices(rows, cols))


def _write_category_names(path: Path, names: dict[int, str]) -> None:
    """GDAL's PAM sidecar with the band's category names (index = pixel value)."""
    table = [names.get(value, "") for value in range(max(names) + 1)]
    categories = "".join(f"      <Category>{escape(name)}</Category>\n" for name in table)
    path.with_name(path.name + ".aux.xml").write_text(
        '<PAMDataset>\n  <PAMRasterBand band="1">\n    <CategoryNames>\n'
        f"{categories}    </CategoryNames>\n  </PAMRasterBand>\n</PAMDataset>\n"
    )


def _rgb(colour) -> tuple[int, int, int, int]:
    if isinstance(colour, str):
        return (*(int(colour[i : i + 2], 16) for i in (1, 3, 5)), 255)
    return (*map(int, colour[:3]), 255)
