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
from perceptive.eo.compiled import exact_compiled_predict_proba
from perceptive.eo.cube import validate_features_cube
from perceptive.eo.grid import grid_of
from perceptive.eo.legend import map_attrs
from perceptive.eo.plots import plot_lulc_map
from perceptive.eo.prediction import central_pixels, class_areas, predict_map
from perceptive.params import CompiledModel

log = logging.getLogger(__name__)


def predict(
    features_cube: xr.Dataset,
    model: LulcModel,
    probabilities: bool,
    compiled_model: CompiledModel,
) -> xr.Dataset:
    """Classify every pixel, lazily (``lulc``, ``confidence``, optionally ``probability``),
    with the compiled model when it gives the estimator's answers on a sample of the cube."""
    validate_features_cube(features_cube)
    features = features_cube["features"]
    fast = None
    if compiled_model.enabled:
        sample = central_pixels(features)
        fast = exact_compiled_predict_proba(model, sample, Path(compiled_model.cache))
    predicted = predict_map(features, model, probabilities=probabilities, predict_proba=fast)
    predicted.attrs["predictor"] = "compiled" if fast else "estimator"
    return predicted


def make_maps(
    prediction_cube: xr.Dataset, model: LulcModel, postprocessing_spec: dict[str, Any]
) -> tuple[xr.DataArray, xr.DataArray]:
    """The post-processed land-cover map with the legend's colours and names, and the
    confidence map (percent, 0 = nodata), both lazy."""
    lulc = postprocessing.METHODS.run(postprocessing_spec, prediction_cube["lulc"])
    lulc.attrs = {**map_attrs(model.legend), "long_name": "land cover class id"}
    lulc.attrs["postprocessing"] = dict(postprocessing.METHODS.validate(postprocessing_spec))
    confidence = prediction_cube["confidence"]
    confidence.attrs = {"nodata": 0, "long_name": "probability of the predicted class (%)"}
    return lulc, confidence


def summarise(lulc_map: xr.DataArray, model: LulcModel) -> tuple[pd.DataFrame, Figure]:
    """Area per class (hectares) and a picture of the map, named and coloured by the legend."""
    legend = model.legend
    resolution = grid_of(lulc_map).resolution
    areas = class_areas(lulc_map, resolution * resolution, legend)
    log.info("Class areas (ha):\n%s", areas.to_string(index=False))
    return areas, plot_lulc_map(lulc_map, legend)
