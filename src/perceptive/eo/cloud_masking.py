"""Cloud probability and cloud mask of an L1C cube with s2cloudless, at a chosen resolution,
or the source's own (``from_source``: an EOPatch's CLM, for cubes without the 13 bands).

Why: clouds are the main source of wrong values in an optical time series; the masked
observations are dropped before temporal interpolation. s2cloudless is a per-pixel LightGBM
model on TOA reflectance, and almost all of its cost is model inference, so like eo-learn's
LULC example we run it by default on 160 m block averages (256x fewer pixels) and bring the
result back to the 10 m grid. ``processing_resolution`` equal to the cube resolution runs the
exact full-resolution path instead, tile by tile with overlapping borders so that the
s2cloudless smoothing and dilation leave no seams between tiles. The coarse path is chunked
the same way (block means per chunk, the mask with borders at the processing resolution,
the interpolation with the neighbouring chunks' block centres), so its memory is that of a few
chunks at any AOI size and its answers those of the whole AOI computed at once.

s2cloudless' LightGBM model (170 trees of ~770 leaves) can run compiled to native code
(treelite + tl2cgen, :mod:`perceptive.eo.compiled`): the model alone 4x faster, the 10 m
path up to 5x, the 160 m path 1.5x (its block means weigh more). It is compiled once per
machine into ``$XDG_CACHE_HOME/perceptive/s2cloudless/<key>/`` and used only if it gives
exactly s2cloudless' probabilities on a check sample (:func:`check_sample`); without a C
compiler, or on any difference, plain s2cloudless runs (the same answers, slower). Option
``compiled``: ``auto`` (default) when the pixels to classify make it pay, ``true``, ``false``.

Conventions:
- no-data pixels (any band DN 0) are never cloud, have probability 0, and do not enter the
  block averages (a block without data pixels gets probability 0);
- ``average_over`` and ``dilation_size`` are disk radii in pixels *of the processing
  resolution* (as in s2cloudless/eo-learn): at 160 m, ``dilation_size=1`` grows clouds by 160 m;
  ``average_over_m`` and ``dilation_m`` give them in metres instead (rounded half up to whole
  processing pixels), so a setting means the same at any processing resolution;
- coarse path back to the cube grid: ``cloud_mask`` is the s2cloudless mask at the processing
  resolution, copied to every cube pixel of its block (nearest neighbour); ``cloud_prob`` is the
  raw (unsmoothed) probability, bilinearly interpolated between block centres.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from pathlib import Path
from typing import Annotated, Literal

import dask.array as da
import numpy as np
import xarray as xr
from pydantic import Field

from perceptive.eo.compiled import LIBRARY, compile_booster, compiled_predict, content_key
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


@functools.cache
def _model_bands() -> list[int]:
    """Which of the 13 bands s2cloudless' model reads, in its order."""
    from s2cloudless.utils import MODEL_BAND_IDS

    return list(MODEL_BAND_IDS)


def _plain_probability(pixels: np.ndarray) -> np.ndarray:
    """s2cloudless' own probability of (n, 13) float32 reflectance pixels, (n,) float32."""
    if pixels.shape[0] == 0:
        return np.zeros(0, np.float32)
    detector = _detector(0.4, 0, 0)  # the settings do not enter the probability
    return detector.get_cloud_probability_maps(pixels[np.newaxis, :, np.newaxis, :])[0, :, 0]


def _pixel_probability(pixels: np.ndarray, library: str | None = None) -> np.ndarray:
    """(n, 13) float32 reflectance -> (n,) float32 probability, with the compiled model when
    ``library`` names one (exactly s2cloudless' answer, checked when it was chosen)."""
    predict = _compiled(library) if library else None
    if predict is None or pixels.shape[0] == 0:
        return _plain_probability(pixels)
    return predict(pixels[:, _model_bands()])[:, 0].astype(np.float32)


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


# --------------------------------------------------------------------------- compiled model

#: Where compiled s2cloudless models are kept: ``$XDG_CACHE_HOME/perceptive/s2cloudless``
#: (``~/.cache/...`` when unset), one folder per model file, compilers and machine.
CACHE_SUBDIR = ("perceptive", "s2cloudless")

