"""Cloud probability and cloud mask of an L1C cube with s2cloudless, at a chosen resolution,
or the source's own (``from_source``: an EOPatch's CLM, for cubes without the 13 bands).

Why: clouds are the main source of wrong values in an optical time series; the masked
observations are dropped before temporal interpolation. s2cloudless is a per-pixel LightGBM
model on TOA reflectance, and almost all of its cost is model inference, so like eo-learn's
LULC example we run it by default on 160 m block averages (256x fewer pixels) and bring the
result back to the 10 m grid. ``processing_resolution`` equal to the cube resolution runs the
exact full-resolution path instead, tile by tile with overlapping borders so that the
s2cloudless smoothing and dilation leave no seams between tiles.

Conventions:
- no-data pixels (any band DN 0) are never cloud, have probability 0, and do not enter the
  block averages (a block without data pixels gets probability 0);
- ``average_over`` and ``dilation_size`` are disk radii in pixels *of the processing
  resolution* (as in s2cloudless/eo-learn): at 160 m, ``dilation_size=1`` grows clouds by 160 m;
- coarse path back to the cube grid: ``cloud_mask`` is the s2cloudless mask at the processing
  resolution, copied to every cube pixel of its block (nearest neighbour); ``cloud_prob`` is the
  raw (unsmoothed) probability, bilinearly interpolated between block centres.
"""

from __future__ import annotations

import functools
import logging
import math
from typing import Annotated, Literal

import dask
import dask.array as da
import numpy as np
import xarray as xr
from pydantic import Field
from tqdm.auto import tqdm

from perceptive.eo.cube import QUANTIFICATION, S2_BANDS
from perceptive.eo.grid import grid_of
from perceptive.eo.links import Registry
from perceptive.eo.valid_data import data_mask

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=8)
def _detector(threshold: float, average_over: int, dilation_size: int):
    """One s2cloudless detector per setting and process (the model file is read once)."""
    from s2cloudless import S2PixelCloudDetector

    return S2PixelCloudDetector(
        threshold=threshold,
        all_bands=True,
        average_over=average_over or None,
        dilation_size=dilation_size or None,
    )


def _pixel_probability(pixels: np.ndarray, detector) -> np.ndarray:
    """s2cloudless probability of (n, 13) float32 reflectance pixels, (n,) float32."""
    if pixels.shape[0] == 0:
        return np.zeros(0, np.float32)
    return detector.get_cloud_probability_maps(pixels[np.newaxis, :, np.newaxis, :])[0, :, 0]


def _ordered_bands(l1c: xr.Dataset) -> xr.DataArray:
    if "bands" not in l1c:
        raise ValueError(
            f"s2cloudless needs all 13 L1C bands; the cube has no bands (it has "
            f"{sorted(l1c.data_vars)}). Use cloud_masking {{method: from_source}} to take the "
            "source's own cloud mask, or {method: none}."
        )
    bands = l1c["bands"]
    have = [str(b) for b in bands["band"].values]
    missing = [b for b in S2_BANDS if b not in have]
    if missing:
        raise ValueError(
            f"s2cloudless needs all 13 L1C bands; the cube misses {missing} (has {have}). "
            "Read all 13 from the source, or use cloud_masking {method: from_source} (the "
            "source's own cloud mask) or {method: none}."
        )
    if have != list(S2_BANDS):
        bands = bands.sel(band=list(S2_BANDS))
    if not isinstance(bands.data, da.Array):
        bands = bands.chunk({"time": -1, "band": -1})
    return bands


def _to_uint8(prob: da.Array) -> da.Array:
    return da.round(da.clip(prob, 0.0, 1.0) * 255.0).astype(np.uint8)


# --------------------------------------------------------------------------- coarse path


