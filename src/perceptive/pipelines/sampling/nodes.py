"""Nodes of the sampling pipeline: read parameters, call perceptive.eo."""

from __future__ import annotations

import logging

import geopandas as gpd
import pandas as pd
import xarray as xr

from perceptive.eo.cube import attach_grid, validate_features_cube
from perceptive.eo.grid import grid_of
from perceptive.eo.labels import erode_labels, rasterize_labels
from perceptive.eo.legend import legend_from_config, legend_to_config, map_attrs
from perceptive.eo.sampling import sample_pixels
from perceptive.params import Sampling

log = logging.getLogger(__name__)


def rasterize_reference(
    features_cube: xr.Dataset, reference_labels: gpd.GeoDataFrame, legend: list[dict] | None
) -> xr.DataArray:
    """Burn the reference polygons onto the cube's grid: one class id per pixel, 0 = unlabelled."""
    validate_features_cube(features_cube)
    grid = grid_of(features_cube)
    classes = legend_from_config(legend)
    labels = rasterize_labels(reference_labels, grid, class_column="class_id", legend=classes)
    raster = xr.DataArray(labels, dims=("y", "x"), attrs=map_attrs(classes))
    return attach_grid(raster, grid)


def sample_training_pixels(
    features_cube: xr.Dataset,
    label_raster: xr.DataArray,
    sampling: Sampling,
    legend: list[dict] | None,
) -> pd.DataFrame:
    """Drop parcel-edge pixels, sample labelled pixels, split them by spatial blocks. The
    table carries its legend, which modelling and prediction read from it."""
    validate_features_cube(features_cube)
    labels = erode_labels(label_raster.values, radius=sampling.erosion_radius)
    samples = sample_pixels(
        features_cube["features"],
        labels,
        n_samples=sampling.n_samples,
        block_size=sampling.block_size,
        validation_fraction=sampling.validation_fraction,
        seed=sampling.seed,
    )
    samples.attrs["legend"] = legend_to_config(legend_from_config(legend))
    counts = samples["split"].value_counts().to_dict()
    log.info("Sampled %d labelled pixels: %s", len(samples), counts)
    return samples
