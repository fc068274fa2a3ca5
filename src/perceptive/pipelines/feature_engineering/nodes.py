"""Nodes of the feature_engineering pipeline: read parameters, call perceptive.eo."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

from perceptive.eo import cloud_masking as clouds
from perceptive.eo import shadows
from perceptive.eo.cube import time_interval_of, validate_l1c_cube, validate_masks_cube
from perceptive.eo.indices import feature_stack
from perceptive.eo.interpolation import interpolate, target_times
from perceptive.eo.plots import plot_message, plot_true_colour, plot_valid_count
from perceptive.eo.valid_data import (
    MIN_FRAMES,
    data_mask,
    select_frames,
    valid_count,
    valid_fraction,
    valid_mask,
)
from perceptive.params import DateGrid
from perceptive.sources import DEMO_MARK, is_demo

log = logging.getLogger(__name__)


def compute_masks(l1c_cube: xr.Dataset, cloud_masking: dict, cloud_shadows: dict) -> xr.Dataset:
    """Cloud probability and mask (the chosen cloud masking method), cloud shadows (the chosen
    shadow method), data mask and valid mask for every frame. The data mask is the source's
    own ``is_data`` when the cube has one (see :func:`perceptive.eo.valid_data.data_mask`), so
    a cube without bands gets masks too."""
    validate_l1c_cube(l1c_cube)
    found = clouds.METHODS.run(cloud_masking, l1c_cube)
    shadow_mask = shadows.METHODS.run(cloud_shadows, l1c_cube, found["cloud_mask"])
    is_data = data_mask(l1c_cube)
    is_valid = valid_mask(is_data, found["cloud_mask"] | shadow_mask)
    masks = xr.Dataset(
        {
            "is_data": is_data,
            "cloud_prob": found["cloud_prob"],
            "cloud_mask": found["cloud_mask"],
            "shadow_mask": shadow_mask,
            "is_valid": is_valid,
            # over the AOI polygon only, when the cube has one: outside pixels are no data
            "valid_fraction": valid_fraction(is_valid, l1c_cube.get("aoi_mask")).astype(np.float32),
        },
        attrs={"cloud_masking": dict(cloud_masking), "cloud_shadows": dict(cloud_shadows)},
    )
    return masks.rio.write_crs(l1c_cube.rio.crs)


def compute_features(
    l1c_cube: xr.Dataset,
    masks_cube: xr.Dataset,
    features: list[str],
    min_valid_fraction: float,
    date_grid: DateGrid,
    interpolation: dict,
) -> xr.Dataset:
    """Drop frames with too few valid pixels, compute the features, and resample each pixel's
    valid observations onto one date grid over the cube's own time interval (every pixel gets
    the same features). A feature the cube holds as a layer of that name (an EOPatch's
    ``NDVI``) is taken as it is, the others are computed from its bands. ``valid_count`` says
    on how many observations each pixel's features rest; 0 marks the pixels left NaN."""
    validate_l1c_cube(l1c_cube)
    validate_masks_cube(masks_cube)
    if not np.array_equal(l1c_cube["time"].values, masks_cube["time"].values):
        raise ValueError(
            "masks_cube and l1c_cube have different time stamps: they come from different runs. "
            "Re-run feature_engineering on the current l1c_cube (or pin matching --load-versions)."
        )
    keep = select_frames(masks_cube["valid_fraction"], min_valid_fraction, MIN_FRAMES).values
    log.info(
        "Keeping %d of %d frames with >= %.0f%% valid pixels",
        int(np.sum(keep)), keep.size, 100 * min_valid_fraction,
    )  # fmt: skip
    l1c = l1c_cube.isel(time=keep)
    is_valid = masks_cube["is_valid"].isel(time=keep)
    stack = feature_stack(l1c, tuple(features))
    # an observation counts only where every feature is a number (a source's NDVI layer may
    # be NaN where its own mask said valid): otherwise valid_count would vouch for NaN features
    is_valid = is_valid & stack.notnull().all("feature")
    start, end = time_interval_of(l1c_cube)
    dates = target_times(l1c["time"].values, start, end, **date_grid.model_dump())
    resampled = interpolate(stack, is_valid, dates, interpolation)
    out = xr.Dataset(
        {
            "features": resampled.astype(np.float32),
            # 0 flags the pixels whose features are NaN: no valid observation in a kept frame
            "valid_count": valid_count(is_valid),
        },
        attrs={
            "time_interval": [start, end],
            "source": l1c_cube.attrs.get(
                "source", "unknown"
            ),  # which scene: the demo knows its truth
            "frames_used": [str(t)[:10] for t in l1c["time"].values],
            "date_grid": date_grid.model_dump(),
            "interpolation": dict(interpolation),
            "min_valid_fraction": float(min_valid_fraction),
            "features_from_source": stack.attrs.get("from_source", ""),
        },
    )
    return out.rio.write_crs(l1c_cube.rio.crs)


def make_quicklooks(
    l1c_cube: xr.Dataset, masks_cube: xr.Dataset, features_cube: xr.Dataset, quicklook_date
) -> tuple[xr.DataArray, Figure, Figure]:
    """See the data before trusting a map: the valid-observation count per pixel (a GeoTIFF
    and a picture with a colour bar) and a true-colour picture of one acquisition: the
    clearest one, or the clearest of those nearest ``quicklook_date`` when it is given."""
    count = features_cube["valid_count"]
    count.attrs = {"long_name": "valid observations per pixel", "units": "count"}
    if is_demo(features_cube):
        count.attrs[DEMO_MARK] = True
    fraction = masks_cube["valid_fraction"].to_series()
    if quicklook_date is not None:
        distance = (fraction.index - pd.Timestamp(quicklook_date)).to_series().abs().dt.days
        fraction = fraction[distance.to_numpy() <= distance.min() + 5]  # the nearest acquisitions
    when = fraction.idxmax()
    have = set(l1c_cube["band"].values.tolist()) if "bands" in l1c_cube else set()
    if not {"B02", "B03", "B04"} <= have:  # e.g. an EOPatch holding only indices
        log.info("No true-colour quick-look: the cube lacks B02, B03 or B04")
        return count, plot_valid_count(count), plot_message("No true colour: no B02/B03/B04")
    log.info("True-colour quick-look of %s (%.0f%% valid)", when, 100 * fraction.max())
    title = "SYNTHETIC DEMO DATA: true colour" if is_demo(l1c_cube) else "True colour"
    return count, plot_valid_count(count), plot_true_colour(l1c_cube, when, title=title)
