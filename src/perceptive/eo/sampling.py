"""Labelled pixels → a training/validation/test table, split by spatial blocks.

Neighbouring pixels are nearly identical, so a random pixel split puts the "same" pixel in
training and validation and inflates accuracy. Here the AOI is cut into square blocks, every
reference parcel goes whole to the block holding most of it, and whole blocks go to
validation and test. Which pixels are drawn is the ``sampling.scheme`` link (:data:`METHODS`:
``proportional``, ``balanced``). This module also defines the table layout
(:func:`feature_columns`) that training and prediction both rely on.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Mapping
from typing import Annotated, Any

import dask
import dask.array as da
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
    counts: pd.Series,
    n_samples: int,
    rng: np.random.Generator,
    *,
    max_per_class: Annotated[int, Field(ge=1)] | None = None,
) -> pd.Series:
    """Up to ``n_samples`` pixels drawn uniformly without replacement, so the sample keeps
    the class shares of the reference data; ``max_per_class`` first caps each class (a random
    subset), so that one dominant class does not swamp the rare ones. The numbers per class
    of such a draw are multivariate hypergeometric, drawn here from the class counts."""
    available = counts.to_numpy(dtype=np.int64)
    if max_per_class is not None:
        available = np.minimum(available, max_per_class)
    return pd.Series(hypergeometric(available, n_samples, rng), index=counts.index)


def balanced(
    counts: pd.Series,
    n_samples: int,
    rng: np.random.Generator,
    *,
    min_per_class: Annotated[int, Field(ge=1)] = 100,
) -> pd.Series:
    """The same number of pixels from every class, ``n_samples // classes`` but at least
    ``min_per_class`` (so the total may exceed ``n_samples`` with many classes); a class with
    fewer pixels gives them all."""
    present = counts[counts > 0]
    per_class = max(n_samples // max(len(present), 1), min_per_class)
    return counts.clip(upper=per_class).astype(np.int64)


#: The sampling-scheme link: how many of each class's candidate pixels go into the samples
#: table. ``counts`` is a Series of candidate pixels per class id (sorted); the result, the
#: number drawn per class (same index, at most the count). Which pixels are drawn is then
#: uniform within each class, chunk by chunk (:func:`sample_pixels`).
METHODS = Registry(
    "sampling.scheme", "scheme(counts per class, n_samples, rng, **options) -> numbers per class"
)
METHODS.register("proportional", proportional)
METHODS.register("balanced", balanced)


def hypergeometric(counts: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """How many of ``n`` items drawn uniformly without replacement from cells holding
    ``counts`` items fall in each cell (all of them when ``n`` >= the total)."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if n >= total:
        return counts.copy()
    if total < 10**9:  # numpy's limit for its "marginals" method
        return rng.multivariate_hypergeometric(counts, n).astype(np.int64)
    drawn = rng.choice(total, size=n, replace=False)  # O(n) memory when n << total
    cells = np.searchsorted(np.cumsum(counts), drawn, side="right")
    return np.bincount(cells, minlength=len(counts)).astype(np.int64)


# --------------------------------------------------------------------------- the samples table


