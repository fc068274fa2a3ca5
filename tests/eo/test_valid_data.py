"""Valid-data masks and frame selection on hand-built arrays."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from perceptive.eo.valid_data import (
    data_mask,
    select_frames,
    valid_count,
    valid_fraction,
    valid_mask,
)

TIMES = pd.date_range("2017-01-01", periods=3, freq="5D")


def _da(values, dims=("time", "y", "x")):
    coords = {"time": TIMES[: np.shape(values)[0]]} if "time" in dims else {}
    return xr.DataArray(np.asarray(values), dims=dims, coords=coords)


def test_data_mask_needs_all_bands():
    bands = np.full((2, 13, 2, 2), 1000, np.uint16)
    bands[0, 3, 0, 1] = 0  # one band missing -> no data
    bands[1, :, 1, 1] = 0  # all bands missing
    ds = xr.Dataset({"bands": (("time", "band", "y", "x"), bands)}, coords={"time": TIMES[:2]})
    is_data = data_mask(ds)
    assert is_data.dtype == bool and is_data.dims == ("time", "y", "x")
    np.testing.assert_array_equal(
        is_data.values, [[[True, False], [True, True]], [[True, True], [True, False]]]
    )
    # lazy input stays lazy
    assert data_mask(ds.chunk({"y": 1}))["y"].size == 2
    assert data_mask(ds.chunk({"y": 1})).chunks is not None


def test_valid_mask_and_count():
    is_data = _da([[[1, 1], [0, 1]], [[1, 1], [1, 1]], [[1, 0], [1, 1]]]).astype(bool)
    cloud = _da([[[0, 1], [1, 0]], [[0, 0], [0, 1]], [[0, 0], [0, 0]]]).astype(bool)
    is_valid = valid_mask(is_data, cloud)
    assert is_valid.dtype == bool
    np.testing.assert_array_equal(
        is_valid.values,
        [[[1, 0], [0, 1]], [[1, 1], [1, 0]], [[1, 0], [1, 1]]],
    )
    count = valid_count(is_valid)
    assert count.dtype == np.uint16 and count.dims == ("y", "x")
    np.testing.assert_array_equal(count.values, [[3, 1], [2, 2]])


def test_valid_fraction_and_aoi():
    is_valid = _da([[[1, 1], [1, 0]], [[0, 0], [0, 1]], [[1, 1], [1, 1]]]).astype(bool)
    np.testing.assert_allclose(valid_fraction(is_valid).values, [0.75, 0.25, 1.0])
    aoi = xr.DataArray(np.array([[1, 1], [0, 0]], bool), dims=("y", "x"))
    np.testing.assert_allclose(valid_fraction(is_valid, aoi).values, [1.0, 0.0, 1.0])


def test_select_frames_threshold():
    frac = _da([0.79, 0.8, 0.95], dims=("time",))
    keep = select_frames(frac, 0.8)
    np.testing.assert_array_equal(keep.values, [False, True, True])
    assert keep.dims == ("time",)


def test_select_frames_none_pass_has_actionable_error():
    frac = _da([0.1, 0.5, 0.65], dims=("time",))
    with pytest.raises(ValueError) as err:
        select_frames(frac, 0.8)
    msg = str(err.value)
    assert "min_valid_fraction=0.8" in msg
    assert "3 frame(s)" in msg and "best 65.0%" in msg
    assert "Lower min_valid_fraction" in msg


def test_select_frames_rejects_bad_threshold():
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        select_frames(_da([0.5], dims=("time",)), 80)


def test_data_mask_uses_the_sources_own_is_data():
    """The source's is_data decides, ANDed with "every band has data" when there are bands."""
    bands = np.full((1, 2, 2, 2), 1000, np.uint16)
    bands[0, 1, 1, 1] = 0  # a band missing where the source says data
    own = np.array([[[True, False], [True, True]]])  # the source: no data at (0, 1)
    ds = xr.Dataset(
        {"bands": (("time", "band", "y", "x"), bands), "is_data": (("time", "y", "x"), own)},
        coords={"time": TIMES[:1]},
    )
    np.testing.assert_array_equal(data_mask(ds).values, [[[True, False], [True, False]]])
    bandless = ds.drop_vars("bands")
    np.testing.assert_array_equal(data_mask(bandless).values, own)
    assert data_mask(bandless).dtype == bool


def test_data_mask_without_bands_or_own_mask_says_what_is_missing():
    ds = xr.Dataset({"NDVI": (("time", "y", "x"), np.zeros((1, 2, 2), np.float32))})
    with pytest.raises(ValueError, match="neither 'bands' nor its own 'is_data'.*NDVI"):
        data_mask(ds)
