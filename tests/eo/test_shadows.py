"""Cloud shadows: projected from the cloud mask along the sun, kept where dark."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pyproj import CRS
from scipy import ndimage

from perceptive.eo.cloud_masking import cloud_masks
from perceptive.eo.cube import make_l1c_cube, spatial_chunks
from perceptive.eo.grid import Grid
from perceptive.eo.shadows import METHODS, projected_shadows
from perceptive.sources.demo import demo_grid, demo_scene

N = 128
CLOUD = (slice(80, 96), slice(40, 56))  # frame 1
# sun due south at zenith 45 deg: a cloud at 320 m casts its shadow 320 m (32 px) north
SHADOW = (slice(48, 64), slice(40, 56))
DARK_ELSEWHERE = (slice(100, 110), slice(100, 110))  # dark, but no cloud casts it


def _cube_and_clouds():
    """3 frames of flat clear land (NIR .30, SWIR .20); frame 1 has a cloud and, 32 px north of
    it, its shadow (both bands x 0.5) plus a dark patch that is no shadow."""
    dn = np.full((3, 13, N, N), 1000, np.uint16)
    dn[:, 7], dn[:, 11] = 3000, 2000  # B08, B11
    dn[1, :, CLOUD[0], CLOUD[1]] = 5000
    for patch in (SHADOW, DARK_ELSEWHERE):
        dn[1, 7, patch[0], patch[1]] //= 2
        dn[1, 11, patch[0], patch[1]] //= 2
    grid = Grid(CRS.from_epsg(32633), 500000.0, 5100000.0, 10.0, N, N)
    cube = make_l1c_cube(dn, pd.date_range("2017-06-01", periods=3, freq="10D"), grid)
    cube = cube.assign_coords(
        sun_zenith=("time", np.full(3, 45.0, np.float32)),
        sun_azimuth=("time", np.full(3, 180.0, np.float32)),
    ).chunk(spatial_chunks(64))
    clouds = np.zeros((3, N, N), bool)
    clouds[1, CLOUD[0], CLOUD[1]] = True
    return cube, cube["bands"].isel(band=0, drop=True).copy(data=clouds).rename("cloud_mask")


def test_the_shadow_is_found_where_the_sun_casts_it_and_nowhere_else():
    cube, clouds = _cube_and_clouds()
    found = projected_shadows(
        cube, clouds, min_height=320, max_height=320, processing_resolution=10
    ).values
    expected = np.zeros_like(found)
    expected[1, SHADOW[0], SHADOW[1]] = True
    np.testing.assert_array_equal(found, expected)


def test_a_cube_without_sun_angles_is_refused_by_name():
    cube, clouds = _cube_and_clouds()
    with pytest.raises(
        ValueError, match=r"sun_zenith.*sun_azimuth.*cloud_shadows: \{method: none\}"
    ):
        projected_shadows(cube.drop_vars(["sun_zenith", "sun_azimuth"]), clouds)


def test_none_finds_no_shadow():
    cube, clouds = _cube_and_clouds()
    assert not METHODS.run({"method": "none"}, cube, clouds).values.any()


def test_projection_finds_the_demo_shadows():
    """Against the demo's truth, on the demo AOI at 20 m: the shadows of the clouds the mask
    found are found, and clear land away from any shadow is left alone. (About a third of the
    demo's shadows come from clouds outside the AOI or too thin to mask: no method sees those.)"""
    scene = demo_scene(demo_grid(256, 256, resolution=20.0))
    cube, truth = scene.l1c_cube(tile_size=128), scene.truth(tile_size=128).compute()
    clouds = cloud_masks(cube)["cloud_mask"]
    found = METHODS.run({"method": "projection"}, cube, clouds).values
    shadow, no_data = truth["shadow"].values, truth["no_data"].values
    cloud = clouds.values
    target = shadow & ~cloud & ~no_data
    # demo v2: broken cloud is smaller, the 160 m cloud mask now covers most of its shadows
    assert target.sum() > 5_000
    recall = (found & target).sum() / target.sum()
    precision = (found & shadow).sum() / found.sum()
    near = np.stack([ndimage.binary_dilation(s, iterations=3) for s in shadow])
    far_clear = ~cloud & ~no_data & ~near
    assert recall > 0.5, recall
    assert precision > 0.85, precision
    assert (found & far_clear).sum() / far_clear.sum() < 0.01
    assert not (found & cloud).any()


def test_no_shadows_is_not_labelled_a_cloud_mask():
    cube, cloud = _cube_and_clouds()
    cloud = cloud.assign_attrs(long_name="cloud (s2cloudless)")
    shadow = METHODS.run({"method": "none"}, cube, cloud)
    assert not shadow.any()
    assert shadow.name == "shadow_mask"
    assert "cloud" not in str(shadow.attrs)
    assert cloud.attrs["long_name"] == "cloud (s2cloudless)"  # the cloud mask keeps its own
