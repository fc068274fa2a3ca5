"""The whole workflow on a small demo AOI, through Kedro, in a temporary folder."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rasterio
from scipy import ndimage

from perceptive.eo.cube import S2_BANDS
from perceptive.eo.grid import aoi_geometry, grid_for_aoi, grid_of
from perceptive.eo.interpolation import date_grid
from perceptive.sources.demo import demo_scene
from tests.conftest import SMALL_AOI, SMALL_RUN, run_kedro

VERSIONED = {
    "01_raw": ["aoi_tiles.gpkg", "reference_labels.gpkg"],
    "02_intermediate": ["l1c_cube.zarr"],
    "03_primary": ["masks_cube.zarr"],
    "04_feature": ["features_cube.zarr", "valid_count.tif"],
    "05_model_input": ["label_raster.tif", "samples.parquet"],
    "06_models": ["model.pkl"],
    "07_model_output": ["lulc_map.tif", "confidence.tif"],
    "08_reporting": ["validation_metrics.json", "confusion_matrix.png", "class_areas.csv",
                     "lulc_map.png", "samples_summary.csv", "feature_importance.csv",
                     "feature_importance.png", "valid_count.png", "true_colour.png"],
}  # fmt: skip


def _scene():
    geometry, crs = aoi_geometry(SMALL_AOI)
    return demo_scene(grid_for_aoi(geometry, crs, 10.0), ("2017-01-01", "2017-12-31"))


def test_every_hand_over_is_a_versioned_file_of_one_run(small_run):
    data_root, _ = small_run
    versions = set()
    for folder, names in VERSIONED.items():
        for name in names:
            saved = list((data_root / folder / name).iterdir())
            assert len(saved) == 1, (name, saved)
            assert (saved[0] / name).exists(), saved[0]
            versions.add(saved[0].name)
    assert len(versions) == 1  # one run, one version timestamp


def test_l1c_cube_schema(small_run):
    _, catalog = small_run
    cube = catalog.load("l1c_cube")
    assert cube["bands"].dims == ("time", "band", "y", "x")
    assert cube["bands"].dtype == np.uint16
    assert tuple(cube["band"].values) == S2_BANDS
    times = pd.DatetimeIndex(cube["time"].values)
    assert len(times) == 73 and times.is_monotonic_increasing and times.is_unique
    assert times[0] == pd.Timestamp("2017-01-01") and (times[1] - times[0]).days == 5
    assert cube.sizes["y"] == cube.sizes["x"] == 256
    assert cube.rio.crs.to_epsg() == 32633
    assert cube["bands"].data.chunksize[2:] == (128, 128)  # chunked in space, never in time
    assert cube["bands"].data.chunksize[0] == 73


def test_cloud_mask_finds_the_demo_clouds(small_run):
    """Against the generator's truth: clouds are found, and clear land far from any cloud is
    left alone (at 160 m plus dilation, a mask spills a block or two past a cloud's edge)."""
    _, catalog = small_run
    masks = catalog.load("masks_cube")
    truth = _scene().truth(tile_size=128).compute()
    found = masks["cloud_mask"].values
    cloud, snow, no_data = truth["cloud"].values, truth["snow"].values, truth["no_data"].values
    # cirrus, thin cloud and heavy haze are neither cloud to find nor clear land to leave
    veiled = (truth["cirrus"] | truth["haze"]).values
    assert cloud.sum() > 0.05 * cloud.size  # the demo has real clouds to find

    recall = (found & cloud).sum() / cloud.sum()
    precision = (found & (cloud | veiled)).sum() / (found & ~snow).sum()
    near_cloud = np.stack([ndimage.binary_dilation(c, iterations=40) for c in cloud | veiled])
    far_clear = ~near_cloud & ~no_data & ~snow
    false_alarms = (found & far_clear).sum() / far_clear.sum()
    assert recall > 0.95, recall
    assert precision > 0.8, precision
    assert false_alarms < 0.05, false_alarms
    assert not (masks["is_valid"].values & no_data).any()  # no-data pixels are never valid


def test_features_are_the_valid_observations_interpolated(small_run):
    """Recompute one pixel's NDVI by hand from the L1C digital numbers and the valid mask."""
    _, catalog = small_run
    l1c, masks = catalog.load("l1c_cube"), catalog.load("masks_cube")
    features_cube = catalog.load("features_cube")
    features = features_cube["features"]
    dates = date_grid("2017-01-01", "2017-12-31", 16)
    assert (
        features.sizes["time"] == 23 and (pd.DatetimeIndex(features["time"].values) == dates).all()
    )
    assert list(features["feature"].values) == [
        "B02", "B03", "B04", "B08", "B11", "B12", "NDVI", "NDWI", "NORM",
    ]  # fmt: skip
    kept = pd.DatetimeIndex(features_cube.attrs["frames_used"])
    rng = np.random.default_rng(0)
    for row, col in rng.integers(0, 256, size=(5, 2)):
        dn = l1c["bands"][:, :, row, col].values.astype(float)
        valid = masks["is_valid"][:, row, col].values
        frame_kept = pd.DatetimeIndex(l1c["time"].values).normalize().isin(kept)
        use = valid & frame_kept
        assert int(features_cube["valid_count"][row, col]) == int(use.sum())
        days = (pd.DatetimeIndex(l1c["time"].values[use]) - dates[0]).days.to_numpy()
        red, nir = dn[use, S2_BANDS.index("B04")], dn[use, S2_BANDS.index("B08")]
        ndvi = (nir - red) / (nir + red)
        expected = np.interp((dates - dates[0]).days.to_numpy(), days, ndvi)
        got = features.sel(feature="NDVI")[:, row, col].values
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_validation_accuracy_beats_the_majority_class(small_run):
    _, catalog = small_run
    metrics = catalog.load("validation_metrics")
    samples = catalog.load("samples")
    assert set(samples["split"]) == {"train", "validation"}
    validation = samples["split"] == "validation"
    assert metrics["n_samples"] == int((validation & ~samples["edge"]).sum())  # eroded
    assert metrics["all_pixels"]["n_samples"] == int(validation.sum())  # edges included
    low, high = metrics["overall_accuracy_ci95"]  # a block bootstrap interval around it
    assert low < metrics["overall_accuracy"] < high
    assert metrics["overall_accuracy"] > metrics["majority_class_share"] + 0.25, metrics
    assert metrics["overall_accuracy"] > 0.75
    assert metrics["kappa"] > 0.6


def test_lulc_map_is_georeferenced_like_the_cube(small_run):
    data_root, catalog = small_run
    grid = grid_of(catalog.load("features_cube"))
    (path,) = (data_root / "07_model_output" / "lulc_map.tif").glob("*/lulc_map.tif")
    with rasterio.open(path) as src:
        assert src.crs == grid.crs
        assert src.transform.almost_equals(grid.transform)
        assert (src.width, src.height) == (grid.width, grid.height)
        assert src.nodata == 0
        assert src.colormap(1)[2][:3] == (5, 73, 7)  # forest green
        lulc = src.read(1)
    truth = _scene().truth(tile_size=128)["land_cover"].values
    assert (lulc == truth).mean() > 0.7  # the map matches the demo's true land cover
    areas = catalog.load("class_areas")
    assert areas["pixels"].sum() == lulc.size


def test_one_link_reruns_on_the_latest_inputs(small_run, tmp_path):
    data_root, _ = small_run
    run_kedro(data_root, ["modelling"], **{**SMALL_RUN, "classifier": {"n_estimators": 20}})
    models = sorted(p.name for p in (data_root / "06_models" / "model.pkl").iterdir())
    assert len(models) == 2
    samples = list((data_root / "05_model_input" / "samples.parquet").iterdir())
    assert len(samples) == 1  # upstream untouched


def test_missing_input_names_the_whole_chain_to_run_first(tmp_path):
    with pytest.raises(
        Exception, match=r"features_cube.*kedro run --pipelines ingestion,feature_engineering`"
    ):
        run_kedro(tmp_path, ["sampling"])
    with pytest.raises(
        Exception,
        match=r"'features_cube'.*'model'.*--pipelines ingestion,feature_engineering,sampling,"
        r"modelling`",
    ):
        run_kedro(tmp_path, ["prediction"])


def test_missing_pinned_version_lists_the_saved_ones(small_run):
    data_root, _ = small_run
    with pytest.raises(
        Exception, match=r"no version '2001-01-01T00.00.00.000Z'.*Saved versions: 20"
    ):
        run_kedro(data_root, ["prediction"], load_versions={"model": "2001-01-01T00.00.00.000Z"})


def test_same_input_same_output(small_run, tmp_path):
    """Two runs from scratch give a pixel-identical map and equal metrics."""
    data_root, catalog = small_run
    again = run_kedro(tmp_path / "again", **SMALL_RUN)
    np.testing.assert_array_equal(again.load("lulc_map").values, catalog.load("lulc_map").values)
    np.testing.assert_array_equal(
        again.load("confidence_map").values, catalog.load("confidence_map").values
    )
    first, second = catalog.load("validation_metrics"), again.load("validation_metrics")
    for metrics in (first, second):
        metrics.pop("provenance")  # run ids and versions
        metrics["model"].pop("fit_seconds")  # wall time: the only other thing that differs
    assert first == second
