"""s2cloudless cloud masking on hand-built cubes: finds the cloud, leaves clear land alone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from pyproj import CRS

from perceptive.eo.cloud_masking import (
    METHODS,
    _detector,
    cloud_masks,
    processing_factor,
    radius_pixels,
    snow_test,
    source_cloud_masks,
)
from perceptive.eo.cube import attach_grid, make_l1c_cube, spatial_chunks
from perceptive.eo.grid import Grid
from perceptive.sources.demo import demo_grid, demo_scene

# TOA reflectance, S2 band order B01 ... B8A, B09, B10, B11, B12
CLEAR = np.array(
    [0.12, 0.09, 0.08, 0.05, 0.09, 0.25, 0.30, 0.32, 0.33, 0.10, 0.003, 0.18, 0.09], np.float32
)
CLOUD = np.array(
    [0.50, 0.50, 0.52, 0.55, 0.55, 0.56, 0.57, 0.58, 0.58, 0.20, 0.07, 0.45, 0.35], np.float32
)
N = 160
CLOUD_BOX = (slice(40, 104), slice(48, 112))  # frame 1: 64 x 64 px opaque cloud
INTERIOR = (slice(56, 88), slice(64, 96))  # at least 16 px inside the cloud edge
FAR = (slice(130, None), slice(None))  # > 25 px (2.5 blocks at 160 m) from the cloud
NODATA_COLS = slice(0, 40)  # frame 2: left strip without data


def _cube(n=N, tile=64):
    rng = np.random.default_rng(42)
    refl = CLEAR[None, :, None, None] * (1 + 0.05 * rng.standard_normal((3, 13, n, n)))
    refl[1, :, CLOUD_BOX[0], CLOUD_BOX[1]] = CLOUD[:, None, None] * (
        1 + 0.03 * rng.standard_normal((13, 64, 64))
    )
    dn = np.clip(np.round(refl * 10000), 1, 65535).astype(np.uint16)
    dn[2, :, :, NODATA_COLS] = 0
    dn[0, 5, 10:20, 10:20] = 0  # one band missing: still no data
    grid = Grid(CRS.from_epsg(32633), 500000.0, 5100000.0, 10.0, n, n)
    cube = make_l1c_cube(dn, pd.date_range("2017-03-01", periods=3, freq="10D"), grid)
    return cube.chunk(spatial_chunks(tile))


@pytest.fixture(scope="module")
def cube():
    return _cube()


@pytest.fixture(scope="module", params=[160, 10], ids=["160m", "10m"])
def masks(request, cube):
    return request.param, cloud_masks(cube, processing_resolution=request.param).compute()


def test_detects_cloud_and_spares_clear_land(masks):
    _, m = masks
    mask = m["cloud_mask"].values
    recall = mask[1][INTERIOR].mean()
    assert recall >= 0.9
    assert mask[0].mean() <= 0.01  # cloud-free frame
    assert mask[1][FAR].mean() <= 0.01
    prob = m["cloud_prob"].values
    assert np.median(prob[1][INTERIOR]) > 0.9 * 255
    assert np.median(prob[0]) < 0.2 * 255


def test_no_data_is_never_cloud(masks):
    _, m = masks
    assert not m["cloud_mask"].values[2][:, NODATA_COLS].any()
    assert not m["cloud_mask"].values[0, 10:20, 10:20].any()
    assert (m["cloud_prob"].values[2][:, NODATA_COLS] == 0).all()


def test_output_layout(masks, cube):
    resolution, m = masks
    assert m["cloud_prob"].dims == m["cloud_mask"].dims == ("time", "y", "x")
    assert m["cloud_prob"].dtype == np.uint8
    assert m["cloud_mask"].dtype == bool
    assert m.rio.crs == cube.rio.crs
    assert "spatial_ref" in m.coords
    np.testing.assert_array_equal(m["x"].values, cube["x"].values)
    np.testing.assert_array_equal(m["time"].values, cube["time"].values)
    assert m.attrs["processing_resolution"] == resolution


def test_lazy_and_chunked_like_input(cube):
    m = cloud_masks(cube, processing_resolution=10)
    assert m["cloud_mask"].chunks == cube["bands"].isel(band=0).chunks
    m160 = cloud_masks(cube)
    assert m160["cloud_prob"].chunks == cube["bands"].isel(band=0).chunks


def test_full_resolution_has_no_tile_seams(cube):
    """10 m path per 64 px chunk with overlap == s2cloudless on the whole image at once."""
    tiled = cloud_masks(cube, processing_resolution=10).compute()
    refl = np.moveaxis(cube["bands"].values, 1, -1).astype(np.float32) / 10000
    det = _detector(0.4, 2, 1)
    prob = det.get_cloud_probability_maps(refl)
    is_data = (cube["bands"].values != 0).all(axis=1)
    prob[~is_data] = 0
    expected = det.get_mask_from_prob(prob).astype(bool) & is_data
    np.testing.assert_array_equal(tiled["cloud_mask"].values, expected)
    np.testing.assert_array_equal(tiled["cloud_prob"].values, np.round(prob * 255).astype(np.uint8))


def test_coarse_path_aoi_not_multiple_of_block():
    """150 px is not a multiple of 16: the partial last block must still work."""
    cube = _cube(n=150, tile=64)
    m = cloud_masks(cube).compute()
    assert m.sizes == {"time": 3, "y": 150, "x": 150}
    assert m["cloud_mask"].values[1][INTERIOR].mean() >= 0.9
    assert m["cloud_mask"].values[0].mean() <= 0.01


def _whole_aoi_coarse(cube, factor, threshold=0.4, average_over=2, dilation_size=1):
    """The coarse path as it was before it was chunked, on the whole AOI at once in numpy:
    block means over data pixels (float32 sums), s2cloudless frame by frame, its mask on the
    whole coarse frame, back to the cube grid (bilinear probability, nearest mask)."""
    dn = cube["bands"].values
    n_time, n_band, ny, nx = dn.shape
    is_data = (dn != 0).all(axis=1)
    pad = ((0, 0), (0, (-ny) % factor), (0, (-nx) % factor))
    masked = np.pad(
        np.where(is_data[:, None], dn, 0).astype(np.float32), pad[:1] + ((0, 0),) + pad[1:]
    )
    weights = np.pad(is_data.astype(np.int32), pad)
    Y, X = masked.shape[2] // factor, masked.shape[3] // factor
    sums = masked.reshape(n_time, n_band, Y, factor, X, factor).sum(axis=(3, 5))
    counts = weights.reshape(n_time, Y, factor, X, factor).sum(axis=(2, 4))
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / (counts[:, None] * np.float32(10000))
    means = np.where(counts[:, None] > 0, means, 0.0).astype(np.float32)
    detector = _detector(threshold, average_over, dilation_size)
    prob = np.zeros((n_time, Y, X), np.float32)
    for t in range(n_time):
        has = counts[t] > 0
        pixels = np.moveaxis(means[t], 0, -1)[has]
        prob[t][has] = detector.get_cloud_probability_maps(pixels[None, :, None])[0, :, 0]
    coarse_mask = detector.get_mask_from_prob(prob).astype(bool)

    def centres(n_fine, n):
        pos = np.clip((np.arange(n_fine) + 0.5) / factor - 0.5, 0.0, n - 1)
        lo = np.floor(pos).astype(int)
        return lo, np.minimum(lo + 1, n - 1), (pos - lo).astype(np.float32)

    ylo, yhi, wy = centres(ny, Y)
    xlo, xhi, wx = centres(nx, X)
    along_y = prob[:, ylo] * (1 - wy)[:, None] + prob[:, yhi] * wy[:, None]
    fine = along_y[:, :, xlo] * (1 - wx) + along_y[:, :, xhi] * wx
    prob_u8 = np.round(np.clip(fine, 0.0, 1.0) * 255.0).astype(np.uint8)
    mask = coarse_mask[:, np.arange(ny) // factor][:, :, np.arange(nx) // factor]
    return np.where(is_data, prob_u8, 0), mask & is_data


@pytest.mark.parametrize(
    ("n", "tile", "resolution", "average_over", "dilation_size"),
    [
        (160, 64, 160, 2, 1),  # the default, 3 x 3 chunks of 4 x 4 blocks
        (150, 40, 160, 2, 1),  # chunks not whole blocks, AOI ends in a partial block
        (150, 37, 80, 1, 2),  # 8 x 8 blocks, chunks of 37 px, deeper dilation
        (150, 48, 160, 0, 0),  # no smoothing or dilation: threshold only
        (150, 150, 160, 2, 1),  # one chunk: the whole cube
    ],
)
def test_chunked_coarse_path_equals_the_whole_aoi_computation(
    n, tile, resolution, average_over, dilation_size
):
    """Block means, s2cloudless, its mask (smoothing and dilation across chunk edges) and the
    bilinear probability (block centres of the neighbouring chunk) chunk by chunk: exactly
    the answers of the whole-AOI computation, with no-data pixels and partial blocks."""
    cube = _cube(n=n, tile=tile)
    settings = {"average_over": average_over, "dilation_size": dilation_size}
    found = cloud_masks(cube, processing_resolution=resolution, compiled=False, **settings)
    assert found["cloud_prob"].chunks == cube["bands"].isel(band=0).chunks
    found = found.compute()
    prob, mask = _whole_aoi_coarse(cube, resolution // 10, **settings)
    assert mask.any() and (~mask).any()
    np.testing.assert_array_equal(found["cloud_prob"].values, prob)
    np.testing.assert_array_equal(found["cloud_mask"].values, mask)


def test_coarse_path_reads_only_neighbouring_chunks():
    """Memory is bounded by a few chunks whatever the AOI: one output chunk needs its own
    input chunk and its neighbours' (the mask's and the interpolation's borders), no more."""
    cube = _cube(n=320, tile=64)  # 5 x 5 chunks
    found = cloud_masks(cube, compiled=False)
    bands = cube["bands"].data.name
    for name in ("cloud_prob", "cloud_mask"):
        middle = found[name].data.blocks[0, 2, 2]
        graph = middle.dask.cull({middle.__dask_keys__()[0][0][0]})
        read = {key[3:] for key in graph.keys() if key[0] == bands}  # (name, t, band, y, x)
        assert read == {(y, x) for y in (1, 2, 3) for x in (1, 2, 3)}  # 9 of the 25


