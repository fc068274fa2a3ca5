"""Spectral indices and the feature stack against hand-computed numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pyproj import CRS

from perceptive.eo.cube import S2_BANDS, make_l1c_cube, reflectance
from perceptive.eo.grid import Grid
from perceptive.eo.indices import (
    INDICES,
    band_norm,
    feature_stack,
    ndvi,
    ndwi,
    normalized_difference,
)


def _cube():
    """2 frames, 1 x 2 px. Pixel 0: B03 .08, B04 .05, B08 .32, B02 .09, B11 .18, B12 .09."""
    dn = np.full((2, 13, 1, 2), 1000, np.uint16)
    idx = {b: i for i, b in enumerate(S2_BANDS)}
    for band, value in {
        "B02": 900,
        "B03": 800,
        "B04": 500,
        "B08": 3200,
        "B11": 1800,
        "B12": 900,
    }.items():
        dn[:, idx[band], 0, 0] = value
    dn[1, :, 0, 1] = 0  # frame 1, pixel 1: no data
    grid = Grid(CRS.from_epsg(32633), 500000.0, 5100000.0, 10.0, 2, 1)
    return make_l1c_cube(dn, pd.date_range("2017-05-01", periods=2, freq="5D"), grid)


def test_normalized_difference_values_and_nans():
    import xarray as xr

    a = xr.DataArray(np.array([0.3, 0.0, np.nan, 0.2], np.float32))
    b = xr.DataArray(np.array([0.1, 0.0, 0.1, -0.2], np.float32))
    nd = normalized_difference(a, b)
    assert nd.dtype == np.float32
    np.testing.assert_allclose(nd.values[0], 0.5, rtol=1e-6)
    assert np.isnan(nd.values[1:]).all()  # 0/0, missing, a + b == 0


def test_ndvi_ndwi_norm_hand_computed():
    refl = reflectance(_cube()["bands"])
    np.testing.assert_allclose(ndvi(refl).values[0, 0, 0], (0.32 - 0.05) / 0.37, rtol=1e-6)
    np.testing.assert_allclose(ndwi(refl).values[0, 0, 0], (0.08 - 0.32) / 0.40, rtol=1e-6)
    expected_norm = np.sqrt(0.09**2 + 0.08**2 + 0.05**2 + 0.32**2 + 0.18**2 + 0.09**2)
    np.testing.assert_allclose(band_norm(refl).values[0, 0, 0], expected_norm, rtol=1e-6)
    # all 13 bands: the 7 others are 0.1
    expected_13 = np.sqrt(expected_norm**2 + 7 * 0.1**2)
    np.testing.assert_allclose(band_norm(refl, None).values[0, 0, 0], expected_13, rtol=1e-6)
    # pixel 1 everywhere 0.1: ND indices 0, norm sqrt(6) * 0.1
    np.testing.assert_allclose(ndvi(refl).values[0, 0, 1], 0.0, atol=1e-7)
    np.testing.assert_allclose(band_norm(refl).values[0, 0, 1], np.sqrt(6) * 0.1, rtol=1e-6)
    assert np.isnan(band_norm(refl).values[1, 0, 1])


def test_moisture_built_up_and_red_edge_indices_hand_computed():
    """Pixel 0: B08 .32, B11 .18, B05 and B8A .10 (the cube's default DN 1000)."""
    refl = reflectance(_cube()["bands"])
    expected = {
        "NDMI": (0.32 - 0.18) / (0.32 + 0.18),
        "NDBI": (0.18 - 0.32) / (0.18 + 0.32),
        "NDRE": (0.10 - 0.10) / (0.10 + 0.10),
    }
    for name, value in expected.items():
        index = INDICES[name](refl)
        assert index.dtype == np.float32 and index.name == name
        np.testing.assert_allclose(index.values[0, 0, 0], value, rtol=1e-6, atol=1e-7)
        assert np.isnan(index.values[1, 0, 1])  # no data stays NaN
    stack = feature_stack(_cube(), ("NDMI", "B08"))
    np.testing.assert_allclose(stack.values[0, 0, 0, 0], expected["NDMI"], rtol=1e-6)


def test_feature_stack_layout_and_values():
    cube = _cube().chunk({"y": 1, "x": 1})
    stack = feature_stack(cube)
    assert stack.chunks is not None  # lazy
    stack = stack.compute()
    assert stack.dims == ("time", "feature", "y", "x")
    assert stack.dtype == np.float32
    assert list(stack["feature"].values) == [
        "B02", "B03", "B04", "B08", "B11", "B12", "NDVI", "NDWI", "NORM"
    ]  # fmt: skip
    px = stack.isel(time=0, y=0, x=0)
    np.testing.assert_allclose(px.sel(feature="B08"), 0.32, rtol=1e-6)
    np.testing.assert_allclose(px.sel(feature="B11"), 0.18, rtol=1e-6)
    np.testing.assert_allclose(px.sel(feature="NDVI"), 0.27 / 0.37, rtol=1e-6)
    assert np.isnan(stack.isel(time=1, x=1).values).all()  # no-data pixel -> NaN everywhere
    assert not np.isnan(stack.isel(time=0).values).any()
    assert stack.rio.crs == cube.rio.crs


def test_feature_stack_custom_order():
    stack = feature_stack(_cube(), features=("NDWI", "B04"))
    assert list(stack["feature"].values) == ["NDWI", "B04"]
    np.testing.assert_allclose(stack.values[0, 1, 0, 0], 0.05, rtol=1e-6)


def test_unknown_feature_lists_available():
    with pytest.raises(ValueError, match="available: .*NDVI"):
        feature_stack(_cube(), features=("B02", "EVI"))


def test_missing_band_is_named():
    cube = _cube().drop_sel(band="B04")
    with pytest.raises(ValueError, match="'B04'"):
        feature_stack(cube, features=("NDVI",))


# --------------------------------------------------------------------------- precomputed layers


def test_a_cube_without_bands_gives_its_own_layers_as_features():
    cube = _cube()
    layer = np.array([[[[0.7, np.nan]]], [[[0.6, 0.5]]]], np.float32)[:, 0]  # (time, y, x)
    bandless = cube.drop_vars(["bands", "band"]).assign(NDVI=(("time", "y", "x"), layer))
    stack = feature_stack(bandless, features=("NDVI",))
    assert stack.dims == ("time", "feature", "y", "x") and stack.dtype == np.float32
    np.testing.assert_array_equal(stack.values[:, 0], layer)
    assert stack.attrs["from_source"] == "NDVI"


def test_a_layer_of_the_features_name_wins_over_computing_it():
    cube = _cube().assign(NDVI=(("time", "y", "x"), np.full((2, 1, 2), 0.25, np.float32)))
    stack = feature_stack(cube, features=("NDVI", "NDWI"))
    assert (stack.sel(feature="NDVI").values == 0.25).all()  # the layer, not (B08-B04)/(B08+B04)
    # NDWI still from the bands: (0.08 - 0.32) / (0.08 + 0.32) = -0.6
    np.testing.assert_allclose(stack.sel(feature="NDWI").values[0, 0, 0], -0.6, rtol=1e-6)


def test_a_feature_the_cube_cannot_give_names_what_it_needs():
    cube = _cube()
    bandless = cube.drop_vars(["bands", "band"]).assign(
        NDVI=(("time", "y", "x"), np.zeros((2, 1, 2), np.float32))
    )
    with pytest.raises(
        ValueError, match=r"NDWI \(needs band\(s\) \['B03', 'B08'\].*layers \['NDVI'\]"
    ):
        feature_stack(bandless, features=("NDVI", "NDWI"))
