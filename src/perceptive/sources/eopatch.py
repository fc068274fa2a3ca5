"""The ``eopatch`` source: import one eo-learn EOPatch folder as an L1C cube, without eo-learn.

Why: much Sentinel-2 work of the last years sits in EOPatch folders (the eo-learn LULC example
among it). This reader knows the on-disk format alone, so those patches run through the
pipelines with nothing but numpy, json and geopandas.

What it reads (eo-learn 1.x; older layouts too):
- ``bbox.geojson`` (a polygon with its CRS) and ``timestamps.json`` (ISO times, UTC); eo-learn
  1.0-1.4 wrote ``timestamp.json``; 0.x patches hold pickled ``bbox`` / ``timestamp`` files
  (no extension, or ``.pkl``), read with an unpickler that builds nothing but dates and the
  numbers and CRS code of a sentinelhub ``BBox`` (any other object is refused);
- features as ``<type>/<NAME>.npy`` or ``.npy.gz`` (pickled arrays refused), vectors as
  ``vector_timeless/<NAME>.gpkg`` (or ``.gpkg.gz``), ``meta_info/*.json(.gz)``.

How layers become cube variables (see DESIGN.md §2):
- the bands feature (``data/BANDS``, ``data/L1C_data`` or ``data/BANDS-S2-L1C``, or the option
  ``bands``) -> ``bands`` (time, band, y, x) uint16 DN in Sentinel-2 order: float reflectance
  x 10000 rounded (floats past 6.5535 and integers are DN already); NaN, negative and no-data
  pixels -> 0;
- every other one-channel ``data`` feature (``NDVI``...) -> a float32 (time, y, x) variable of
  the same name, NaN where the patch has no data; ``CLP`` (data or mask) -> ``cloud_prob``
  (float 0-1 -> float32, integers -> uint8 x 255);
- ``mask/IS_DATA`` (or ``dataMask``) -> ``is_data``, ``mask/CLM`` -> ``cloud_mask``,
  ``mask/IS_VALID`` -> ``is_valid``, all (time, y, x) bool (non-zero = true). A patch without
  IS_DATA and without bands gets ``is_data`` = "every float layer is finite";
- reference labels (option ``labels``, default ``LULC``): ``vector_timeless/LULC.gpkg`` if
  present, else the raster ``mask_timeless/LULC`` as polygons (one per 4-connected patch of
  one class id, id 0 = no data left out); returned with ``class_id``, in the patch CRS.

The cube is on the patch's own grid: its bbox split into its array shape, so pixels are often
not exactly 10 m (9.995 x 9.998 m) and not square; it is not resampled onto the AOI grid. Only
frames inside the run's ``time_interval`` are kept.

Two frames on one UTC day (two datatakes or granules of one pass) become one frame, stamped
with the earlier time: per pixel, every layer comes from the first frame, in time order, whose
observation is valid there (data and no cloud), else the first with data, else the first. So
the day's coverage is the union of the frames' and no pixel mixes two acquisitions.
"""

from __future__ import annotations

import codecs
import copyreg
import datetime as dt
import gzip
import json
import logging
import math
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import xarray as xr
from pydantic import Field
from pyproj import CRS
from rasterio import features as rio_features
from shapely.geometry import box, shape

from perceptive.eo.cube import S2_BANDS, attach_grid, make_l1c_cube
from perceptive.eo.grid import Grid, reproject_geometry
from perceptive.sources.tiled import SourceError, SourceRequest

__all__ = ["EOPatchError", "eopatch", "merge_same_day", "raster_labels", "to_dn"]

log = logging.getLogger(__name__)