def _block_means(bands: da.Array, is_data: da.Array, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean reflectance over data pixels of factor x factor blocks, and data-pixel counts.

    Returns (time, band, Y, X) float32 reflectance (0 where a block has no data) and
    (time, Y, X) int32 counts, as numpy arrays (the coarse cube is small).
    """
    _, _, ny, nx = bands.shape
    pad_y, pad_x = (-ny) % factor, (-nx) % factor
    masked = da.where(is_data[:, np.newaxis], bands, 0).astype(np.float32)
    weights = is_data.astype(np.int32)
    if pad_y or pad_x:  # no-data padding: contributes nothing to sums or counts
        masked = da.pad(masked, ((0, 0), (0, 0), (0, pad_y), (0, pad_x)))
        weights = da.pad(weights, ((0, 0), (0, pad_y), (0, pad_x)))
    sums = da.coarsen(np.sum, masked, {2: factor, 3: factor})
    counts = da.coarsen(np.sum, weights, {1: factor, 2: factor})
    sums, counts = dask.compute(sums, counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / (counts[:, np.newaxis] * np.float32(QUANTIFICATION))
    means = np.where(counts[:, np.newaxis] > 0, means, 0.0).astype(np.float32)
    return means, counts


def _upsample_block(
    template: np.ndarray,
    prob: np.ndarray,
    mask: np.ndarray,
    factor: int,
    block_info=None,
) -> np.ndarray:
    """One (time, y, x) output chunk: bilinear probability and nearest mask, stacked as
    uint8 (2, time, y, x) = (probability x 255, mask)."""
    (r0, r1), (c0, c1) = block_info[0]["array-location"][1:]
    rows, cols = np.arange(r0, r1), np.arange(c0, c1)

    def weights(idx: np.ndarray, n: int):
        pos = np.clip((idx + 0.5) / factor - 0.5, 0.0, n - 1)  # in block-centre units
        lo = np.floor(pos).astype(np.intp)
        hi = np.minimum(lo + 1, n - 1)
        return lo, hi, (pos - lo).astype(np.float32)

    ylo, yhi, wy = weights(rows, prob.shape[1])
    xlo, xhi, wx = weights(cols, prob.shape[2])
    along_y = prob[:, ylo, :] * (1 - wy)[:, None] + prob[:, yhi, :] * wy[:, None]
    fine = along_y[:, :, xlo] * (1 - wx) + along_y[:, :, xhi] * wx
    fine_mask = mask[:, rows // factor][:, :, cols // factor]
    out = np.empty((2, *fine.shape), np.uint8)
    out[0] = np.round(np.clip(fine, 0.0, 1.0) * 255.0)
    out[1] = fine_mask
    return out


def _coarse_path(bands, is_data, factor, threshold, average_over, dilation_size):
    detector = _detector(threshold, average_over, dilation_size)
    means, counts = _block_means(bands.data, is_data.data, factor)
    n_time, _, ny_c, nx_c = means.shape
    prob = np.zeros((n_time, ny_c, nx_c), np.float32)
    for t in tqdm(range(n_time), desc=f"s2cloudless ({ny_c}x{nx_c} blocks)", unit="frame"):
        has_data = counts[t] > 0
        pixels = np.moveaxis(means[t], 0, -1)[has_data]
        prob[t][has_data] = _pixel_probability(pixels, detector)
    mask = detector.get_mask_from_prob(prob).astype(bool)

    # Graph-friendly: the small coarse arrays go in once, every output chunk refers to them.
    prob_d, mask_d = dask.delayed(prob, pure=True), dask.delayed(mask, pure=True)
    data = is_data.data
    stacked = da.map_blocks(
        _upsample_block,
        data,
        prob=prob_d,
        mask=mask_d,
        factor=factor,
        new_axis=0,
        chunks=((2,), *data.chunks),
        dtype=np.uint8,
    )
    return stacked[0], stacked[1].astype(bool)


# --------------------------------------------------------------------------- full-resolution path


def _probability_block(block: np.ndarray, threshold, average_over, dilation_size) -> np.ndarray:
    """(time, 13, y, x) uint16 DN chunk -> (time, y, x) float32 probability (0 on no data)."""
    detector = _detector(threshold, average_over, dilation_size)
    n_time, _, ny, nx = block.shape
    out = np.zeros((n_time, ny, nx), np.float32)
    for t in range(n_time):  # one frame at a time keeps the float copy small
        frame = block[t]
        has_data = (frame != 0).all(axis=0)
        pixels = np.moveaxis(frame, 0, -1)[has_data].astype(np.float32) / np.float32(QUANTIFICATION)
        out[t][has_data] = _pixel_probability(pixels, detector)
    return out


def _postprocess_block(prob: np.ndarray, threshold, average_over, dilation_size) -> np.ndarray:
    detector = _detector(threshold, average_over, dilation_size)
    return detector.get_mask_from_prob(np.ascontiguousarray(prob)).astype(bool)


def _full_resolution_path(bands, threshold, average_over, dilation_size):
    arr = bands.data.rechunk({0: -1, 1: -1})
    settings = {
        "threshold": threshold,
        "average_over": average_over,
        "dilation_size": dilation_size,
    }
    prob = da.map_blocks(_probability_block, arr, drop_axis=1, dtype=np.float32, **settings)
    depth = int(average_over or 0) + int(dilation_size or 0)
    if depth:
        too_small = [c for axis in prob.chunks[1:] for c in axis if c < depth]
        if too_small:  # map_overlap needs every chunk at least as wide as its halo
            prob = prob.rechunk({1: max(depth, *prob.chunks[1]), 2: max(depth, *prob.chunks[2])})
        mask = da.map_overlap(
            _postprocess_block,
            prob,
            depth={0: 0, 1: depth, 2: depth},
            boundary={1: "reflect", 2: "reflect"},  # = cv2.BORDER_REFLECT used by s2cloudless
            dtype=bool,
            **settings,
        ).rechunk(arr.chunks[:1] + arr.chunks[2:])
        prob = prob.rechunk(arr.chunks[:1] + arr.chunks[2:])
    else:
        mask = prob > threshold
    return _to_uint8(prob), mask


# --------------------------------------------------------------------------- public API


#: How far a pixel size may be from a whole divisor of the processing resolution: grids read
#: from elsewhere (an EOPatch bbox over its array shape) have pixels of e.g. 9.995 m.
PIXEL_SIZE_TOLERANCE = 0.005


def processing_factor(processing_resolution: float, resolution: float) -> int:
    """How many cube pixels a processing pixel spans across; a ValueError naming the fix when
    ``processing_resolution`` is not a whole multiple of the cube ``resolution`` (within
    :data:`PIXEL_SIZE_TOLERANCE`, relative)."""
    ratio = processing_resolution / resolution
    factor = round(ratio)
    if factor < 1 or not math.isclose(ratio, factor, rel_tol=PIXEL_SIZE_TOLERANCE):
        raise ValueError(
            f"processing_resolution {processing_resolution:g} m must be a whole multiple of the "
            f"resolution ({resolution:g} m), e.g. {resolution:g}, {2 * resolution:g} or "
            f"{16 * resolution:g}."
        )
    return factor


def _grid_factor(processing_resolution: float, l1c: xr.Dataset) -> int:
    """The processing factor of a cube, the same along x and y (pixels may be non-square)."""
    grid = grid_of(l1c)
    factor = processing_factor(processing_resolution, grid.res_x)
    if processing_factor(processing_resolution, grid.res_y) != factor:
        raise ValueError(
            f"The cube's pixels ({grid.res_x:g} x {grid.res_y:g} m) are too far from square for "
            f"one processing_resolution ({processing_resolution:g} m) along both axes; use the "
            "full-resolution path (processing_resolution equal to the pixel width)."
        )
    return factor


def cloud_masks(
    l1c: xr.Dataset,
    *,
    processing_resolution: Annotated[float, Field(gt=0)] = 160,
    threshold: Annotated[float, Field(gt=0, lt=1)] = 0.4,
    average_over: Annotated[int, Field(ge=0)] = 2,
    dilation_size: Annotated[int, Field(ge=0)] = 1,
    snow: Literal["cloud", "ndsi"] = "cloud",
) -> xr.Dataset:
    """s2cloudless cloud probability and mask of an L1C cube, on the cube's grid.

    Returns a Dataset with ``cloud_prob`` (time, y, x) uint8 (probability x 255, rounded) and
    ``cloud_mask`` (time, y, x) bool, with the input's coordinates, CRS and spatial chunks.
    ``processing_resolution`` (metres) must be a whole multiple of the cube resolution; the
    default 160 m computes the probabilities eagerly on the small block-averaged cube (progress
    bar per frame) and upsamples lazily; the cube resolution runs the lazy full-resolution path.
    s2cloudless takes most snow for cloud; ``snow="ndsi"`` clears the pixels that
    :func:`snow_test` calls snow (``"cloud"`` keeps s2cloudless' own answer).
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}.")
    if (average_over or 0) < 0 or (dilation_size or 0) < 0:
        raise ValueError("average_over and dilation_size must be >= 0 (0 = skip that step).")
    factor = _grid_factor(processing_resolution, l1c)
    bands = _ordered_bands(l1c)
    is_data = data_mask(bands)
    settings = (float(threshold), int(average_over or 0), int(dilation_size or 0))
    if factor == 1:
        prob_u8, mask = _full_resolution_path(bands, *settings)
    else:
        prob_u8, mask = _coarse_path(bands, is_data, factor, *settings)
    prob_u8 = da.where(is_data.data, prob_u8, np.uint8(0))
    mask = mask & is_data.data
    if snow == "ndsi":
        mask = mask & ~snow_test(bands).data

    coords = {k: v for k, v in bands.coords.items() if "band" not in v.dims}
    dims = ("time", "y", "x")
    out = xr.Dataset(
        {
            "cloud_prob": xr.DataArray(prob_u8, dims=dims, coords=coords),
            "cloud_mask": xr.DataArray(mask, dims=dims, coords=coords),
        },
        attrs={
            "cloud_masking_method": "s2cloudless",
            "processing_resolution": float(processing_resolution),
            "threshold": float(threshold),
            "average_over": int(average_over or 0),
            "dilation_size": int(dilation_size or 0),
            "snow": snow,
        },
    )
    out["cloud_prob"].attrs = {
        "long_name": "s2cloudless cloud probability x 255",
        "scale_factor_to_probability": 1 / 255,
    }
    out["cloud_mask"].attrs = {"long_name": "cloud (s2cloudless)"}
    if "spatial_ref" in l1c.coords:
        out = out.assign_coords(spatial_ref=l1c["spatial_ref"])
    return out


#: Snow test thresholds (reflectance): NDSI and NIR as in Dozier (1989) and the MODIS snow
#: products; B10 (1375 nm) sees high ice clouds, which also have a high NDSI, but not snow.
SNOW_NDSI_MIN, SNOW_NIR_MIN, SNOW_CIRRUS_MAX = 0.4, 0.11, 0.01


def snow_test(bands: xr.DataArray) -> xr.DataArray:
    """(time, y, x) bool: snow-like pixels: NDSI = (B03 - B11) / (B03 + B11) above 0.4 (bright
    in green, dark in SWIR, unlike water clouds), NIR (B08) above 0.11 and no cirrus signal
    (B10 below 0.01). ``bands`` are L1C DN (time, band, y, x); lazy when they are."""
    green, nir, swir, cirrus = (
        bands.sel(band=name).astype(np.float32) / np.float32(QUANTIFICATION)
        for name in ("B03", "B08", "B11", "B10")
    )
    ndsi = (green - swir) / (green + swir).where(green + swir > 0)
    snow = (ndsi > SNOW_NDSI_MIN) & (nir > SNOW_NIR_MIN) & (cirrus < SNOW_CIRRUS_MAX)
    return snow.drop_vars("band", errors="ignore").rename("snow")


def no_cloud_masks(l1c: xr.Dataset) -> xr.Dataset:
    """No cloud masking: every observation with data counts as clear (probability 0).

    The baseline that shows what masking is worth; with it ``is_valid == is_data``.
    """
    is_data = data_mask(l1c)
    out = xr.Dataset(
        {
            "cloud_prob": xr.zeros_like(is_data, dtype=np.uint8),
            "cloud_mask": xr.zeros_like(is_data, dtype=bool),
        },
        attrs={"cloud_masking_method": "none"},
    )
    out["cloud_prob"].attrs = {"long_name": "cloud probability x 255 (no masking: 0)"}
    out["cloud_mask"].attrs = {"long_name": "cloud (no masking: never)"}
    return out


def source_cloud_masks(l1c: xr.Dataset) -> xr.Dataset:
    """The source's own cloud mask, for cubes that come with one (an EOPatch's CLM / CLP or
    IS_VALID, a product's mask) and cubes without the 13 bands s2cloudless needs.

    ``cloud_mask`` is the cube's ``cloud_mask``, ORed with "has data but not ``is_valid``"
    when the cube has ``is_valid`` (what the source calls invalid despite data is treated as
    cloud, so the pipeline's valid mask agrees with the source's); never cloud where there is
    no data. ``cloud_prob`` is the cube's own (float 0-1 scaled to x 255), else 255 on the
    mask and 0 elsewhere.
    """
    if "cloud_mask" not in l1c and "is_valid" not in l1c:
        raise ValueError(
            f"cloud_masking method 'from_source' needs the cube's own 'cloud_mask' or "
            f"'is_valid' (time, y, x) mask; this cube has {sorted(l1c.data_vars)}. Use a source "
            "that provides one (an EOPatch with mask CLM or IS_VALID), or cloud_masking "
            "{method: s2cloudless} (needs all 13 bands) or {method: none}."
        )
    is_data = data_mask(l1c)
    cloud = xr.zeros_like(is_data, dtype=bool)
    if "cloud_mask" in l1c:
        cloud = cloud | l1c["cloud_mask"].astype(bool)
    if "is_valid" in l1c:
        cloud = cloud | ~l1c["is_valid"].astype(bool)
    cloud = (cloud & is_data).drop_vars("band", errors="ignore")
    if "cloud_prob" in l1c:
        prob = l1c["cloud_prob"]
        if np.issubdtype(prob.dtype, np.floating):
            prob = np.round(prob.clip(0.0, 1.0).fillna(0.0) * 255.0).astype(np.uint8)
        prob = prob.astype(np.uint8).where(is_data, np.uint8(0))
    else:
        prob = cloud.astype(np.uint8) * np.uint8(255)
    out = xr.Dataset(
        {"cloud_prob": prob.astype(np.uint8), "cloud_mask": cloud},
        attrs={"cloud_masking_method": "from_source"},
    )
    out["cloud_prob"].attrs = {
        "long_name": "the source's cloud probability x 255 (255 on its mask if it has none)",
        "scale_factor_to_probability": 1 / 255,
    }
    out["cloud_mask"].attrs = {"long_name": "cloud (the source's own mask)"}
    return out


#: Cloud masking link: ``method(l1c_cube, **options) -> Dataset(cloud_prob, cloud_mask)`` on
#: the cube's grid, cloud_prob (time, y, x) uint8 (probability x 255), cloud_mask bool.
METHODS = Registry(
    "cloud_masking", "method(l1c_cube, **options) -> Dataset(cloud_prob, cloud_mask)"
)
METHODS.register("s2cloudless", cloud_masks)
METHODS.register("none", no_cloud_masks)
METHODS.register("from_source", source_cloud_masks)
