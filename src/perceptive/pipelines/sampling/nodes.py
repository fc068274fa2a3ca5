"""Nodes of the sampling pipeline: read parameters, call perceptive.eo."""

from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import pandas as pd
import xarray as xr

from perceptive.eo.cube import attach_grid, validate_features_cube
from perceptive.eo.grid import grid_of
from perceptive.eo.labels import rasterize_labels, rasterize_parcels
from perceptive.eo.legend import class_names, legend_from_config, legend_to_config, map_attrs
from perceptive.eo.sampling import (
    check_user_split,
    sample_pixels,
    samples_summary,
)
from perceptive.params import Sampling
from perceptive.sources.demo import demo_truth_for

log = logging.getLogger(__name__)


def rasterize_reference(
    features_cube: xr.Dataset, reference_labels: gpd.GeoDataFrame, legend: list[dict] | None
) -> xr.DataArray:
    """Burn the reference polygons onto the cube's grid: one class id per pixel, 0 = unlabelled.

    Lazy, in the cube's (y, x) chunks: each chunk burns only the polygons meeting it, when it
    is computed (saved chunk by chunk, or read by the sampling)."""
    validate_features_cube(features_cube)
    grid = grid_of(features_cube)
    classes = legend_from_config(legend)
    labels = rasterize_labels(
        reference_labels,
        grid,
        class_column="class_id",
        legend=classes,
        chunks=_yx_chunks(features_cube),
    )
    raster = xr.DataArray(labels, dims=("y", "x"), attrs=map_attrs(classes))
    return attach_grid(raster, grid)


def sample_training_pixels(
    features_cube: xr.Dataset,
    label_raster: xr.DataArray,
    reference_labels: gpd.GeoDataFrame,
    sampling: Sampling,
    legend: list[dict] | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sample labelled pixels, split them by spatial blocks (each reference parcel whole on
    one side) or by the reference labels' own ``sampling.split_column``, and count them per
    class, split and fold. The table carries its legend, which modelling and prediction read
    from it; on the demo source it also carries each pixel's true class (``true_label``), so
    label noise can be measured."""
    validate_features_cube(features_cube)
    chunks = _yx_chunks(features_cube)
    parcels = rasterize_parcels(reference_labels, grid_of(features_cube), chunks=chunks)
    labels = label_raster.transpose("y", "x")
    labels = labels.data if chunks is None else labels.chunk({"y": chunks[0], "x": chunks[1]}).data
    parcel_splits = None
    if sampling.split_column is not None:
        parcel_splits = check_user_split(reference_labels, sampling.split_column)
    samples = sample_pixels(
        features_cube["features"],
        labels,
        n_samples=sampling.n_samples,
        block_size=sampling.block_size,
        validation_fraction=sampling.validation_fraction,
        test_fraction=sampling.test_fraction,
        n_folds=sampling.n_folds,
        erosion_radius=sampling.erosion_radius,
        scheme=sampling.scheme,
        seed=sampling.seed,
        parcels=parcels,
        parcel_splits=parcel_splits,
    )
    truth = demo_truth_for(features_cube)
    if truth is not None:
        rows, cols = samples["row"].to_numpy(), samples["col"].to_numpy()
        samples["true_label"] = np.asarray(truth.values)[rows, cols].astype(np.uint8)
    classes = legend_from_config(legend)
    samples.attrs["legend"] = legend_to_config(classes)
    summary = samples_summary(samples, class_names(classes))
    log.info("Samples per class and split:\n%s", summary.to_string(index=False))
    return samples, summary


def _yx_chunks(features_cube: xr.Dataset) -> tuple[tuple[int, ...], ...] | None:
    """The (y, x) chunks of the features (None when they are in memory)."""
    features = features_cube["features"]
    if features.chunks is None:
        return None
    return features.chunksizes["y"], features.chunksizes["x"]
