"""Each pipeline, run with SequentialRunner on an in-memory catalog with non-default parameters:
the outputs must show every parameter's effect (a node that ignores one turns a test red).

Parameters come from the project's own loader (conf/base, conf/local, then the overrides as
runtime parameters, validated); nodes typed with a parameter model (``Aoi``, ``Reference``,
``DateGrid``, ``Sampling``) get the model, as Kedro's session gives it, the others the plain
values. Upstream inputs are made once per module from a tiny demo AOI (64 x 64 px, four months).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from kedro.framework.startup import bootstrap_project
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline
from kedro.runner import SequentialRunner
from lightgbm import LGBMClassifier
from pydantic import BaseModel
from shapely.geometry import box
from sklearn.ensemble import RandomForestClassifier

from perceptive.config import ParameterError, ProjectConfigLoader, merge_layers
from perceptive.eo import interpolation
from perceptive.params import Aoi, ProjectParameters
from perceptive.pipelines.feature_engineering.pipeline import (
    create_pipeline as feature_engineering,
)
from perceptive.pipelines.ingestion.pipeline import create_pipeline as ingestion
from perceptive.pipelines.modelling.pipeline import create_pipeline as modelling
from perceptive.pipelines.prediction.pipeline import create_pipeline as prediction
from perceptive.pipelines.sampling.pipeline import create_pipeline as sampling
from perceptive.sources.demo import demo_scene
from tests.conftest import run_kedro

PROJECT = Path(__file__).resolve().parents[2]

#: 64 x 64 px at 10 m in the top-left corner of the demo AOI.
TINY_AOI = {"bbox": [500000, 5099360, 500640, 5100000], "crs": "EPSG:32633"}
INTERVAL = ("2017-04-01", "2017-07-31")
#: What every run here overrides: the tiny AOI and settings that fit it (s2cloudless at 80 m,
#: 16 px sampling blocks), a short interval, small samples and a small classifier.
TINY = {
    "aoi": TINY_AOI,
    "tile_size": 32,
    "time_interval": list(INTERVAL),
    "cloud_masking": {"processing_resolution": 80},
    "sampling": {"block_size": 16, "n_samples": 10000},
    "classifier": {"n_estimators": 10},
}
#: A legend of our own for the demo's ten classes: other names, other colours.
CUSTOM_LEGEND = [
    {"id": i, "name": f"my class {i}", "colour": f"#{16 * i:02x}{255 - 16 * i:02x}{8 * i:02x}"}
    for i in range(1, 11)
]


def parameters(**overrides: Any) -> tuple[dict[str, Any], ProjectParameters]:
    """The project's parameters with ``TINY`` then ``overrides`` as runtime parameters:
    (plain values as the loader gives them, the same checked by the schema)."""
    runtime, _ = merge_layers([("tiny", TINY), ("test", overrides)])
    loader = ProjectConfigLoader(
        conf_source=str(PROJECT / "conf"),
        base_env="base",
        default_run_env="local",
        runtime_params=runtime,
    )
    plain = loader["parameters"]
    return plain, ProjectParameters.model_validate(plain)


class KeptDataset(MemoryDataset):
    """In memory and never released by the runner, so a test can read it after the run."""

    def _release(self) -> None:
        pass


def run(pipeline: Pipeline, inputs: dict[str, Any] | None = None, **overrides: Any) -> dict:
    """Run ``pipeline`` on an in-memory catalog; returns its outputs' data by name."""
    plain, checked = parameters(**overrides)
    catalog = DataCatalog()
    for key, value in plain.items():
        model = getattr(checked, key)
        catalog[f"params:{key}"] = model if isinstance(model, BaseModel) else value
    catalog["l1c_staging"] = tempfile.mkdtemp(prefix="staging-")
    catalog["source_credentials"] = {}
    for name, data in (inputs or {}).items():
        catalog[name] = data
    for name in pipeline.all_outputs():  # kept, so that outputs read downstream are returned
        catalog[name] = KeptDataset(copy_mode="assign")
    SequentialRunner().run(pipeline, catalog)
    return {name: catalog.load(name) for name in pipeline.all_outputs()}


@pytest.fixture(scope="module", autouse=True)
def project():
    bootstrap_project(PROJECT)


