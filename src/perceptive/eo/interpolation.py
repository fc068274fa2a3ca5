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

The implementation is vectorised over pixels (no Python loop over pixels): one forward and
one backward sweep over the time steps carry, per pixel, the most recent valid value and its
observation index (``np.copyto(..., where=valid)``); at each target date the sweeps give the last
valid observation at or before it and the first at or after it, which each method combines
(times in float64 days, values in float32). This equals a running max / reversed running min
of valid indices plus a gather, but avoids full (time, y, x) index arrays and is ~2x faster.
It runs per spatial chunk through ``dask`` so memory is bounded by a few chunks, never the AOI.

The link: a method is a numpy kernel over one block, registered in :data:`METHODS`;
:func:`interpolate` does the xarray / dask plumbing (chunking, coordinates) for every method.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Literal

import dask.array as da
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


def _sweep(
    values: np.ndarray, ok: np.ndarray, order: range, snapshot_at: np.ndarray, n_target: int
) -> tuple[np.ndarray, np.ndarray]:
    """Walk the observations in ``order`` keeping, per pixel, the most recent valid value and
    its index; at observation ``i`` store them for every target ``j`` with
    ``snapshot_at[j] == i``. Returns (n_target, ...) values (NaN: none) and indices (-1: none).
    """
    space = values.shape[1:]
    cur_val = np.full(space, np.nan, np.float32)
    cur_idx = np.full(space, -1, np.int32)
    out_val = np.full((n_target, *space), np.nan, np.float32)
    out_idx = np.full((n_target, *space), -1, np.int32)
    for i in order:  # loop over time steps, vectorised over pixels
        np.copyto(cur_val, values[i], where=ok[i])
        np.copyto(cur_idx, i, where=ok[i])
        for j in np.flatnonzero(snapshot_at == i):
            out_val[j] = cur_val
            out_idx[j] = cur_idx
    return out_val, out_idx


def _neighbours(data: np.ndarray, valid: np.ndarray, obs_days: np.ndarray, target_days: np.ndarray):
    """Per feature ``f`` of a block (data (T, F, ...), valid (T, 1 or F, ...)): for every target
    day (M, ...) the last valid observation at or before it and the first at or after it, as
    ``(f, (v_left, t_left, has_left), (v_right, t_right, has_right))``."""
    n_obs, n_feat = data.shape[:2]
    # Per target date, the last observation time index <= it and the first >= it (same for
    # every pixel); -1 / n_obs when there is none.
    at_or_before = np.searchsorted(obs_days, target_days, side="right") - 1
    at_or_after = np.searchsorted(obs_days, target_days, side="left")
    for f in range(n_feat):  # loop over features, not pixels: bounds the temporaries
        values = data[:, f]
        ok = valid[:, min(f, valid.shape[1] - 1)] & ~np.isnan(values)
        v_left, i_left = _sweep(values, ok, range(n_obs), at_or_before, target_days.size)
        v_right, i_right = _sweep(
            values, ok, range(n_obs - 1, -1, -1), at_or_after, target_days.size
        )
        left = (v_left, obs_days[np.maximum(i_left, 0)], i_left >= 0)
        right = (v_right, obs_days[np.maximum(i_right, 0)], i_right >= 0)
        yield f, left, right


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

    def combine(targets, left, right):
        (v_left, t_left, has_left), (v_right, t_right, has_right) = left, right
        span = t_right - t_left
        with np.errstate(invalid="ignore", divide="ignore"):
            w = np.where(span > 0, (targets - t_left) / span, 0.0).astype(np.float32)
        blended = v_left + w * (v_right - v_left)
        outside = np.where(has_left, v_left, v_right) if edges == "hold" else np.nan
        return np.where(has_left & has_right, blended, outside)

    return _kernel(data, valid, obs_days, target_days, combine)


def nearest(
    data: np.ndarray, valid: np.ndarray, obs_days: np.ndarray, target_days: np.ndarray
) -> np.ndarray:
    """Nearest kernel: the valid observation closest in time, the earlier one on a tie."""

    def combine(targets, left, right):
        (v_left, t_left, has_left), (v_right, t_right, has_right) = left, right
        take_left = has_left & (~has_right | (targets - t_left <= t_right - targets))
        return np.where(take_left, v_left, v_right)  # v_right is NaN where it does not exist

    return _kernel(data, valid, obs_days, target_days, combine)


def previous(
    data: np.ndarray, valid: np.ndarray, obs_days: np.ndarray, target_days: np.ndarray
) -> np.ndarray:
    """Previous kernel: the last valid observation at or before the date, NaN before the first."""
    return _kernel(data, valid, obs_days, target_days, lambda targets, left, right: left[0])


def _kernel(data, valid, obs_days, target_days, combine) -> np.ndarray:
    """Run ``combine(targets, left, right)`` for every feature of a block."""
    out = np.full((target_days.size, *data.shape[1:]), np.nan, np.float32)
    if data.shape[0] == 0:
        return out
    targets = target_days.reshape((target_days.size, *[1] * (data.ndim - 2)))
    for f, left, right in _neighbours(data, valid, obs_days, target_days):
        out[:, f] = combine(targets, left, right)
    return out


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
