"""Post-processing of a land-cover map: a swappable link (``{method: none|majority|sieve}``).

Per-pixel classifiers leave salt-and-pepper noise; a majority filter smooths it and a minimum
mapping unit (sieve) removes patches too small to be mapped. Both run chunk by chunk on a dask
map (``map_overlap``) with a halo wide enough that the result equals the whole-map result, so
memory stays bounded by a chunk plus its halo at any AOI size. ``nodata`` pixels stay nodata
and never vote.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import dask.array as da
import numpy as np
import rasterio.features
import xarray as xr
from pydantic import AfterValidator, Field
from scipy import ndimage

from perceptive.eo.legend import NO_DATA
from perceptive.eo.links import Registry

METHODS = Registry("postprocessing", "function(lulc (y, x) uint8 DataArray, *, options)")


def none(lulc: xr.DataArray) -> xr.DataArray:
    """The map as classified."""
    return lulc


def _odd(window: int) -> int:
    if window % 2 == 0:
        raise ValueError(f"the window must be odd (a centre pixel), e.g. {window + 1}.")
    return window


def majority(
    lulc: xr.DataArray, *, window: Annotated[int, Field(ge=3, le=99), AfterValidator(_odd)] = 3
) -> xr.DataArray:
    """Each pixel takes the most frequent class in the ``window`` x ``window`` square around it
    (nodata not counted; outside the map counts as nodata). Ties keep the pixel's own class if
    it is among the most frequent, else the smallest class id."""
    return _per_chunk(lulc, _majority_block, window // 2, boundary=NO_DATA, window=window)


def sieve(
    lulc: xr.DataArray,
    *,
    min_area_ha: Annotated[float, Field(gt=0)] = 0.5,
    connectivity: Literal[4, 8] = 4,
) -> xr.DataArray:
    """Minimum mapping unit: patches (connected pixels of one class) smaller than
    ``min_area_ha`` take the class of their largest neighbouring patch (GDAL's sieve).

    A patch under the unit of ``n`` pixels lies within ``n`` pixels of each of its pixels, so a
    halo of ``n`` pixels shows every such patch whole and no larger patch as smaller than ``n``:
    patches are removed exactly as on the whole map. (Which neighbour absorbs a patch is judged
    within the halo; two neighbours both larger than it could rank otherwise on the whole map.)
    """
    x = np.asarray(lulc["x"].values)
    pixel_area = float(abs(x[1] - x[0])) ** 2 if x.size > 1 else 100.0
    size = math.ceil(min_area_ha * 10_000 / pixel_area - 1e-9)
    if size <= 1:
        return lulc
    return _per_chunk(lulc, _sieve_block, size, boundary="none", size=size, conn=connectivity)


def _majority_block(block: np.ndarray, window: int) -> np.ndarray:
    kernel = np.ones((window, window), dtype=np.uint16)
    ids = np.unique(block)
    ids = ids[ids != NO_DATA]
    if ids.size == 0:
        return block
    # twice the count, plus one for the pixel's own class: ties go to the centre's class
    votes = np.stack([
        2 * ndimage.correlate((block == i).astype(np.uint16), kernel, mode="constant")
        + (block == i)
        for i in ids
    ])  # fmt: skip
    out = ids[np.argmax(votes, axis=0)].astype(block.dtype)
    return np.where(block == NO_DATA, block, out)


def _sieve_block(block: np.ndarray, size: int, conn: int) -> np.ndarray:
    return rasterio.features.sieve(block, size, mask=block != NO_DATA, connectivity=conn)


def _per_chunk(lulc: xr.DataArray, kernel, depth: int, boundary, **options) -> xr.DataArray:
    """Apply ``kernel`` to each chunk with a ``depth``-pixel halo; numpy maps in one go."""
    data = lulc.data
    if isinstance(data, da.Array):  # dask merges chunks narrower than the halo itself
        halo = {axis: min(depth, size) for axis, size in enumerate(data.shape)}
        out = da.map_overlap(
            kernel, data, depth=halo, boundary=boundary, dtype=data.dtype, **options
        )
    else:
        out = kernel(np.asarray(data), **options)
    return lulc.copy(data=out)


METHODS.register("none", none)
METHODS.register("majority", majority)
METHODS.register("sieve", sieve)