@pytest.fixture(scope="module")
def upstream() -> dict[str, Any]:
    """Every pipeline's inputs on the tiny AOI, made once with TINY's settings."""
    grid = Aoi(**TINY_AOI).grid(10)
    scene = demo_scene(grid, INTERVAL, revisit_days=5)
    l1c = scene.l1c_cube(tile_size=32).persist()
    l1c.attrs["time_interval"] = list(INTERVAL)
    labels = scene.reference_labels()
    masks = run(feature_engineering().only_nodes("compute_masks"), {"l1c_cube": l1c})
    masks_cube = masks["masks_cube"].persist()
    features = run(
        feature_engineering().only_nodes("compute_features"),
        {"l1c_cube": l1c, "masks_cube": masks_cube},
    )
    features_cube = features["features_cube"].persist()
    inputs = {"features_cube": features_cube, "reference_labels": labels}
    rasterize = sampling().only_nodes("rasterize_reference")  # label_raster is intermediate
    return {
        "l1c_cube": l1c,
        "reference_labels": labels,
        "masks_cube": masks_cube,
        "features_cube": features_cube,
        "label_raster": run(rasterize, inputs)["label_raster"],
        "samples": run(sampling(), inputs)["samples"],
        "custom_label_raster": run(rasterize, inputs, legend=CUSTOM_LEGEND)["label_raster"],
        "custom_samples": run(sampling(), inputs, legend=CUSTOM_LEGEND)["samples"],
    }


@pytest.fixture
def toy_interpolation():
    """A toy interpolation method, registered for one test: every feature is ``value``."""

    def toy(data, valid, obs_days, target_days, *, value: float = 0.0):
        return np.full((len(target_days), *data.shape[1:]), value, dtype=np.float32)

    interpolation.METHODS.register("toy", toy)
    try:
        yield toy
    finally:
        interpolation.METHODS._methods.pop("toy", None)
        interpolation.METHODS._options.pop("toy", None)


# --------------------------------------------------------------------------- ingestion


def test_source_revisit_days_sets_the_acquisition_dates():
    for revisit, expected_frames in ((5, 25), (10, 13)):  # 1 Apr ... 31 Jul: 121 days
        cube = run(ingestion(), source={"revisit_days": revisit})["l1c_cube"]
        expected = pd.date_range(INTERVAL[0], INTERVAL[1], freq=f"{revisit}D")
        assert len(expected) == expected_frames
        assert cube.sizes["time"] == expected_frames
        np.testing.assert_array_equal(cube["time"].values, expected.values)


def test_tile_size_sets_the_chunks_and_the_tiles():
    for tile_size, per_side in ((16, 4), (32, 2)):
        out = run(ingestion(), tile_size=tile_size)
        bands = out["l1c_cube"]["bands"]
        assert bands.chunks[2] == (tile_size,) * per_side  # y
        assert bands.chunks[3] == (tile_size,) * per_side  # x
        assert len(out["aoi_tiles"]) == per_side**2
        assert set(out["aoi_tiles"]["width"]) == {tile_size}


def test_resolution_sets_the_pixel_size():
    for resolution, pixels in ((10, 64), (20, 32)):  # a 640 m AOI
        cube = run(ingestion(), resolution=resolution)["l1c_cube"]
        assert np.allclose(np.diff(cube["x"].values), resolution)
        assert np.allclose(np.diff(cube["y"].values), -resolution)
        assert (cube.sizes["x"], cube.sizes["y"]) == (pixels, pixels)


@pytest.fixture
def own_labels(tmp_path) -> Path:
    """Two labelled polygons over the tiny AOI, classes in a column named ``lc``."""
    path = tmp_path / "labels.gpkg"
    gpd.GeoDataFrame(
        {"lc": [3, 5], "note": ["grass", "water"]},
        geometry=[box(500000, 5099680, 500320, 5100000), box(500320, 5099360, 500640, 5099680)],
        crs="EPSG:32633",
    ).to_crs("EPSG:4326").to_file(path, engine="pyogrio")
    return path


def test_reference_class_column_picks_the_column_of_a_file_of_ones_own(own_labels):
    out = run(ingestion(), reference={"file": str(own_labels), "class_column": "lc"})
    labels = out["reference_labels"]
    assert labels["class_id"].tolist() == [3, 5]
    assert labels.crs.to_epsg() == 32633  # the grid's CRS, not the file's EPSG:4326
    assert labels.total_bounds == pytest.approx([500000, 5099360, 500640, 5100000], abs=0.01)


