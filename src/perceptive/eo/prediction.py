"""Applying a trained model to the whole features cube, chunk by chunk, and mapping areas.

The cube may be far larger than memory, so the classifier runs lazily on each spatial chunk
(dask ``map_blocks``): a chunk is reshaped to (pixels, features) in exactly the column order
of :func:`perceptive.eo.sampling.feature_columns`, the order the model was trained on.
Pixels with no valid feature at all get the nodata class and confidence 0.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from perceptive.eo.accuracy import area_estimates
from perceptive.eo.classifier import LulcModel
from perceptive.eo.cube import attach_grid
from perceptive.eo.grid import grid_of
from perceptive.eo.legend import DEFAULT_LEGEND, NO_DATA, LandCoverClass
from perceptive.eo.sampling import FEATURE_DIMS, feature_columns

log = logging.getLogger(__name__)

#: ``confidence`` is the winning class probability in percent (0–100, uint8); 0 = nodata.
CONFIDENCE_SCALE = 100
#: nodata of the per-class ``probability`` layers (percent, uint8), where 0 is a probability.
PROBABILITY_NODATA = 255


class PredictionError(ValueError):
    """The model cannot be applied to this features cube."""


def check_model_features(model: LulcModel, columns: list[str]) -> None:
    """Raise a :class:`PredictionError` when the cube's feature columns are not the model's."""
    if list(model.feature_names) == list(columns):
        return
    trained, given = list(model.feature_names), list(columns)
    missing = [c for c in trained if c not in set(given)]
    extra = [c for c in given if c not in set(trained)]
    if not missing and not extra:
        detail = "the same columns in a different order (time, feature order changed)"
    else:
        detail = (
            f"{len(missing)} model column(s) missing from the cube (e.g. {missing[:3]}), "
            f"{len(extra)} cube column(s) unknown to the model (e.g. {extra[:3]})"
        )
    raise PredictionError(
        f"The model was trained on {len(trained)} feature columns but the cube has "
        f"{len(given)}: {detail}. Was the model trained on another date grid or feature set? "
        "Retrain it on samples from this features cube, or rebuild the cube with the "
        "model's settings."
    )


def _classify_block(
    block: np.ndarray, predict_proba: Callable, class_ids: np.ndarray, nodata: int, layers: int
) -> np.ndarray:
    """(time, feature, ny, nx) float32 → (layers, ny, nx) uint8: [class id, confidence, and,
    when ``layers`` > 2, each class's probability in percent]."""
    n_time, n_feat, ny, nx = block.shape
    # (pixels, time*feature), columns in C order over (time, feature) as feature_columns: a
    # view, not a copy; a predictor that needs other strides makes its own copy
    X = np.asarray(block, dtype=np.float32).reshape(n_time * n_feat, ny * nx).T
    out = np.zeros((layers, ny * nx), dtype=np.uint8)
    out[0] = nodata
    out[2:] = PROBABILITY_NODATA
    valid = ~np.all(np.isnan(X), axis=1)
    if valid.any():
        proba = predict_proba(X[valid])
        best = np.argmax(proba, axis=1)
        out[0, valid] = class_ids[best]
        confidence = np.rint(proba[np.arange(len(best)), best] * CONFIDENCE_SCALE)
        out[1, valid] = np.clip(confidence, 1, CONFIDENCE_SCALE).astype(np.uint8)
        if layers > 2:
            out[2:, valid] = np.rint(proba.T * CONFIDENCE_SCALE).astype(np.uint8)
    return out.reshape(layers, ny, nx)


def predict_map(
    features: xr.DataArray,
    model: LulcModel,
    nodata: int = NO_DATA,
    probabilities: bool = False,
    predict_proba: Callable[[np.ndarray], np.ndarray] | None = None,
) -> xr.Dataset:
    """Classify every pixel of a (time, feature, y, x) features array.

    Returns a Dataset on the same grid (x/y coords, CRS, transform) with ``lulc`` (y, x)
    uint8 legend ids (``nodata`` where every feature is NaN) and ``confidence`` (y, x) uint8,
    the winning class probability in percent (1–100; 0 = nodata). Lazy when ``features`` is
    dask-backed: one task per spatial chunk, each needing the whole time series (chunks are
    merged along time/feature if necessary). ``lulc`` and ``confidence`` share the tasks, so
    compute/save them together (e.g. ``ds.compute()`` or one ``to_zarr``) to classify once.

    ``probabilities`` adds ``probability`` (class, y, x) uint8, each class's probability in
    percent (:data:`PROBABILITY_NODATA` where nothing is valid). ``predict_proba`` replaces
    the model's own (e.g. a compiled model, :mod:`perceptive.eo.compiled`); it must return
    the same columns, in ``model.class_ids`` order.
    """
    if not isinstance(features, xr.DataArray) or set(features.dims) != set(FEATURE_DIMS):
        raise PredictionError(
            f"features must be an xarray.DataArray with dims {FEATURE_DIMS} "
            "(features_cube['features'])."
        )
    features = features.transpose(*FEATURE_DIMS)
    check_model_features(model, feature_columns(features))
    if not 0 <= nodata <= 255:
        raise PredictionError(f"nodata must fit uint8 (0..255), got {nodata}.")
    if nodata != NO_DATA and np.isin(nodata, model.class_ids):
        raise PredictionError(f"nodata {nodata} is also a class id of the model; pick another.")

    class_ids = model.class_ids
    layers = 2 + (len(class_ids) if probabilities else 0)
    predict_proba = predict_proba or model.predict_proba
    options = {"class_ids": class_ids, "nodata": nodata, "layers": layers}
    data = features.data
    if isinstance(data, da.Array):
        if data.dtype != np.float32:
            data = data.astype(np.float32)
        data = data.rechunk({0: -1, 1: -1})
        # the model is one task of the graph that every block depends on: given to each
        # block as an option, a dask.distributed cluster would get a copy per block
        stacked = da.map_blocks(
            _classify_block,
            data,
            dask.delayed(predict_proba, pure=True),
            **options,
            dtype=np.uint8,
            drop_axis=[0, 1],
            new_axis=[0],
            chunks=((layers,), data.chunks[2], data.chunks[3]),
            meta=np.empty((0, 0, 0), dtype=np.uint8),
        )
    else:
        stacked = _classify_block(np.asarray(data, dtype=np.float32), predict_proba, **options)

    ds = xr.Dataset(
        {"lulc": (("y", "x"), stacked[0]), "confidence": (("y", "x"), stacked[1])},
        coords={"x": features["x"].values, "y": features["y"].values},
    )
    if probabilities:
        ds["probability"] = (("class", "y", "x"), stacked[2:])
        ds = ds.assign_coords({"class": class_ids.astype(np.int64)})
        ds["probability"].attrs.update(
            long_name="probability of each class", units="percent", nodata=PROBABILITY_NODATA
        )
    ds["lulc"].attrs.update(
        long_name="land cover class id", nodata=nodata, class_ids=model.class_ids.tolist()
    )
    ds["confidence"].attrs.update(
        long_name="probability of the predicted class", units="percent", nodata=0
    )
    return attach_grid(ds, grid_of(features))


def class_areas(
    lulc: np.ndarray | xr.DataArray,
    pixel_area_m2: float | None = None,
    legend: Iterable[LandCoverClass] = DEFAULT_LEGEND,
    nodata: int = NO_DATA,
) -> pd.DataFrame:
    """Area per class of a map: ``class_id``, ``name``, ``pixels``, ``area_ha``, ``share``,
    ``share_of_aoi``.

    One row per legend class (plus any unknown id present). ``share`` is the fraction of the
    *mapped* pixels (nodata excluded; NaN for the nodata row); ``share_of_aoi`` the fraction of
    all pixels. ``pixel_area_m2`` defaults to the square of the x spacing of a DataArray.
    Works on lazy (dask) maps chunk by chunk.
    """
    if pixel_area_m2 is None:
        if not isinstance(lulc, xr.DataArray) or lulc.sizes.get("x", 0) < 2:
            raise PredictionError("Give pixel_area_m2 (e.g. 100 for 10 m pixels).")
        x = np.asarray(lulc["x"].values)
        pixel_area_m2 = float(abs(x[1] - x[0])) ** 2
    data = lulc.data if isinstance(lulc, xr.DataArray) else lulc
    if isinstance(data, da.Array):
        per_block = data.map_blocks(
            lambda b: np.bincount(np.asarray(b, dtype=np.uint8).ravel(), minlength=256)[
                None, None, :
            ],
            new_axis=2,
            chunks=((1,) * data.numblocks[0], (1,) * data.numblocks[1], (256,)),
            dtype=np.int64,
        )
        counts = np.asarray(per_block.sum(axis=(0, 1)).compute())
    else:
        counts = np.bincount(np.asarray(data, dtype=np.uint8).ravel(), minlength=256)
    names = {c.id: c.name for c in legend}
    ids = sorted(set(names) | set(np.flatnonzero(counts).tolist()))
    pixels = counts[ids].astype(np.int64)
    mapped = int(counts.sum() - counts[nodata])
    total = int(counts.sum())
    table = pd.DataFrame(
        {
            "class_id": np.asarray(ids, dtype=np.uint8),
            "name": [names.get(i, f"class {i}") for i in ids],
            "pixels": pixels,
            "area_ha": pixels * pixel_area_m2 / 10_000.0,
            "share": pixels / mapped if mapped else np.zeros(len(ids)),
            "share_of_aoi": pixels / total if total else np.zeros(len(ids)),
        }
    )
    table.loc[table["class_id"] == nodata, "share"] = np.nan
    return table


#: Why the stratified estimates are approximate, written beside each of them.
ESTIMATE_NOTE = (
    "approximate: the validation pixels are clustered in spatial blocks, with class edges "
    "eroded, not a stratified random sample of the map classes"
)


def class_area_estimates(
    areas: pd.DataFrame, confusion_matrix: Mapping[str, Any], nodata: int = NO_DATA
) -> pd.DataFrame:
    """``areas`` (from :func:`class_areas`) with the stratified estimates of each class's
    area and accuracy from the validation pixels (:func:`perceptive.eo.accuracy.area_estimates`,
    Olofsson et al. 2014): ``estimated_area_ha`` with its standard error and 95 % interval,
    user's and producer's accuracy with their standard errors, and an ``estimate_note``.

    ``confusion_matrix`` is a validation report's ``{labels, matrix}``
    (:func:`perceptive.eo.accuracy.classification_report`: rows = reference, columns =
    prediction), transposed here to the map-class rows that the estimator takes. A mapped
    class without any validation pixel cannot be estimated: a warning names it, its estimates
    are NaN, and the others are estimated over the map classes that have validation pixels.
    Classes neither mapped nor in the matrix, and ``nodata``, get NaN.
    """
    labels = [int(i) for i in confusion_matrix["labels"]]
    in_map = areas.loc[(areas["pixels"] > 0) & (areas["class_id"] != nodata), "class_id"]
    ids = sorted(set(labels) | {int(i) for i in in_map})
    counts = (
        pd.DataFrame(np.asarray(confusion_matrix["matrix"]).T, index=labels, columns=labels)
        .reindex(index=ids, columns=ids, fill_value=0)
        .to_numpy()
    )  # rows = map class, columns = reference class
    by_id = areas.set_index(areas["class_id"].astype(int))["area_ha"]
    mapped = by_id.reindex(ids, fill_value=0.0).to_numpy()
    sampled = counts.sum(axis=1) > 0
    unsampled = [
        i for i, has, area in zip(ids, sampled, mapped, strict=True) if area > 0 and not has
    ]
    if unsampled:
        log.warning(
            "Mapped class(es) %s have no validation pixel: their area cannot be estimated "
            "(NaN in class_areas); the other classes are estimated over the map classes that "
            "have validation pixels. Add reference data for them or change the block split.",
            unsampled,
        )
    estimates = area_estimates(counts, np.where(sampled, mapped, 0.0), ids).table
    estimates.loc[unsampled] = np.nan
    columns = {
        "area": "estimated_area_ha",
        "area_se": "estimated_area_se_ha",
        "area_ci_low": "estimated_area_ci95_low_ha",
        "area_ci_high": "estimated_area_ci95_high_ha",
        "users_accuracy": "users_accuracy",
        "users_accuracy_se": "users_accuracy_se",
        "producers_accuracy": "producers_accuracy",
        "producers_accuracy_se": "producers_accuracy_se",
    }
    estimates = estimates[list(columns)].rename(columns=columns)
    estimates["estimate_note"] = ESTIMATE_NOTE
    estimates.loc[unsampled, "estimate_note"] = "no validation pixel in this map class"
    per_row = estimates.reindex(areas["class_id"].astype(int).to_numpy())
    return pd.concat([areas, per_row.set_index(areas.index)], axis=1)


def central_pixels(features: xr.DataArray, side: int = 128) -> np.ndarray:
    """(pixels, columns) float32 of a ``side`` x ``side`` window at the centre of a
    (time, feature, y, x) array, pixels with no valid feature left out: a sample, cheap to
    read (a few chunks), on which a faster predictor is checked against the model."""
    features = features.transpose(*FEATURE_DIMS)
    ny, nx = features.sizes["y"], features.sizes["x"]
    y0, x0 = max(0, (ny - side) // 2), max(0, (nx - side) // 2)
    window = np.asarray(features[:, :, y0 : y0 + side, x0 : x0 + side].values, dtype=np.float32)
    n_time, n_feat = window.shape[:2]
    X = window.reshape(n_time * n_feat, -1).T
    return X[~np.all(np.isnan(X), axis=1)]
