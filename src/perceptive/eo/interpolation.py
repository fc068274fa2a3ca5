"""Temporal resampling of irregular, gappy per-pixel time series onto one regular date grid.

Why: each pixel has a different set of cloud-free acquisitions, but the classifier needs the
same features at the same dates for every pixel, so each pixel's valid observations are
resampled onto a fixed grid (every 16 days by default). Methods (:data:`METHODS`):

- ``linear`` (default): linear in time between the valid observations around a date. Outside a
  pixel's first and last valid observation, ``edges: hold`` keeps the nearest valid value
  (numpy.interp's rule, the default) and ``edges: nan`` gives NaN (eo-learn's
  LinearInterpolationTask rule);
- ``nearest``: the valid observation closest in time (the earlier one on a tie);
- ``previous``: the last valid observation at or before the date, NaN before the first.

A pixel without any valid observation is NaN whatever the method.

One forward and one backward sweep over the time steps (compiled with numba, pixels in the
inner loop, no temporary bigger than a feature's targets) carry, per pixel, the most recent
valid value and its day; at each target date they give the last valid observation at or
before it and the first at or after it, which the method combines (times in float64 days,
values in float32).
It runs per spatial chunk through ``dask`` so memory is bounded by a few chunks, never the AOI.

The link: a method is a numpy kernel over one block, registered in :data:`METHODS`;
:func:`interpolate` does the xarray / dask plumbing (chunking, coordinates) for every method.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Literal

import dask.array as da
import numba
import numpy as np
import pandas as pd
import xarray as xr

from perceptive.eo.links import Registry

_NS_PER_DAY = 86_400 * 10**9


def date_grid(
    start: str | pd.Timestamp = "2017-01-01",
    end: str | pd.Timestamp = "2017-12-31",
    step_days: int = 16,
) -> pd.DatetimeIndex:
    """Regular dates from ``start`` every ``step_days`` up to ``end`` (inclusive if it falls
    on the grid). 2017 with 16 days gives 23 dates, Jan 1 ... Dec 19."""
    if step_days <= 0:
        raise ValueError(f"step_days must be positive, got {step_days}.")
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    if end < start:
        raise ValueError(f"end {end.date()} is before start {start.date()}.")
    return pd.date_range(start, end, freq=pd.Timedelta(days=step_days), name="time")


def _days(times) -> np.ndarray:
    """datetime64 values as float64 days since the Unix epoch."""
    values = np.asarray(pd.DatetimeIndex(times).values.astype("datetime64[ns]").astype(np.int64))
    return values / _NS_PER_DAY


#: How ``_resample`` combines a date's two valid neighbours.
_LINEAR, _LINEAR_NAN_EDGES, _NEAREST, _PREVIOUS = 0, 1, 2, 3


@numba.njit(cache=True, nogil=True)
def _resample(values, valid, obs_days, target_days, rule, out):
    """values (T, F, P) float32, valid (T, 1 or F, P) bool, days float64 (target days sorted)
    -> out (M, F, P): per pixel, a forward sweep over the observations keeps the last valid one
    at or before each target day, a backward sweep the first one at or after it, and ``rule``
    combines the two. An observation is valid where ``valid`` and its value is not NaN."""
    n_obs, n_feat, n_pix = values.shape
    n_target = target_days.size
    left_v = np.empty((n_target, n_pix), np.float32)
    left_t = np.empty((n_target, n_pix))
    cur_v = np.empty(n_pix, np.float32)
    cur_t = np.empty(n_pix)
    for f in range(n_feat):
        vf = min(f, valid.shape[1] - 1)
        cur_v[:] = np.nan
        cur_t[:] = np.nan
        i = 0
        for m in range(n_target):
            while i < n_obs and obs_days[i] <= target_days[m]:
                for p in range(n_pix):
                    if valid[i, vf, p] and not np.isnan(values[i, f, p]):
                        cur_v[p] = values[i, f, p]
                        cur_t[p] = obs_days[i]
                i += 1
            left_v[m] = cur_v
            left_t[m] = cur_t
        cur_v[:] = np.nan
        cur_t[:] = np.nan
        i = n_obs - 1
        for m in range(n_target - 1, -1, -1):
            while i >= 0 and obs_days[i] >= target_days[m]:
                for p in range(n_pix):
                    if valid[i, vf, p] and not np.isnan(values[i, f, p]):
                        cur_v[p] = values[i, f, p]
                        cur_t[p] = obs_days[i]
                i -= 1
            day = target_days[m]
            for p in range(n_pix):
                vl, tl, vr, tr = left_v[m, p], left_t[m, p], cur_v[p], cur_t[p]
                has_l, has_r = not np.isnan(tl), not np.isnan(tr)
                if rule == _PREVIOUS:
                    result = vl
                elif rule == _NEAREST:
                    result = vl if has_l and (not has_r or day - tl <= tr - day) else vr
                elif has_l and has_r:
                    result = vl if tr <= tl else vl + np.float32((day - tl) / (tr - tl)) * (vr - vl)
                elif rule == _LINEAR:
                    result = vl if has_l else vr  # hold the nearest valid value (NaN: none)
                else:
                    result = np.nan
                out[m, f, p] = result


def _kernel(data, valid, obs_days, target_days, rule) -> np.ndarray:
    """Run ``_resample`` with ``rule`` on one block (pixels flattened), targets in any order."""
    n_obs, n_feat, *space = data.shape
    out = np.full((target_days.size, n_feat, int(np.prod(space))), np.nan, np.float32)
    if n_obs:
        order = np.argsort(target_days, kind="stable")
        ordered = np.empty_like(out)
        _resample(
            data.reshape(n_obs, n_feat, -1), valid.reshape(n_obs, valid.shape[1], -1),
            np.asarray(obs_days, np.float64), np.asarray(target_days[order], np.float64),
            rule, ordered,
        )  # fmt: skip
        out[order] = ordered
    return out.reshape(target_days.size, n_feat, *space)


def linear(
    data: np.ndarray,
    valid: np.ndarray,
    obs_days: np.ndarray,
    target_days: np.ndarray,
    *,
    edges: Literal["hold", "nan"] = "hold",
) -> np.ndarray:
    """Linear kernel: data (T, F, ...) float32, valid (T, 1 or F, ...) bool -> (M, F, ...).
    ``edges``: outside a pixel's valid observations, hold the nearest valid value or give NaN."""
    rule = _LINEAR if edges == "hold" else _LINEAR_NAN_EDGES
    return _kernel(data, valid, obs_days, target_days, rule)


