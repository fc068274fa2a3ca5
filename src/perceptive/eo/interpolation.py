"""Temporal resampling of irregular, gappy per-pixel time series onto one regular date grid.

Why: each pixel has a different set of cloud-free acquisitions, but the classifier needs the
same features at the same dates for every pixel, so each pixel's valid observations are
resampled onto a fixed grid (every 16 days by default). Methods (:data:`METHODS`):

- ``linear`` (default): linear in time between the valid observations around a date. Outside a
  pixel's first and last valid observation, ``edges: hold`` keeps the nearest valid value
  (numpy.interp's rule, the default) and ``edges: nan`` gives NaN (eo-learn's
  LinearInterpolationTask rule);
- ``nearest``: the valid observation closest in time (the earlier one on a tie);
- ``previous``: the last valid observation at or before the date, NaN before the first;
- ``cubic``: the not-a-knot cubic spline through the valid observations (the default of
  ``scipy.interpolate.CubicSpline``, which reproduces cubic polynomials; not the natural
  spline), linear when a pixel has fewer than 4 of them; ``edges`` as for ``linear`` (the
  spline is never extrapolated);
- ``whittaker``: the Whittaker smoother (Eilers 2003, "A perfect smoother"): per pixel, the
  daily series z minimising ``sum(w (y - z)^2) + lmbda * sum((Delta^d z)^2)`` over the days
  from its first to its last valid observation, w = 1 on a day with a valid observation
  (an observation counts on its UTC calendar day; two on one day count twice, at their mean)
  and 0 elsewhere, then read at the dates (linear between days). Options ``lmbda`` (> 0,
  default 10: larger is smoother; tends to the observations as it goes to 0 and, with d = 2,
  to their least-squares straight line as it grows), ``d`` (difference order, 1 to 4, default
  2; a pixel with fewer days of valid observations than ``d`` uses their number), ``edges``:
  ``hold`` keeps the smoothed value of the first / last valid day, ``nan`` gives NaN. The
  banded system (W + lmbda D'D) z = W y is solved per pixel by a banded Cholesky
  factorisation (the algorithm of ``scipy.linalg.solveh_banded``), compiled with numba.

A pixel without any valid observation is NaN whatever the method, never a made-up value: the
feature_engineering pipeline flags it with ``valid_count`` 0.

``linear``, ``nearest`` and ``previous``: one forward and one backward sweep over the valid
mask (compiled with numba, pixels in the inner loop) find, per pixel and target date, the last
valid observation at or before it and the first at or after it; every feature then only reads
those two values and the method combines them (times in float64 days, values in float32).
``cubic`` and ``whittaker`` take each pixel's series in turn (compiled with numba, in buffers
of one series, float64 inside, float32 out). Everything runs per spatial chunk through
``dask`` so memory is bounded by a few chunks, never the AOI.

The link: a method is a numpy kernel over one block, registered in :data:`METHODS`;
:func:`interpolate` does the xarray / dask plumbing (chunking, coordinates) for every method.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import dask.array as da
import numba
import numpy as np
import pandas as pd
import xarray as xr
from pydantic import Field

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


def target_times(
    acquisitions,
    start: str | pd.Timestamp,
    end: str | pd.Timestamp,
    step_days: int = 16,
    times: str = "grid",
    time_of_day: str = "midnight",
) -> pd.DatetimeIndex:
    """The times every pixel gets a value at.

    ``times="grid"``: :func:`date_grid` from ``start`` to ``end``, at midnight, or with
    ``time_of_day="first_acquisition"`` shifted to the first acquisition's time of day, as
    eo-learn does (it counts hours from the first acquisition but steps the grid by calendar
    days from it; with 10:00 acquisitions its grid falls at 10:00). ``times="acquisitions"``:
    the acquisitions themselves, so invalid observations are filled from their neighbours and
    nothing is resampled (every pixel still gets the same features, as all share the frames).
    """
    acquisitions = pd.DatetimeIndex(acquisitions)
    if times == "acquisitions":
        return pd.DatetimeIndex(acquisitions, name="time")
    grid = date_grid(start, end, step_days)
    if time_of_day == "first_acquisition" and len(acquisitions):
        grid = grid + (acquisitions[0] - acquisitions[0].normalize())
    return grid


def _days(times) -> np.ndarray:
    """datetime64 values as float64 days since the Unix epoch."""
    values = np.asarray(pd.DatetimeIndex(times).values.astype("datetime64[ns]").astype(np.int64))
    return values / _NS_PER_DAY


#: How ``_resample`` combines a date's two valid neighbours.
_LINEAR, _LINEAR_NAN_EDGES, _NEAREST, _PREVIOUS = 0, 1, 2, 3


@numba.njit(cache=True, nogil=True)
def _neighbours(valid, obs_days, target_days, left, right):
    """valid (T, P) bool, days float64 (targets sorted) -> left / right (M, P) int32: per
    target and pixel, the last valid observation at or before it and the first at or after it
    (-1: none). One forward and one backward sweep over the time steps, pixels inner."""
    n_obs, n_pix = valid.shape
    n_target = target_days.size
    cur = np.full(n_pix, -1, np.int32)
    i = 0
    for m in range(n_target):
        while i < n_obs and obs_days[i] <= target_days[m]:
            for p in range(n_pix):
                if valid[i, p]:
                    cur[p] = i
            i += 1
        left[m] = cur
    cur[:] = -1
    i = n_obs - 1
    for m in range(n_target - 1, -1, -1):
        while i >= 0 and obs_days[i] >= target_days[m]:
            for p in range(n_pix):
                if valid[i, p]:
                    cur[p] = i
            i -= 1
        right[m] = cur


@numba.njit(cache=True, nogil=True)
def _resample(values, valid, obs_days, target_days, rule, out):
    """values (T, F, P) float32, valid (T, 1 or F, P) bool, days float64 (target days sorted)
    -> out (M, F, P), every element written: per pixel, the last valid observation at or
    before each target day and the first at or after it, combined by ``rule``. An observation
    is valid where ``valid`` and its value is not NaN. The neighbours come from the mask once
    (:func:`_neighbours`), shared by every feature when the mask is; a feature whose
    neighbour value is NaN looks further for that pixel only. So each feature costs a gather
    of M values per pixel, not a sweep of T."""
    n_obs, n_feat, n_pix = values.shape
    n_target = target_days.size
    left = np.empty((n_target, n_pix), np.int32)
    right = np.empty((n_target, n_pix), np.int32)
    for f in range(n_feat):
        vf = min(f, valid.shape[1] - 1)
        if f == 0 or valid.shape[1] > 1:
            _neighbours(valid[:, vf, :], obs_days, target_days, left, right)
        for m in range(n_target):
            day = target_days[m]
            for p in range(n_pix):
                il, ir = left[m, p], right[m, p]
                vl, vr = np.float32(np.nan), np.float32(np.nan)
                while il >= 0:  # skip valid observations whose value is NaN
                    vl = values[il, f, p]
                    if not np.isnan(vl) and valid[il, vf, p]:
                        break
                    il -= 1
                while 0 <= ir < n_obs:
                    vr = values[ir, f, p]
                    if not np.isnan(vr) and valid[ir, vf, p]:
                        break
                    ir += 1
                has_l, has_r = il >= 0, 0 <= ir < n_obs
                if not has_l:
                    vl = np.float32(np.nan)
                if not has_r:
                    vr = np.float32(np.nan)
                if rule == _PREVIOUS:
                    result = vl
                elif rule == _NEAREST:
                    near_l = has_l and (not has_r or day - obs_days[il] <= obs_days[ir] - day)
                    result = vl if near_l else vr
                elif has_l and has_r:
                    tl, tr = obs_days[il], obs_days[ir]
                    result = vl if tr <= tl else vl + np.float32((day - tl) / (tr - tl)) * (vr - vl)
                elif rule == _LINEAR:
                    result = vl if has_l else vr  # hold the nearest valid value (NaN: none)
                else:
                    result = np.float32(np.nan)
                out[m, f, p] = result


def _kernel(data, valid, obs_days, target_days, rule) -> np.ndarray:
    """Run ``_resample`` with ``rule`` on one block, targets in any order."""
    return _per_block(_resample, data, valid, obs_days, target_days, rule)


def _per_block(sweep, data, valid, obs_days, target_days, *args) -> np.ndarray:
    """``sweep(values (T, F, P), valid (T, 1 or F, P), obs_days, sorted targets, *args, out)``
    on one block (targets sorted for it and put back in their order; ``out`` starts NaN).
    Pixels are flattened when that is a view; a block cut from a larger array (a chunk of an
    in-memory cube) is not contiguous, so it is swept row by row where it is instead of being
    copied (a year of features is hundreds of MB per block)."""
    n_obs, n_feat, *space = data.shape
    n_target = target_days.size
    out = np.full((n_target, n_feat, *space), np.nan, np.float32)
    if not n_obs:
        return out
    order = np.argsort(target_days, kind="stable")
    obs_days = np.asarray(obs_days, np.float64)
    targets = np.asarray(target_days[order], np.float64)
    if len(space) == 2 and not (data.flags.c_contiguous and valid.flags.c_contiguous):
        for row in range(space[0]):
            sweep(data[:, :, row], valid[:, :, row], obs_days, targets, *args, out[:, :, row])
    else:
        sweep(data.reshape(n_obs, n_feat, -1), valid.reshape(n_obs, valid.shape[1], -1),
              obs_days, targets, *args, out.reshape(n_target, n_feat, -1))  # fmt: skip
    if not (order == np.arange(n_target)).all():  # back to the caller's order of targets
        out[order] = out.copy()
    return out


@numba.njit(cache=True, nogil=True)
def _gather(values, valid, f, p, obs_days, x, y):
    """Pixel ``p``'s valid observations of feature ``f`` into x (days) and y; their number."""
    vf = min(f, valid.shape[1] - 1)
    n = 0
    for i in range(values.shape[0]):
        v = values[i, f, p]
        if valid[i, vf, p] and not np.isnan(v):
            x[n] = obs_days[i]
            y[n] = v
            n += 1
    return n


