"""Labelled pixels → a training/validation/test table, split by spatial blocks.

Neighbouring pixels are nearly identical, so a random pixel split puts the "same" pixel in
training and validation and inflates accuracy. Here the AOI is cut into square blocks, every
reference parcel goes whole to the block holding most of it, and whole blocks go to
validation and test. Which pixels are drawn is the ``sampling.scheme`` link (:data:`METHODS`:
``proportional``, ``balanced``). This module also defines the table layout
(:func:`feature_columns`) that training and prediction both rely on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Annotated, Any

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import Field
from scipy import ndimage

from perceptive.eo.labels import disk, erode_labels
from perceptive.eo.legend import NO_DATA
from perceptive.eo.links import Registry

log = logging.getLogger(__name__)

FEATURE_DIMS = ("time", "feature", "y", "x")
#: Columns of the samples table that are not model features.
META_COLUMNS = (
    "label", "x", "y", "row", "col", "block", "fold", "split", "edge", "parcel", "true_label",
)  # fmt: skip
TRAIN, VALIDATION, TEST = "train", "validation", "test"
#: Fewer validation blocks than this make a block bootstrap interval meaningless.
MIN_VALIDATION_BLOCKS = 5
#: Above this share of parcels crossing a block edge, the block size is too small for them.
MAX_CROSSING_SHARE = 0.5


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
    block_counts: pd.Series,
    validation_fraction: float,
    rng: np.random.Generator,
    test_fraction: float = 0.0,
) -> tuple[set[int], set[int]]:
    """Choose (validation, test) blocks: blocks in seeded random order, the shortest prefix
    whose labelled-pixel count is closest to ``validation_fraction`` of the total goes to
    validation, the next one closest to ``test_fraction`` to test (none when 0); at least one
    block stays for training and one goes to validation."""
    blocks = block_counts.index.to_numpy()
    order = rng.permutation(len(blocks))
    cumulative = np.cumsum(block_counts.to_numpy()[order]) / block_counts.sum()
    n_validation = int(np.argmin(np.abs(cumulative - validation_fraction))) + 1
    n_validation = min(max(n_validation, 1), len(blocks) - 1)
    n_held = n_validation
    if test_fraction > 0:
        n_held = int(np.argmin(np.abs(cumulative - validation_fraction - test_fraction))) + 1
        n_held = min(max(n_held, n_validation + 1), len(blocks) - 1)
    validation = {int(b) for b in blocks[order[:n_validation]]}
    test = {int(b) for b in blocks[order[n_validation:n_held]]}
    return validation, test


def assign_folds(blocks: np.ndarray, n_folds: int, rng: np.random.Generator) -> dict[int, int]:
    """Spatial cross-validation folds: blocks in seeded random order, dealt round-robin into
    ``n_folds`` folds, so a block (and every pixel of it) sits in exactly one fold."""
    order = rng.permutation(np.unique(blocks))
    return {int(block): i % n_folds for i, block in enumerate(order)}


def parcel_blocks(parcels: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    """The spatial unit of each pixel: the block holding most pixels of its parcel (so no
    parcel is ever split between training and validation), or its own block outside parcels.

    ``parcels`` and ``blocks`` are flat int arrays of the pixels concerned; parcel 0 = none.
    """
    pairs = pd.DataFrame({"parcel": parcels, "block": blocks})
    pairs = pairs[pairs["parcel"] > 0]
    if pairs.empty:
        return blocks.copy()
    counts = pairs.value_counts().reset_index(name="n")  # sorted by count, largest first
    majority = counts.drop_duplicates("parcel").set_index("parcel")["block"]
    out = blocks.copy()
    inside = parcels > 0
    out[inside] = majority.reindex(parcels[inside]).to_numpy()
    return out


# --------------------------------------------------------------------------- sampling schemes


def proportional(
    labels: np.ndarray,
    n_samples: int,
    rng: np.random.Generator,
    *,
    max_per_class: Annotated[int, Field(ge=1)] | None = None,
) -> np.ndarray:
    """Up to ``n_samples`` pixels drawn uniformly without replacement, so the sample keeps
    the class shares of the reference data; ``max_per_class`` first caps each class (a random
    subset), so that one dominant class does not swamp the rare ones."""
    candidates = np.arange(labels.size)
    if max_per_class is not None:
        kept = []
        for class_id in np.unique(labels):
            members = np.flatnonzero(labels == class_id)
            if members.size > max_per_class:
                members = rng.choice(members, size=max_per_class, replace=False)
            kept.append(members)
        candidates = np.sort(np.concatenate(kept))
    if candidates.size > n_samples:
        candidates = rng.choice(candidates, size=n_samples, replace=False)
    return np.sort(candidates)


def balanced(
    labels: np.ndarray,
    n_samples: int,
    rng: np.random.Generator,
    *,
    min_per_class: Annotated[int, Field(ge=1)] = 100,
) -> np.ndarray:
    """The same number of pixels from every class, ``n_samples // classes`` but at least
    ``min_per_class`` (so the total may exceed ``n_samples`` with many classes); a class with
    fewer pixels gives them all."""
    classes = np.unique(labels)
    per_class = max(n_samples // max(len(classes), 1), min_per_class)
    chosen = []
    for class_id in classes:
        members = np.flatnonzero(labels == class_id)
        if members.size > per_class:
            members = rng.choice(members, size=per_class, replace=False)
        chosen.append(members)
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


#: The sampling-scheme link: which labelled pixels go into the samples table.
METHODS = Registry("sampling.scheme", "scheme(labels, n_samples, rng, **options) -> indices")
METHODS.register("proportional", proportional)
METHODS.register("balanced", balanced)


# --------------------------------------------------------------------------- the samples table


def sample_pixels(  # noqa: PLR0913, PLR0915
    features: xr.DataArray,
    labels: np.ndarray,
    *,
    n_samples: int,
    block_size: int,
    validation_fraction: float,
    seed: int,
    scheme: Mapping[str, Any] | None = None,
    erosion_radius: int = 0,
    test_fraction: float = 0.0,
    n_folds: int = 5,
    parcels: np.ndarray | None = None,
    parcel_splits: np.ndarray | None = None,
) -> pd.DataFrame:
    """Sample labelled pixels and their features into a train/validation(/test) table.

    1. **Spatial units.** The AOI is cut into ``block_size`` blocks. With ``parcels`` (a
       raster of reference polygon ids, 0 = none), every pixel of a parcel belongs to the
       block holding most of that parcel (:func:`parcel_blocks`), so no parcel is ever on
       both sides of the split. Whole units go to validation (about ``validation_fraction``
       of the labelled pixels) and test (``test_fraction``), chosen with the seeded RNG; the
       others are dealt into ``n_folds`` cross-validation folds (test pixels: fold -1).
       With ``parcel_splits`` (the user's split: "train", "validation" or "test" per parcel,
       parcel ``n`` at position ``n - 1``, see :func:`check_user_split`) each pixel takes the
       split of its parcel instead, and the fractions are not used.
    2. **Erosion** (``erosion_radius`` px, :func:`perceptive.eo.labels.erode_labels`) cleans
       the *training* pixels: pixels near a class edge are not trained on. Validation and
       test keep every labelled pixel, edges included, flagged in ``edge``, so accuracy can
       be reported both on clean pixels and where the map is really used. Training pixels
       within ``erosion_radius`` of a held-out pixel are dropped as well, so no validation
       pixel lies within the erosion radius of a training pixel.
    3. **Scheme.** Among these candidates the ``scheme`` link (:data:`METHODS`, default
       ``proportional``) picks the pixels, seeded.
    4. Their features are read from the (lazy) cube with vectorised point indexing, one
       chunk at a time by dask; pixels with no valid observation (all features NaN) are
       dropped.

    Returns a DataFrame with the :func:`feature_columns` (float32), ``label`` (uint8),
    ``x``, ``y`` (pixel-centre map coordinates), ``row``, ``col``, ``block`` (the spatial
    unit, int32), ``fold`` (int8), ``split`` ("train" / "validation" / "test"), ``edge``
    (bool) and ``parcel`` (int32, 0 = none), sorted by (row, col).
    """
    features = _check_features(features)
    labels = np.asarray(labels)
    height, width = features.sizes["y"], features.sizes["x"]
    if labels.shape != (height, width):
        raise SamplingError(
            f"labels have shape {labels.shape} but the features grid is {(height, width)} "
            "(y, x); rasterise the labels on the grid of the features cube."
        )
    if not 0 < validation_fraction < 1 or not 0 <= test_fraction < 1 - validation_fraction:
        raise SamplingError(
            f"validation_fraction ({validation_fraction}) must be in (0, 1) and test_fraction "
            f"({test_fraction}) in [0, 1 - validation_fraction)."
        )
    if n_samples < 2:
        raise SamplingError(f"n_samples must be >= 2, got {n_samples}.")
    if n_folds < 2:
        raise SamplingError(f"n_folds must be >= 2, got {n_folds}.")
    columns = feature_columns(features)
    rng = np.random.default_rng(seed)

    flat_labels = labels.reshape(-1)
    labelled = np.flatnonzero(flat_labels != NO_DATA)
    if labelled.size == 0:
        raise SamplingError(
            "The label raster has no labelled pixel (all 0); check the reference labels cover "
            "the AOI and that erosion did not remove every pixel (lower the radius)."
        )
    flat_parcels = (
        np.zeros(flat_labels.size, np.int32) if parcels is None else np.asarray(parcels).ravel()
    )
    geometric = assign_blocks(height, width, block_size).reshape(-1)
    units = parcel_blocks(flat_parcels[labelled], geometric[labelled])
    _check_block_size(flat_parcels[labelled], geometric[labelled], block_size)
    block_counts = pd.Series(units).value_counts().sort_index()
    if len(block_counts) < 2:
        raise SamplingError(
            f"All {labelled.size} labelled pixels fall in one {block_size}x{block_size} px "
            f"block of the {height}x{width} px AOI, so no spatial train/validation split is "
            "possible; lower block_size (e.g. to a quarter of the AOI side) or use more "
            "reference labels."
        )
    if parcel_splits is None:
        validation_blocks, test_blocks = split_blocks(
            block_counts, validation_fraction, rng, test_fraction
        )
        pixel_split = np.full(units.size, TRAIN, dtype=object)
        pixel_split[np.isin(units, list(validation_blocks))] = VALIDATION
        pixel_split[np.isin(units, list(test_blocks))] = TEST
    else:
        pixel_split = _user_split(flat_parcels[labelled], parcel_splits)
    validation_blocks = set(np.unique(units[pixel_split == VALIDATION]).tolist())
    test_blocks = set(np.unique(units[pixel_split == TEST]).tolist())
    folds = assign_folds(np.unique(units[pixel_split != TEST]), n_folds, rng)
    if len(validation_blocks) < MIN_VALIDATION_BLOCKS:
        log.warning(
            "Only %d validation block(s): accuracy intervals will mean little below %d; "
            "lower sampling.block_size or raise sampling.validation_fraction.",
            len(validation_blocks), MIN_VALIDATION_BLOCKS,
        )  # fmt: skip

    core = erode_labels(labels, erosion_radius).reshape(-1)[labelled] != NO_DATA
    _warn_eroded_classes(flat_labels[labelled], core, erosion_radius)
    is_held = pixel_split != TRAIN
    near_held = np.zeros(flat_labels.size, dtype=bool)
    near_held[labelled[is_held]] = True
    if erosion_radius > 0:
        near_held = ndimage.binary_dilation(
            near_held.reshape(height, width), structure=disk(erosion_radius)
        ).reshape(-1)
    candidate = is_held | (core & ~near_held[labelled])
    chosen_in = np.flatnonzero(candidate)
    picked = METHODS.run(
        scheme or {"method": "proportional"}, flat_labels[labelled[chosen_in]], n_samples, rng
    )
    keep_index = chosen_in[np.sort(picked)]
    chosen = labelled[keep_index]
    rows, cols = np.divmod(chosen, width)

    points = features.isel(y=xr.DataArray(rows, dims="sample"), x=xr.DataArray(cols, dims="sample"))
    values = np.asarray(points.transpose("sample", "time", "feature").compute().values)
    values = values.reshape(len(chosen), -1).astype(np.float32, copy=False)

    valid = ~np.all(np.isnan(values), axis=1)
    if not valid.all():
        log.info("Dropped %d sampled pixels with no valid observation.", int((~valid).sum()))
    chosen, rows, cols, values = chosen[valid], rows[valid], cols[valid], values[valid]
    keep_index = keep_index[valid]

    block_ids = units[keep_index]
    split = pixel_split[keep_index]
    fold = np.array([folds.get(int(b), -1) for b in block_ids], dtype=np.int8)
    fold[split == TEST] = -1
    meta = pd.DataFrame(
        {
            "label": flat_labels[chosen].astype(np.uint8),
            "x": np.asarray(features["x"].values, dtype=np.float64)[cols],
            "y": np.asarray(features["y"].values, dtype=np.float64)[rows],
            "row": rows.astype(np.int32),
            "col": cols.astype(np.int32),
            "block": block_ids.astype(np.int32),
            "fold": fold,
            "split": split.astype(str),
            "edge": ~core[keep_index],
            "parcel": flat_parcels[chosen].astype(np.int32),
        }
    )
    table = pd.concat([pd.DataFrame(values, columns=columns), meta], axis=1)
    counts = table["split"].value_counts()
    for name in (TRAIN, VALIDATION):
        if counts.get(name, 0) == 0:
            raise SamplingError(
                f"No {name} sample left after sampling ({len(table)} samples, "
                f"{len(block_counts)} labelled blocks); raise n_samples, lower block_size or "
                "check that the features are not all NaN."
            )
    log.info(
        "Sampled %d pixels (%d train, %d validation, %d test) from %d labelled pixels in %d "
        "blocks (%d validation, %d test blocks).",
        len(table), counts.get(TRAIN, 0), counts.get(VALIDATION, 0), counts.get(TEST, 0),
        labelled.size, len(block_counts), len(validation_blocks), len(test_blocks),
    )  # fmt: skip
    return table


def check_user_split(reference: pd.DataFrame, column: str) -> np.ndarray:
    """A user-given split: ``column`` of the reference polygons, one of "train",
    "validation", "test" per polygon (case and spaces ignored), as an array in polygon order;
    a missing column, or any other value (listed with counts), raises one error."""
    if column not in reference.columns:
        raise SamplingError(
            f"The reference labels have no column {column!r} (parameter "
            f"'sampling.split_column'); their columns are {list(reference.columns)}. A raster "
            "reference has none: set split_column to null there."
        )
    values = reference[column]
    split = values.astype("string").str.strip().str.lower()
    bad = values[~split.isin([TRAIN, VALIDATION, TEST]).fillna(False).astype(bool)]
    if len(bad):
        counts = bad.astype("string").fillna("<empty>").value_counts()
        listed = ", ".join(f"{value!r}: {n}" for value, n in counts.items())
        raise SamplingError(
            f"Column {column!r} of the reference labels (parameter 'sampling.split_column') "
            f"must say train, validation or test for every polygon; found (value: number of "
            f"polygons) {listed}. Fix those polygons, or set split_column to null for the "
            "split by spatial blocks."
        )
    return split.to_numpy(dtype=object)


def _user_split(parcels: np.ndarray, parcel_splits: np.ndarray) -> np.ndarray:
    """The split of each labelled pixel: that of its parcel (parcel n at position n - 1)."""
    if (parcels <= 0).any():
        raise SamplingError(
            "A user-given split needs every labelled pixel in a reference parcel; pass the "
            "parcel raster of the same reference labels (rasterize_parcels)."
        )
    return np.asarray(parcel_splits, dtype=object)[parcels - 1]


def _check_block_size(parcels: np.ndarray, blocks: np.ndarray, block_size: int) -> None:
    """Log how many parcels cross a block edge; warn when it is most of them."""
    pairs = pd.DataFrame({"parcel": parcels, "block": blocks})
    pairs = pairs[pairs["parcel"] > 0]
    if pairs.empty:
        return
    blocks_per_parcel = pairs.drop_duplicates().groupby("parcel").size()
    share = float((blocks_per_parcel > 1).mean())
    level = logging.WARNING if share > MAX_CROSSING_SHARE else logging.INFO
    log.log(
        level,
        "%.0f%% of %d reference parcels cross a %d px block edge (each goes whole to the "
        "block holding most of it)%s.",
        100 * share, len(blocks_per_parcel), block_size,
        "; a larger sampling.block_size keeps the split closer to the asked fractions"
        if level == logging.WARNING else "",
    )  # fmt: skip


def _warn_eroded_classes(labels: np.ndarray, core: np.ndarray, radius: int) -> None:
    before = pd.Series(labels).value_counts()
    after = pd.Series(labels[core]).value_counts()
    gone = {int(c): int(n) for c, n in before.items() if after.get(c, 0) == 0}
    if gone and radius > 0:
        log.warning(
            "Erosion of %d px removes every training pixel of class(es) %s (class id: labelled "
            "pixels before erosion); they are not trained on, but stay in validation. Lower "
            "sampling.erosion_radius to keep them.",
            radius, gone,
        )  # fmt: skip


def samples_summary(samples: pd.DataFrame, names: Mapping[int, str] | None = None) -> pd.DataFrame:
    """Sample counts per class, split and fold (edge pixels counted apart): the table a
    reader checks before trusting the metrics."""
    counts = (
        samples.groupby(["label", "split", "fold", "edge"], observed=True)
        .size()
        .rename("count")
        .reset_index()
        .rename(columns={"label": "class_id"})
    )
    counts.insert(1, "name", [(names or {}).get(int(c), f"class {c}") for c in counts["class_id"]])
    return counts


def sample_feature_names(samples: pd.DataFrame) -> list[str]:
    """The feature columns of a samples table (every column that is not metadata), in order."""
    return [c for c in samples.columns if c not in META_COLUMNS]
