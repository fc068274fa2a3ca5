"""The cube: one xarray.Dataset per AOI, and the checks every pipeline runs at its entry.

Layout (see DESIGN.md §2): ``bands`` (time, band, y, x) uint16 L1C digital numbers
(reflectance × 10000, 0 = no data), pixel-centre ``x``/``y`` on a projected grid whose CRS is
stored the rioxarray way, ``time`` sorted and unique. Chunked in space, never in time. A source
may bring fewer bands, or none but precomputed per-frame layers (``NDVI``...), and its own
``is_data`` / ``cloud_mask`` / ``is_valid`` masks (an EOPatch does); each step checks what it
needs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr

from perceptive.eo.grid import Grid

#: Sentinel-2 L1C bands in the order the s2cloudless model and the products use.
S2_BANDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07",
    "B08", "B8A", "B09", "B10", "B11", "B12",
)  # fmt: skip

#: Digital numbers per unit of reflectance in L1C products.
QUANTIFICATION = 10000.0


class CubeError(ValueError):
    """A cube does not follow the layout the pipelines expect."""


def spatial_chunks(tile_size: int) -> dict[str, int]:
    """Dask chunks of a cube: whole time series, ``tile_size`` pixels in space."""
    return {"time": -1, "band": -1, "y": tile_size, "x": tile_size}


def attach_grid(ds: xr.Dataset | xr.DataArray, grid: Grid):
    """Give an object the grid's pixel-centre coordinates, CRS and transform (rioxarray way)."""
    ds = ds.assign_coords(x=("x", grid.x), y=("y", grid.y))
    ds = ds.rio.write_crs(grid.crs)
    return ds.rio.write_transform(grid.transform)


def make_l1c_cube(bands, times, grid: Grid, band_names=S2_BANDS, attrs=None) -> xr.Dataset:
    """Wrap a (time, band, y, x) uint16 array (numpy or dask) as an L1C cube on ``grid``."""
    times = pd.DatetimeIndex(times)
    if times.tz is not None:
        times = times.tz_convert("UTC").tz_localize(None)
    ds = xr.Dataset(
        {"bands": (("time", "band", "y", "x"), bands)},
        coords={"time": times.values.astype("datetime64[ns]"), "band": list(band_names)},
        attrs=dict(attrs or {}),
    )
    ds["bands"].attrs.update(
        units="DN", scale_factor_to_reflectance=1 / QUANTIFICATION, nodata=0,
        long_name="Sentinel-2 L1C top-of-atmosphere reflectance x 10000",
    )  # fmt: skip
    return attach_grid(ds, grid)


def validate_cube(
    ds: xr.Dataset,
    name: str,
    variables: dict[str, tuple[tuple[str, ...], str]],
    bands: tuple[str, ...] | None = None,
) -> xr.Dataset:
    """Check a cube against the layout and raise a ``CubeError`` naming what is wrong.

    ``variables`` maps a variable name to its (dims, dtype kind/name) e.g.
    ``{"bands": (("time", "band", "y", "x"), "uint16")}``.
    """
    if not isinstance(ds, xr.Dataset):
        raise CubeError(f"{name} must be an xarray.Dataset, got {type(ds).__name__}.")
    for var, (dims, dtype) in variables.items():
        if var not in ds:
            raise CubeError(
                f"{name} has no variable {var!r} (has {sorted(ds.data_vars)}); "
                "was it written by an older or different pipeline?"
            )
        if ds[var].dims != dims:
            raise CubeError(f"{name}.{var} has dims {ds[var].dims}, expected {dims}.")
        if ds[var].dtype != np.dtype(dtype):
            raise CubeError(f"{name}.{var} has dtype {ds[var].dtype}, expected {dtype}.")
    if "time" in ds.dims:
        times = pd.DatetimeIndex(ds["time"].values)
        if len(times) == 0:
            raise CubeError(
                f"{name} has an empty time series: no acquisition in the time interval "
                "(widen time_interval or raise max_cloud_cover)."
            )
        if not times.is_monotonic_increasing or not times.is_unique:
            raise CubeError(
                f"{name}.time must be sorted and unique; sort it and merge same-day frames."
            )
    if bands is not None:
        have = [str(b) for b in ds["band"].values]
        missing = [b for b in bands if b not in have]
        if missing:
            raise CubeError(f"{name} misses band(s) {missing}; it has {have}.")
    crs = ds.rio.crs
    if crs is None:
        raise CubeError(f"{name} has no CRS; write one with ds.rio.write_crs(...).")
    if not crs.is_projected:
        raise CubeError(
            f"{name} is in {crs.to_string()}, a geographic CRS; the pipelines need a projected "
            "CRS in metres (reproject to the AOI's UTM zone)."
        )
    for axis in ("x", "y"):
        if axis not in ds.coords or ds.sizes.get(axis, 0) == 0:
            raise CubeError(f"{name} has no {axis} coordinate.")
    return ds