#: ``compiled: auto`` uses the compiled model from this many pixels to classify (time x y x
#: x at the processing resolution) when it is already in the cache (checking it takes ~1 s;
#: it saves ~15 s per Mpx on 2 cores); compiling first (75 s of CPU, 1.5-2.5 min on 2 busy
#: cores) pays from about 10 Mpx (benchmarks/cloud_masking.py). Below, plain s2cloudless,
#: which gives the same answers.
AUTO_MIN_PIXELS_CACHED = 250_000
AUTO_MIN_PIXELS_COMPILE = 10_000_000

#: How s2cloudless' model is compiled (tl2cgen parameters). Its trees are big (170 trees of
#: ~770 leaves): one C file per tree compiles in about 75 s of CPU and 0.4 GB (two files, one
#: per core, had taken 8 CPU minutes and 4 GB without finishing); ``quantize`` compares bin
#: indices instead of doubles: 1.4x faster predictions, the same answers (checked as always).
COMPILE_PARAMS = {"parallel_comp": 170, "quantize": 1}

#: Pixels of the check sample (see :func:`check_sample`).
CHECK_PIXELS = 20_000


def default_cache() -> Path:
    """``$XDG_CACHE_HOME/perceptive/s2cloudless``, else ``~/.cache/perceptive/s2cloudless``:
    outside the project, shared by every run on the machine."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).joinpath(*CACHE_SUBDIR)


def _model_file() -> Path:
    return Path(_detector(0.4, 0, 0).model_filename)


def _booster():
    """The LightGBM booster s2cloudless predicts with (loaded once per process)."""
    return _detector(0.4, 0, 0).classifier.classifier


def library_folder(cache: Path) -> Path:
    """The cache folder of s2cloudless' model: keyed by the hash of its model file, how it is
    compiled, the compilers' versions and the machine (``compiled.content_key``)."""
    return Path(cache) / content_key(_model_file().read_bytes(), COMPILE_PARAMS)


def _thresholds(booster) -> dict[int, np.ndarray]:
    """Every split threshold of the model, by feature (from the model text)."""
    features, thresholds = [], []
    for line in booster.model_to_string().splitlines():
        if line.startswith("split_feature="):
            features.append(np.array(line.partition("=")[2].split(), int))
        elif line.startswith("threshold="):
            thresholds.append(np.array(line.partition("=")[2].split(), float))
    feature, threshold = np.concatenate(features), np.concatenate(thresholds)
    return {int(f): np.unique(threshold[feature == f]) for f in np.unique(feature)}


def check_sample(booster, n: int = CHECK_PIXELS, seed: int = 0) -> np.ndarray:
    """(n, 13) float32 reflectance pixels on which the compiled model must equal s2cloudless.

    Why these: the two can only part where a pixel's float32 value is compared with a split
    threshold (a double) differently, so most values are the float32 numbers at and next to
    every threshold of the model (3 per threshold, ~250 thresholds per band), the others
    spread over the reflectance range, each band drawn independently so that the pixels go
    down many paths of every tree. Fixed by ``seed``: the same sample everywhere."""
    rng = np.random.default_rng(seed)
    pixels = rng.uniform(1e-4, 1.2, (n, len(S2_BANDS))).astype(np.float32)
    for feature, thresholds in _thresholds(booster).items():
        at = thresholds.astype(np.float32)
        near = np.concatenate([np.nextafter(at, np.float32(0)), at, np.nextafter(at, np.inf)])
        near = near[near > 0]
        pick = rng.random(n) < 0.75
        pixels[pick, _model_bands()[feature]] = rng.choice(near, pick.sum())
    return pixels


@functools.lru_cache(maxsize=4)
def _compiled(library: str):
    """The compiled library's predict function (one per process and library), or None when
    it cannot be loaded here (a worker of another machine): then plain s2cloudless."""
    try:
        return compiled_predict(Path(library))
    except Exception as err:  # any failure: plain s2cloudless is exact
        logger.warning("Cannot load %s (%s); using plain s2cloudless.", library, err)
        return None