def test_coarse_mask_is_blocky_and_dilated(cube):
    """160 m mask copied to 16x16 px blocks; dilation grows the cloud beyond its edge."""
    m = cloud_masks(cube, processing_resolution=160).compute()["cloud_mask"].values[1]
    blocks = m.reshape(10, 16, 10, 16)
    assert (blocks.all(axis=(1, 3)) | ~blocks.any(axis=(1, 3))).all()
    assert m[CLOUD_BOX[0].start - 16, 80]  # one block above the cloud, flagged by dilation


def test_radius_in_metres_rounds_to_processing_pixels():
    assert [radius_pixels(m, 160) for m in (0, 79, 80, 160, 320, 400)] == [0, 0, 1, 1, 2, 3]
    assert radius_pixels(320, 20) == 16 and radius_pixels(160, 20) == 8
    with pytest.raises(ValueError, match=">= 0"):
        radius_pixels(-10, 160)


def test_averaging_and_dilation_in_metres_mean_the_same_at_any_resolution(cube):
    """320 m of averaging and 160 m of dilation are eo-learn's 2 and 1 pixels at 160 m, and
    4 and 2 pixels at 80 m: the masks equal those given in pixels; the attributes say so."""
    in_metres = {"average_over_m": 320, "dilation_m": 160}
    for resolution, pixels in ((160, (2, 1)), (80, (4, 2))):
        got = cloud_masks(cube, processing_resolution=resolution, **in_metres).compute()
        want = cloud_masks(
            cube, processing_resolution=resolution, average_over=pixels[0], dilation_size=pixels[1]
        ).compute()
        assert (got.attrs["average_over"], got.attrs["dilation_size"]) == pixels
        np.testing.assert_array_equal(got["cloud_mask"].values, want["cloud_mask"].values)
    # and the metres win over the pixel counts: a wider dilation flags more
    wider = cloud_masks(cube, processing_resolution=80, average_over_m=320, dilation_m=480)
    assert wider["cloud_mask"].sum() > got["cloud_mask"].sum()


