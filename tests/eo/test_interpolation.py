"""Temporal interpolation against hand-computed values and independent oracles: numpy.interp,
scipy's CubicSpline, numpy.polyfit and a dense solve of the Whittaker system."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.interpolate import CubicSpline

from perceptive.eo.interpolation import (
    date_grid,
    interpolate,
    linear_interpolation,
    target_times,
)
from perceptive.eo.links import LinkError

DAY0 = pd.Timestamp("2017-01-01")


def _series(days, values, valid, features=("f",)):
    """(time, feature, y=1, x=n) data from per-pixel lists; values[p][t], valid[p][t]."""
    times = DAY0 + pd.to_timedelta(days, unit="D")
    vals = np.asarray(values, np.float32).T  # (time, pixel)
    data = np.repeat(vals[:, None, None, :], len(features), axis=1)
    ok = np.asarray(valid, bool).T[:, None, :]
    return (
        xr.DataArray(
            data,
            dims=("time", "feature", "y", "x"),
            coords={"time": times, "feature": list(features)},
        ),
        xr.DataArray(ok, dims=("time", "y", "x"), coords={"time": times}),
    )


def _at(days):
    return pd.DatetimeIndex(DAY0 + pd.to_timedelta(days, unit="D"))


def test_date_grid_2017():
    dates = date_grid("2017-01-01", "2017-12-31", 16)
    assert len(dates) == 23
    assert dates[0] == pd.Timestamp("2017-01-01")
    assert dates[-1] == pd.Timestamp("2017-12-19")
    with pytest.raises(ValueError):
        date_grid(step_days=0)


def test_hand_computed_midpoints():
    data, valid = _series([0, 10], [[0.2, 0.6]], [[True, True]])
    out = linear_interpolation(data, valid, _at([5, 2.5, 0, 10]))
    np.testing.assert_allclose(out.values[:, 0, 0, 0], [0.4, 0.3, 0.2, 0.6], rtol=1e-6)
    assert out.dtype == np.float32
    assert out.dims == ("time", "feature", "y", "x")


def test_invalid_spike_does_not_leak():
    # day 5 is a cloud (0.95, invalid), day 7 is NaN but "valid": both must be ignored
    data, valid = _series([0, 5, 7, 10], [[0.2, 0.95, np.nan, 0.6]], [[True, False, True, True]])
    out = linear_interpolation(data, valid, _at([5, 7.5]))
    np.testing.assert_allclose(out.values[:, 0, 0, 0], [0.4, 0.5], rtol=1e-6)


def test_constant_extrapolation_at_both_ends():
    data, valid = _series([0, 10, 20, 30], [[0.9, 0.2, 0.6, 0.1]], [[False, True, True, False]])
    out = linear_interpolation(data, valid, _at([-3, 0, 5, 15, 25, 40]))
    np.testing.assert_allclose(out.values[:, 0, 0, 0], [0.2, 0.2, 0.2, 0.4, 0.6, 0.6], rtol=1e-6)


def test_all_invalid_pixel_is_nan_and_single_valid_is_constant():
    data, valid = _series(
        [0, 10, 20],
        [[0.1, 0.2, 0.3], [0.5, 0.7, 0.9], [0.3, 0.4, 0.8]],
        [[False, False, False], [False, True, False], [True, False, True]],
    )
    out = linear_interpolation(data, valid, _at([0, 5, 15, 20])).values[:, 0, 0, :]
    assert np.isnan(out[:, 0]).all()
    np.testing.assert_allclose(out[:, 1], 0.7, rtol=1e-6)
    np.testing.assert_allclose(out[:, 2], [0.3, 0.425, 0.675, 0.8], rtol=1e-6)


def test_validity_per_feature_nan():
    """A NaN in one feature only removes that feature's observation."""
    times = DAY0 + pd.to_timedelta([0, 10, 20], unit="D")
    values = np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, 3.0]], np.float32)  # (time, feature)
    data = xr.DataArray(
        values[:, :, None, None], dims=("time", "feature", "y", "x"), coords={"time": times}
    )
    valid = xr.DataArray(np.ones((3, 1, 1), bool), dims=("time", "y", "x"), coords={"time": times})
    out = linear_interpolation(data, valid, _at([10])).values[0, :, 0, 0]
    np.testing.assert_allclose(out, [0.5, 2.0], rtol=1e-6)