@functools.lru_cache(maxsize=4)
def exact_library(cache: str) -> str | None:
    """The compiled s2cloudless model in ``cache`` (compiled there first if missing), if it
    gives exactly s2cloudless' probabilities on :func:`check_sample`; None (plain s2cloudless)
    when there is no C compiler, compiling fails or any probability differs. Once per
    process and cache: a failure is not retried."""
    try:
        library = str(compile_booster(_booster(), library_folder(Path(cache)), COMPILE_PARAMS))
        predict = _compiled(library)
    except Exception as err:  # no compiler, a failed build: plain s2cloudless
        logger.warning("s2cloudless not compiled (%s: %s); using plain s2cloudless.",
                       type(err).__name__, err)  # fmt: skip
        return None
    if predict is None:
        return None
    sample = check_sample(_booster())
    expected, got = _plain_probability(sample), _pixel_probability(sample, library)
    if not np.array_equal(expected, got):
        logger.warning("Compiled s2cloudless differs from s2cloudless (by up to %g); using "
                       "plain s2cloudless.", np.max(np.abs(expected - got)))  # fmt: skip
        return None
    logger.info("Compiled s2cloudless matches s2cloudless on %d check pixels: %s.",
                len(sample), library)  # fmt: skip
    return library


def choose_library(compiled: bool | str, n_pixels: int, cache: Path | None = None) -> str | None:
    """The compiled library to classify ``n_pixels`` with, or None for plain s2cloudless.

    ``compiled``: False never; True whenever it compiles and matches; ``"auto"`` when the
    pixels are enough to pay: :data:`AUTO_MIN_PIXELS_CACHED` if the library is already in
    the cache, :data:`AUTO_MIN_PIXELS_COMPILE` if it must be compiled first."""
    if compiled is False:
        return None
    cache = Path(cache) if cache is not None else default_cache()
    if compiled == "auto":
        cached = (library_folder(cache) / LIBRARY).exists()
        if n_pixels < (AUTO_MIN_PIXELS_CACHED if cached else AUTO_MIN_PIXELS_COMPILE):
            return None
    return exact_library(str(cache))


# --------------------------------------------------------------------------- masks


def _mask_block(prob: np.ndarray, threshold, average_over, dilation_size) -> np.ndarray:
    detector = _detector(threshold, average_over, dilation_size)
    return detector.get_mask_from_prob(np.ascontiguousarray(prob)).astype(bool)


def _mask_of(prob: da.Array, threshold: float, average_over: int, dilation_size: int):
    """s2cloudless' mask (smoothing, threshold, dilation) of a (time, y, x) probability array,
    chunk by chunk with borders deep enough that it equals the mask of the whole array (the
    array's own edges are mirrored, as s2cloudless does). Chunks as ``prob``'s."""
    depth = average_over + dilation_size
    if not depth:
        return prob > threshold
    settings = {"threshold": threshold, "average_over": average_over,
                "dilation_size": dilation_size}  # fmt: skip
    mask = da.map_overlap(
        _mask_block,
        prob,
        depth={0: 0, 1: depth, 2: depth},
        boundary={1: "reflect", 2: "reflect"},  # = cv2.BORDER_REFLECT used by s2cloudless
        dtype=bool,
        **settings,
    )
    return mask.rechunk(prob.chunks)  # map_overlap widens chunks narrower than the border


# --------------------------------------------------------------------------- coarse path


def _aligned(chunks: tuple[int, ...], factor: int) -> tuple[int, ...]:
    """Chunks along one axis moved to whole blocks (the last may end in a partial block)."""
    size = sum(chunks)
    step = max(factor, round(chunks[0] / factor) * factor)
    return tuple(min(step, size - start) for start in range(0, size, step))