def test_reference_class_column_that_the_file_lacks_is_named(own_labels):
    with pytest.raises(ValueError, match=r"no column 'class_id'.*reference\.class_column.*'lc'"):
        run(ingestion(), reference={"file": str(own_labels), "class_column": "class_id"})


# --------------------------------------------------------------------------- feature_engineering


def test_quicklooks_show_the_valid_count_and_the_chosen_date(upstream):
    quicklooks = feature_engineering().only_nodes("make_quicklooks")
    inputs = {k: upstream[k] for k in ("l1c_cube", "masks_cube", "features_cube")}
    fraction = upstream["masks_cube"]["valid_fraction"].to_series()
    titles = {}
    for date in (None, "2017-06-15"):
        out = run(quicklooks, inputs, quicklook_date=date)
        np.testing.assert_array_equal(
            out["valid_count_map"].values, upstream["features_cube"]["valid_count"].values
        )
        titles[date] = out["true_colour_plot"].axes[0].get_title()
    clearest = fraction.idxmax()  # worked out here from the masks
    near = fraction[(fraction.index - pd.Timestamp("2017-06-15")).days.map(abs) <= 5]
    assert str(clearest.date()) in titles[None]
    assert str(near.idxmax().date()) in titles["2017-06-15"]
    assert titles[None] != titles["2017-06-15"]


def test_date_grid_step_days_sets_the_feature_dates(upstream):
    inputs = {"l1c_cube": upstream["l1c_cube"]}
    dates = {}
    for step in (10, 16):
        cube = run(feature_engineering(), inputs, date_grid={"step_days": step})["features_cube"]
        dates[step] = pd.DatetimeIndex(cube["time"].values)
        expected = pd.date_range("2017-04-01", "2017-07-31", freq=f"{step}D")
        np.testing.assert_array_equal(dates[step].values, expected.values)
    assert len(dates[10]) == 13 and dates[10][-1] == pd.Timestamp("2017-07-30")
    assert len(dates[16]) == 8 and dates[16][-1] == pd.Timestamp("2017-07-22")


def test_date_grid_times_and_time_of_day_reach_the_features(upstream):
    inputs = {"l1c_cube": upstream["l1c_cube"]}
    acquisitions = pd.DatetimeIndex(upstream["l1c_cube"]["time"].values)
    kept = run(feature_engineering(), inputs, date_grid={"times": "acquisitions"})
    cube = kept["features_cube"]
    frames = pd.DatetimeIndex(cube.attrs["frames_used"])
    assert pd.DatetimeIndex(cube["time"].values).normalize().equals(frames)
    assert set(cube["time"].values) <= set(acquisitions.values)
    offset = pd.Timedelta(hours=10, minutes=5)  # Sentinel-2's time of day over Europe
    at_ten = {"l1c_cube": inputs["l1c_cube"].assign_coords(time=acquisitions + offset)}
    shifted = run(feature_engineering(), at_ten, date_grid={"time_of_day": "first_acquisition"})
    times = pd.DatetimeIndex(shifted["features_cube"]["time"].values)
    expected = pd.date_range("2017-04-01", "2017-07-31", freq="16D") + offset
    np.testing.assert_array_equal(times.values, expected.values)


def test_cloud_masking_none_keeps_every_observation_with_data(upstream):
    compute_masks = feature_engineering().only_nodes("compute_masks")
    inputs = {"l1c_cube": upstream["l1c_cube"]}
    none = run(compute_masks, inputs, cloud_masking={"method": "none"})["masks_cube"]
    assert bool((none["is_valid"] == none["is_data"]).all())
    assert not bool(none["cloud_mask"].any())
    assert none.attrs["cloud_masking"] == {"method": "none"}
    s2cloudless = run(compute_masks, inputs)["masks_cube"]
    assert bool((s2cloudless["is_valid"] != s2cloudless["is_data"]).any())
    assert s2cloudless.attrs["cloud_masking"]["method"] == "s2cloudless"


