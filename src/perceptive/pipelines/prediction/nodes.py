"""Nodes of the prediction pipeline: read parameters, call perceptive.eo."""

from __future__ import annotations

import logging

import pandas as pd
import xarray as xr
from dask.diagnostics import ProgressBar
from matplotlib.figure import Figure

from perceptive.eo.classifier import LulcModel
from perceptive.eo.cube import validate_features_cube
from perceptive.eo.grid import grid_of
from perceptive.eo.legend import map_attrs
from perceptive.eo.plots import plot_lulc_map
from perceptive.eo.prediction import class_areas, predict_map

log = logging.getLogger(__name__)


def predict(features_cube: xr.Dataset, model: LulcModel) -> tuple[xr.DataArray, xr.DataArray]:
    """Classify every pixel, tile by tile; the map carries the cube's CRS, transform and the
    colour table of the model's legend."""
    validate_features_cube(features_cube)
    predicted = predict_map(features_cube["features"], model)
    with ProgressBar(minimum=2):
        predicted = predicted.compute()
    lulc = predicted["lulc"]
    lulc.attrs.update(map_attrs(model.legend))
    confidence = predicted["confidence"]
    confidence.attrs.update(nodata=None, long_name="probability of the predicted class")
    return lulc, confidence


def summarise(lulc_map: xr.DataArray, model: LulcModel) -> tuple[pd.DataFrame, Figure]:
    """Area per class and a picture of the map, named and coloured by the model's legend."""
    legend = model.legend
    resolution = grid_of(lulc_map).resolution
    areas = class_areas(lulc_map, resolution * resolution, legend)
    log.info("Class areas (ha):\n%s", areas.to_string(index=False))
    return areas, plot_lulc_map(lulc_map, legend)