def nearest(
    data: np.ndarray, valid: np.ndarray, obs_days: np.ndarray, target_days: np.ndarray
) -> np.ndarray:
    """Nearest kernel: the valid observation closest in time, the earlier one on a tie."""
    return _kernel(data, valid, obs_days, target_days, _NEAREST)


def previous(
    data: np.ndarray, valid: np.ndarray, obs_days: np.ndarray, target_days: np.ndarray
) -> np.ndarray:
    """Previous kernel: the last valid observation at or before the date, NaN before the first."""
    return _kernel(data, valid, obs_days, target_days, _PREVIOUS)


#: Interpolation link: ``kernel(data, valid, obs_days, target_days, **options) -> out`` on one
#: block: data (T, F, ...) float32, valid (T, 1 or F, ...) bool, days as float64, out
#: (M, F, ...) float32 at the M target days.
METHODS = Registry(
    "interpolation", "kernel(data, valid, obs_days, target_days, **options) -> (M, F, ...)"
)
METHODS.register("linear", linear)
METHODS.register("nearest", nearest)
METHODS.register("previous", previous)


def linear_interpolation(
    data: xr.DataArray,
    valid: xr.DataArray,
    dates: pd.DatetimeIndex | None = None,
) -> xr.DataArray:
    """Linearly interpolate each pixel's valid observations in time onto ``dates``.

    ``data`` is (time, feature, y, x) float32 (other dims after ``time``/``feature`` work too),
    ``valid`` is (time, y, x) bool on the same ``time`` coordinate. An observation is used when
    ``valid`` is true and the value is not NaN (checked per feature). Outside a pixel's first and
    last valid observation its nearest valid value is held; without any valid observation the
    result is NaN. Returns (time=dates, feature, y, x) float32, lazy if ``data`` is dask-backed,
    computed chunk by chunk in space (time is made one chunk). ``dates`` defaults to
    ``date_grid()``.
    """
    return interpolate(data, valid, dates, {"method": "linear"})


