"""Labelled pixels → a training/validation table, split by spatial blocks.

Neighbouring pixels are nearly identical, so a random pixel split puts the "same" pixel in
training and validation and inflates accuracy. Here the AOI is cut into square blocks and
whole blocks go to validation. This module also defines the table layout
(:func:`feature_columns`) that training and prediction both rely on.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import xarray as xr

from perceptive.eo.legend import NO_DATA

log = logging.getLogger(__name__)

FEATURE_DIMS = ("time", "feature", "y", "x")
#: Columns of the samples table that are not model features.
META_COLUMNS = ("label", "x", "y", "row", "col", "block", "split")
TRAIN, VALIDATION = "train", "validation"


class SamplingError(ValueError):
    """Labelled pixels cannot be sampled or split as asked."""


def _check_features(features: xr.DataArray) -> xr.DataArray:
    if not isinstance(features, xr.DataArray):
        raise SamplingError(
            f"features must be an xarray.DataArray (time, feature, y, x), e.g. "
            f"features_cube['features'], got {type(features).__name__}."
        )
    if set(features.dims) != set(FEATURE_DIMS):
        raise SamplingError(f"features must have dims {FEATURE_DIMS}, got {features.dims}.")
    return features.transpose(*FEATURE_DIMS)


def feature_columns(features: xr.DataArray) -> list[str]:
    """Names of the flattened features, ``f"{feature}_{YYYY-MM-DD}"``, time-major.

    The order is (time, feature) — all features of the first date, then the second date…,
    i.e. C-order flattening of a (time, feature) array. Training tables and prediction
    reshape both follow it; this is the one place that defines it.
    """
    features = _check_features(features)
    dates = pd.DatetimeIndex(features["time"].values).strftime("%Y-%m-%d")
    names = [str(f) for f in features["feature"].values]
    columns = [f"{name}_{date}" for date in dates for name in names]
    if len(set(columns)) != len(columns):
        raise SamplingError(
            "Feature column names are not unique (two frames on the same day or a repeated "
            "feature name); merge same-day frames first."
        )
    return columns


def assign_blocks(height: int, width: int, block_size: int) -> np.ndarray:
    """A (height, width) int32 raster of block ids: square ``block_size`` px blocks, row-major.

    Edge blocks are smaller when the size is not a multiple of ``block_size``.
    """
    if block_size < 1:
        raise SamplingError(f"block_size must be >= 1 pixel, got {block_size}.")
    n_block_cols = -(-width // block_size)
    rows = np.arange(height, dtype=np.int32)[:, None] // block_size
    cols = np.arange(width, dtype=np.int32)[None, :] // block_size
    return (rows * n_block_cols + cols).astype(np.int32)


def split_blocks(
    block_counts: pd.Series, validation_fraction: float, rng: np.random.Generator
) -> set[int]:
    """Choose validation blocks: blocks in seeded random order, the shortest prefix whose
    labelled-pixel count is closest to ``validation_fraction`` of the total; at least one
    block on each side."""
    blocks = block_counts.index.to_numpy()
    counts = block_counts.to_numpy()
    order = rng.permutation(len(blocks))
    cumulative = np.cumsum(counts[order])
    target = validation_fraction * cumulative[-1]
    k = int(np.argmin(np.abs(cumulative - target))) + 1
    k = min(max(k, 1), len(blocks) - 1)
    return {int(b) for b in blocks[order[:k]]}


def sample_pixels(
    features: xr.DataArray,
    labels: np.ndarray,
    *,
    n_samples: int,
    block_size: int,
    validation_fraction: float,
    seed: int,
    max_per_class: int | None = None,
) -> pd.DataFrame:
    """Sample labelled pixels and their features into a train/validation table.

    1. The AOI is cut into ``block_size`` blocks; whole blocks go to validation, chosen with
       the seeded RNG so that about ``validation_fraction`` of the labelled pixels is
       validation (both splits always get labelled pixels).
    2. Up to ``n_samples`` labelled pixels (label != 0) are drawn uniformly without
       replacement, so the table keeps the class shares of the reference data (and the
       validation metrics describe the map as it will be used). ``max_per_class`` optionally
       caps each class first (random subset), so that one dominant class does not swamp the
       rare ones.
    3. Their features are read from the (lazy) cube with vectorised point indexing, one
       chunk at a time by dask; samples whose features are all NaN are dropped.

    Returns a DataFrame with the :func:`feature_columns` (float32), ``label`` (uint8),
    ``x``, ``y`` (pixel-centre map coordinates), ``row``, ``col``, ``block`` (int32) and
    ``split`` ("train" / "validation"), sorted by (row, col).
    """
    features = _check_features(features)
    labels = np.asarray(labels)
    height, width = features.sizes["y"], features.sizes["x"]
    if labels.shape != (height, width):
        raise SamplingError(
            f"labels have shape {labels.shape} but the features grid is {(height, width)} "
            "(y, x); rasterise the labels on the grid of the features cube."
        )
    if not 0 < validation_fraction < 1:
        raise SamplingError(f"validation_fraction must be in (0, 1), got {validation_fraction}.")
    if n_samples < 2:
        raise SamplingError(f"n_samples must be >= 2, got {n_samples}.")
    columns = feature_columns(features)
    rng = np.random.default_rng(seed)

    flat_labels = labels.reshape(-1)
    labelled = np.flatnonzero(flat_labels != NO_DATA)
    if labelled.size == 0:
        raise SamplingError(
            "The label raster has no labelled pixel (all 0); check the reference labels cover "
            "the AOI and that erosion did not remove every pixel (lower the radius)."
        )
    blocks = assign_blocks(height, width, block_size).reshape(-1)
    block_counts = pd.Series(blocks[labelled]).value_counts().sort_index()
    if len(block_counts) < 2:
        raise SamplingError(
            f"All {labelled.size} labelled pixels fall in one {block_size}x{block_size} px "
            f"block of the {height}x{width} px AOI, so no spatial train/validation split is "
            "possible; lower block_size (e.g. to a quarter of the AOI side) or use more "
            "reference labels."
        )
    validation_blocks = split_blocks(block_counts, validation_fraction, rng)

    candidates = labelled
    if max_per_class is not None:
        if max_per_class < 1:
            raise SamplingError(f"max_per_class must be >= 1 or None, got {max_per_class}.")
        kept = []
        for class_id in np.unique(flat_labels[labelled]):
            members = labelled[flat_labels[labelled] == class_id]
            if members.size > max_per_class:
                members = rng.choice(members, size=max_per_class, replace=False)
            kept.append(members)
        candidates = np.concatenate(kept)
    if candidates.size > n_samples:
        candidates = rng.choice(candidates, size=n_samples, replace=False)
    chosen = np.sort(candidates)
    rows, cols = np.divmod(chosen, width)

    points = features.isel(y=xr.DataArray(rows, dims="sample"), x=xr.DataArray(cols, dims="sample"))
    values = np.asarray(points.transpose("sample", "time", "feature").compute().values)
    values = values.reshape(len(chosen), -1).astype(np.float32, copy=False)

    keep = ~np.all(np.isnan(values), axis=1)
    if not keep.all():
        log.info("Dropped %d sampled pixels with no valid features.", int((~keep).sum()))
    chosen, rows, cols, values = chosen[keep], rows[keep], cols[keep], values[keep]

    table = pd.DataFrame(values, columns=columns)
    block_ids = blocks[chosen]
    is_validation = np.isin(block_ids, list(validation_blocks))
    meta = pd.DataFrame(
        {
            "label": flat_labels[chosen].astype(np.uint8),
            "x": np.asarray(features["x"].values, dtype=np.float64)[cols],
            "y": np.asarray(features["y"].values, dtype=np.float64)[rows],
            "row": rows.astype(np.int32),
            "col": cols.astype(np.int32),
            "block": block_ids.astype(np.int32),
            "split": np.where(is_validation, VALIDATION, TRAIN),
        }
    )
    table = pd.concat([table, meta], axis=1)
    counts = table["split"].value_counts()
    for split in (TRAIN, VALIDATION):
        if counts.get(split, 0) == 0:
            raise SamplingError(
                f"No {split} sample left after sampling ({len(table)} samples, "
                f"{len(block_counts)} labelled blocks); raise n_samples, lower block_size or "
                "check that the features are not all NaN."
            )
    log.info(
        "Sampled %d pixels (%d train, %d validation) from %d labelled pixels in %d blocks "
        "(%d validation blocks).",
        len(table),
        counts.get(TRAIN, 0),
        counts.get(VALIDATION, 0),
        labelled.size,
        len(block_counts),
        len(validation_blocks),
    )
    return table


def sample_feature_names(samples: pd.DataFrame) -> list[str]:
    """The feature columns of a samples table (every column that is not metadata), in order."""
    return [c for c in samples.columns if c not in META_COLUMNS]
