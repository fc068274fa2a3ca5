"""Properties that hold for every input, checked with hypothesis on random small inputs:
temporal interpolation (against numpy.interp as an independent oracle), the valid-data masks,
the spatial train/validation split of the samples, and the pixel grid.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pyproj import CRS
from shapely.geometry import box

from perceptive.eo.cube import attach_grid
from perceptive.eo.grid import Grid, grid_for_aoi, grid_of, reproject_geometry
from perceptive.eo.interpolation import interpolate
from perceptive.eo.sampling import SamplingError, sample_pixels
from perceptive.eo.valid_data import (
    data_mask,
    select_frames,
    valid_count,
    valid_fraction,
    valid_mask,
)

#: No deadline (the first call compiles the numba kernel), few examples: the file runs in
#: seconds; no example database written into the project.
FAST = settings(
    deadline=None,
    max_examples=60,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
SLOW = settings(FAST, max_examples=25)

DAY0 = pd.Timestamp("2017-01-01")
UTM33 = CRS.from_epsg(32633)


# --------------------------------------------------------------------------- interpolation


@st.composite
def time_series(draw, max_pixels=4):
    """Irregular observation days (sorted, unique), per pixel values and validity, and the
    target days (some observed days, some in between, some outside the observations)."""
    days = sorted(draw(st.lists(st.integers(0, 200), min_size=1, max_size=12, unique=True)))
    n_obs, n_pix = len(days), draw(st.integers(1, max_pixels))
    values = draw(hnp.arrays(np.float32, (n_obs, n_pix),
                             elements=st.floats(-1000, 1000, width=32)))  # fmt: skip
    valid = draw(hnp.arrays(bool, (n_obs, n_pix)))
    targets = draw(st.lists(st.integers(-30, 230) | st.sampled_from(days), min_size=1,
                            max_size=10, unique=True))  # fmt: skip
    return np.asarray(days, float), values, valid, np.asarray(targets, float)


def run(method: dict, days, values, valid, targets) -> np.ndarray:
    """``interpolate`` on (time, feature=1, y=1, x=pixels); returns (targets, pixels)."""
    times = DAY0 + pd.to_timedelta(days, unit="D")
    data = xr.DataArray(values[:, None, None, :], dims=("time", "feature", "y", "x"),
                        coords={"time": times, "feature": ["f"]})  # fmt: skip
    mask = xr.DataArray(valid[:, None, :], dims=("time", "y", "x"), coords={"time": times})
    out = interpolate(data, mask, DAY0 + pd.to_timedelta(targets, unit="D"), method)
    return out.values[:, 0, 0, :]


def covers(days, targets) -> bool:
    """``interpolate`` refuses a date grid wholly outside the observations."""
    return targets.max() >= days[0] and targets.min() <= days[-1]


LINEAR = {"method": "linear", "edges": "hold"}


@FAST
@given(time_series())
def test_linear_agrees_with_numpy_interp(series):
    days, values, valid, targets = series
    assume(covers(days, targets))
    out = run(LINEAR, days, values, valid, targets)
    for p in range(values.shape[1]):
        ok = valid[:, p]
        if not ok.any():
            assert np.isnan(out[:, p]).all()
            continue
        oracle = np.interp(targets, days[ok], values[ok, p].astype(np.float64))
        np.testing.assert_allclose(out[:, p], oracle, rtol=1e-5, atol=1e-3)


@FAST
@given(time_series())
def test_linear_lies_between_the_two_valid_neighbours_and_hits_observed_values(series):
    days, values, valid, targets = series
    assume(covers(days, targets))
    out = run(LINEAR, days, values, valid, targets)
    for p in range(values.shape[1]):
        obs_days, obs = days[valid[:, p]], values[valid[:, p], p]
        for m, day in enumerate(targets):
            if obs_days.size == 0 or not obs_days[0] <= day <= obs_days[-1]:
                continue
            left = obs[np.flatnonzero(obs_days <= day)[-1]]
            right = obs[np.flatnonzero(obs_days >= day)[0]]
            lo, hi = min(left, right), max(left, right)
            slack = 4 * np.spacing(np.float32(max(abs(lo), abs(hi))))
            assert lo - slack <= out[m, p] <= hi + slack
            if day in obs_days:  # an observed valid date: its value, exactly
                assert out[m, p] == obs[np.flatnonzero(obs_days == day)[0]]


@FAST
@given(time_series())
def test_linear_with_nan_edges_is_nan_outside_the_valid_observations(series):
    days, values, valid, targets = series
    assume(covers(days, targets))
    out = run({"method": "linear", "edges": "nan"}, days, values, valid, targets)
    for p in range(values.shape[1]):
        ok = valid[:, p]
        inside = ok.any() & (targets >= days[ok].min(initial=np.inf))
        inside &= targets <= days[ok].max(initial=-np.inf)
        assert np.isnan(out[~inside, p]).all()
        if inside.any():
            oracle = np.interp(targets[inside], days[ok], values[ok, p].astype(np.float64))
            np.testing.assert_allclose(out[inside, p], oracle, rtol=1e-5, atol=1e-3)


@FAST
@given(time_series())
def test_nearest_returns_the_closest_valid_observation_the_earlier_on_a_tie(series):
    days, values, valid, targets = series
    assume(covers(days, targets))
    out = run({"method": "nearest"}, days, values, valid, targets)
    for p in range(values.shape[1]):
        obs_days, obs = days[valid[:, p]], values[valid[:, p], p]
        for m, day in enumerate(targets):
            if obs_days.size == 0:
                assert np.isnan(out[m, p])
                continue
            distance = np.abs(obs_days - day)
            closest = np.flatnonzero(distance == distance.min())[0]  # days sorted: the earlier
            assert out[m, p] == obs[closest]
            assert out[m, p] in obs  # one of the valid observations, never a blend


@FAST
@given(time_series())
def test_previous_returns_the_last_valid_observation_at_or_before(series):
    days, values, valid, targets = series
    assume(covers(days, targets))
    out = run({"method": "previous"}, days, values, valid, targets)
    for p in range(values.shape[1]):
        obs_days, obs = days[valid[:, p]], values[valid[:, p], p]
        for m, day in enumerate(targets):
            before = np.flatnonzero(obs_days <= day)
            if before.size == 0:
                assert np.isnan(out[m, p])
            else:
                assert out[m, p] == obs[before[-1]]


@FAST
@given(time_series(), st.sampled_from(["linear", "nearest", "previous"]), st.booleans())
def test_a_pixel_without_valid_observation_is_nan_whatever_the_method(series, method, as_nan):
    days, values, valid, targets = series
    assume(covers(days, targets))
    if as_nan:  # "valid" but NaN counts as no observation as well
        values, valid = values.copy(), valid.copy()
        values[:, 0], valid[:, 0] = np.nan, True
    else:
        valid = valid.copy()
        valid[:, 0] = False
    out = run({"method": method}, days, values, valid, targets)
    assert np.isnan(out[:, 0]).all()


@SLOW
@given(time_series(max_pixels=6), st.integers(1, 4))
def test_dask_chunks_give_the_same_result_as_numpy(series, chunk):
    days, values, valid, targets = series
    assume(covers(days, targets))
    times = DAY0 + pd.to_timedelta(days, unit="D")
    data = xr.DataArray(values[:, None, None, :], dims=("time", "feature", "y", "x"),
                        coords={"time": times})  # fmt: skip
    mask = xr.DataArray(valid[:, None, :], dims=("time", "y", "x"), coords={"time": times})
    dates = DAY0 + pd.to_timedelta(targets, unit="D")
    eager = interpolate(data, mask, dates, LINEAR)
    lazy = interpolate(data.chunk({"x": chunk}), mask.chunk({"x": chunk}), dates, LINEAR)
    np.testing.assert_array_equal(lazy.compute().values, eager.values)


# --------------------------------------------------------------------------- masking

FRAMES = st.tuples(st.integers(1, 5), st.integers(1, 6), st.integers(1, 6))


def frames(shape, values) -> xr.DataArray:
    return xr.DataArray(values.reshape(shape), dims=("time", "y", "x"))


@FAST
@given(FRAMES.flatmap(lambda s: st.tuples(st.just(s), hnp.arrays(bool, s), hnp.arrays(bool, s))))
def test_valid_is_data_and_not_cloud_and_its_fraction_a_hand_count(drawn):
    shape, is_data, cloud = drawn
    valid = valid_mask(frames(shape, is_data), frames(shape, cloud))
    np.testing.assert_array_equal(valid.values, is_data & ~cloud)
    fraction = valid_fraction(valid).values
    assert ((fraction >= 0) & (fraction <= 1)).all()
    by_hand = [np.count_nonzero(frame) / frame.size for frame in is_data & ~cloud]
    np.testing.assert_allclose(fraction, by_hand, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(valid_count(valid).values, (is_data & ~cloud).sum(axis=0))


@FAST
@given(FRAMES.flatmap(lambda s: st.tuples(st.just(s), hnp.arrays(bool, s),
                                          hnp.arrays(bool, s[1:]))))  # fmt: skip
def test_valid_fraction_inside_the_aoi_counts_only_its_pixels(drawn):
    shape, valid, inside = drawn
    aoi = xr.DataArray(inside, dims=("y", "x"))
    if not inside.any():
        with pytest.raises(ValueError, match="no pixel inside the AOI"):
            valid_fraction(frames(shape, valid), aoi)
        return
    fraction = valid_fraction(frames(shape, valid), aoi).values
    assert ((fraction >= 0) & (fraction <= 1)).all()
    by_hand = [np.count_nonzero(frame & inside) / np.count_nonzero(inside) for frame in valid]
    np.testing.assert_allclose(fraction, by_hand, rtol=0, atol=1e-12)


@FAST
@given(st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(1, 4))
       .flatmap(lambda s: st.tuples(
           hnp.arrays(np.uint16, s, elements=st.sampled_from([0, 0, 1, 1234, 65535])),
           hnp.arrays(bool, (s[0], s[2], s[3])))))  # fmt: skip
def test_data_mask_is_every_band_non_zero_and_the_sources_own_mask(drawn):
    bands, own = drawn
    cube = xr.Dataset({"bands": (("time", "band", "y", "x"), bands)})
    np.testing.assert_array_equal(data_mask(cube).values, (bands != 0).all(axis=1))
    cube["is_data"] = (("time", "y", "x"), own)
    np.testing.assert_array_equal(data_mask(cube).values, own & (bands != 0).all(axis=1))


@FAST
@given(st.lists(st.floats(0, 1), min_size=1, max_size=12), st.floats(0, 1), st.integers(1, 4))
def test_select_frames_keeps_exactly_the_frames_at_the_threshold_or_says_why(
    shares, threshold, min_frames
):
    fraction = xr.DataArray(np.asarray(shares), dims="time")
    passing = np.asarray(shares) >= threshold
    if passing.sum() >= min_frames:
        np.testing.assert_array_equal(select_frames(fraction, threshold, min_frames), passing)
    else:
        with pytest.raises(ValueError, match=rf"{min_frames} needed: {len(shares)} frame"):
            select_frames(fraction, threshold, min_frames)


# --------------------------------------------------------------------------- sampling


@st.composite
def sampling_inputs(draw):
    """Labels in patches (cells of 1 to 5 px of one class, 0 = unlabelled), parcels of
    ``parcel_size`` px squares or none, and sampling options."""
    height, width = draw(st.integers(6, 20)), draw(st.integers(6, 20))
    cell = draw(st.integers(1, 5))
    shape = (-(-height // cell), -(-width // cell))
    cells = hnp.arrays(np.uint8, shape, elements=st.sampled_from([0, 1, 2, 3]), fill=st.nothing())
    classes = draw(cells)
    labels = np.kron(classes, np.ones((cell, cell), np.uint8))[:height, :width]
    parcel_size = draw(st.none() | st.integers(2, 7))
    options = {
        "n_samples": draw(st.integers(2, 400)),
        "block_size": draw(st.integers(2, 8)),
        "validation_fraction": draw(st.floats(0.1, 0.6)),
        "test_fraction": draw(st.sampled_from([0.0, 0.0, 0.2])),
        "erosion_radius": draw(st.integers(0, 2)),
        "seed": draw(st.integers(0, 2**16)),
    }
    return labels, parcel_size, options


def features_for(labels: np.ndarray) -> xr.DataArray:
    height, width = labels.shape
    values = np.random.default_rng(0).random((2, 2, height, width), dtype=np.float32)
    grid = Grid(UTM33, 500000.0, 5100000.0, 10.0, width, height)
    cube = xr.DataArray(values, dims=("time", "feature", "y", "x"),
                        coords={"time": pd.date_range("2017-04-01", periods=2, freq="16D"),
                                "feature": ["a", "b"]})  # fmt: skip
    return attach_grid(cube, grid)


@SLOW
@given(sampling_inputs())
def test_samples_are_labelled_pixels_split_by_whole_blocks_and_parcels(drawn):
    labels, parcel_size, options = drawn
    height, width = labels.shape
    rows, cols = np.indices(labels.shape)
    parcels = None
    if parcel_size is not None:  # rectangles of parcel_size px, numbered from 1, on labels
        per_row = -(-width // parcel_size)
        parcels = (rows // parcel_size * per_row + cols // parcel_size + 1).astype(np.int32)
        parcels[labels == 0] = 0
    features = features_for(labels)
    try:
        table = sample_pixels(features, labels, parcels=parcels, **options)
    except SamplingError as err:  # documented refusals: too few labelled blocks, or a side
        reason = re.search(r"no labelled pixel|fall in one|No (train|validation) sample", str(err))
        assert reason, err
        event(f"refused: {reason.group(0)}")
        return

    assert len(table) <= options["n_samples"]
    assert not table.duplicated(["row", "col"]).any()
    picked = labels[table["row"], table["col"]]
    assert (picked != 0).all()
    np.testing.assert_array_equal(table["label"], picked)
    np.testing.assert_array_equal(table["x"], features["x"].values[table["col"]])
    np.testing.assert_array_equal(table["y"], features["y"].values[table["row"]])

    blocks = {name: set(group["block"]) for name, group in table.groupby("split")}
    for a, b in (("train", "validation"), ("train", "test"), ("validation", "test")):
        assert not blocks.get(a, set()) & blocks.get(b, set()), (a, b)
    if parcels is None:  # the spatial unit is the geometric block of the pixel
        size = options["block_size"]
        geometric = table["row"] // size * -(-width // size) + table["col"] // size
        np.testing.assert_array_equal(table["block"], geometric)
    else:  # a parcel is one unit: one block, one side of the split
        assert (table.groupby("parcel")["block"].nunique() == 1).all()
        assert (table.groupby("parcel")["split"].nunique() == 1).all()

    radius = options["erosion_radius"]
    train, held = table[table["split"] == "train"], table[table["split"] != "train"]
    if radius and len(train) and len(held):
        dy = train["row"].to_numpy()[:, None] - held["row"].to_numpy()[None, :]
        dx = train["col"].to_numpy()[:, None] - held["col"].to_numpy()[None, :]
        assert (dy * dy + dx * dx > radius * radius).all()


# --------------------------------------------------------------------------- grid

RESOLUTIONS = st.sampled_from([0.5, 1.0, 7.5, 10.0, 20.0, 60.0])


@st.composite
def grids(draw, min_side=1):
    resolution = draw(RESOLUTIONS)
    return Grid(
        UTM33,
        draw(st.integers(1_000, 80_000)) * resolution,
        draw(st.integers(100_000, 900_000)) * resolution,
        resolution,
        draw(st.integers(min_side, 40)),
        draw(st.integers(min_side, 40)),
        draw(st.none() | RESOLUTIONS.filter(lambda r: r != resolution)),
    )


@FAST
@given(st.floats(200_000, 800_000), st.floats(1_000_000, 8_000_000), st.floats(1, 5_000),
       st.floats(1, 5_000), RESOLUTIONS)  # fmt: skip
def test_grid_for_a_utm_aoi_covers_it_snapped_with_less_than_a_pixel_to_spare(
    minx, miny, width, height, resolution
):
    aoi = box(minx, miny, minx + width, miny + height)
    grid = grid_for_aoi(aoi, UTM33, resolution, target_crs="EPSG:32633")
    left, bottom, right, top = grid.bounds
    tolerance = 1e-6 * resolution
    assert left <= minx < left + resolution
    assert top - resolution < miny + height <= top
    assert minx + width - tolerance <= right < minx + width + resolution
    assert bottom <= miny + tolerance and miny - resolution < bottom + tolerance
    for corner in (left, top):
        assert math.isclose(corner / resolution, round(corner / resolution), abs_tol=1e-6)


@FAST
@given(st.floats(-170, 170), st.floats(-75, 75), st.floats(0.001, 0.5), st.floats(0.001, 0.5))
def test_grid_for_a_lon_lat_aoi_covers_it_in_the_utm_zone_of_its_centre(lon, lat, dlon, dlat):
    aoi, wgs84 = box(lon, lat, lon + dlon, lat + dlat), CRS.from_epsg(4326)
    grid = grid_for_aoi(aoi, wgs84, 10.0)
    centre = aoi.centroid
    assert grid.crs.is_projected
    position = (centre.x + 180) / 6
    if abs(position - round(position)) > 1e-9:  # not on a zone edge
        zone = int(position) % 60 + 1
        assert grid.crs.to_epsg() == (32600 if centre.y >= 0 else 32700) + zone
    minx, miny, maxx, maxy = reproject_geometry(aoi, wgs84, grid.crs).bounds
    left, bottom, right, top = grid.bounds
    assert left <= minx and bottom <= miny + 1e-5 and maxx <= right + 1e-5 and maxy <= top


@FAST
@given(grids())
def test_pixel_centres_lie_inside_the_grid_one_pixel_apart(grid):
    left, bottom, right, top = grid.bounds
    assert ((grid.x > left) & (grid.x < right)).all()
    assert ((grid.y > bottom) & (grid.y < top)).all()
    assert grid.x.size == grid.width and grid.y.size == grid.height
    np.testing.assert_allclose(np.diff(grid.x), grid.res_x)
    np.testing.assert_allclose(np.diff(grid.y), -grid.res_y)
    assert math.isclose(grid.x[0] - left, grid.res_x / 2)
    assert math.isclose(top - grid.y[0], grid.res_y / 2)


@FAST
@given(grids(), st.integers(1, 16))
def test_windows_of_a_grid_tile_it_exactly(grid, tile):
    windows = [
        (r, c, grid.window(r, c, min(tile, grid.height - r), min(tile, grid.width - c)))
        for r in range(0, grid.height, tile)
        for c in range(0, grid.width, tile)
    ]
    assert sum(w.width * w.height for _, _, w in windows) == grid.width * grid.height
    left, bottom, right, top = grid.bounds
    for r, c, w in windows:
        assert (w.crs, w.resolution, w.resolution_y) == (grid.crs, grid.resolution,
                                                         grid.resolution_y)  # fmt: skip
        np.testing.assert_allclose(w.x, grid.x[c : c + w.width], rtol=0, atol=1e-6)
        np.testing.assert_allclose(w.y, grid.y[r : r + w.height], rtol=0, atol=1e-6)
        w_left, w_bottom, w_right, w_top = w.bounds
        assert left - 1e-6 <= w_left < w_right <= right + 1e-6
        assert bottom - 1e-6 <= w_bottom < w_top <= top + 1e-6
    # neighbours share their edge: the tiles leave no gap and do not overlap
    by_offset = {(r, c): w for r, c, w in windows}
    for (r, c), w in by_offset.items():
        if (r, c + tile) in by_offset:
            assert math.isclose(w.bounds[2], by_offset[(r, c + tile)].bounds[0])
        if (r + tile, c) in by_offset:
            assert math.isclose(w.bounds[1], by_offset[(r + tile, c)].bounds[3])
    assert grid.window(0, 0, grid.height, grid.width) == grid


@FAST
@given(grids(min_side=2))
def test_grid_of_a_cube_on_a_grid_is_that_grid(grid):
    cube = xr.Dataset({"v": (("y", "x"), np.zeros((grid.height, grid.width), np.uint8))})
    assert grid_of(attach_grid(cube, grid)) == grid


@FAST
@given(grids())
def test_grid_of_a_cube_one_pixel_wide_or_tall_takes_the_other_axis_size(grid):
    """Documented: an axis of one pixel takes the other axis' size (square pixels)."""
    cube = xr.Dataset({"v": (("y", "x"), np.zeros((grid.height, grid.width), np.uint8))})
    square = Grid(grid.crs, grid.left, grid.top, grid.resolution, grid.width, grid.height)
    if grid.width == grid.height == 1:
        with pytest.raises(ValueError, match="1 x 1 pixel cube"):
            grid_of(attach_grid(cube, square))
    elif 1 in (grid.width, grid.height):
        assert grid_of(attach_grid(cube, square)) == square
