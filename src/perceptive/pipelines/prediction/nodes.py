"""Nodes of the prediction pipeline: read parameters, call perceptive.eo.

Nothing here holds the whole map: ``predict`` returns a lazy cube that the Zarr dataset
classifies and writes chunk by chunk, and ``make_maps`` returns lazy maps that the GeoTIFF
dataset writes chunk by chunk.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

from perceptive.eo import postprocessing
from perceptive.eo.classifier import LulcModel
from perceptive.eo.compiled import engine_name, exact_compiled_predict_proba
from perceptive.eo.cube import validate_features_cube
from perceptive.eo.grid import grid_of
from perceptive.eo.legend import map_attrs
from perceptive.eo.plots import plot_lulc_map
from perceptive.eo.prediction import (
    ESTIMATE_NOTE,
    central_pixels,
    class_area_estimates,
    class_areas,
    predict_map,
)
from perceptive.params import CompiledModel
from perceptive.sources import DEMO_MARK, is_demo

log = logging.getLogger(__name__)


def predict(
    features_cube: xr.Dataset,
    model: LulcModel,
    probabilities: bool,
    compiled_model: CompiledModel,
) -> xr.Dataset:
    """Classify every pixel, lazily (``lulc``, ``confidence``, optionally ``probability``),
    with the compiled model when it gives the estimator's answers on a sample of the cube
    (the cube's ``predictor`` attribute says which predicted)."""
    validate_features_cube(features_cube)
    features = features_cube["features"]
    fast = None
    n_pixels = features.sizes["y"] * features.sizes["x"]
    compile_it = compiled_model.wanted(n_pixels)
    if compiled_model.enabled == "auto":
        log.info(
            "compiled_model auto: a %.1f Mpx map, %s", n_pixels / 1e6,
            "compiling the model" if compile_it else
            f"under {compiled_model.auto_threshold_mpx:g} Mpx: predicting with the estimator",
        )  # fmt: skip
    if compile_it:
        sample = central_pixels(features)
        fast = exact_compiled_predict_proba(
            model, sample, Path(compiled_model.cache), compiled_model.engine
        )
    predicted = predict_map(features, model, probabilities=probabilities, predict_proba=fast)
    predicted.attrs["predictor"] = engine_name(fast)
    if is_demo(features_cube):
        predicted.attrs[DEMO_MARK] = True
    return predicted


def make_maps(
    prediction_cube: xr.Dataset, model: LulcModel, postprocessing_spec: dict[str, Any]
) -> tuple[xr.DataArray, xr.DataArray]:
    """The post-processed land-cover map with the legend's colours and names, and the
    confidence map (percent, 0 = nodata), both lazy."""
    lulc = postprocessing.METHODS.run(postprocessing_spec, prediction_cube["lulc"])
    lulc.attrs = {**map_attrs(model.legend), "long_name": "land cover class id"}
    lulc.attrs["postprocessing"] = dict(postprocessing.METHODS.validate(postprocessing_spec))
    if is_demo(prediction_cube):
        lulc.attrs[DEMO_MARK] = 1  # a GeoTIFF tag: this map is of the synthetic demo
    confidence = prediction_cube["confidence"]
    confidence.attrs = {"nodata": 0, "long_name": "probability of the predicted class (%)"}
    return lulc, confidence


def summarise(
    lulc_map: xr.DataArray, model: LulcModel, validation_metrics: dict
) -> tuple[pd.DataFrame, Figure]:
    """Area per class (pixels, hectares) beside its stratified estimate from the model's
    validation pixels (hectares with standard error and 95 % interval, user's and producer's
    accuracy; Olofsson et al. 2014), and a picture of the map, named and coloured by the
    legend."""
    legend = model.legend
    areas = class_areas(lulc_map, grid_of(lulc_map).pixel_area, legend)
    if validation_metrics.get("model") != model.info:
        log.warning(
            "validation_metrics were not made with this model (another version?): the area "
            "estimates use another model's validation pixels; pin matching versions of model "
            "and validation_metrics with --load-versions."
        )
    areas = class_area_estimates(areas, validation_metrics["confusion_matrix"])
    shown = ["name", "pixels", "area_ha", "estimated_area_ha", "estimated_area_se_ha"]
    log.info(
        "Class areas (ha; estimates %s):\n%s", ESTIMATE_NOTE,
        areas[shown].to_string(index=False, float_format="%.1f"),
    )  # fmt: skip
    title = "Land cover"
    if is_demo(lulc_map):
        title = "SYNTHETIC DEMO DATA, not a real place: land cover"
    return areas, plot_lulc_map(lulc_map, legend, title=title)