#: Names under which eo-learn workflows store the L1C bands, tried in this order.
BAND_FEATURES: tuple[str, ...] = ("BANDS", "L1C_data", "BANDS-S2-L1C")
#: Patch masks and the cube variables they become.
MASKS: dict[str, str] = {
    "IS_DATA": "is_data",
    "dataMask": "is_data",
    "CLM": "cloud_mask",
    "IS_VALID": "is_valid",
}
#: Feature-type folders of the format (only data, mask, *_timeless and meta_info are read).
FEATURE_TYPES: tuple[str, ...] = (
    "data", "mask", "scalar", "label", "vector", "data_timeless", "mask_timeless",
    "scalar_timeless", "label_timeless", "vector_timeless", "meta_info",
)  # fmt: skip
_SUFFIXES = (".npy.gz", ".npy", ".gpkg.gz", ".gpkg", ".json.gz", ".json", ".pkl.gz", ".pkl")
_RESERVED = ("bands", "is_data", "cloud_mask", "is_valid", "cloud_prob")
#: DN per unit of reflectance (L1C quantification).
_DN = 10000.0


class EOPatchError(SourceError):
    """An EOPatch folder cannot be read as asked; the message names the file and the fix."""


def eopatch(
    request: SourceRequest,
    *,
    path: Annotated[str, Field(min_length=1)],
    bands: str | None = None,
    band_names: list[str] | None = None,
    labels: str | None = "LULC",
    label_column: str | None = None,
) -> tuple[xr.Dataset, gpd.GeoDataFrame | None]:
    """One eo-learn EOPatch folder at ``path`` as an L1C cube on the patch's own grid, and its
    reference labels (None when it has none). See the module docstring for what becomes what.

    ``bands``: the data feature holding the bands (None: the first of BANDS, L1C_data,
    BANDS-S2-L1C present; a patch without any is read without bands). ``band_names``: the
    Sentinel-2 names of its channels in order (None: the 13 L1C bands, for a 13-channel
    feature). ``labels``: the reference labels feature (vector_timeless or mask_timeless;
    None: no labels). ``label_column``: the class column of a vector labels feature (None:
    ``class_id``, the feature's own name, or its only integer column).
    """
    patch = _Patch(Path(path))
    grid = patch.grid()
    _check_overlap(grid, request, patch.root)
    times, keep = patch.frames(request.time_interval)

    layers: dict[str, np.ndarray] = {}
    band_list: list[str] = []
    band_feature = bands if bands is not None else patch.first("data", BAND_FEATURES)
    if band_feature is not None:
        band_list, layers["bands"] = _read_bands(patch, band_feature, band_names, keep)
    elif band_names is not None:
        raise EOPatchError(
            f"band_names is set but EOPatch {patch.root} has no bands feature "
            f"({', '.join(BAND_FEATURES)}); it has {patch.describe()}. Name it with 'bands'."
        )
    for name in patch.names("mask"):
        if name in MASKS and MASKS[name] not in layers:
            layers[MASKS[name]] = patch.frame_layer("mask", name, keep) != 0
    clp = (
        "data" if "CLP" in patch.names("data") else "mask" if "CLP" in patch.names("mask") else None
    )
    if clp:
        layers["cloud_prob"] = _cloud_prob(patch.frame_layer(clp, "CLP", keep))
    for name in patch.names("data"):
        if name in (band_feature, "CLP"):
            continue
        if name in _RESERVED:
            log.warning("EOPatch %s: data/%s clashes with a cube variable, skipped", path, name)
            continue
        array = patch.array("data", name)
        if array.shape[-1] != 1:
            log.info("EOPatch %s: data/%s has %d channels, skipped", path, name, array.shape[-1])
            continue
        layers[name] = array[keep, ..., 0].astype(np.float32)
    feature_names = [n for n in layers if n not in _RESERVED]
    if "bands" not in layers and not feature_names:
        raise EOPatchError(
            f"EOPatch {patch.root} has no bands feature ({', '.join(BAND_FEATURES)}) and no "
            f"one-channel data feature to use; it has {patch.describe()}. Name its bands "
            "feature with the option 'bands'."
        )
    _apply_no_data(layers, feature_names)
    times, layers = merge_same_day(times, layers)
    cube = _cube(times, layers, band_list, grid, request.tile_size, patch)
    reference = _labels(patch, labels, label_column, grid) if labels else None
    log.info(
        "EOPatch %s: %d frames, %d x %d px of %.4g x %.4g m, variables %s, %s labels",
        patch.root, cube.sizes["time"], grid.width, grid.height, grid.res_x, grid.res_y,
        sorted(cube.data_vars), "no" if reference is None else len(reference),
    )  # fmt: skip
    return cube, reference


