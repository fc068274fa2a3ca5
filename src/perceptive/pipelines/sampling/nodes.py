"""Nodes of the sampling pipeline: read parameters, call perceptive.eo."""

from __future__ import annotations

import logging

import geopandas as gpd
import pandas as pd
import xarray as xr

from perceptive.eo.cube import attach_grid, validate_features_cube
from perceptive.eo.grid import grid_of
from perceptive.eo.labels import erode_labels, rasterize_labels
from perceptive.eo.legend import legend_from_config, map_attrs
from perceptive.eo.sampling import sample_pixels

log = logging.getLogger(__name__)


def rasterize_reference(
    features_cube: xr.Dataset, reference_labels: gpd.GeoDataFrame, reference: dict, legend
) -> xr.DataArray:
    """Burn the reference polygons onto the cube's grid: one class id per pixel, 0 = unlabelled."""
    validate_features_cube(features_cube)
    grid = grid_of(features_cube)
    legend = legend_from_config(legend)
    labels = rasterize_labels(
        reference_labels, grid, class_column=reference.get("class_column", "class_id"),
        legend=legend,
    )  # fmt: skip
    raster = xr.DataArray(labels, dims=("y", "x"), attrs=map_attrs(legend))
    return attach_grid(raster, grid)


def sample_training_pixels(
    features_cube: xr.Dataset, label_raster: xr.DataArray, sampling: dict
) -> pd.DataFrame:
    """Drop parcel-edge pixels, sample labelled pixels, split them by spatial blocks."""
    validate_features_cube(features_cube)
    labels = erode_labels(label_raster.values, radius=int(sampling.get("erosion_radius", 1)))
    samples = sample_pixels(
        features_cube["features"],
        labels,
        n_samples=int(sampling.get("n_samples", 40000)),
        block_size=int(sampling.get("block_size", 64)),
        validation_fraction=float(sampling.get("validation_fraction", 0.2)),
        seed=int(sampling.get("seed", 42)),
    )
    counts = samples["split"].value_counts().to_dict()
    log.info("Sampled %d labelled pixels: %s", len(samples), counts)
    return samples
