"""Which pixels of which frames can be trusted: data present, not cloudy, and which frames to keep.

A time series is only as good as its valid observations. This module turns the source's own
data mask and/or the L1C no-data convention (any band = 0) and a cloud mask into per-pixel
validity, summarises it per frame and per pixel, and implements the eo-learn LULC rule "drop frames with less than 80 % valid pixels"
with an error that says what to change when no frame survives.
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr


def data_mask(l1c: xr.Dataset | xr.DataArray) -> xr.DataArray:
    """``is_data`` (time, y, x) bool: which observations exist.

    Accepts the L1C cube or its ``bands`` array (time, band, y, x). A cube that carries its
    source's own ``is_data`` (the tiled sources, an EOPatch's IS_DATA) uses it, ANDed with
    "every band has data" when the cube has bands: in L1C, DN 0 is reserved for no data and
    never a measurement, so a pixel with a zero band (a swath edge where the 60 m bands end
    first, say) would give NaN reflectance and features on an observation called valid.
    Without an own mask, the bands decide alone (any band DN 0: no data). Lazy when the input
    is.
    """
    own = None
    if isinstance(l1c, xr.Dataset):
        own = l1c["is_data"].astype(bool) if "is_data" in l1c else None
        bands = l1c["bands"] if "bands" in l1c else None
        if own is None and bands is None:
            raise ValueError(
                f"The L1C cube has neither 'bands' nor its own 'is_data' mask (has "
                f"{sorted(l1c.data_vars)}); pass the cube written by the ingestion pipeline, "
                "or have the source provide an is_data (time, y, x) mask."
            )
    else:
        bands = l1c
    if bands is not None and "band" not in bands.dims:
        raise ValueError(f"Expected a 'band' dimension in {bands.dims}.")
    if bands is None:
        is_data = own
        meaning = "the source's own data mask"
    elif own is None:
        is_data = (bands != 0).all("band")
        meaning = "all bands have data"
    else:
        is_data = own & (bands != 0).all("band")
        meaning = "the source's own data mask and all bands have data"
    is_data = is_data.drop_vars("band", errors="ignore")
    is_data.attrs = {"long_name": meaning, "flag_values": "0: no data, 1: data"}
    return is_data.rename("is_data")


def valid_mask(is_data: xr.DataArray, cloud_mask: xr.DataArray) -> xr.DataArray:
    """``is_valid`` (time, y, x) bool: data present and not cloudy."""
    is_valid = is_data.astype(bool) & ~cloud_mask.astype(bool)
    is_valid.attrs = {"long_name": "data present and not cloudy"}
    return is_valid.rename("is_valid")


def valid_fraction(is_valid: xr.DataArray, aoi_mask: xr.DataArray | None = None) -> xr.DataArray:
    """Fraction of valid pixels per frame, (time,) float64 in [0, 1].

    The denominator is every pixel of the grid, or only the pixels where ``aoi_mask`` (y, x)
    is true when the AOI is not a rectangle (pixels outside it would count as invalid otherwise).
    """
    if aoi_mask is None:
        frac = is_valid.mean(("y", "x"), dtype=np.float64)
    else:
        inside = aoi_mask.astype(bool)
        n_inside = int(inside.sum())
        if n_inside == 0:
            raise ValueError(
                "aoi_mask has no pixel inside the AOI; cannot compute a valid fraction."
            )
        frac = (is_valid & inside).sum(("y", "x"), dtype=np.float64) / n_inside
    return frac.rename("valid_fraction")


#: Fewer valid frames than this cannot describe a pixel's year (phenology needs several dates).
MIN_FRAMES = 3


def select_frames(
    valid_frac: xr.DataArray, min_valid_fraction: float = 0.8, min_frames: int = 1
) -> xr.DataArray:
    """Frames to keep: (time,) bool, true where ``valid_frac >= min_valid_fraction``.

    Use it as ``cube.isel(time=keep.values)``. Raises a ``ValueError`` if fewer than
    ``min_frames`` frames pass, giving the threshold, how many frames had what coverage and
    the threshold that would keep enough of them.
    """
    if not 0.0 <= min_valid_fraction <= 1.0:
        raise ValueError(f"min_valid_fraction must be in [0, 1], got {min_valid_fraction}.")
    frac = valid_frac.compute()
    keep = (frac >= min_valid_fraction).rename("keep_frame")
    n_kept = int(keep.sum())
    if n_kept >= max(min_frames, 1):
        return keep
    values = np.asarray(frac.values, dtype=float)
    if values.size == 0:
        raise ValueError("No frame to select from: the time series is empty.")
    bins = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0000001]
    counts, _ = np.histogram(values, bins=bins)
    spread = ", ".join(
        f"{n} in [{lo:.0%}, {min(hi, 1.0):.0%}{']' if hi > 1 else ')'}"
        for n, lo, hi in zip(counts, bins[:-1], bins[1:], strict=True)
        if n
    )
    needed = max(min_frames, 1)
    enough = np.sort(values)[::-1][min(needed, values.size) - 1]
    kept = "No frame has" if n_kept == 0 else f"Only {n_kept} frame(s) have"
    raise ValueError(
        f"{kept} a valid-pixel fraction >= min_valid_fraction={min_valid_fraction:g}, "
        f"{needed} needed: {values.size} frame(s), best {values.max():.1%}, median "
        f"{np.median(values):.1%} ({spread}). Lower min_valid_fraction (to "
        f"{math.floor(enough * 100) / 100:.2f} to keep {min(needed, values.size)}), widen the "
        "time interval, or check the cloud mask threshold."
    )


def valid_count(is_valid: xr.DataArray) -> xr.DataArray:
    """Number of valid observations per pixel over time, (y, x) uint16."""
    if is_valid.sizes.get("time", 0) > np.iinfo(np.uint16).max:
        raise ValueError("More than 65535 frames: valid_count does not fit uint16.")
    count = is_valid.sum("time", dtype=np.uint16)
    count.attrs = {"long_name": "number of valid observations"}
    return count.rename("valid_count")