def _random_case(seed=3, n_time=25, n_feat=2, ny=12, nx=10):
    rng = np.random.default_rng(seed)
    days = np.sort(rng.choice(np.arange(-20, 380), n_time, replace=False)).astype(float)
    days += rng.random(n_time) * 0.5  # not whole days
    times = DAY0 + pd.to_timedelta(days, unit="D")
    values = rng.random((n_time, n_feat, ny, nx)).astype(np.float32)
    values[rng.random(values.shape) < 0.05] = np.nan
    ok = rng.random((n_time, ny, nx)) < 0.4
    ok[:, 0, 0] = False
    ok[:, 0, 1] = False
    ok[3, 0, 1] = True
    data = xr.DataArray(values, dims=("time", "feature", "y", "x"), coords={"time": times})
    valid = xr.DataArray(ok, dims=("time", "y", "x"), coords={"time": times})
    return data, valid, days


def test_matches_numpy_interp_on_random_pixels():
    data, valid, days = _random_case()
    dates = date_grid()
    out = linear_interpolation(data, valid, dates).values
    target = (dates - DAY0) / pd.Timedelta(days=1)
    values, ok = data.values, valid.values
    n_compared = 0
    for f in range(values.shape[1]):
        for i in range(values.shape[2]):
            for j in range(values.shape[3]):
                use = ok[:, i, j] & ~np.isnan(values[:, f, i, j])
                if not use.any():
                    assert np.isnan(out[:, f, i, j]).all()
                    continue
                ref = np.interp(target, days[use], values[use, f, i, j].astype(np.float64))
                np.testing.assert_allclose(out[:, f, i, j], ref, rtol=1e-5, atol=1e-6)
                n_compared += 1
    assert n_compared > 200


def test_same_result_for_any_chunking():
    data, valid, _ = _random_case(seed=7)
    dates = date_grid()
    eager = linear_interpolation(data, valid, dates)
    lazy_a = linear_interpolation(data.chunk({"y": 5, "x": 3}), valid.chunk({"y": 4}), dates)
    lazy_b = linear_interpolation(
        data.chunk({"y": -1, "x": 4, "feature": 1, "time": 5}), valid.chunk({"x": 7}), dates
    )
    assert lazy_a.chunks is not None
    np.testing.assert_array_equal(lazy_a.values, eager.values)
    np.testing.assert_array_equal(lazy_b.values, eager.values)
    assert lazy_a.chunks[2] == (5, 5, 2)  # spatial chunking of data is kept


@pytest.mark.parametrize(
    "spec",
    [{"method": "linear", "edges": "nan"}, {"method": "nearest"}, {"method": "previous"}],
)
def test_blocks_cut_from_a_larger_array_give_the_same_values(spec):
    """Chunks of an in-memory array are strided views, resampled row by row in place; a whole
    contiguous array is resampled with its pixels flattened: both give the same values."""
    data, valid, _ = _random_case(seed=11)
    dates = date_grid()
    eager = interpolate(data, valid, dates, spec)
    lazy = interpolate(data.chunk({"y": 4, "x": 6}), valid.chunk({"y": 4, "x": 6}), dates, spec)
    np.testing.assert_array_equal(lazy.values, eager.values)
    assert np.isfinite(eager.values).any() and np.isnan(eager.values).any()