def test_cloud_shadows_projection_removes_shadowed_observations(upstream):
    compute_masks = feature_engineering().only_nodes("compute_masks")
    inputs = {"l1c_cube": upstream["l1c_cube"]}
    # clouds masked at 20 m: at TINY's 80 m the mask covers the whole tiny AOI whenever its
    # thin cloud and haze do, and leaves no clear pixel for a shadow to be found in
    fine = {"processing_resolution": 20, "average_over": 1, "dilation_size": 1}
    plain = run(compute_masks, inputs, cloud_masking=fine)["masks_cube"]
    assert not bool(plain["shadow_mask"].any())  # default: none
    shadows = {"method": "projection", "darkness": 0.9}
    masks = run(compute_masks, inputs, cloud_masking=fine, cloud_shadows=shadows)["masks_cube"]
    assert masks.attrs["cloud_shadows"]["darkness"] == 0.9
    shadow = masks["shadow_mask"].values
    assert shadow.any()
    expected = masks["is_data"].values & ~masks["cloud_mask"].values & ~shadow
    np.testing.assert_array_equal(masks["is_valid"].values, expected)
    assert masks["is_valid"].sum() < plain["is_valid"].sum()


def test_cloud_masking_options_reach_the_detector(upstream):
    compute_masks = feature_engineering().only_nodes("compute_masks")
    inputs = {"l1c_cube": upstream["l1c_cube"]}
    cloudy = {}
    for threshold in (0.2, 0.8):
        masks = run(compute_masks, inputs, cloud_masking={"threshold": threshold})["masks_cube"]
        assert masks.attrs["cloud_masking"]["threshold"] == threshold
        cloudy[threshold] = int(masks["cloud_mask"].sum())
    assert cloudy[0.2] > cloudy[0.8]  # a lower probability threshold flags more pixels


def test_cloud_masking_radii_in_metres_reach_the_detector(upstream):
    """TINY masks at 80 m: dilation_m 160 is 2 processing pixels instead of 1, so more is
    flagged; the masks record the option as given."""
    compute_masks = feature_engineering().only_nodes("compute_masks")
    inputs = {"l1c_cube": upstream["l1c_cube"]}
    plain = run(compute_masks, inputs)["masks_cube"]
    wider = run(compute_masks, inputs, cloud_masking={"dilation_m": 160})["masks_cube"]
    assert plain.attrs["cloud_masking"]["dilation_m"] is None
    assert wider.attrs["cloud_masking"]["dilation_m"] == 160
    assert int(wider["cloud_mask"].sum()) > int(plain["cloud_mask"].sum())


def test_min_valid_fraction_chooses_the_frames(upstream):
    l1c, masks = upstream["l1c_cube"], upstream["masks_cube"]
    inputs = {"l1c_cube": l1c, "masks_cube": masks}
    compute_features = feature_engineering().only_nodes("compute_features")
    every = run(compute_features, inputs, min_valid_fraction=0.0)["features_cube"]
    all_dates = [str(t)[:10] for t in l1c["time"].values]
    assert every.attrs["frames_used"] == all_dates
    strict = run(compute_features, inputs, min_valid_fraction=0.8)["features_cube"]
    share = masks["is_valid"].mean(("y", "x")).values  # worked out here, not by the node
    expected = [date for date, s in zip(all_dates, share, strict=True) if s >= 0.8]
    assert 3 <= len(expected) < len(all_dates)
    assert strict.attrs["frames_used"] == expected
    assert strict.attrs["min_valid_fraction"] == 0.8


def test_features_list_sets_the_feature_coordinate(upstream):
    inputs = {"l1c_cube": upstream["l1c_cube"], "masks_cube": upstream["masks_cube"]}
    compute_features = feature_engineering().only_nodes("compute_features")
    cube = run(compute_features, inputs, features=["NDVI", "B04"])["features_cube"]
    assert cube["feature"].values.tolist() == ["NDVI", "B04"]
    ndvi, red = cube["features"].sel(feature="NDVI"), cube["features"].sel(feature="B04")
    assert float(np.nanmax(np.abs(ndvi))) <= 1.0
    assert float(np.nanmin(red)) >= 0.0 and float(np.nanmax(red)) < 1.5  # reflectance
    default = upstream["features_cube"]["feature"].values.tolist()
    assert default == ["B02", "B03", "B04", "B08", "B11", "B12", "NDVI", "NDWI", "NORM"]


