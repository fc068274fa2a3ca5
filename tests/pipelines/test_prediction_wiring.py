"""The prediction pipeline's parameters, each shown to change its outputs (SequentialRunner on
an in-memory catalog, parameters from the project's loader, as in test_wiring.py)."""

from __future__ import annotations

import numpy as np
import pytest
from kedro.io.core import Version

from perceptive.datasets import GeoTiffDataset
from perceptive.eo.accuracy import area_estimates
from perceptive.pipelines.modelling.pipeline import create_pipeline as modelling
from perceptive.pipelines.prediction.pipeline import create_pipeline as prediction
from tests.pipelines.test_wiring import _train, parameters, project, run, upstream  # noqa: F401


@pytest.fixture(scope="module")
def inputs(upstream):  # noqa: F811
    return {"features_cube": upstream["features_cube"], "model": _train(upstream["samples"])}


def _maps(inputs, cache, **overrides):
    """The outputs of ``predict`` then ``make_maps`` (prediction_cube is intermediate)."""
    overrides = {"compiled_model": {"enabled": True, "cache": str(cache)}, **overrides}
    overrides["compiled_model"]["cache"] = str(cache)
    out = run(prediction().only_nodes("predict"), inputs, **overrides)
    maps = run(prediction().only_nodes("make_maps"), {**inputs, **out}, **overrides)
    return {**out, **maps}


def test_postprocessing_defaults_to_none():
    plain, _ = parameters()
    assert plain["postprocessing"] == {"method": "none"}
    assert plain["probabilities"] is False and plain["compiled_model"]["enabled"] == "auto"


def test_a_postprocessing_method_changes_the_saved_map(inputs, tmp_path):
    raw = _maps(inputs, tmp_path)
    assert raw["prediction_cube"].attrs["predictor"] == "quickscorer"  # LightGBM, matched
    smooth = _maps(inputs, tmp_path, postprocessing={"method": "majority", "window": 5})
    sieved = _maps(inputs, tmp_path, postprocessing={"method": "sieve", "min_area_ha": 1})
    lulc = raw["lulc_map"].values
    assert smooth["lulc_map"].attrs["postprocessing"] == {"method": "majority", "window": 5}
    for out in (smooth, sieved):
        assert (out["lulc_map"].values != lulc).any()
        assert ((out["lulc_map"].values == 0) == (lulc == 0)).all()  # nodata untouched
    # saved as a file, the map is the post-processed one
    path = tmp_path / "lulc_map.tif"
    GeoTiffDataset(filepath=str(path), version=Version(None, "v1")).save(sieved["lulc_map"])
    saved = GeoTiffDataset(filepath=str(path), version=Version("v1", None)).load()
    np.testing.assert_array_equal(saved.values, sieved["lulc_map"].values)
    assert (saved.values != lulc).any()


def test_probabilities_adds_one_layer_per_class(inputs, tmp_path):
    assert "probability" not in _maps(inputs, tmp_path)["prediction_cube"]
    cube = _maps(inputs, tmp_path, probabilities=True)["prediction_cube"]
    assert list(cube["class"].values) == inputs["model"].class_ids.tolist()
    best = cube["probability"].max("class").values
    mapped = cube["lulc"].values != 0
    assert (np.abs(best[mapped].astype(int) - cube["confidence"].values[mapped]) <= 1).all()


def test_compiled_model_disabled_predicts_with_the_estimator_the_same_map(inputs, tmp_path):
    plain = _maps(inputs, tmp_path, compiled_model={"enabled": False})
    compiled = _maps(inputs, tmp_path)
    assert plain["prediction_cube"].attrs["predictor"] == "estimator"
    np.testing.assert_array_equal(plain["lulc_map"].values, compiled["lulc_map"].values)
    np.testing.assert_array_equal(plain["confidence_map"].values, compiled["confidence_map"].values)


def test_compiled_model_engine_changes_the_predictor_not_the_map(inputs, tmp_path):
    default = _maps(inputs, tmp_path)
    tl2cgen = _maps(inputs, tmp_path, compiled_model={"enabled": True, "engine": "tl2cgen"})
    assert default["prediction_cube"].attrs["predictor"] == "quickscorer"
    assert tl2cgen["prediction_cube"].attrs["predictor"] == "tl2cgen"
    assert list(tmp_path.glob("*/model.so"))  # tl2cgen's library, in the cache
    for name in ("lulc_map", "confidence_map"):
        np.testing.assert_array_equal(default[name].values, tl2cgen[name].values)


def test_compiled_model_auto_compiles_from_a_map_size(inputs, tmp_path):
    pixels = inputs["features_cube"].sizes["y"] * inputs["features_cube"].sizes["x"]
    assert pixels < 4e6
    quick = _maps(inputs, tmp_path, compiled_model={"enabled": "auto"})  # quickscorer: any map
    small = _maps(inputs, tmp_path, compiled_model={"enabled": "auto", "engine": "tl2cgen"})
    large = _maps(
        inputs, tmp_path,
        compiled_model={"enabled": "auto", "engine": "tl2cgen", "auto_from_mpx": 1e-6},
    )  # fmt: skip
    above = _maps(inputs, tmp_path, compiled_model={"enabled": "auto", "auto_from_mpx": 4})
    assert quick["prediction_cube"].attrs["predictor"] == "quickscorer"
    assert small["prediction_cube"].attrs["predictor"] == "estimator"  # tl2cgen: from 4 Mpx
    assert large["prediction_cube"].attrs["predictor"] == "tl2cgen"
    assert above["prediction_cube"].attrs["predictor"] == "estimator"
    np.testing.assert_array_equal(small["lulc_map"].values, large["lulc_map"].values)
    np.testing.assert_array_equal(small["lulc_map"].values, quick["lulc_map"].values)


def test_class_areas_carry_the_area_estimates_of_validation_pixels(inputs, tmp_path, upstream):  # noqa: F811
    scored = {"model": inputs["model"], "samples": upstream["samples"]}
    metrics = run(modelling().only_nodes("evaluate"), scored, evaluation={"n_bootstrap": 60})
    metrics = metrics["validation_metrics"]
    maps = _maps(inputs, tmp_path)
    summary = run(
        prediction().only_nodes("summarise"),
        {"model": inputs["model"], "lulc_map": maps["lulc_map"], "validation_metrics": metrics},
    )
    areas = summary["class_areas"].set_index("class_id")
    new = ["estimated_area_ha", "estimated_area_se_ha", "estimated_area_ci95_low_ha",
           "estimated_area_ci95_high_ha", "users_accuracy", "users_accuracy_se",
           "producers_accuracy", "producers_accuracy_se", "estimate_note"]  # fmt: skip
    assert set(new) <= set(areas.columns)
    # the estimates of the map's classes, from the report's matrix (rows = reference)
    cm = metrics["confusion_matrix"]
    ids = cm["labels"]
    mapped = areas["area_ha"].reindex(ids, fill_value=0.0).to_numpy()
    sampled = np.array(cm["matrix"]).sum(axis=0) > 0  # columns: mapped as the class
    direct = area_estimates(np.array(cm["matrix"]).T, np.where(sampled, mapped, 0), ids).table
    estimated = [i for i, has in zip(ids, sampled, strict=True) if has]
    assert estimated and areas.loc[estimated, "estimated_area_ha"].notna().all()
    np.testing.assert_allclose(
        areas.loc[estimated, "estimated_area_ha"], direct.loc[estimated, "area"]
    )
    assert np.isnan(areas.loc[0, "estimated_area_ha"])  # nodata is no stratum