# --------------------------------------------------------------------------- the folder


class _Patch:
    """The files of one EOPatch folder, by feature type and name."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise EOPatchError(
                f"No EOPatch folder at {root} (from {Path.cwd()}); give the path of the folder "
                "holding bbox.geojson, timestamps.json, data/, mask/..."
            )
        self.root = root
        self.files: dict[str, dict[str, Path]] = {}
        for kind in FEATURE_TYPES:
            folder = root / kind
            if folder.is_dir():
                found = {_stem(p.name): p for p in sorted(folder.iterdir()) if p.is_file()}
                self.files[kind] = {k: v for k, v in found.items() if k}
        self._arrays: dict[tuple[str, str], np.ndarray] = {}

    def names(self, kind: str) -> list[str]:
        return list(self.files.get(kind, {}))

    def first(self, kind: str, candidates) -> str | None:
        return next((c for c in candidates if c in self.files.get(kind, {})), None)

    def describe(self) -> str:
        """What the patch holds, e.g. ``data/[NDVI], mask/[CLM, IS_DATA]``, for messages."""
        parts = [f"{k}/[{', '.join(v)}]" for k, v in self.files.items() if v]
        return ", ".join(parts) or "no feature folders"

    def meta_file(self, *names: str) -> Path | None:
        return next((self.root / n for n in names if (self.root / n).is_file()), None)

    def require(self, kind: str, name: str) -> Path:
        if name not in self.files.get(kind, {}):
            raise EOPatchError(
                f"EOPatch {self.root} has no feature {kind}/{name}; it has {self.describe()}. "
                "Choose one of those (source options 'bands' / 'labels')."
            )
        return self.files[kind][name]

    def array(self, kind: str, name: str) -> np.ndarray:
        """A feature's array (cached), with its shape checked against its feature type."""
        key = (kind, name)
        if key not in self._arrays:
            file = self.require(kind, name)
            if not file.name.endswith((".npy", ".npy.gz")):
                raise EOPatchError(
                    f"{file} is not a .npy / .npy.gz array; eo-learn stores {kind} features so "
                    "(older pickled features are not read: re-save the patch with eo-learn >= 1)."
                )
            try:
                if file.name.endswith(".npy"):  # mapped, not read: frames are read as needed
                    array = np.load(file, mmap_mode="r", allow_pickle=False)
                else:
                    with _open(file) as stream:
                        array = np.load(stream, allow_pickle=False)
            except (ValueError, OSError, EOFError) as err:
                raise EOPatchError(f"{file} cannot be read as a numpy array: {err}") from None
            ndim = 4 if kind in ("data", "mask") else 3
            if array.ndim != ndim:
                raise EOPatchError(
                    f"{file} has shape {array.shape}; a {kind} feature is "
                    f"{'(time, height, width, channels)' if ndim == 4 else '(height, width, channels)'}."
                )
            self._arrays[key] = array
        return self._arrays[key]

    def frame_layer(self, kind: str, name: str, keep: np.ndarray) -> np.ndarray:
        """A one-channel per-frame feature as (time, y, x), the kept frames only."""
        array = self.array(kind, name)
        if array.shape[-1] != 1:
            raise EOPatchError(
                f"{kind}/{name} of {self.root} has {array.shape[-1]} channels; one was expected."
            )
        return array[keep, ..., 0]

    # ----------------------------------------------------------------------- bbox, grid, time

    def bbox(self) -> tuple[tuple[float, float, float, float], CRS]:
        """(minx, miny, maxx, maxy) and the CRS of the patch."""
        new = self.meta_file("bbox.geojson", "bbox.geojson.gz")
        if new is not None:
            with _open(new) as stream:
                doc = json.load(stream)
            name = ((doc.get("crs") or {}).get("properties") or {}).get("name")
            if name is None:
                raise EOPatchError(f"{new} has no 'crs' member; cannot place the patch.")
            return shape(doc).bounds, _crs(name, new)
        old = self.meta_file("bbox", "bbox.pkl", "bbox.pkl.gz")
        if old is None:
            raise EOPatchError(
                f"{self.root} is not an EOPatch folder: it has no bbox.geojson (eo-learn >= 1.0) "
                "nor a pickled bbox / bbox.pkl (older). An EOPatch folder holds bbox.geojson, "
                f"timestamps.json and feature folders (data/, mask/...); this one has "
                f"{sorted(p.name for p in self.root.iterdir())}."
            )
        found = _read_old_pickle(old)
        if not isinstance(found, _PickledBBox):
            raise EOPatchError(f"{old} holds a {type(found).__name__}, not a sentinelhub BBox.")
        return found.bounds(old)

    def grid(self) -> Grid:
        """The patch's own grid: its bbox divided into its arrays' height and width."""
        (minx, miny, maxx, maxy), crs = self.bbox()
        if not crs.is_projected:
            raise EOPatchError(
                f"EOPatch {self.root} is in {crs.to_string()}, a geographic CRS; the pipelines "
                "need a projected CRS in metres. Make the patch in its UTM zone."
            )
        shapes = {
            f"{kind}/{name}": self.array(kind, name).shape[-3:-1]
            for kind in ("data", "mask", "data_timeless", "mask_timeless")
            for name in self.names(kind)
        }
        if not shapes:
            raise EOPatchError(
                f"EOPatch {self.root} has no raster feature (data/, mask/, data_timeless/, "
                f"mask_timeless/ .npy files); it has {self.describe()}."
            )
        if len(set(shapes.values())) > 1:
            raise EOPatchError(f"EOPatch {self.root} mixes raster shapes: {shapes}.")
        height, width = next(iter(shapes.values()))
        res_x, res_y = (maxx - minx) / width, (maxy - miny) / height
        square = math.isclose(res_x, res_y, rel_tol=1e-9)
        return Grid(crs, minx, maxy, res_x, width, height, None if square else res_y)

    def timestamps(self) -> pd.DatetimeIndex:
        """The patch's acquisition times as naive UTC."""
        new = self.meta_file(
            "timestamps.json", "timestamps.json.gz", "timestamp.json", "timestamp.json.gz"
        )
        if new is not None:
            with _open(new) as stream:
                raw = json.load(stream)
            where = new
        else:
            where = self.meta_file("timestamp", "timestamp.pkl", "timestamp.pkl.gz")
            if where is None:
                raise EOPatchError(
                    f"EOPatch {self.root} has no timestamps.json (nor an older pickled "
                    "timestamp); its data and mask features have no dates."
                )
            raw = _read_old_pickle(where)
        if not isinstance(raw, list):
            raise EOPatchError(f"{where} holds a {type(raw).__name__}, not a list of times.")
        try:
            times = pd.DatetimeIndex([pd.Timestamp(t) for t in raw])
        except (ValueError, TypeError) as err:
            raise EOPatchError(f"{where} holds a time that cannot be read: {err}") from None
        if times.tz is not None:
            times = times.tz_convert("UTC").tz_localize(None)
        return times

    def frames(self, interval) -> tuple[pd.DatetimeIndex, np.ndarray]:
        """The times inside ``interval`` (end day included), sorted, and which frames they are."""
        times = self.timestamps()
        counts = {
            f"{kind}/{name}": self.array(kind, name).shape[0]
            for kind in ("data", "mask")
            for name in self.names(kind)
        }
        wrong = {k: n for k, n in counts.items() if n != len(times)}
        if wrong:
            raise EOPatchError(
                f"EOPatch {self.root} has {len(times)} timestamps but features with other frame "
                f"counts: {wrong}."
            )
        start, end = (pd.Timestamp(t) for t in interval)
        inside = (times >= start.normalize()) & (times < end.normalize() + pd.Timedelta(days=1))
        if not inside.any():
            span = f"{times.min()} to {times.max()}" if len(times) else "no frame at all"
            raise EOPatchError(
                f"EOPatch {self.root} has no frame between {start.date()} and {end.date()} "
                f"(its frames span {span}); set time_interval to the patch's dates."
            )
        index = np.flatnonzero(inside)
        index = index[np.argsort(times[index], kind="stable")]
        return times[index], index