def test_output_coords():
    data, valid, _ = _random_case()
    data = data.assign_coords(feature=["a", "b"], x=np.arange(10.0) * 10)
    out = linear_interpolation(data, valid, date_grid())
    assert list(out["feature"].values) == ["a", "b"]
    np.testing.assert_array_equal(out["time"].values, date_grid().values)
    np.testing.assert_array_equal(out["x"].values, data["x"].values)


def test_mismatched_time_is_rejected():
    data, valid, _ = _random_case()
    with pytest.raises(ValueError, match="same time"):
        linear_interpolation(data, valid.isel(time=slice(1, None)), date_grid())


# Valid observations at day 0 (value 1) and day 20 (value 7); day 10 (3) is cloudy.
_GAPPY = ([0, 10, 20], [[1.0, 3.0, 7.0]], [[True, False, True]])
_TARGETS = [-3, 0, 4, 10, 11, 25]


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ({"method": "linear"}, [1, 1, 2.2, 4, 4.3, 7]),
        ({"method": "linear", "edges": "hold"}, [1, 1, 2.2, 4, 4.3, 7]),
        ({"method": "linear", "edges": "nan"}, [np.nan, 1, 2.2, 4, 4.3, np.nan]),
        ({"method": "nearest"}, [1, 1, 1, 1, 7, 7]),  # day 10: a tie, the earlier wins
        ({"method": "previous"}, [np.nan, 1, 1, 1, 1, 7]),
    ],
)
def test_methods_against_hand_computed_values(method, expected):
    data, valid = _series(*_GAPPY)
    out = interpolate(data, valid, _at(_TARGETS), method)
    np.testing.assert_allclose(out.values[:, 0, 0, 0], expected, rtol=1e-6)
    assert out.dtype == np.float32 and out.attrs["interpolation"]["method"] == method["method"]


@pytest.mark.parametrize("name", ["linear", "nearest", "previous", "cubic", "whittaker"])
def test_every_method_leaves_a_pixel_without_valid_observation_nan(name):
    data, valid = _series([0, 10], [[1.0, 2.0], [5.0, 6.0]], [[False, False], [True, True]])
    out = interpolate(
        data.chunk({"x": 1}), valid.chunk({"x": 1}), _at([0, 5, 10]), {"method": name}
    )
    assert np.isnan(out.values[:, 0, 0, 0]).all()
    assert not np.isnan(out.values[:, 0, 0, 1]).any()


def test_unknown_edge_rule_is_refused_with_the_choices():
    data, valid = _series(*_GAPPY)
    with pytest.raises(LinkError, match=r"option 'edges' = 'zero'.*'hold' or 'nan'"):
        interpolate(data, valid, _at(_TARGETS), {"method": "linear", "edges": "zero"})


def test_a_date_grid_outside_the_observations_is_refused():
    data, valid = _series(*_GAPPY)
    with pytest.raises(ValueError, match=r"date grid 2018-01-01 .. 2018-01-11 does not overlap"):
        interpolate(
            data, valid, pd.date_range("2018-01-01", "2018-01-11", freq="10D"), {"method": "linear"}
        )


# --- cubic spline -------------------------------------------------------------------------


def test_cubic_equals_scipy_not_a_knot_spline_inside_and_holds_outside():
    rng = np.random.default_rng(11)
    days = np.sort(rng.choice(np.arange(0, 300), 14, replace=False)).astype(float)
    values = rng.random(14).astype(np.float32)
    ok = np.ones(14, bool)
    ok[[2, 9]] = False
    data, valid = _series(days, [values], [ok])
    targets = np.linspace(days[ok][0] - 10, days[ok][-1] + 10, 97)
    out = interpolate(data, valid, _at(targets), {"method": "cubic"}).values[:, 0, 0, 0]
    x, y = days[ok], values[ok].astype(np.float64)
    inside = (targets >= x[0]) & (targets <= x[-1])
    np.testing.assert_allclose(out[inside], CubicSpline(x, y)(targets[inside]), atol=2e-6)
    np.testing.assert_allclose(out[targets < x[0]], y[0], rtol=1e-6)
    np.testing.assert_allclose(out[targets > x[-1]], y[-1], rtol=1e-6)
    nan_edges = interpolate(data, valid, _at(targets), {"method": "cubic", "edges": "nan"})
    assert np.isnan(nan_edges.values[~inside, 0, 0, 0]).all()
    np.testing.assert_array_equal(nan_edges.values[inside, 0, 0, 0], out[inside])


