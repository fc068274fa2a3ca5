"""The offline demo AOI: schema, determinism, and that it looks like Sentinel-2 L1C."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shapely

from perceptive.eo.cube import S2_BANDS, validate_l1c_cube
from perceptive.eo.legend import DEFAULT_LEGEND, class_names
from perceptive.sources.demo import DemoScene, demo_grid, demo_scene

B02, B04, B08, B10, B11 = (S2_BANDS.index(b) for b in ("B02", "B04", "B08", "B10", "B11"))

# A 5.12 km AOI at 40 m: every landscape zone, few pixels.
COARSE = demo_grid(128, 128, resolution=40.0)
SUMMER = ("2017-06-01", "2017-08-31")


@pytest.fixture(scope="module")
def summer_scene() -> DemoScene:
    return demo_scene(COARSE, time_interval=SUMMER, seed=7)


@pytest.fixture(scope="module")
def summer_data(summer_scene):
    cube = summer_scene.l1c_cube(tile_size=64).compute()
    truth = summer_scene.truth(tile_size=64).compute()
    return cube, truth


@pytest.fixture(scope="module")
def year_small():
    """A full year on a tiny coarse grid (all frames, cheap)."""
    scene = demo_scene(demo_grid(48, 48, resolution=100.0), seed=3)
    return scene, scene.l1c_cube(tile_size=32).compute(), scene.truth(tile_size=32).compute()


def refl(cube):
    return cube["bands"].values.astype(np.float32) / 10000


def test_default_time_axis_and_grid():
    scene = demo_scene(demo_grid())
    assert len(scene.times) == 73
    assert scene.times[0] == pd.Timestamp("2017-01-01")
    assert scene.times[-1] == pd.Timestamp("2017-12-27")
    assert (np.diff(scene.times.values) == np.timedelta64(5, "D")).all()
    assert scene.times.dtype == "datetime64[ns]" and scene.times.tz is None
    assert scene.grid.bounds == (500000.0, 5094880.0, 505120.0, 5100000.0)
    assert scene.grid.crs.to_epsg() == 32633


def test_cube_schema_and_chunks():
    scene = demo_scene(demo_grid(100, 70), time_interval=("2017-03-01", "2017-03-31"))
    cube = scene.l1c_cube(tile_size=64)
    validate_l1c_cube(cube)
    bands = cube["bands"]
    assert bands.dtype == np.uint16
    assert bands.dims == ("time", "band", "y", "x")
    assert bands.shape == (7, 13, 70, 100)
    assert bands.chunks == ((7,), (13,), (64, 6), (64, 36))
    assert list(cube["band"].values) == list(S2_BANDS)
    assert cube.rio.crs.to_epsg() == 32633
    assert cube.rio.transform() == scene.grid.transform
    np.testing.assert_allclose(cube["x"].values, scene.grid.x)
    truth = scene.truth(tile_size=64)
    for var in ("cloud", "cirrus", "shadow", "no_data", "snow", "haze"):
        assert truth[var].dims == ("time", "y", "x") and truth[var].dtype == bool
    assert truth["land_cover"].dims == ("y", "x") and truth["land_cover"].dtype == np.uint8
    assert truth.rio.crs == cube.rio.crs


def test_large_aoi_is_lazy():
    scene = demo_scene(demo_grid(4096, 4096))
    cube = scene.l1c_cube(tile_size=256)
    assert cube["bands"].shape == (73, 13, 4096, 4096)
    assert cube["bands"].data.npartitions == 256
    corner = cube["bands"].isel(x=slice(4080, 4096), y=slice(0, 16)).values
    assert corner.shape == (73, 13, 16, 16) and (corner > 0).mean() > 0.8


def test_same_seed_same_data_whatever_the_chunking():
    grid = demo_grid(80, 72, resolution=20.0)
    times = ("2017-05-01", "2017-06-15")
    a = demo_scene(grid, times, seed=11).l1c_cube(tile_size=80).bands.values
    b = demo_scene(grid, times, seed=11).l1c_cube(tile_size=24).bands.values
    c = demo_scene(grid, times, seed=11).l1c_cube(tile_size=37).bands.values
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    t1 = demo_scene(grid, times, seed=11).truth(tile_size=80).compute()
    t2 = demo_scene(grid, times, seed=11).truth(tile_size=24).compute()
    for var in t1.data_vars:
        np.testing.assert_array_equal(t1[var].values, t2[var].values)
    other = demo_scene(grid, times, seed=12).l1c_cube(tile_size=80).bands.values
    assert (other != a).mean() > 0.5


def test_land_cover_follows_parcels(summer_scene, summer_data):
    _, truth = summer_data
    lc = truth["land_cover"].values
    assert set(np.unique(lc)) <= set(range(1, 11))
    parcels = summer_scene.parcels()
    # the pixel at the representative point of large parcels has the parcel's class
    big = parcels[parcels.geometry.area > 4 * 40.0**2 * 16]
    pts = big.geometry.representative_point()
    grid = summer_scene.grid
    cols = ((pts.x.values - grid.left) // grid.resolution).astype(int)
    rows = ((grid.top - pts.y.values) // grid.resolution).astype(int)
    got = lc[rows, cols]
    assert (got == big["class_id"].values).mean() > 0.95


def test_class_frequencies_are_realistic():
    parcels = demo_scene(demo_grid(1024, 1024)).parcels()
    area = parcels.geometry.area.groupby(parcels["class_id"]).sum()
    share = area / area.sum()
    assert set(share.index) == set(range(1, 11))
    assert set(share.sort_values().index[-3:]) == {1, 2, 3}  # cultivated, forest, grassland
    assert share.max() < 0.5
    assert share[[5, 8, 9]].min() > 0.02  # some water, artificial, bareland
    assert share[[4, 6, 7, 10]].max() < 0.08  # a little of the rest
    assert parcels.geometry.area.quantile(0.9) > 4 * parcels.geometry.area.quantile(0.1)


def test_water_dark_and_vegetation_green_in_summer(summer_data):
    cube, truth = summer_data
    r = refl(cube)
    lc = truth["land_cover"].values
    # haze too: thin cloud and haze brighten dark water (the demo has them since version 2)
    clear = ~(truth.cloud | truth.cirrus | truth.shadow | truth.no_data | truth.snow | truth.haze)
    clear = clear.values
    with np.errstate(invalid="ignore"):
        ndvi = (r[:, B08] - r[:, B04]) / (r[:, B08] + r[:, B04])
    water = clear & (lc == 5)[None]
    assert water.sum() > 100
    assert np.median(r[:, B08][water]) < 0.04
    assert np.median(r[:, B11][water]) < 0.03
    assert np.median(ndvi[water]) < 0
    for cls in (1, 2, 3):
        seen = clear & (lc == cls)[None]
        best = np.nanmax(np.where(seen, ndvi, np.nan)[:, seen.any(0)], axis=0)
        assert 0.6 < np.nanmedian(best) < 0.9, cls
    veg = clear & (lc == 2)[None]
    assert np.median(r[:, B10][veg]) < 0.006  # cirrus band nearly blind to the surface
    built = clear & (lc == 8)[None]
    assert np.median(r[:, B02][built]) > np.median(r[:, B02][veg])


def test_clouds_bright_and_shadows_dark(summer_data):
    cube, truth = summer_data
    r = refl(cube)
    cloud = truth["cloud"].values
    clear = ~(truth.cloud | truth.cirrus | truth.shadow | truth.no_data).values
    assert cloud.mean() > 0.05 and clear.mean() > 0.3
    assert np.median(r[:, B02][cloud]) > 0.25
    assert np.median(r[:, B08][cloud]) > 0.3
    assert np.median(r[:, B02][cloud]) > np.median(r[:, B02][clear]) + 0.15
    shadow = truth["shadow"].values
    assert shadow.mean() > 0.005
    # the same pixel is darker in shadow than on average when clear
    nir = np.where(clear, r[:, B08], np.nan)
    clear_mean = np.nanmean(nir, axis=0)
    t, y, x = np.nonzero(shadow & np.isfinite(clear_mean)[None])
    assert np.median(r[t, B08, y, x] / clear_mean[y, x]) < 0.7


def test_cirrus_raises_b10(summer_data):
    cube, truth = summer_data
    r = refl(cube)
    cirrus = truth["cirrus"].values
    clear = ~(truth.cloud | truth.cirrus | truth.no_data).values
    assert cirrus.sum() > 50
    assert np.median(r[:, B10][cirrus]) > 0.01 > np.median(r[:, B10][clear])


def test_frames_from_clear_to_overcast_and_nodata_strips(year_small):
    scene, cube, truth = year_small
    cover = truth["cloud"].mean(("y", "x")).values
    assert 0.25 < (cover < 0.01).mean() < 0.6  # clear frames
    assert 0.1 < (cover > 0.6).mean() < 0.4  # mostly or fully cloudy frames
    assert (cover > 0.99).any()
    bands = cube["bands"].values
    nodata = truth["no_data"].values
    frames = np.flatnonzero(nodata.any(axis=(1, 2)))
    assert 1 <= frames.size <= 12
    assert (bands.transpose(0, 2, 3, 1)[nodata] == 0).all()  # all 13 bands are 0
    assert (bands.transpose(0, 2, 3, 1)[~nodata] > 0).all()
    assert all(nodata[t].mean() < 0.8 for t in frames)  # a strip, not the whole frame


def test_seasonal_snow_in_winter_only(year_small):
    scene, _, truth = year_small
    lc = truth["land_cover"].values
    seasonal = truth["snow"].values[:, lc != 10]
    months = scene.times.month[seasonal.mean(axis=1) > 0.2]
    assert len(months) > 0
    assert set(months) <= {1, 2, 3, 4, 11, 12}


#: Median per-pixel NDVI seasonal amplitude (p95 - p5 over the year's cloud-free observations)
#: of a real Sentinel-2 L1C year, a Slovenian 2017 patch, by legend id: the demo must vary over
#: the seasons about as much as real land cover does (benchmarks/demo_realism.py prints more).
REAL_NDVI_AMPLITUDE = {1: 0.66, 2: 0.53, 3: 0.66, 4: 0.59}


@pytest.fixture(scope="module")
def year_coarse():
    """The default demo AOI (seed 42) at 40 m for the whole year: every parcel, few pixels."""
    scene = demo_scene(COARSE)
    bands = scene.l1c_cube(tile_size=64)["bands"].sel(band=["B02", "B04", "B08"]).values
    return scene, bands.astype(np.float32) / 10000, scene.truth(tile_size=64).compute()


def test_ndvi_seasonal_amplitude_is_like_real_data(year_coarse):
    _, r, truth = year_coarse
    red, nir = r[:, 1], r[:, 2]
    clear = ~(truth.cloud | truth.cirrus | truth.shadow | truth.no_data).values
    with np.errstate(invalid="ignore", divide="ignore"):
        ndvi = np.where(clear, (nir - red) / (nir + red), np.nan)
        low, high = np.nanpercentile(ndvi, [5, 95], axis=0)
    lc = truth["land_cover"].values
    seen = clear.sum(axis=0) >= 8
    for cid, real in REAL_NDVI_AMPLITUDE.items():
        amplitude = np.median((high - low)[(lc == cid) & seen])
        assert abs(amplitude - real) < 0.15, (cid, amplitude, real)


def test_snow_fields_are_white_in_winter_only(year_coarse):
    scene, r, truth = year_coarse
    fields = truth["land_cover"].values == 10
    snow = truth["snow"].values[:, fields]
    month = scene.times.month
    assert snow[month == 1].mean() > 0.8
    assert snow[month == 6].mean() < 0.02  # melted in spring
    clear = ~(truth.cloud | truth.cirrus | truth.shadow | truth.no_data).values[:, fields]
    june_blue = r[month == 6, 0][:, fields][clear[month == 6]]
    assert june_blue.size > 100 and np.median(june_blue) < 0.2  # not white in June either


def test_parcels_have_curved_edges_roads_and_a_river():
    parcels = demo_scene(demo_grid(512, 512)).parcels()
    zone = parcels["zone"]
    assert (zone == "river").sum() == 1 and (zone == "road").sum() >= 2
    assert (parcels.loc[zone == "river", "class_id"] == 5).all()
    assert (parcels.loc[zone == "road", "class_id"] == 8).all()
    # a straight-edged cell keeps its few corners when simplified by 1 m; a curved one does not
    kept = shapely.get_num_coordinates(shapely.simplify(parcels.geometry.values, 1.0))
    assert np.median(kept) > 10  # a Voronoi cell has 5 to 8


def test_reference_labels_have_a_few_mislabels():
    scene = demo_scene(demo_grid(512, 512))
    truth = scene.parcels()
    ref = scene.reference_labels()
    assert ref.crs == scene.grid.crs
    assert {"class_id", "class_name", "geometry"} <= set(ref.columns)
    assert ref["class_id"].dtype.kind == "i"
    legend = class_names(DEFAULT_LEGEND)
    assert set(ref["class_id"]) <= set(range(1, 11))
    assert (ref["class_name"] == ref["class_id"].map(legend)).all()
    assert len(ref) == len(truth) and ref.index.equals(truth.index)
    assert ref.geometry.geom_equals(truth.geometry).all()
    wrong = (ref["class_id"].values != truth["class_id"].values).mean()
    assert 0.02 <= wrong <= 0.04
    exact = demo_scene(scene.grid, mislabel_fraction=0.0).reference_labels()
    np.testing.assert_array_equal(exact["class_id"].values, truth["class_id"].values)


def test_parcels_are_deterministic_and_cover_the_aoi():
    grid = demo_grid(256, 256)
    a, b = demo_scene(grid, seed=5).parcels(), demo_scene(grid, seed=5).parcels()
    assert a.geometry.geom_equals(b.geometry).all()
    assert (a["class_id"] == b["class_id"]).all()
    assert a.crs == grid.crs
    assert a.geometry.area.sum() == pytest.approx(256 * 256 * 100, rel=1e-6)
    assert (
        len(demo_scene(grid, seed=6).parcels()) != len(a)
        or not a.geometry.geom_equals(demo_scene(grid, seed=6).parcels().geometry).all()
    )


def test_s2cloudless_finds_the_clouds():
    s2cloudless = pytest.importorskip("s2cloudless")
    scene = demo_scene(demo_grid(64, 64), time_interval=("2017-04-01", "2017-09-30"), seed=1)
    truth = scene.truth(tile_size=64).compute()
    cover = truth["cloud"].mean(("y", "x")).values
    frames = np.flatnonzero((cover > 0.05) & (cover < 0.95))[:8]
    frames = np.concatenate([frames, np.flatnonzero(cover == 0)[:4]])
    assert frames.size >= 6
    r = refl(scene.l1c_cube(tile_size=64).isel(time=frames).compute())
    detector = s2cloudless.S2PixelCloudDetector(threshold=0.4, all_bands=True)
    found = detector.get_cloud_probability_maps(np.moveaxis(r, 1, -1)) > 0.4
    sub = truth.isel(time=frames)
    cloud = sub["cloud"].values
    # thin cloud and heavy haze (since demo version 2) are neither cloud nor clear: not judged
    judged = ~(sub.no_data | sub.snow | sub.cirrus | sub.haze).values
    tp = (found & cloud & judged).sum()
    assert tp / (cloud & judged).sum() > 0.85  # recall
    assert tp / (found & judged).sum() > 0.8  # precision


def test_bad_arguments():
    with pytest.raises(ValueError, match="revisit_days"):
        demo_scene(demo_grid(8, 8), revisit_days=0)
    with pytest.raises(ValueError, match="no acquisition"):
        demo_scene(demo_grid(8, 8), time_interval=("2017-02-01", "2017-01-01"))
    with pytest.raises(ValueError, match="mislabel_fraction"):
        demo_scene(demo_grid(8, 8), mislabel_fraction=1.5)
    with pytest.raises(ValueError, match="tile_size"):
        demo_scene(demo_grid(8, 8)).l1c_cube(tile_size=0)