@numba.njit(cache=True, nogil=True)
def _linear_series(x, y, n, targets, hold, out, f, p):
    """Linear interpolation of one series (n >= 1 points, x increasing) at sorted targets."""
    j = 0
    for m in range(targets.size):
        t = targets[m]
        if t < x[0] or t > x[n - 1]:
            if hold:
                out[m, f, p] = y[0] if t < x[0] else y[n - 1]
            continue
        if n == 1:
            out[m, f, p] = y[0]
            continue
        while j < n - 2 and x[j + 1] < t:
            j += 1
        out[m, f, p] = y[j] + (t - x[j]) / (x[j + 1] - x[j]) * (y[j + 1] - y[j])


@numba.njit(cache=True, nogil=True)
def _cubic_sweep(values, valid, obs_days, targets, hold, out):
    """Per pixel and feature: the not-a-knot cubic spline through the valid observations
    (scipy's ``CubicSpline`` default), linear with fewer than 4 of them."""
    n_obs, n_feat, n_pix = values.shape
    x, y = np.empty(n_obs), np.empty(n_obs)
    s, diag, upper, rhs = np.empty(n_obs), np.empty(n_obs), np.empty(n_obs), np.empty(n_obs)
    for f in range(n_feat):
        for p in range(n_pix):
            n = _gather(values, valid, f, p, obs_days, x, y)
            if n == 0:
                continue
            if n < 4:
                _linear_series(x, y, n, targets, hold, out, f, p)
                continue
            # The spline's slopes s at the knots solve a tridiagonal system (the rows of
            # scipy.interpolate.CubicSpline with bc_type="not-a-knot"), by Thomas' algorithm:
            # its pivots stay positive for increasing x, so no pivoting is needed.
            for i in range(1, n - 1):
                dl, dr = x[i] - x[i - 1], x[i + 1] - x[i]
                sl, sr = (y[i] - y[i - 1]) / dl, (y[i + 1] - y[i]) / dr
                diag[i] = 2.0 * (dl + dr)
                upper[i] = dl
                rhs[i] = 3.0 * (dr * sl + dl * sr)
            d0, d1 = x[1] - x[0], x[2] - x[1]
            span = x[2] - x[0]
            diag[0], upper[0] = d1, span
            rhs[0] = (d0 + 2.0 * span) * d1 * (y[1] - y[0]) / d0 + d0 * d0 * (y[2] - y[1]) / d1
            rhs[0] /= span
            e1, e0 = x[n - 1] - x[n - 2], x[n - 2] - x[n - 3]
            span = x[n - 1] - x[n - 3]
            diag[n - 1] = e0
            rhs[n - 1] = (e1 * e1 * (y[n - 2] - y[n - 3]) / e0 + (2.0 * span + e1) * e0 * (
                y[n - 1] - y[n - 2]) / e1) / span  # fmt: skip
            for i in range(1, n):
                # lower coefficient of row i: x[i+1] - x[i] inside, x[n-1] - x[n-3] last
                lower = x[i + 1] - x[i] if i < n - 1 else span
                ratio = lower / diag[i - 1]
                diag[i] -= ratio * upper[i - 1]
                rhs[i] -= ratio * rhs[i - 1]
            s[n - 1] = rhs[n - 1] / diag[n - 1]
            for i in range(n - 2, -1, -1):
                s[i] = (rhs[i] - upper[i] * s[i + 1]) / diag[i]
            j = 0
            for m in range(targets.size):
                t = targets[m]
                if t < x[0] or t > x[n - 1]:
                    if hold:
                        out[m, f, p] = y[0] if t < x[0] else y[n - 1]
                    continue
                while j < n - 2 and x[j + 1] < t:
                    j += 1
                h = x[j + 1] - x[j]
                u = (t - x[j]) / h
                out[m, f, p] = (
                    y[j] * (1.0 + u * u * (2.0 * u - 3.0))
                    + y[j + 1] * u * u * (3.0 - 2.0 * u)
                    + h * u * (1.0 - u) * ((1.0 - u) * s[j] - u * s[j + 1])
                )


