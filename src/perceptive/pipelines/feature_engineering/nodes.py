"""Nodes of the feature_engineering pipeline: read parameters, call perceptive.eo."""

from __future__ import annotations

import logging

import numpy as np
import xarray as xr

from perceptive.eo.cloud_masking import cloud_masks
from perceptive.eo.cube import validate_l1c_cube, validate_masks_cube
from perceptive.eo.indices import feature_stack
from perceptive.eo.interpolation import date_grid, linear_interpolation
from perceptive.eo.valid_data import data_mask, select_frames, valid_fraction, valid_mask
from perceptive.pipelines.ingestion.nodes import parse_time_interval

log = logging.getLogger(__name__)

#: Temporal interpolation methods, by the name used in parameters (interpolation.method).
INTERPOLATIONS = {"linear": linear_interpolation}


def compute_masks(l1c_cube: xr.Dataset, cloud_masking: dict) -> xr.Dataset:
    """Cloud probability and mask (s2cloudless), data mask and valid mask for every frame."""
    validate_l1c_cube(l1c_cube)
    clouds = cloud_masks(l1c_cube, **cloud_masking)
    is_data = data_mask(l1c_cube)
    is_valid = valid_mask(is_data, clouds["cloud_mask"])
    masks = xr.Dataset(
        {
            "is_data": is_data,
            "cloud_prob": clouds["cloud_prob"],
            "cloud_mask": clouds["cloud_mask"],
            "is_valid": is_valid,
            "valid_fraction": valid_fraction(is_valid).astype(np.float32),
        },
        attrs={"cloud_masking": dict(cloud_masking)},
    )
    return masks.rio.write_crs(l1c_cube.rio.crs)


def compute_features(
    l1c_cube: xr.Dataset,
    masks_cube: xr.Dataset,
    features: list[str],
    min_valid_fraction: float,
    interpolation: dict,
    time_interval,
) -> xr.Dataset:
    """Drop frames with too few valid pixels, compute the features, and interpolate each
    pixel's valid observations onto one date grid (every pixel gets the same features)."""
    validate_l1c_cube(l1c_cube)
    validate_masks_cube(masks_cube)
    if not np.array_equal(l1c_cube["time"].values, masks_cube["time"].values):
        raise ValueError(
            "masks_cube and l1c_cube have different time stamps: they come from different runs. "
            "Re-run feature_engineering on the current l1c_cube (or pin matching --load-versions)."
        )
    method = interpolation.get("method", "linear")
    if method not in INTERPOLATIONS:
        raise ValueError(
            f"Unknown interpolation.method {method!r}; choose one of {sorted(INTERPOLATIONS)}."
        )
    keep = select_frames(masks_cube["valid_fraction"], min_valid_fraction).values
    log.info(
        "Keeping %d of %d frames with >= %.0f%% valid pixels",
        int(np.sum(keep)), keep.size, 100 * min_valid_fraction,
    )  # fmt: skip
    l1c = l1c_cube.isel(time=keep)
    is_valid = masks_cube["is_valid"].isel(time=keep)
    stack = feature_stack(l1c, tuple(features))
    start, end = parse_time_interval(time_interval)
    dates = date_grid(start, end, int(interpolation.get("step_days", 16)))
    interpolated = INTERPOLATIONS[method](stack, is_valid, dates)
    out = xr.Dataset(
        {"features": interpolated.astype(np.float32)},
        attrs={
            "frames_used": [str(t)[:10] for t in l1c["time"].values],
            "interpolation": dict(interpolation),
            "min_valid_fraction": float(min_valid_fraction),
        },
    )
    return out.rio.write_crs(l1c_cube.rio.crs)