def _stem(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def _crs(name: str, where: Path) -> CRS:
    try:
        return CRS.from_user_input(name)
    except Exception as err:  # pyproj raises CRSError, a plain Exception subclass
        raise EOPatchError(f"{where}: CRS {name!r} is not one pyproj knows ({err}).") from None


# --------------------------------------------------------------------------- old pickles


class _PickledBBox:
    """What an old patch's pickled sentinelhub BBox holds: its corners and its CRS code."""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple):  # (dict, slots) when the class had __slots__
            state = {k: v for part in state if isinstance(part, dict) for k, v in part.items()}
        self.state = dict(state or {})

    def bounds(self, where: Path) -> tuple[tuple[float, float, float, float], CRS]:
        state = {k.lstrip("_"): v for k, v in self.state.items()}
        try:
            corners = tuple(float(state[k]) for k in ("min_x", "min_y", "max_x", "max_y"))
            crs = state["crs"]
        except (KeyError, TypeError, ValueError):
            raise EOPatchError(
                f"{where}: the pickled BBox has {sorted(self.state)}, not min_x, min_y, max_x, "
                "max_y and crs; re-save the patch with eo-learn >= 1.0."
            ) from None
        return corners, crs if isinstance(crs, CRS) else _crs(str(crs), where)


def _pickled_crs(value: Any) -> CRS:
    """A sentinelhub CRS enum member from its value (``"32633"``, ``"4326"``...)."""
    text = str(value)
    return CRS.from_epsg(int(text)) if text.isdigit() else CRS.from_user_input(text)