@numba.njit(cache=True, nogil=True)
def _whittaker_sweep(values, valid, obs_days, targets, hold, lmbda, order, out):
    """Per pixel and feature: the Whittaker smoother on the days from the first to the last
    valid observation's (UTC) day, sampled at the targets by linear interpolation between days.
    (W + lmbda D'D) z = W y is solved by a banded Cholesky factorisation (as LAPACK's pbsv,
    which scipy.linalg.solveh_banded calls), per series, in the day buffers below."""
    n_obs, n_feat, n_pix = values.shape
    x, y = np.empty(n_obs), np.empty(n_obs)
    first_day = np.floor(obs_days[0]) if n_obs else 0.0
    n_days = int(np.floor(obs_days[n_obs - 1]) - first_day) + 1 if n_obs else 0
    w, z = np.empty(n_days), np.empty(n_days)
    band = np.empty((n_days, order + 1))  # band[i, k] = A[i, i - k], then L[i, i - k]
    coef = np.empty(order + 1)
    for f in range(n_feat):
        for p in range(n_pix):
            n = _gather(values, valid, f, p, obs_days, x, y)
            if n == 0:
                continue
            start = np.floor(x[0])
            size = int(np.floor(x[n - 1]) - start) + 1
            w[:size] = 0.0
            z[:size] = 0.0
            for k in range(n):
                i = int(np.floor(x[k]) - start)
                w[i] += 1.0  # two observations on one day: weight 2 at their mean
                z[i] += y[k]
            distinct = 0
            for i in range(size):
                distinct += w[i] > 0.0
            # fewer days with observations than the order: the polynomials of that degree
            # through them would be free, so the order drops to their number
            d = min(order, distinct)
            coef[0] = 1.0
            for k in range(1, d + 1):  # (-1)^(d-k) binomial(d, k): the d-th difference
                coef[k] = coef[k - 1] * (d - k + 1) / k
            for k in range(d + 1):
                if (d - k) % 2:
                    coef[k] = -coef[k]
            band[:size, : d + 1] = 0.0
            for i in range(size):
                band[i, 0] = w[i]
            for r in range(size - d):
                for a in range(d + 1):
                    for b in range(a, d + 1):
                        band[r + b, b - a] += lmbda * coef[a] * coef[b]
            for j in range(size):  # Cholesky, in place (diagonal: 1 / L[j, j])
                acc = band[j, 0]
                for k in range(max(0, j - d), j):
                    acc -= band[j, j - k] ** 2
                band[j, 0] = 1.0 / np.sqrt(acc)
                for i in range(j + 1, min(j + d, size - 1) + 1):
                    acc = band[i, i - j]  # A[i, j], which L[i, j] replaces
                    for k in range(max(0, i - d), j):
                        acc -= band[i, i - k] * band[j, j - k]
                    band[i, i - j] = acc * band[j, 0]
            for i in range(size):  # L u = W y
                acc = z[i]
                for k in range(max(0, i - d), i):
                    acc -= band[i, i - k] * z[k]
                z[i] = acc * band[i, 0]
            for i in range(size - 1, -1, -1):  # L' z = u
                acc = z[i]
                for k in range(i + 1, min(i + d, size - 1) + 1):
                    acc -= band[k, k - i] * z[k]
                z[i] = acc * band[i, 0]
            for m in range(targets.size):
                pos = targets[m] - start
                if pos < 0.0 or pos > size - 1:
                    if hold:
                        out[m, f, p] = z[0] if pos < 0.0 else z[size - 1]
                    continue
                i = min(int(pos), size - 2) if size > 1 else 0
                out[m, f, p] = z[i] + (pos - i) * (z[i + 1] - z[i]) if size > 1 else z[0]


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