def _block_means(frame: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """(13, y, x) DN -> mean reflectance over the data pixels of factor x factor blocks
    (13, Y, X) float32 (0 where a block has none), and their counts (Y, X).

    A partial last block holds only its pixels (no-data padding). Sums are integers, exact
    at any size: the same means whatever the chunking, and as before for every block whose
    DN sum was exact in float32 (any 16 x 16 block; 32 x 32 of reflectance below 1.6)."""
    n_band, ny, nx = frame.shape
    is_data = (frame != 0).all(axis=0)
    pad = ((0, (-ny) % factor), (0, (-nx) % factor))
    dn = np.pad(np.where(is_data, frame, 0), ((0, 0), *pad))
    data = np.pad(is_data, pad)
    shape = (dn.shape[1] // factor, factor, dn.shape[2] // factor, factor)
    sums = dn.reshape(n_band, *shape).sum(axis=(2, 4), dtype=np.int64)
    counts = data.reshape(shape).sum(axis=(1, 3), dtype=np.int32)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / (counts * np.float32(QUANTIFICATION))
    return np.where(counts > 0, means, 0.0).astype(np.float32), counts


def _coarse_probability_block(block: np.ndarray, factor: int, library: str | None) -> np.ndarray:
    """(time, 13, y, x) DN chunk -> (time, Y, X) float32 s2cloudless probability of its block
    means (0 for blocks without data): the means frame by frame, one prediction for all."""
    means, counts = zip(*(_block_means(frame, factor) for frame in block), strict=True)
    means, counts = np.stack(means), np.stack(counts)
    has_data = counts > 0
    out = np.zeros(counts.shape, np.float32)
    out[has_data] = _pixel_probability(np.moveaxis(means, 1, -1)[has_data], library)
    return out


def _bilinear_weights(idx: np.ndarray, factor: int, n: int):
    """Neighbouring block centres (lo, hi) of cube pixels ``idx`` and the weight of hi."""
    pos = np.clip((idx + 0.5) / factor - 0.5, 0.0, n - 1)  # in block-centre units
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, n - 1)
    return lo, hi, (pos - lo).astype(np.float32)


def _upsample_block(
    prob: np.ndarray, mask: np.ndarray, factor: int, coarse_shape: tuple[int, int],
    block_info=None,
) -> np.ndarray:  # fmt: skip
    """One (time, y, x) chunk of the cube grid from its blocks: bilinear probability and
    nearest mask, stacked as uint8 (2, time, y, x) = (probability x 255, mask).

    ``prob`` holds the chunk's blocks and one more on each side inside the array (the
    neighbouring block centres); positions are the whole array's, so chunk edges are seamless.
    """
    (r0, r1), (c0, c1) = block_info[None]["array-location"][2:]
    rows, cols = np.arange(r0, r1), np.arange(c0, c1)
    top = r0 // factor - (r0 > 0)  # first block of ``prob`` (one before the chunk's own)
    left = c0 // factor - (c0 > 0)
    ylo, yhi, wy = _bilinear_weights(rows, factor, coarse_shape[0])
    xlo, xhi, wx = _bilinear_weights(cols, factor, coarse_shape[1])
    ylo, yhi, xlo, xhi = ylo - top, yhi - top, xlo - left, xhi - left
    along_y = prob[:, ylo, :] * (1 - wy)[:, None] + prob[:, yhi, :] * wy[:, None]
    fine = along_y[:, :, xlo] * (1 - wx) + along_y[:, :, xhi] * wx
    fine_mask = mask[:, rows // factor - r0 // factor][:, :, cols // factor - c0 // factor]
    out = np.empty((2, *fine.shape), np.uint8)
    out[0] = np.round(np.clip(fine, 0.0, 1.0) * 255.0)
    out[1] = fine_mask
    return out


def _coarse_path(bands, factor, threshold, average_over, dilation_size, library=None):
    """Block means, s2cloudless and its mask at the processing resolution, back to the cube
    grid, all chunk by chunk: memory stays that of a few chunks at any AOI size."""
    arr = bands.data.rechunk({1: -1})
    arr = arr.rechunk({2: _aligned(arr.chunks[2], factor), 3: _aligned(arr.chunks[3], factor)})
    coarse_chunks = tuple(tuple(-(-c // factor) for c in axis) for axis in arr.chunks[2:])
    prob = da.map_blocks(
        _coarse_probability_block,
        arr,
        factor=factor,
        library=library,
        drop_axis=1,
        chunks=(arr.chunks[0], *coarse_chunks),
        dtype=np.float32,
    )
    mask = _mask_of(prob, threshold, average_over, dilation_size)
    # each chunk with the neighbouring block centres its edge pixels interpolate from
    neighbours = da.overlap.overlap(prob, depth={0: 0, 1: 1, 2: 1}, boundary="none")
    stacked = da.map_blocks(
        _upsample_block,
        neighbours,
        mask,
        factor=factor,
        coarse_shape=prob.shape[1:],
        new_axis=0,
        chunks=((2,), arr.chunks[0], *arr.chunks[2:]),
        dtype=np.uint8,
    )
    chunks = bands.data.chunks[:1] + bands.data.chunks[2:]
    return stacked[0].rechunk(chunks), stacked[1].astype(bool).rechunk(chunks)


# --------------------------------------------------------------------------- full-resolution path


def _probability_block(block: np.ndarray, library: str | None) -> np.ndarray:
    """(time, 13, y, x) uint16 DN chunk -> (time, y, x) float32 probability (0 on no data)."""
    n_time, _, ny, nx = block.shape
    out = np.zeros((n_time, ny, nx), np.float32)
    for t in range(n_time):  # one frame at a time keeps the float copy small
        frame = block[t]
        has_data = (frame != 0).all(axis=0)
        pixels = np.moveaxis(frame, 0, -1)[has_data].astype(np.float32) / np.float32(QUANTIFICATION)
        out[t][has_data] = _pixel_probability(pixels, library)
    return out


def _full_resolution_path(bands, threshold, average_over, dilation_size, library=None):
    arr = bands.data.rechunk({0: -1, 1: -1})
    prob = da.map_blocks(_probability_block, arr, library=library, drop_axis=1, dtype=np.float32)
    mask = _mask_of(prob, threshold, average_over, dilation_size)
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


def radius_pixels(metres: float, processing_resolution: float) -> int:
    """A radius in metres as whole pixels of the processing resolution, rounded half up:
    320 m is 2 pixels at 160 m and 16 at 20 m; 80 m is 1 pixel at 160 m."""
    if metres < 0:
        raise ValueError(f"A radius in metres must be >= 0, got {metres:g}.")
    return math.floor(metres / processing_resolution + 0.5)


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
    average_over_m: Annotated[float, Field(ge=0)] | None = None,
    dilation_m: Annotated[float, Field(ge=0)] | None = None,
    snow: Literal["cloud", "ndsi"] = "cloud",
    compiled: Literal["auto"] | bool = "auto",
) -> xr.Dataset:
    """s2cloudless cloud probability and mask of an L1C cube, on the cube's grid.

    Returns a Dataset with ``cloud_prob`` (time, y, x) uint8 (probability x 255, rounded) and
    ``cloud_mask`` (time, y, x) bool, with the input's coordinates, CRS and spatial chunks.
    ``processing_resolution`` (metres) must be a whole multiple of the cube resolution; the
    default 160 m runs the coarse path (block means), the cube resolution the full-resolution
    path; both lazy, chunk by chunk. ``average_over_m`` / ``dilation_m``, when set, replace
    ``average_over`` / ``dilation_size`` by a radius in metres (:func:`radius_pixels`); the
    attributes record the pixels used. s2cloudless takes most snow for cloud; ``snow="ndsi"``
    clears the pixels that :func:`snow_test` calls snow (``"cloud"`` keeps s2cloudless' own
    answer). ``compiled`` (auto, true, false): classify with s2cloudless' model compiled to
    native code, which gives the same answers faster (see :func:`choose_library`); the
    Dataset's ``predictor`` attribute says which ran. Compiling, if needed, happens here.
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}.")
    if average_over_m is not None:
        average_over = radius_pixels(average_over_m, processing_resolution)
    if dilation_m is not None:
        dilation_size = radius_pixels(dilation_m, processing_resolution)
    if (average_over or 0) < 0 or (dilation_size or 0) < 0:
        raise ValueError("average_over and dilation_size must be >= 0 (0 = skip that step).")
    factor = _grid_factor(processing_resolution, l1c)
    bands = _ordered_bands(l1c)
    is_data = data_mask(bands)
    settings = (float(threshold), int(average_over or 0), int(dilation_size or 0))
    n_time, _, ny, nx = bands.shape
    library = choose_library(compiled, n_time * -(-ny // factor) * -(-nx // factor))
    if factor == 1:
        prob_u8, mask = _full_resolution_path(bands, *settings, library)
    else:
        prob_u8, mask = _coarse_path(bands, factor, *settings, library)
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
            "predictor": "compiled" if library else "s2cloudless",
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