def sample_pixels(  # noqa: PLR0913, PLR0915
    features: xr.DataArray,
    labels: np.ndarray | da.Array,
    *,
    n_samples: int,
    block_size: int,
    validation_fraction: float,
    seed: int,
    scheme: Mapping[str, Any] | None = None,
    erosion_radius: int = 0,
    test_fraction: float = 0.0,
    n_folds: int = 5,
    parcels: np.ndarray | da.Array | None = None,
    parcel_splits: np.ndarray | None = None,
) -> pd.DataFrame:
    """Sample labelled pixels and their features into a train/validation(/test) table.

    1. **Spatial units.** The AOI is cut into ``block_size`` blocks. With ``parcels`` (a
       raster of reference polygon ids, 0 = none), every pixel of a parcel belongs to the
       block holding most of that parcel (:func:`parcel_blocks`; ties: the block where the
       parcel's first pixel in row-major order lies), so no parcel is ever on
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
       ``proportional``) sets how many pixels of each class are drawn, seeded; each class's
       number is dealt to the chunks holding its candidates (a multivariate hypergeometric
       draw, so the sample is uniform within the class over the AOI), and each chunk draws
       its pixels with a generator of its own, seeded by (``seed``, chunk index).
    4. Their features are read from the (lazy) cube chunk by chunk, only at the chosen
       pixels; pixels with no valid observation (all features NaN) are dropped.

    ``labels`` and ``parcels`` may be numpy or (lazy) dask arrays. Everything is computed
    chunk by chunk, in the features cube's (y, x) chunks (those of ``labels`` when the cube
    is in memory), keeping only per-chunk counts and small tables of blocks and parcels: no
    array of the whole AOI is made. Steps 1 and 2 do not depend on the chunks; the pixels
    drawn do (and on the seed), not on the dask scheduler. When every candidate is drawn
    (``n_samples`` and the scheme's caps above their number) the table does not depend on
    the chunks either.

    Returns a DataFrame with the :func:`feature_columns` (float32), ``label`` (uint8),
    ``x``, ``y`` (pixel-centre map coordinates), ``row``, ``col``, ``block`` (the spatial
    unit, int32), ``fold`` (int8), ``split`` ("train" / "validation" / "test"), ``edge``
    (bool) and ``parcel`` (int32, 0 = none), sorted by (row, col).
    """
    features = _check_features(features)
    height, width = features.sizes["y"], features.sizes["x"]
    if isinstance(labels, xr.DataArray):
        labels = labels.data
    if tuple(np.shape(labels)) != (height, width):
        raise SamplingError(
            f"labels have shape {tuple(np.shape(labels))} but the features grid is "
            f"{(height, width)} (y, x); rasterise the labels on the grid of the features cube."
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
    if block_size < 1:
        raise SamplingError(f"block_size must be >= 1 pixel, got {block_size}.")
    if erosion_radius < 0:
        raise SamplingError(f"erosion_radius must be >= 0 pixels, got {erosion_radius}.")
    scheme = METHODS.validate(scheme or {"method": "proportional"})
    columns = feature_columns(features)
    rng = np.random.default_rng(seed)
    chunks = _spatial_chunks(features, labels)
    raster = _Rasters(labels, parcels, chunks, width, block_size)

    # 1. spatial units, from per-chunk counts of labelled pixels per (parcel, block)
    pairs = _pair_counts(raster)
    n_labelled = int(pairs["n"].sum())
    if n_labelled == 0:
        raise SamplingError(
            "The label raster has no labelled pixel (all 0); check the reference labels cover "
            "the AOI and that erosion did not remove every pixel (lower the radius)."
        )
    majority = _majority_blocks(pairs)
    pairs["unit"] = np.where(
        pairs["parcel"] > 0, majority.reindex(pairs["parcel"]).to_numpy(), pairs["block"]
    ).astype(np.int64)
    _log_crossing_parcels(pairs, block_size)
    block_counts = pairs.groupby("unit")["n"].sum().sort_index()
    if len(block_counts) < 2:
        raise SamplingError(
            f"All {n_labelled} labelled pixels fall in one {block_size}x{block_size} px "
            f"block of the {height}x{width} px AOI, so no spatial train/validation split is "
            "possible; lower block_size (e.g. to a quarter of the AOI side) or use more "
            "reference labels."
        )
    if parcel_splits is None:
        validation_blocks, test_blocks = split_blocks(
            block_counts, validation_fraction, rng, test_fraction
        )
        pairs["split"] = TRAIN
        pairs.loc[pairs["unit"].isin(validation_blocks), "split"] = VALIDATION
        pairs.loc[pairs["unit"].isin(test_blocks), "split"] = TEST
    else:
        pairs["split"] = _user_split(pairs["parcel"].to_numpy(), parcel_splits)
    validation_blocks = set(pairs.loc[pairs["split"] == VALIDATION, "unit"].tolist())
    test_blocks = set(pairs.loc[pairs["split"] == TEST, "unit"].tolist())
    folds = assign_folds(pairs.loc[pairs["split"] != TEST, "unit"].to_numpy(), n_folds, rng)
    if len(validation_blocks) < MIN_VALIDATION_BLOCKS:
        log.warning(
            "Only %d validation block(s): accuracy intervals will mean little below %d; "
            "lower sampling.block_size or raise sampling.validation_fraction.",
            len(validation_blocks), MIN_VALIDATION_BLOCKS,
        )  # fmt: skip
    if parcel_splits is None:
        raster.set_units(majority, held_units=validation_blocks | test_blocks)
    else:
        held = np.asarray(parcel_splits, dtype=object) != TRAIN
        raster.set_units(majority, held_parcels=held)

    # 2. erosion and the candidates: counts per chunk and class
    candidates = raster.candidates(erosion_radius)
    per_chunk = _chunk_results(_count_candidates, raster.labels, candidates)
    per_chunk = pd.concat([c for c in per_chunk.ravel() if c is not None], ignore_index=True)
    _warn_eroded_classes(per_chunk.groupby("label")[["labelled", "core"]].sum(), erosion_radius)

    # 3. the scheme's numbers per class, dealt to the chunks, drawn in each chunk
    per_class = per_chunk.groupby("label")["candidates"].sum()
    per_class = per_class[per_class > 0]
    wanted = METHODS.get(scheme.pop("method"))(per_class, n_samples, rng, **scheme)
    quotas = _deal_to_chunks(per_chunk, wanted, rng)
    drawn = _chunk_results(
        functools.partial(_draw, quotas=quotas, seed=seed), raster.labels, raster.parcels,
        candidates,
    )  # fmt: skip
    picked = [d for d in drawn.ravel() if d is not None]
    chosen = pd.concat(picked, ignore_index=True) if picked else _draw_frame()
    chosen = chosen.sort_values(["row", "col"], ignore_index=True)
    rows, cols = chosen["row"].to_numpy(), chosen["col"].to_numpy()

    # 4. the features of the chosen pixels, chunk by chunk
    values = _read_pixels(features, rows, cols, chunks).reshape(len(chosen), -1)
    values = values.astype(np.float32, copy=False)
    valid = ~np.all(np.isnan(values), axis=1)
    if not valid.all():
        log.info("Dropped %d sampled pixels with no valid observation.", int((~valid).sum()))
    chosen, rows, cols, values = chosen[valid], rows[valid], cols[valid], values[valid]

    parcel = chosen["parcel"].to_numpy()
    geometric = (rows // block_size) * -(-width // block_size) + cols // block_size
    block_ids = geometric.astype(np.int64)
    inside = parcel > 0
    block_ids[inside] = majority.reindex(parcel[inside]).to_numpy()
    if parcel_splits is None:
        split = np.full(len(chosen), TRAIN, dtype=object)
        split[np.isin(block_ids, list(validation_blocks))] = VALIDATION
        split[np.isin(block_ids, list(test_blocks))] = TEST
    else:
        split = _user_split(parcel, parcel_splits)
    fold = np.array([folds.get(int(b), -1) for b in block_ids], dtype=np.int8)
    fold[split == TEST] = -1
    meta = pd.DataFrame(
        {
            "label": chosen["label"].to_numpy().astype(np.uint8),
            "x": np.asarray(features["x"].values, dtype=np.float64)[cols],
            "y": np.asarray(features["y"].values, dtype=np.float64)[rows],
            "row": rows.astype(np.int32),
            "col": cols.astype(np.int32),
            "block": block_ids.astype(np.int32),
            "fold": fold,
            "split": split.astype(str),
            "edge": ~chosen["core"].to_numpy(dtype=bool),
            "parcel": parcel.astype(np.int32),
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
        n_labelled, len(block_counts), len(validation_blocks), len(test_blocks),
    )  # fmt: skip
    return table


#: (y, x) chunk side used when neither the features nor the labels are dask arrays.
DEFAULT_CHUNK = 1024


def _spatial_chunks(features: xr.DataArray, labels: Any) -> tuple[tuple[int, ...], ...]:
    """The (y, x) chunks the sampling works in: the features cube's, else the labels'."""
    shape = (features.sizes["y"], features.sizes["x"])
    if isinstance(features.data, da.Array):
        return features.data.chunks[2:]
    if isinstance(labels, da.Array):
        return labels.chunks
    return da.core.normalize_chunks(DEFAULT_CHUNK, shape)


class _Rasters:
    """The label and parcel rasters as dask arrays in the sampling chunks, and the per-chunk
    rasters made from them: each pixel's spatial unit and held-out flag, the candidates."""

    def __init__(self, labels, parcels, chunks, width: int, block_size: int) -> None:
        self.labels = _chunked(labels, chunks)
        self.parcels = (
            da.zeros(self.labels.shape, dtype=np.int32, chunks=chunks)
            if parcels is None
            else _chunked(parcels, chunks)
        )
        self.n_block_cols = -(-width // block_size)
        self.block_size = block_size
        self.held = None

    def __getstate__(self) -> dict:
        """What a dask.distributed worker needs of this object (its per-pixel rules), not the
        rasters: their blocks reach it as task inputs, while the whole arrays (a numpy raster
        inside their graph) would be pickled with every block's task."""
        return {k: v for k, v in self.__dict__.items() if k not in ("labels", "parcels", "held")}

    def geometric_blocks(self, location) -> np.ndarray:
        (y0, y1), (x0, x1) = location
        rows = np.arange(y0, y1, dtype=np.int64)[:, None] // self.block_size
        cols = np.arange(x0, x1, dtype=np.int64)[None, :] // self.block_size
        return rows * self.n_block_cols + cols

    def set_units(self, majority: pd.Series, held_units=None, held_parcels=None) -> None:
        """Each parcel's unit (``majority``) and what is held out: whole units, or parcels
        (``held_parcels[n - 1]`` for parcel ``n``)."""
        size = int(majority.index.max()) + 1 if len(majority) else 1
        self._unit_of_parcel = np.full(size, -1, dtype=np.int64)
        self._unit_of_parcel[majority.index.to_numpy()] = majority.to_numpy()
        self._held_units = None if held_units is None else np.array(sorted(held_units))
        self._held_parcels = None
        if held_parcels is not None:
            self._held_parcels = np.concatenate([[False], np.asarray(held_parcels, bool)])

    def _held_block(self, labels, parcels, block_info=None) -> np.ndarray:
        labelled = labels != NO_DATA
        if self._held_parcels is not None:
            return labelled & self._held_parcels[np.where(labelled, parcels, 0)]
        inside = labelled & (parcels > 0)
        units = np.where(
            inside,
            self._unit_of_parcel[np.where(inside, parcels, 0)],
            self.geometric_blocks(block_info[0]["array-location"]),
        )
        return labelled & np.isin(units, self._held_units)

    def candidates(self, radius: int) -> da.Array:
        """A lazy uint8 raster: 0 unlabelled or not a candidate, 1 candidate whose label
        survives erosion (core), 2 candidate on an edge (held out only), 3 labelled, not a
        candidate but core (kept for the counts of the erosion warning)."""
        held = da.map_blocks(
            self._held_block, self.labels, self.parcels, dtype=bool, name=_name("held")
        )
        core = erode_labels(self.labels, radius) != NO_DATA
        near_held = held
        if radius > 0:
            near_held = da.map_overlap(
                _dilate, held, depth=radius, boundary="none", dtype=bool, radius=radius
            )
            if near_held.chunks != held.chunks:
                near_held = near_held.rechunk(held.chunks)
        return da.map_blocks(
            _classify, self.labels, held, core, near_held, dtype=np.uint8, name=_name("candidates")
        )


def _chunked(raster, chunks) -> da.Array:
    if isinstance(raster, xr.DataArray):
        raster = raster.data
    if not isinstance(raster, da.Array):
        return da.from_array(np.asarray(raster), chunks=chunks)
    return raster if raster.chunks == tuple(chunks) else raster.rechunk(chunks)


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    return ndimage.binary_dilation(mask, structure=disk(radius))


def _classify(labels, held, core, near_held) -> np.ndarray:
    labelled = labels != NO_DATA
    candidate = labelled & (held | (core & ~near_held))
    out = np.zeros(labels.shape, np.uint8)
    out[candidate & core] = 1
    out[candidate & ~core] = 2
    out[labelled & ~candidate & core] = 3
    return out


def _chunk_results(function, *arrays: da.Array) -> np.ndarray:
    """``function(*blocks, location, chunk index)`` on every chunk of ``arrays`` (same
    chunks), computed together: a (chunk rows, chunk cols) object array of the results."""

    def one(*blocks, block_info=None):
        out = np.empty((1, 1), dtype=object)
        info = block_info[0]
        out[0, 0] = function(*blocks, info["array-location"], tuple(info["chunk-location"]))
        return out

    ones = tuple((1,) * n for n in arrays[0].numblocks)
    return da.map_blocks(
        one,
        *arrays,
        dtype=object,
        chunks=ones,
        meta=np.empty((0, 0), dtype=object),
        name=_name("per-chunk"),
    ).compute()


def _name(prefix: str) -> str:
    """A unique dask key prefix: spares dask hashing (pickling) the closures it would name."""
    return f"{prefix}-{uuid.uuid4().hex}"


def _pair_counts(raster: _Rasters) -> pd.DataFrame:
    """Labelled pixels per (parcel, geometric block), with the row-major position of the
    first one, reduced over the chunks: a table of parcels and blocks, not of pixels."""

    def count(labels, parcels, location, _index) -> pd.DataFrame:
        r, c = np.nonzero(labels != NO_DATA)
        if r.size == 0:
            return None
        (y0, _), (x0, _) = location
        width = raster.n_block_cols * raster.block_size  # any stride >= the width orders
        blocks = raster.geometric_blocks(location)[r, c]
        keys = np.stack([parcels[r, c].astype(np.int64), blocks])
        pairs, first, n = np.unique(keys, axis=1, return_index=True, return_counts=True)
        position = (r[first] + y0).astype(np.int64) * width + (c[first] + x0)
        return pd.DataFrame({"parcel": pairs[0], "block": pairs[1], "n": n, "first": position})

    parts = [
        p for p in _chunk_results(count, raster.labels, raster.parcels).ravel() if p is not None
    ]
    if not parts:
        return pd.DataFrame({"parcel": [], "block": [], "n": [], "first": []}, dtype=np.int64)
    table = pd.concat(parts, ignore_index=True)
    return table.groupby(["parcel", "block"], as_index=False).agg(
        n=("n", "sum"), first=("first", "min")
    )


def _majority_blocks(pairs: pd.DataFrame) -> pd.Series:
    """The block of each parcel (index): the one holding most of its pixels; on a tie, the
    one holding its first pixel (row-major) among the tied blocks."""
    inside = pairs[pairs["parcel"] > 0].sort_values(
        ["n", "first"], ascending=[False, True], kind="stable"
    )
    majority = inside.drop_duplicates("parcel").set_index("parcel")["block"].sort_index()
    return majority.astype(np.int64)


def _count_candidates(labels, classes, _location, _index) -> pd.DataFrame | None:
    """Per class of one chunk: labelled, core (labelled and not eroded) and candidate pixels."""
    labelled = labels != NO_DATA
    if not labelled.any():
        return None
    values = labels[labelled].astype(np.int64)
    kind = classes[labelled]
    ids, inverse = np.unique(values, return_inverse=True)
    n = len(ids)
    return pd.DataFrame(
        {
            "chunk_y": _index[0],
            "chunk_x": _index[1],
            "label": ids,
            "labelled": np.bincount(inverse, minlength=n),
            "core": np.bincount(inverse, weights=(kind == 1) | (kind == 3), minlength=n),
            "candidates": np.bincount(inverse, weights=kind > 0, minlength=n),
        }
    ).astype({"core": np.int64, "candidates": np.int64})


def _deal_to_chunks(
    table: pd.DataFrame, wanted: pd.Series, rng: np.random.Generator
) -> dict[tuple[int, int], dict[int, int]]:
    """Each class's number dealt to the chunks holding its candidates (row-major chunk order,
    multivariate hypergeometric): {(chunk row, chunk col): {class id: number}}."""
    quotas: dict[tuple[int, int], dict[int, int]] = {}
    table = table[table["candidates"] > 0].sort_values(["label", "chunk_y", "chunk_x"])
    for label, cells in table.groupby("label", sort=True):
        n = int(wanted.get(label, 0))
        if n <= 0:
            continue
        dealt = hypergeometric(cells["candidates"].to_numpy(), n, rng)
        for y, x, k in zip(cells["chunk_y"], cells["chunk_x"], dealt, strict=True):
            if k:
                quotas.setdefault((int(y), int(x)), {})[int(label)] = int(k)
    return quotas


def _draw_frame(**columns) -> pd.DataFrame:
    empty = {"row": np.int64, "col": np.int64, "label": np.int64, "parcel": np.int64}
    data = {k: columns.get(k, np.zeros(0, t)) for k, t in empty.items()}
    data["core"] = columns.get("core", np.zeros(0, bool))
    return pd.DataFrame(data)


def _draw(labels, parcels, classes, location, index, *, quotas, seed) -> pd.DataFrame | None:
    """The pixels drawn in one chunk: its numbers per class, uniformly among the class's
    candidates, with a generator seeded by (seed, chunk index) alone."""
    wanted = quotas.get(index)
    if not wanted:
        return None
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=index))
    flat_labels, flat_classes = labels.reshape(-1), classes.reshape(-1)
    picks = []
    for label, n in sorted(wanted.items()):
        members = np.flatnonzero((flat_labels == label) & (flat_classes > 0) & (flat_classes < 3))
        picks.append(rng.choice(members, size=n, replace=False) if n < members.size else members)
    chosen = np.sort(np.concatenate(picks))
    r, c = np.divmod(chosen, labels.shape[1])
    (y0, _), (x0, _) = location
    return _draw_frame(
        row=r + y0,
        col=c + x0,
        label=flat_labels[chosen].astype(np.int64),
        parcel=parcels.reshape(-1)[chosen].astype(np.int64),
        core=flat_classes[chosen] == 1,
    )


def _read_pixels(features: xr.DataArray, rows: np.ndarray, cols: np.ndarray, chunks) -> np.ndarray:
    """(pixels, time, feature) values at (rows, cols) of a (time, feature, y, x) cube, read
    one spatial chunk at a time (only the chunks holding chosen pixels)."""
    shape = (len(rows), features.sizes["time"], features.sizes["feature"])
    data = features.data
    if not isinstance(data, da.Array):
        return np.asarray(data[:, :, rows, cols]).transpose(2, 0, 1).reshape(shape)
    y_edges = np.cumsum((0, *chunks[0]))
    x_edges = np.cumsum((0, *chunks[1]))
    chunk_y = np.searchsorted(y_edges, rows, side="right") - 1
    chunk_x = np.searchsorted(x_edges, cols, side="right") - 1
    tasks, where = [], []
    for cy, cx in sorted(set(zip(chunk_y.tolist(), chunk_x.tolist(), strict=True))):
        inside = np.flatnonzero((chunk_y == cy) & (chunk_x == cx))
        y0, y1, x0, x1 = y_edges[cy], y_edges[cy + 1], x_edges[cx], x_edges[cx + 1]
        block = data[:, :, y0:y1, x0:x1]
        tasks.append(dask.delayed(_pick)(block, rows[inside] - y0, cols[inside] - x0))
        where.append(inside)
    out = np.empty(shape, dtype=data.dtype)
    for inside, values in zip(where, dask.compute(*tasks), strict=True):
        out[inside] = values
    return out


def _pick(block: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    return np.asarray(block[:, :, rows, cols]).transpose(2, 0, 1)


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


def _log_crossing_parcels(pairs: pd.DataFrame, block_size: int) -> None:
    """Log how many parcels cross a block edge; warn when it is most of them."""
    inside = pairs[pairs["parcel"] > 0]
    if inside.empty:
        return
    blocks_per_parcel = inside.groupby("parcel").size()
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


def _warn_eroded_classes(per_class: pd.DataFrame, radius: int) -> None:
    """``per_class``: labelled and core (not eroded) pixels per class id (index)."""
    gone = {int(c): int(n) for c, n in per_class["labelled"].items() if per_class["core"][c] == 0}
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