def test_bad_processing_resolution(cube):
    with pytest.raises(ValueError, match="whole multiple"):
        cloud_masks(cube, processing_resolution=25)
    with pytest.raises(ValueError, match="whole multiple"):
        cloud_masks(cube, processing_resolution=5)


def test_missing_band_is_named(cube):
    with pytest.raises(ValueError, match="B10"):
        cloud_masks(cube.drop_sel(band="B10"))


def test_snow_test_against_hand_built_spectra():
    """Snow: bright green, dark SWIR, no cirrus. The CLOUD spectrum (NDSI 0.07) and a snow-like
    spectrum under cirrus (B10 0.03) are not snow; dark snow-like pixels (NIR 0.08) neither."""
    snow = np.array(
        [0.80, 0.82, 0.80, 0.78, 0.76, 0.74, 0.72, 0.70, 0.68, 0.20, 0.002, 0.10, 0.08], np.float32
    )
    under_cirrus = snow.copy()
    under_cirrus[10] = 0.03
    dark = snow * 0.1
    spectra = np.stack([snow, CLOUD, CLEAR, under_cirrus, dark])  # (5, 13)
    dn = np.round(spectra.T[None, :, None, :] * 10000).astype(np.uint16)  # (1, 13, 1, 5)
    grid = Grid(CRS.from_epsg(32633), 500000.0, 5100000.0, 10.0, 5, 1)
    cube = make_l1c_cube(dn, pd.DatetimeIndex(["2017-02-01"]), grid)
    assert snow_test(cube["bands"]).values[0, 0].tolist() == [True, False, False, False, False]