class _OldPatchUnpickler(pickle.Unpickler):
    """Builds only what old ``bbox`` / ``timestamp`` pickles hold: a BBox's numbers and CRS
    code, dates and times. Any other class in the file is refused, so a crafted file cannot
    run code."""

    _ALLOWED = {
        ("datetime", "datetime"): dt.datetime,
        ("datetime", "date"): dt.date,
        ("datetime", "timedelta"): dt.timedelta,
        ("datetime", "timezone"): dt.timezone,
        ("_codecs", "encode"): codecs.encode,  # protocol 2 stores datetimes as latin-1 text
        ("copyreg", "_reconstructor"): copyreg._reconstructor,  # protocols 0 and 1
        ("copy_reg", "_reconstructor"): copyreg._reconstructor,  # the same, from Python 2
        ("builtins", "object"): object,
        ("__builtin__", "object"): object,
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[module, name]
        if module.split(".")[0] == "sentinelhub" and name == "BBox":
            return _PickledBBox
        if module.split(".")[0] == "sentinelhub" and name == "CRS":
            return _pickled_crs
        if module.split(".")[0] == "dateutil" and name == "tzutc":
            return lambda: dt.UTC
        raise pickle.UnpicklingError(f"{module}.{name} is not part of an EOPatch bbox/timestamp")


def _read_old_pickle(path: Path) -> Any:
    try:
        with _open(path) as stream:
            return _OldPatchUnpickler(stream, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise EOPatchError(
            f"{path} is not an old EOPatch pickle this reader accepts ({err}); re-save the patch "
            "with eo-learn >= 1.0 (bbox.geojson, timestamps.json)."
        ) from None


# --------------------------------------------------------------------------- layers


def _read_bands(
    patch: _Patch, name: str, band_names: list[str] | None, keep: np.ndarray
) -> tuple[list[str], np.ndarray]:
    """(band names in Sentinel-2 order, (time, band, y, x) uint16 DN) of the bands feature."""
    array = patch.array("data", name)
    channels = array.shape[-1]
    if band_names is None:
        if channels != len(S2_BANDS):
            raise EOPatchError(
                f"data/{name} of {patch.root} has {channels} channels, not the 13 L1C bands; "
                "give their names in order with the source option band_names (e.g. the eo-learn "
                "LULC example's [B02, B03, B04, B08, B11, B12])."
            )
        band_names = list(S2_BANDS)
    unknown = [b for b in band_names if b not in S2_BANDS]
    if len(band_names) != channels or unknown or len(set(band_names)) != channels:
        raise EOPatchError(
            f"band_names {band_names} do not fit data/{name} ({channels} channels): give "
            f"{channels} distinct Sentinel-2 names ({', '.join(S2_BANDS)})."
            + (f" Unknown: {unknown}." if unknown else "")
        )
    order = sorted(range(channels), key=lambda i: S2_BANDS.index(band_names[i]))
    frames = np.arange(array.shape[0])[keep]  # keep: a mask or indices
    scale = _dn_scale(array, frames)
    # one frame at a time, into the uint16 cube: memory is the cube plus one float frame
    out = np.empty((len(frames), channels, *array.shape[1:3]), np.uint16)
    for i, frame in enumerate(frames):
        out[i] = to_dn(np.moveaxis(array[frame][..., order], -1, 0), scale)
    return [band_names[i] for i in order], out


def _dn_scale(array: np.ndarray, frames: np.ndarray) -> float:
    """DN per unit of the band values: 10000 for reflectance; 1 for integers, and for floats
    above 6.5535, which cannot be reflectance (x 10000 would overflow the DN range) and so
    hold DN already (e.g. bands interpolated as float)."""
    if not np.issubdtype(array.dtype, np.floating):
        return 1.0
    top = np.iinfo(np.uint16).max / _DN
    for frame in frames:
        values = np.asarray(array[frame])
        if (values[np.isfinite(values)] > top).any():
            log.info("EOPatch bands are floats above %.4g: read as DN, not reflectance", top)
            return 1.0
    return _DN


def to_dn(values: np.ndarray, scale: float | None = None) -> np.ndarray:
    """L1C digital numbers (uint16, 0 = no data) of eo-learn band values: floats are
    reflectance (x 10000, rounded) unless ``scale`` says otherwise (None: decided from the
    values, see :func:`_dn_scale`), integers are DN already; NaN and negatives become 0."""
    top = np.iinfo(np.uint16).max
    if not np.issubdtype(values.dtype, np.floating):
        return np.clip(values, 0, top).astype(np.uint16)
    if scale is None:
        scale = _dn_scale(values[np.newaxis], np.array([0]))
    finite = np.nan_to_num(values.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(np.rint(finite * np.float32(scale)), 0, top).astype(np.uint16)


def _cloud_prob(values: np.ndarray) -> np.ndarray:
    if np.issubdtype(values.dtype, np.floating):
        return np.clip(values, 0.0, 1.0).astype(np.float32)
    return np.clip(values, 0, 255).astype(np.uint8)


def _apply_no_data(layers: dict[str, np.ndarray], feature_names: list[str]) -> None:
    """Make every layer say "no data" the cube's way where the patch says so: bands 0 and
    float layers NaN where ``is_data`` is false; a patch without IS_DATA and without bands
    gets ``is_data`` where every float layer is finite."""
    if "is_data" not in layers:
        if "bands" in layers:
            return  # the DN-0 rule of perceptive.eo.valid_data decides
        layers["is_data"] = np.logical_and.reduce([np.isfinite(layers[n]) for n in feature_names])
    no_data = ~layers["is_data"]
    if "bands" in layers:
        layers["bands"] *= ~no_data[:, None]  # in place: no copy of the cube
    for name in feature_names:
        layers[name][no_data] = np.nan


def _observation_rank(layers: dict[str, np.ndarray]) -> np.ndarray:
    """(time, y, x): 2 for a valid observation (data, no cloud), 1 for data, 0 for none."""
    if "is_data" in layers:
        has_data = layers["is_data"]
    else:
        has_data = (layers["bands"] != 0).all(axis=1)
    clear = np.ones_like(has_data)
    if "cloud_mask" in layers:
        clear = clear & ~layers["cloud_mask"]
    if "is_valid" in layers:
        clear = clear & layers["is_valid"]
    return has_data.astype(np.int8) + (has_data & clear).astype(np.int8)


def merge_same_day(
    times: pd.DatetimeIndex, layers: dict[str, np.ndarray]
) -> tuple[pd.DatetimeIndex, dict[str, np.ndarray]]:
    """One frame per UTC day (see the module docstring): per pixel, all layers from the
    first frame of the day with a valid observation there, else the first with data, else the
    first; stamped with the day's first time. ``layers`` are (time, ...) with (y, x) last."""
    days = times.normalize()
    if days.is_unique:
        return times, layers
    rank = _observation_rank(layers)
    groups = pd.Series(np.arange(len(times))).groupby(days.values, sort=True)
    merged: dict[str, list[np.ndarray]] = {name: [] for name in layers}
    stamps = []
    for _, members in groups:
        index = members.to_numpy()
        stamps.append(times[index[0]])
        choice = np.argmax(rank[index], axis=0)  # first frame of the best rank, per pixel
        for name, array in layers.items():
            frames = array[index]
            pick = choice.reshape((1,) + (1,) * (frames.ndim - 3) + choice.shape)
            merged[name].append(np.take_along_axis(frames, pick, axis=0)[0])
    if len(stamps) < len(times):
        log.info("EOPatch: %d frames on %d days, same-day frames merged", len(times), len(stamps))
    return pd.DatetimeIndex(stamps), {k: np.stack(v) for k, v in merged.items()}


def _cube(times, layers, band_list, grid: Grid, tile_size: int, patch: _Patch) -> xr.Dataset:
    attrs = {"eopatch": str(patch.root.resolve())}
    meta = _meta_info(patch)
    if meta:
        attrs["eopatch_meta_info"] = json.dumps(meta, default=str)
    frame = ("time", "y", "x")
    if "bands" in layers:
        attrs["processing_level"] = "L1C"
        cube = make_l1c_cube(layers.pop("bands"), times, grid, band_list, attrs)
    else:
        cube = attach_grid(
            xr.Dataset(coords={"time": times.values.astype("datetime64[ns]")}, attrs=attrs), grid
        )
    for name, values in layers.items():
        cube[name] = (frame, values)
    for name, source in {**{v: f"mask/{k}" for k, v in MASKS.items()}, "cloud_prob": "CLP"}.items():
        if name in cube:
            cube[name].attrs["long_name"] = f"from the EOPatch's {source}"
    chunks = {"time": -1, "y": tile_size, "x": tile_size}
    if "band" in cube.dims:
        chunks["band"] = -1
    return cube.chunk(chunks)


def _meta_info(patch: _Patch) -> dict[str, Any]:
    """The patch's JSON meta_info (pickled old-style meta_info is not read)."""
    meta = {}
    for name, file in patch.files.get("meta_info", {}).items():
        if file.name.endswith((".json", ".json.gz")):
            with _open(file) as stream:
                meta[name] = json.load(stream)
    return meta


# --------------------------------------------------------------------------- labels, AOI


def _labels(patch: _Patch, name: str, column: str | None, grid: Grid) -> gpd.GeoDataFrame | None:
    """The reference labels feature as polygons with ``class_id`` in the patch CRS: the
    vector feature if the patch has one, else the raster one polygonised."""
    if name in patch.names("vector_timeless"):
        return _vector_labels(patch.files["vector_timeless"][name], name, column, grid)
    if name in patch.names("mask_timeless"):
        raster = patch.array("mask_timeless", name)
        if raster.shape[-1] != 1:
            raise EOPatchError(f"mask_timeless/{name} of {patch.root} has {raster.shape[-1]} "
                               "channels; a label raster has one (a class id per pixel).")  # fmt: skip
        return raster_labels(raster[..., 0], grid)
    log.warning(
        "EOPatch %s has no labels feature %r (vector_timeless or mask_timeless); it has %s",
        patch.root, name, patch.describe(),
    )  # fmt: skip
    return None


def raster_labels(codes: np.ndarray, grid: Grid) -> gpd.GeoDataFrame:
    """A (y, x) raster of class ids on ``grid`` as polygons (4-connected patches of one id)
    with ``class_id``; id 0 (no data in the LULC legend) gives none."""
    if not np.issubdtype(codes.dtype, np.integer):
        raise EOPatchError(f"the label raster is {codes.dtype}; it must hold integer class ids.")
    codes = codes.astype(np.int32)
    found = rio_features.shapes(codes, mask=codes != 0, transform=grid.transform, connectivity=4)
    rows = [(shape(geom), int(value)) for geom, value in found]
    geoms = [g for g, _ in rows]
    ids = np.array([v for _, v in rows], dtype=np.int64)
    return gpd.GeoDataFrame({"class_id": ids}, geometry=geoms, crs=grid.crs)


def _vector_labels(file: Path, name: str, column: str | None, grid: Grid) -> gpd.GeoDataFrame:
    if file.name.endswith(".gz"):
        with tempfile.TemporaryDirectory() as tmp:
            plain = Path(tmp) / f"{name}.gpkg"
            with gzip.open(file, "rb") as src, open(plain, "wb") as dst:
                shutil.copyfileobj(src, dst)
            frame = gpd.read_file(plain, engine="pyogrio")
    elif file.name.endswith(".gpkg"):
        frame = gpd.read_file(file, engine="pyogrio")
    else:
        raise EOPatchError(f"{file} is not a GeoPackage; old pickled vector features are not read.")
    if frame.crs is None:
        frame = frame.set_crs(grid.crs)
    columns = [c for c in frame.columns if c != frame.geometry.name]
    if column is None:
        integers = [c for c in columns if pd.api.types.is_integer_dtype(frame[c])]
        column = next((c for c in ("class_id", name) if c in columns), None)
        column = column or (integers[0] if len(integers) == 1 else None)
    if column not in columns:
        raise EOPatchError(
            f"{file} has no class column {column!r}; its columns are {columns}. Set the source "
            "option label_column."
        )
    labels = gpd.GeoDataFrame(
        {"class_id": frame[column].to_numpy()}, geometry=frame.geometry.values, crs=frame.crs
    )
    return labels.to_crs(grid.crs)


def _check_overlap(grid: Grid, request: SourceRequest, root: Path) -> None:
    """The patch must lie over the AOI: otherwise the run's AOI parameter is for somewhere else."""
    patch_box = reproject_geometry(box(*grid.bounds), grid.crs, request.grid.crs)
    if not patch_box.intersects(request.aoi):
        rounded = [round(v, 1) for v in patch_box.bounds]
        raise EOPatchError(
            f"EOPatch {root} does not overlap the AOI: in {request.grid.crs.to_string()} it spans "
            f"{rounded}, the AOI {[round(v, 1) for v in request.aoi.bounds]} (left, bottom, "
            "right, top). Set the aoi parameter to the patch's bbox."
        )
    if not request.aoi.buffer(1e-6).contains(patch_box):
        log.info("EOPatch %s reaches beyond the AOI; the cube keeps the whole patch.", root)