def test_cubic_reproduces_a_cubic_polynomial():
    def poly(t):
        return 0.2 + 0.03 * t - 0.0009 * t**2 + 6e-6 * t**3

    days = np.array([0.0, 7, 19, 30, 41, 66, 80, 100])
    data, valid = _series(days, [poly(days)], [np.ones(days.size, bool)])
    targets = np.arange(0, 101, 2.5)
    out = interpolate(data, valid, _at(targets), {"method": "cubic"}).values[:, 0, 0, 0]
    np.testing.assert_allclose(out, poly(targets), atol=1e-5)  # float32 inputs


def test_cubic_with_fewer_than_four_observations_is_linear():
    data, valid = _series(*_GAPPY)  # two valid observations: linear, hand-computed
    out = interpolate(data, valid, _at(_TARGETS), {"method": "cubic"})
    np.testing.assert_allclose(out.values[:, 0, 0, 0], [1, 1, 2.2, 4, 4.3, 7], rtol=1e-6)
    days, values = [0, 10, 20, 30], [[1.0, 3.0, 7.0, 2.0]]  # three valid: still linear
    data, valid = _series(days, values, [[True, True, False, True]])
    out = interpolate(data, valid, _at([5, 15, 25, 35]), {"method": "cubic", "edges": "nan"})
    np.testing.assert_allclose(out.values[:, 0, 0, 0], [2, 2.75, 2.25, np.nan], rtol=1e-6)


# --- Whittaker smoother --------------------------------------------------------------------


def _whittaker_dense(days, values, lmbda, d):
    """The smoother on the whole days from the first to the last observation, written out:
    (W + lmbda D'D) z = W y, D the d-th difference matrix, by a dense solve."""
    grid = np.arange(days.min(), days.max() + 1)
    w, y = np.zeros(grid.size), np.zeros(grid.size)
    w[(days - grid[0]).astype(int)] = 1.0
    y[(days - grid[0]).astype(int)] = values
    D = np.diff(np.eye(grid.size), d, axis=0)
    return grid, np.linalg.solve(np.diag(w) + lmbda * D.T @ D, w * y)


@pytest.mark.parametrize(("lmbda", "d"), [(10.0, 2), (3.0, 1), (250.0, 3)])
def test_whittaker_matches_a_dense_solve(lmbda, d):
    rng = np.random.default_rng(5)
    days = np.sort(rng.choice(np.arange(3, 120), 15, replace=False)).astype(float)
    values = rng.random(15).astype(np.float32)
    data, valid = _series(days, [values], [np.ones(15, bool)])
    grid, expected = _whittaker_dense(days, values.astype(np.float64), lmbda, d)
    spec = {"method": "whittaker", "lmbda": lmbda, "d": d}
    out = interpolate(data, valid, _at(grid), spec)
    np.testing.assert_allclose(out.values[:, 0, 0, 0], expected, atol=2e-6)
    assert out.attrs["interpolation"] == {**spec, "edges": "hold"}
    # between days: linear between the two days' values
    half = interpolate(data, valid, _at(grid[:-1] + 0.5), spec).values[:, 0, 0, 0]
    np.testing.assert_allclose(half, (expected[:-1] + expected[1:]) / 2, atol=2e-6)