def test_interpolation_method_is_the_one_chosen(upstream, toy_interpolation):
    inputs = {"l1c_cube": upstream["l1c_cube"], "masks_cube": upstream["masks_cube"]}
    compute_features = feature_engineering().only_nodes("compute_features")
    linear = upstream["features_cube"]
    assert linear.attrs["interpolation"] == {"method": "linear", "edges": "hold"}  # defaults filled
    assert float(linear["features"].std()) > 0
    toy = run(compute_features, inputs, interpolation={"method": "toy", "value": 3})
    assert toy["features_cube"].attrs["interpolation"] == {"method": "toy", "value": 3.0}
    assert bool((toy["features_cube"]["features"] == 3).all())


def test_a_toy_interpolation_method_runs_in_the_unchanged_pipeline(upstream, toy_interpolation):
    out = run(
        feature_engineering(),
        {"l1c_cube": upstream["l1c_cube"]},
        interpolation={"method": "toy", "value": 7},
    )
    features = out["features_cube"]["features"]
    expected_dates = pd.date_range(INTERVAL[0], INTERVAL[1], freq="16D")
    assert features.shape == (len(expected_dates), 9, 64, 64)
    assert features.dtype == np.float32
    assert bool((features == 7).all())


def test_an_unknown_option_of_the_toy_method_is_refused(toy_interpolation):
    with pytest.raises(ParameterError, match=r"interpolation.*toy has no option 'colour'") as err:
        parameters(interpolation={"method": "toy", "colour": 1})
    assert "Its options: value" in str(err.value)


def test_a_toy_interpolation_method_runs_through_the_kedro_session(tmp_path, toy_interpolation):
    catalog = run_kedro(tmp_path, ["ingestion", "feature_engineering"], **TINY,
                        interpolation={"method": "toy", "value": 7})  # fmt: skip
    features = catalog.load("features_cube")["features"]
    assert features.sizes["x"] == features.sizes["y"] == 64
    assert bool((features == 7).all())


# --------------------------------------------------------------------------- sampling


def _sample(upstream, **sampling_overrides):
    inputs = {
        "features_cube": upstream["features_cube"],
        "label_raster": upstream["label_raster"],
        "reference_labels": upstream["reference_labels"],
    }
    pipeline = sampling().only_nodes("sample_training_pixels")
    return run(pipeline, inputs, sampling=sampling_overrides)["samples"]


def test_erosion_radius_drops_edge_pixels(upstream):
    labelled = int((upstream["label_raster"].values != 0).sum())
    kept = {radius: len(_sample(upstream, erosion_radius=radius)) for radius in (0, 2)}
    assert kept[0] == labelled  # n_samples 10000 > 4096 px: every labelled pixel
    assert 0 < kept[2] < kept[0]


def test_n_samples_caps_the_table(upstream):
    for n in (100, 300):
        assert len(_sample(upstream, n_samples=n)) == n


def test_seed_chooses_the_pixels(upstream):
    def pixels(seed):
        table = _sample(upstream, n_samples=200, seed=seed)
        return list(zip(table["row"], table["col"], strict=True))

    assert pixels(1) == pixels(1)
    assert pixels(1) != pixels(2)


def test_validation_fraction_sets_the_share_of_validation_pixels(upstream):
    for fraction in (0.2, 0.6):
        table = _sample(upstream, validation_fraction=fraction)
        share = float((table["split"] == "validation").mean())
        assert share == pytest.approx(fraction, abs=0.1)  # whole 16 px blocks of ~6 %


def test_block_size_sets_the_spatial_blocks(upstream):
    # every parcel goes whole to the block holding most of it, so a block that holds the
    # majority of no parcel is left without pixels: at most 4 x 4 (16 px) or 2 x 2 (32 px)
    for size, per_side, at_least in ((16, 4, 6), (32, 2, 2)):
        table = _sample(upstream, block_size=size)
        assert at_least <= table["block"].nunique() <= per_side**2
        assert set(table["block"]) <= set(range(per_side**2))
        assert table.groupby("parcel")["block"].nunique().max() == 1