#: Per-frame masks a cube may carry from its source, and the dtype each must have.
SOURCE_MASKS: tuple[str, ...] = ("is_data", "cloud_mask", "is_valid")


def per_frame_layers(ds: xr.Dataset) -> list[str]:
    """Names of the precomputed per-frame feature layers of a cube: float (time, y, x)
    variables other than the masks and ``cloud_prob`` (e.g. ``NDVI`` from an EOPatch)."""
    return [
        str(name)
        for name, var in ds.data_vars.items()
        if var.dims == ("time", "y", "x")
        and name not in (*SOURCE_MASKS, "cloud_prob")
        and np.issubdtype(var.dtype, np.floating)
    ]


def validate_l1c_cube(ds: xr.Dataset) -> xr.Dataset:
    """Check an L1C cube: sorted unique time, projected CRS, and layers in the layout.

    A cube holds ``bands`` (time, band, y, x) uint16 with Sentinel-2 band names (all 13 or a
    subset), and/or precomputed per-frame float layers (time, y, x) such as ``NDVI``; it may
    carry the source's own ``is_data`` / ``cloud_mask`` / ``is_valid`` (time, y, x) bool and
    ``cloud_prob`` (uint8 or float32). Which bands a step needs is checked by that step
    (s2cloudless all 13, a feature its own bands), so a cube with fewer bands still runs.
    """
    validate_cube(ds, "l1c_cube", {})
    if "time" not in ds.dims:
        raise CubeError("l1c_cube has no time dimension; an L1C cube is a time series.")
    if "bands" in ds:
        validate_cube(ds, "l1c_cube", {"bands": (("time", "band", "y", "x"), "uint16")})
        have = [str(b) for b in ds["band"].values]
        unknown = [b for b in have if b not in S2_BANDS]
        if unknown or len(set(have)) != len(have):
            raise CubeError(
                f"l1c_cube band names must be distinct Sentinel-2 band names ({', '.join(S2_BANDS)}"
                f"); it has {have}. Name the bands of the source (e.g. the eopatch option "
                "band_names)."
            )
    frame = ("time", "y", "x")
    validate_cube(ds, "l1c_cube", {m: (frame, "bool") for m in SOURCE_MASKS if m in ds})
    if "cloud_prob" in ds and (
        ds["cloud_prob"].dims != frame or ds["cloud_prob"].dtype not in (np.uint8, np.float32)
    ):
        raise CubeError(
            f"l1c_cube.cloud_prob is {ds['cloud_prob'].dtype}{ds['cloud_prob'].dims}, expected "
            "(time, y, x) uint8 (probability x 255) or float32 (0-1)."
        )
    if "bands" not in ds and not per_frame_layers(ds):
        raise CubeError(
            f"l1c_cube holds neither 'bands' nor any per-frame float layer (time, y, x) to make "
            f"features from; it has {sorted(ds.data_vars)}. Read bands or indices from the source."
        )
    return ds


def time_interval_of(ds: xr.Dataset) -> tuple[str, str]:
    """The [start, end] ISO dates a cube was made for (set by the ingestion pipeline)."""
    interval = ds.attrs.get("time_interval")
    if not (isinstance(interval, list | tuple) and len(interval) == 2):
        raise CubeError(
            "The cube does not record its time_interval (attribute 'time_interval'); it was not "
            "written by the ingestion pipeline. Re-run `kedro run --pipelines ingestion`."
        )
    return str(interval[0]), str(interval[1])


def reflectance(bands: xr.DataArray) -> xr.DataArray:
    """L1C digital numbers as float32 reflectance; no-data (0) becomes NaN."""
    return (bands.where(bands != 0) / np.float32(QUANTIFICATION)).astype(np.float32)


def validate_masks_cube(ds: xr.Dataset) -> xr.Dataset:
    """Check a masks cube: bool data / cloud / valid masks per frame."""
    mask = (("time", "y", "x"), "bool")
    return validate_cube(ds, "masks_cube", {"is_data": mask, "cloud_mask": mask, "is_valid": mask})


def validate_features_cube(ds: xr.Dataset) -> xr.Dataset:
    """Check a features cube: float32 (time, feature, y, x) on the date grid."""
    return validate_cube(
        ds, "features_cube", {"features": (("time", "feature", "y", "x"), "float32")}
    )