def cubic(
    data: np.ndarray,
    valid: np.ndarray,
    obs_days: np.ndarray,
    target_days: np.ndarray,
    *,
    edges: Literal["hold", "nan"] = "hold",
) -> np.ndarray:
    """Cubic spline kernel: per pixel, the not-a-knot cubic spline through the valid
    observations (``scipy.interpolate.CubicSpline``'s default), linear with fewer than 4.
    ``edges``: outside a pixel's valid observations, hold the nearest valid value or give NaN
    (the spline is never extrapolated)."""
    return _per_block(_cubic_sweep, data, valid, obs_days, target_days, edges == "hold")


def whittaker(
    data: np.ndarray,
    valid: np.ndarray,
    obs_days: np.ndarray,
    target_days: np.ndarray,
    *,
    lmbda: Annotated[float, Field(gt=0)] = 10.0,
    d: Annotated[int, Field(ge=1, le=4)] = 2,
    edges: Literal["hold", "nan"] = "hold",
) -> np.ndarray:
    """Whittaker smoother kernel (Eilers 2003): per pixel, the daily series z minimising
    ``sum(w (y - z)^2) + lmbda * sum((Delta^d z)^2)``, weights 1 on the days with a valid
    observation and 0 elsewhere, sampled at the target days (linear between days).
    ``lmbda`` sets the smoothing (-> 0: through the observations; large with ``d`` = 2: towards
    their least-squares line), ``d`` the order of the differences. ``edges``: outside a pixel's
    first and last valid observation's day, hold the smoothed value there or give NaN."""
    hold = edges == "hold"
    return _per_block(
        _whittaker_sweep, data, valid, obs_days, target_days, hold, float(lmbda), int(d)
    )


#: Interpolation link: ``kernel(data, valid, obs_days, target_days, **options) -> out`` on one
#: block: data (T, F, ...) float32, valid (T, 1 or F, ...) bool, days as float64, out
#: (M, F, ...) float32 at the M target days.
METHODS = Registry(
    "interpolation", "kernel(data, valid, obs_days, target_days, **options) -> (M, F, ...)"
)
METHODS.register("linear", linear)
METHODS.register("nearest", nearest)
METHODS.register("previous", previous)
METHODS.register("cubic", cubic)
METHODS.register("whittaker", whittaker)


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