def test_whittaker_with_tiny_lambda_goes_through_the_observations():
    days = np.array([0.0, 4, 9, 10, 23, 40])
    values = np.array([0.1, 0.8, 0.3, 0.35, 0.9, 0.2], np.float32)
    data, valid = _series(days, [values], [np.ones(6, bool)])
    out = interpolate(data, valid, _at(days), {"method": "whittaker", "lmbda": 1e-7})
    np.testing.assert_allclose(out.values[:, 0, 0, 0], values, atol=1e-5)


def test_whittaker_with_huge_lambda_tends_to_the_least_squares_line():
    rng = np.random.default_rng(8)
    days = np.sort(rng.choice(np.arange(0, 60), 9, replace=False)).astype(float)
    values = (0.3 + 0.01 * days + rng.normal(0, 0.1, 9)).astype(np.float32)
    data, valid = _series(days, [values], [np.ones(9, bool)])
    targets = np.arange(days[0], days[-1] + 1)
    out = interpolate(data, valid, _at(targets), {"method": "whittaker", "lmbda": 1e9})
    slope, intercept = np.polyfit(days, values.astype(np.float64), 1)
    np.testing.assert_allclose(out.values[:, 0, 0, 0], intercept + slope * targets, atol=1e-3)


def test_whittaker_edges_and_cloudy_days():
    # cloudy observations (invalid, or NaN) weigh 0; outside the first and last valid day the
    # smoothed edge value is held, or NaN
    days = np.array([0.0, 5, 10, 20, 30, 45])
    values = [[0.9, 0.2, 0.6, np.nan, 0.4, 0.9]]
    data, valid = _series(days, values, [[False, True, True, True, True, False]])
    ok = np.array([5.0, 10, 30]), np.array([0.2, 0.6, 0.4])
    grid, expected = _whittaker_dense(*ok, 10.0, 2)
    targets = np.array([0.0, 5, 12, 30, 40])
    hold = interpolate(data, valid, _at(targets), {"method": "whittaker"}).values[:, 0, 0, 0]
    at = expected[np.clip(targets - grid[0], 0, grid.size - 1).astype(int)]
    np.testing.assert_allclose(hold, at, atol=2e-6)
    nan = interpolate(data, valid, _at(targets), {"method": "whittaker", "edges": "nan"})
    np.testing.assert_allclose(nan.values[:, 0, 0, 0], [np.nan, *at[1:4], np.nan], atol=2e-6)


def test_whittaker_order_drops_with_too_few_observation_days():
    # two valid days and d=3: a straight line through them; one valid day: that value
    data, valid = _series(
        [0, 10, 20], [[1.0, 3.0, 5.0], [2.0, 4.0, 6.0]], [[True, False, True], [False, True, False]]
    )
    out = interpolate(data, valid, _at([0, 5, 20]), {"method": "whittaker", "d": 3, "lmbda": 50})
    np.testing.assert_allclose(out.values[:, 0, 0, 0], [1, 2, 5], atol=1e-5)
    np.testing.assert_allclose(out.values[:, 0, 0, 1], [4, 4, 4], rtol=1e-6)


@pytest.mark.parametrize(
    ("spec", "option"),
    [
        ({"lmbda": 0}, "lmbda"),
        ({"lmbda": -1.0}, "lmbda"),
        ({"d": 0}, "d"),
        ({"edges": "x"}, "edges"),
    ],
)
def test_whittaker_options_are_checked(spec, option):
    data, valid = _series(*_GAPPY)
    with pytest.raises(LinkError, match=f"option '{option}'"):
        interpolate(data, valid, _at(_TARGETS), {"method": "whittaker", **spec})


# --- every method -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec", [{"method": "cubic"}, {"method": "whittaker", "lmbda": 30.0, "edges": "nan"}]
)
def test_new_methods_same_result_for_any_chunking(spec):
    data, valid, _ = _random_case(seed=7)
    dates = date_grid()
    eager = interpolate(data, valid, dates, spec)
    lazy = interpolate(data.chunk({"y": 5, "x": 3, "time": 4}), valid.chunk({"x": 7}), dates, spec)
    assert lazy.chunks is not None
    np.testing.assert_array_equal(lazy.values, eager.values)
    assert eager.dtype == np.float32
    assert np.isnan(eager.values[:, :, 0, 0]).all()  # a pixel without valid observation