def test_ndsi_snow_option_gives_snow_back_its_clear_observations():
    """On the demo's snow parcels (against its truth): s2cloudless alone takes most clear snow
    for cloud; with snow="ndsi" it does not, and clouds, also over snow, are still found."""
    scene = demo_scene(demo_grid(512, 512))
    window = {"y": slice(224, 416), "x": slice(128, 256)}  # holds the demo's snow parcels (v2)
    l1c = scene.l1c_cube(tile_size=64).isel(window)
    truth = scene.truth(tile_size=64).isel(window).compute()
    cloud, snow = truth["cloud"].values, truth["snow"].values
    clear_snow = snow & ~cloud & ~truth["cirrus"].values & ~truth["no_data"].values
    clear_snow &= ~truth["haze"].values  # demo v2: thin cloud or haze over snow is not clear
    assert clear_snow.sum() > 10_000  # the window has snow to test on
    plain = cloud_masks(l1c).compute()["cloud_mask"].values
    with_test = cloud_masks(l1c, snow="ndsi").compute()["cloud_mask"].values
    assert plain[clear_snow].mean() > 0.3  # the problem
    assert with_test[clear_snow].mean() < 0.1  # the remedy
    assert with_test[cloud].mean() > plain[cloud].mean() - 0.01
    assert with_test[cloud & snow].mean() > 0.95


# --------------------------------------------------------------------------- from_source


def _source_cube(**variables):
    """1 frame of 1 x 4 px on a non-square grid, with the given (time, y, x) variables."""
    grid = Grid(CRS.from_epsg(32633), 500000.0, 5100000.0, 9.995, 4, 1, resolution_y=9.998)
    cube = xr.Dataset(
        {k: (("time", "y", "x"), np.asarray(v)[None, None]) for k, v in variables.items()},
        coords={"time": pd.DatetimeIndex(["2017-04-01"])},
    )
    return attach_grid(cube, grid)


def test_from_source_takes_the_cubes_cloud_mask_and_invalid_pixels():
    cube = _source_cube(
        is_data=[True, True, True, False],
        cloud_mask=[True, False, False, True],  # the last: cloud where no data -> not cloud
        is_valid=[False, True, False, False],  # pixel 2: data but not valid -> cloud
        NDVI=np.zeros(4, np.float32),
    )
    found = METHODS.run({"method": "from_source"}, cube)
    assert found["cloud_mask"].values[0, 0].tolist() == [True, False, True, False]
    assert found["cloud_prob"].dtype == np.uint8
    assert found["cloud_prob"].values[0, 0].tolist() == [255, 0, 255, 0]


def test_from_source_scales_a_float_cloud_probability():
    cube = _source_cube(
        is_data=[True, True, True, False],
        cloud_mask=[False, False, True, False],
        cloud_prob=np.array([0.0, 0.2, 0.9, 0.5], np.float32),
    )
    found = source_cloud_masks(cube)
    # round(p x 255): 0, 51, 229.5 -> 230 (round half to even gives 230), no data -> 0
    assert found["cloud_prob"].values[0, 0].tolist() == [0, 51, 230, 0]


def test_from_source_without_masks_names_the_choices():
    cube = _source_cube(is_data=[True] * 4, NDVI=np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="'cloud_mask' or 'is_valid'.*s2cloudless.*none"):
        source_cloud_masks(cube)


def test_s2cloudless_on_a_cube_without_bands_points_to_from_source():
    cube = _source_cube(is_data=[True] * 4, NDVI=np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="all 13 L1C bands; the cube has no bands.*from_source"):
        cloud_masks(cube)


def test_processing_factor_accepts_eopatch_pixel_sizes():
    assert processing_factor(160, 9.995) == 16  # 16.008: an EOPatch's 9.995 m pixels
    assert processing_factor(160, 10.0) == 16
    with pytest.raises(ValueError, match="whole multiple"):
        processing_factor(160, 10.2)  # 15.69: not a whole multiple