def interpolate(
    data: xr.DataArray,
    valid: xr.DataArray,
    dates: pd.DatetimeIndex | None,
    method: Mapping[str, Any],
) -> xr.DataArray:
    """Resample ``data`` onto ``dates`` with the interpolation ``method`` (``{method: name,
    **options}``, see :data:`METHODS`); same inputs and output as :func:`linear_interpolation`."""
    options = METHODS.validate(method)
    name = options.pop("method")
    kernel = functools.partial(METHODS.get(name), **options)
    dates = date_grid() if dates is None else pd.DatetimeIndex(dates)
    if data.dims[0] != "time" or valid.dims[0] != "time":
        raise ValueError(
            f"data and valid must have 'time' as first dim, got {data.dims} and {valid.dims}."
        )
    if data.sizes["time"] != valid.sizes["time"] or not np.array_equal(
        data["time"].values, valid["time"].values
    ):
        raise ValueError("data and valid must share the same time coordinate.")
    times = pd.DatetimeIndex(data["time"].values)
    if not (times.is_monotonic_increasing and times.is_unique):
        raise ValueError("time must be sorted and unique before interpolation.")
    if len(times) and (dates.max() < times[0] or dates.min() > times[-1]):
        raise ValueError(
            f"The date grid {dates.min().date()} .. {dates.max().date()} does not overlap the "
            f"observations {times[0].date()} .. {times[-1].date()}; every value would be made "
            "up. Check the time interval and the frames kept (min_valid_fraction)."
        )
    extra = [d for d in valid.dims[1:] if d not in data.dims]
    if extra:
        raise ValueError(f"valid has dims {extra} that data {data.dims} does not have.")

    # valid gets a length-1 axis for every data dim it lacks (normally 'feature')
    valid = valid.astype(bool).transpose("time", *[d for d in data.dims[1:] if d in valid.dims])
    for axis, dim in enumerate(data.dims):
        if dim not in valid.dims:
            valid = valid.expand_dims(dim, axis=axis)
    obs_days = _days(times)
    target_days = _days(dates)
    arr = data.data
    mask = valid.data
    if arr.dtype != np.float32:
        arr = arr.astype(np.float32)

    if isinstance(arr, da.Array) or isinstance(mask, da.Array):
        arr = da.asarray(arr)
        mask = da.asarray(mask)
        arr = arr.rechunk({0: -1})
        # same spatial chunks for the mask; its broadcast axes stay one chunk of size 1
        mask = mask.rechunk(
            {0: -1, **{i: arr.chunks[i] for i in range(2, arr.ndim) if mask.shape[i] != 1}}
        )
        mask = mask.rechunk({1: -1})
        index = tuple(range(arr.ndim))
        result = da.blockwise(
            kernel,
            index,
            arr,
            index,
            mask,
            index,
            obs_days=obs_days,
            target_days=target_days,
            adjust_chunks={0: target_days.size},
            dtype=np.float32,
            align_arrays=False,
            meta=np.empty((0,) * arr.ndim, np.float32),
        )
    else:
        result = kernel(np.asarray(arr), np.asarray(mask), obs_days, target_days)

    coords = {k: v for k, v in data.coords.items() if "time" not in v.dims}
    coords["time"] = dates.values.astype("datetime64[ns]")
    out = xr.DataArray(
        result, dims=data.dims, coords=coords, name=data.name, attrs=dict(data.attrs)
    )
    out.attrs["interpolation"] = {"method": name, **options}
    return out