def test_whittaker_runs_through_feature_engineering():
    """``interpolation: {method: whittaker}`` through the feature_engineering node functions
    (as the pipeline calls them) on a tiny demo scene."""
    from perceptive.params import Aoi, DateGrid
    from perceptive.pipelines.feature_engineering.nodes import compute_features, compute_masks
    from perceptive.sources.demo import demo_scene

    grid = Aoi(bbox=[500000, 5099840, 500160, 5100000], crs="EPSG:32633").grid(10)
    l1c = demo_scene(grid, ("2017-04-01", "2017-06-30"), revisit_days=5).l1c_cube(tile_size=8)
    l1c.attrs["time_interval"] = ["2017-04-01", "2017-06-30"]
    masks = compute_masks(l1c, {"method": "none"}, {"method": "none"})
    cube = compute_features(
        l1c, masks, ["NDVI", "B04"], 0.0, DateGrid(step_days=16), {"method": "whittaker"}
    )
    features = cube["features"]
    assert features.shape == (len(pd.date_range("2017-04-01", "2017-06-30", freq="16D")), 2, 16, 16)
    assert features.dtype == np.float32 and not np.isnan(features.values).any()
    assert cube.attrs["interpolation"] == {"method": "whittaker"}
    assert float(np.nanmax(np.abs(features.sel(feature="NDVI")))) <= 1.0


def test_target_times_at_the_acquisitions_fill_only_the_invalid_ones():
    # 10:00 acquisitions on days 0, 4, 10; day 4 is cloudy: it gets 0.2 + 0.4 * 4 / 10 = 0.36
    acquisitions = _at([0, 4, 10]) + pd.Timedelta(hours=10)
    times = target_times(acquisitions, "2017-01-01", "2017-12-31", times="acquisitions")
    assert times.equals(pd.DatetimeIndex(acquisitions, name="time"))
    data, valid = _series([0, 4, 10], [[0.2, 0.9, 0.6]], [[True, False, True]])
    data["time"] = valid["time"] = acquisitions
    out = interpolate(data, valid, times, {"method": "linear"})
    np.testing.assert_allclose(out.values[:, 0, 0, 0], [0.2, 0.36, 0.6], rtol=1e-6)


def test_target_times_at_the_first_acquisitions_time_of_day():
    acquisitions = _at([2, 7]) + pd.Timedelta(hours=10, minutes=30)
    midnight = target_times(acquisitions, "2017-01-01", "2017-01-31", step_days=10)
    shifted = target_times(
        acquisitions, "2017-01-01", "2017-01-31", step_days=10, time_of_day="first_acquisition"
    )
    assert list(midnight) == list(_at([0, 10, 20, 30]))
    assert list(shifted) == list(_at([0, 10, 20, 30]) + pd.Timedelta(hours=10, minutes=30))
    # observations 0.2 on day 2 10:30 and 0.7 on day 7 10:30: day 5 at midnight lies 2.5625
    # days after the first (value 0.2 + 0.5 * 2.5625 / 5), at 10:30 exactly 3 days after it
    data, valid = _series([2, 7], [[0.2, 0.7]], [[True, True]])
    data["time"] = valid["time"] = acquisitions
    at_midnight = interpolate(data, valid, _at([5]), {"method": "linear"})
    at_10_30 = interpolate(data, valid, _at([5]) + pd.Timedelta(hours=10.5), {"method": "linear"})
    assert at_midnight.values.ravel()[0] == pytest.approx(0.2 + 0.5 * 2.5625 / 5, rel=1e-6)
    assert at_10_30.values.ravel()[0] == pytest.approx(0.2 + 0.5 * 3 / 5, rel=1e-6)