def test_custom_legend_colours_reach_the_label_raster_and_the_samples(upstream):
    colours = {c["id"]: c["colour"] for c in CUSTOM_LEGEND}
    raster = upstream["custom_label_raster"]
    assert raster.attrs["colormap"] == {0: "#ffffff", **colours}
    assert raster.attrs["class_names"][3] == "my class 3"
    expected = [{"id": 0, "name": "no data", "colour": "#ffffff"}, *CUSTOM_LEGEND]
    assert upstream["custom_samples"].attrs["legend"] == expected
    default = upstream["samples"].attrs["legend"]
    assert default[1] == {"id": 1, "name": "cultivated land", "colour": "#ffff00"}


# --------------------------------------------------------------------------- modelling


def _train(samples, **overrides):
    """The model of the ``train`` node (``model`` is intermediate in the modelling pipeline)."""
    return run(modelling().only_nodes("train"), {"samples": samples}, **overrides)["model"]


def test_classifier_options_reach_the_estimator(upstream):
    model = _train(upstream["samples"], classifier={"n_estimators": 7, "num_leaves": 5})
    estimator = model.estimator
    assert isinstance(estimator, LGBMClassifier)
    assert estimator.get_params()["n_estimators"] == 7
    assert estimator.get_params()["num_leaves"] == 5
    assert estimator.get_params()["learning_rate"] == 0.1  # kept from conf/base
    assert estimator.n_estimators_ == 7  # what was fitted, not only what was asked
    assert model.info["params"]["n_estimators"] == 7


def test_classifier_method_random_forest_takes_no_lightgbm_option(upstream):
    spec = {"method": "random_forest", "n_estimators": 5}
    estimator = _train(upstream["samples"], classifier=spec).estimator
    assert isinstance(estimator, RandomForestClassifier)
    assert estimator.get_params()["n_estimators"] == 5
    assert len(estimator.estimators_) == 5
    assert estimator.get_params()["random_state"] is None  # LightGBM's 42 not carried over
    assert not {"learning_rate", "num_leaves"} & set(estimator.get_params())


def test_modelling_evaluates_with_the_legend_of_the_samples(upstream):
    out = run(modelling(), {"samples": upstream["custom_samples"]})
    report = out["validation_metrics"]
    names = report["confusion_matrix"]["names"]
    assert names == [f"my class {i}" for i in report["confusion_matrix"]["labels"]]
    samples = upstream["custom_samples"]
    validation = samples["split"] == "validation"
    assert report["n_samples"] == int((validation & ~samples["edge"]).sum())  # eroded
    assert report["all_pixels"]["n_samples"] == int(validation.sum())  # edges included


def test_validation_metrics_name_the_estimator_and_its_settings(upstream):
    spec = {"method": "random_forest", "n_estimators": 6, "max_depth": 4}
    report = run(modelling(), {"samples": upstream["samples"]}, classifier=spec)
    report = report["validation_metrics"]
    assert report["model"]["estimator"] == "sklearn.ensemble._forest.RandomForestClassifier"
    assert report["model"]["params"]["n_estimators"] == 6
    assert report["model"]["params"]["max_depth"] == 4


# --------------------------------------------------------------------------- prediction


def test_prediction_reads_the_legend_from_the_model(upstream, tmp_path):
    model = _train(upstream["custom_samples"])
    assert [c.colour for c in model.legend] == ["#ffffff"] + [c["colour"] for c in CUSTOM_LEGEND]
    inputs = {"features_cube": upstream["features_cube"], "model": model}
    cache = {"compiled_model": {"cache": str(tmp_path)}}
    maps = prediction().only_nodes("predict", "make_maps")
    lulc = run(maps, inputs, **cache)["lulc_map"]  # intermediate
    colours = {c["id"]: c["colour"] for c in CUSTOM_LEGEND}
    assert lulc.attrs["colormap"] == {0: "#ffffff", **colours}
    assert lulc.attrs["class_names"][5] == "my class 5"
    predicted = set(np.unique(lulc.values).tolist())
    assert predicted <= set(model.class_ids.tolist())
    evaluate = modelling().only_nodes("evaluate")
    scored = {"model": model, "samples": upstream["custom_samples"]}
    metrics = run(evaluate, scored, evaluation={"n_bootstrap": 60})["validation_metrics"]
    inputs["validation_metrics"] = metrics
    areas = run(prediction(), inputs, **cache)["class_areas"].set_index("class_id")
    assert all(areas.loc[i, "name"] == f"my class {i}" for i in predicted)
    assert areas.loc[list(predicted), "pixels"].sum() == 64 * 64
