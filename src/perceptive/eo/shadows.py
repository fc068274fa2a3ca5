"""Cloud shadows: the ground a cloud hides from the sun, found from the cloud mask and the sun.

Why: neither s2cloudless, eo-learn nor the L1C products mask shadows, and a shadowed
observation is dark in every band: left in, it drags a pixel's time series down on that date.

``projection`` casts every cloud pixel away from the sun, by ``h * tan(sun zenith)`` for the
cloud heights ``h`` from ``min_height`` to ``max_height`` (the potential shadow: the union of
those displaced clouds), and keeps the potential-shadow pixels that are dark in NIR (B08) and
SWIR (B11) against their own clear-sky median over the year. The projection runs on
``processing_resolution`` blocks (a block is potential shadow if any of its pixels is), where a
shift of one block per step covers every height; the darkness test runs on the cube's pixels,
chunk by chunk (a chunk holds a pixel's whole year). Sun angles come from the cube's
``sun_zenith`` / ``sun_azimuth`` (time) coordinates, in degrees, azimuth clockwise from north.
"""

from __future__ import annotations

import math
import warnings
from typing import Annotated

import dask
import dask.array as da
import numpy as np
import xarray as xr
from pydantic import Field

from perceptive.eo.cube import QUANTIFICATION
from perceptive.eo.grid import grid_of
from perceptive.eo.links import Registry


def projected_shadows(
    l1c: xr.Dataset,
    cloud_mask: xr.DataArray,
    *,
    min_height: Annotated[float, Field(ge=0)] = 400.0,
    max_height: Annotated[float, Field(gt=0)] = 3000.0,
    darkness: Annotated[float, Field(gt=0, lt=1)] = 0.85,
    processing_resolution: Annotated[float, Field(gt=0)] = 160.0,
) -> xr.DataArray:
    """(time, y, x) bool shadow mask: potential shadow of ``cloud_mask`` (clouds between
    ``min_height`` and ``max_height`` m) that is darker than ``darkness`` x the pixel's clear
    median in both NIR and SWIR. Lazy, on the cube's grid and chunks."""
    if min_height > max_height:
        raise ValueError(f"min_height {min_height} m is above max_height {max_height} m.")
    missing = [name for name in ("sun_zenith", "sun_azimuth") if name not in l1c.coords]
    if missing:
        raise ValueError(
            f"Cloud shadows need the sun's position per frame; the cube has no {missing} "
            "coordinate (degrees, on time). Use a source that records it, or "
            "cloud_shadows: {method: none}."
        )
    grid = grid_of(l1c)
    factor = max(1, round(processing_resolution / grid.resolution))
    cloud = (
        cloud_mask.data if isinstance(cloud_mask.data, da.Array) else da.asarray(cloud_mask.data)
    )
    potential = _potential_shadow(
        cloud, l1c["sun_zenith"].values, l1c["sun_azimuth"].values, factor * grid.resolution,
        min_height, max_height, factor,
    )  # fmt: skip
    bands = l1c["bands"].sel(band=["B08", "B11"]).data.rechunk({0: -1, 1: -1})
    shadow = da.map_blocks(
        _dark_shadow_block,
        bands,
        cloud.rechunk(bands.chunks[:1] + bands.chunks[2:]),
        potential.rechunk(bands.chunks[:1] + bands.chunks[2:]),
        darkness=darkness,
        drop_axis=1,
        dtype=bool,
    )
    return xr.DataArray(
        shadow, dims=("time", "y", "x"), coords=cloud_mask.coords, name="shadow_mask",
        attrs={"long_name": "cloud shadow (projected from the cloud mask, dark in NIR and SWIR)"},
    )  # fmt: skip


def _potential_shadow(cloud, zenith, azimuth, block_m, min_height, max_height, factor):
    """(time, y, x) bool dask: the cloud blocks shifted away from the sun by every reach."""
    t, ny, nx = cloud.shape
    pad_y, pad_x = (-ny) % factor, (-nx) % factor
    padded = da.pad(cloud, ((0, 0), (0, pad_y), (0, pad_x))) if pad_y or pad_x else cloud
    blocks = np.asarray(da.coarsen(np.any, padded, {1: factor, 2: factor}).compute())
    shadow = np.zeros_like(blocks)
    for i in range(t):
        tan_z = math.tan(math.radians(float(zenith[i])))
        # away from the sun: east -sin(az), north -cos(az); rows grow southwards
        east, south = (
            -math.sin(math.radians(float(azimuth[i]))),
            math.cos(math.radians(float(azimuth[i]))),
        )
        first, last = (math.floor(h * tan_z / block_m) for h in (min_height, max_height))
        for step in range(first, last + 2):  # +1: a reach between two block centres
            dr, dc = round(step * south), round(step * east)
            _or_shifted(shadow[i], blocks[i], dr, dc)
    fine = np.repeat(np.repeat(shadow, factor, axis=1), factor, axis=2)[:, :ny, :nx]
    return da.from_delayed(dask.delayed(fine, pure=True), fine.shape, bool).rechunk(cloud.chunks)


def _or_shifted(out: np.ndarray, src: np.ndarray, dr: int, dc: int) -> None:
    """out[r, c] |= src[r - dr, c - dc] where both are inside."""
    ny, nx = src.shape
    if abs(dr) >= ny or abs(dc) >= nx:
        return
    rows_out = slice(max(dr, 0), ny + min(dr, 0))
    rows_src = slice(max(-dr, 0), ny + min(-dr, 0))
    cols_out = slice(max(dc, 0), nx + min(dc, 0))
    cols_src = slice(max(-dc, 0), nx + min(-dc, 0))
    out[rows_out, cols_out] |= src[rows_src, cols_src]


def _dark_shadow_block(bands, cloud, potential, darkness):
    """One chunk: (time, 2, y, x) uint16 NIR/SWIR DN -> (time, y, x) bool dark potential shadow."""
    refl = bands.astype(np.float32) / np.float32(QUANTIFICATION)
    has_data = (bands != 0).all(axis=1)
    clear = has_data & ~cloud & ~potential
    with warnings.catch_warnings():  # a pixel never clear has no reference: NaN, never dark
        warnings.simplefilter("ignore", RuntimeWarning)
        reference = np.nanmedian(np.where(clear[:, None], refl, np.nan), axis=0)  # (2, y, x)
    dark = (refl < darkness * reference[None]).all(axis=1)  # NaN reference: never dark
    return potential & dark & has_data & ~cloud


def no_shadows(l1c: xr.Dataset, cloud_mask: xr.DataArray) -> xr.DataArray:
    """No shadow masking: every pixel is shadow-free (without the cloud mask's attributes,
    which would label this layer a cloud mask)."""
    return xr.zeros_like(cloud_mask, dtype=bool).rename("shadow_mask").drop_attrs(deep=False)


#: Cloud shadow link: ``method(l1c_cube, cloud_mask, **options) -> (time, y, x) bool``.
METHODS = Registry("cloud_shadows", "method(l1c_cube, cloud_mask, **options) -> shadow mask")
METHODS.register("none", no_shadows)
METHODS.register("projection", projected_shadows)
