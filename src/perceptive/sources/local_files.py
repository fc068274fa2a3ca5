"""Sentinel-2 L1C products already on disk (a folder of downloads), read tile by tile.

Why: a user with products from the Copernicus Data Space Browser, an archive or a colleague
should not need an account to map them. Each product band is warped onto the AOI grid one
tile at a time (only the source window under the tile is read), the processing-baseline
offset is removed so DN mean the same across years, and several products of one day (adjacent
tiles, datastrips) become one acquisition. The layouts, rules and options are documented on
:func:`local_files`.
"""

from __future__ import annotations

import logging
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
import rasterio
import xarray as xr
from affine import Affine
from pydantic import Field
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.warp import reproject, transform_bounds
from rasterio.windows import Window
from shapely.geometry import box

from perceptive.eo.cube import S2_BANDS
from perceptive.eo.grid import Grid
from perceptive.sources.tiled import SourceError, SourceRequest, read_tiled

log = logging.getLogger(__name__)

#: Processing baseline 04.00 went live on this day; from it, L1C DN carry RADIO_ADD_OFFSET.
BASELINE_04_START = pd.Timestamp("2022-01-25")
#: The offset products of baseline 04.00 and later declare for every band.
BASELINE_04_OFFSET = -1000

OffsetMode = Literal["auto", "metadata", "none"]
ResamplingName = Literal["nearest", "bilinear", "cubic", "average"]

# T33UUU_20170216T102101_B01.jp2: the band files of an L1C product (in a SAFE or copied out).
_BAND_FILE = re.compile(r"^(T\d{2}[A-Z]{3})_(\d{8}T\d{6})_([A-Z0-9]+)\.jp2$", re.IGNORECASE)
# Older SAFE granules name band files differently; only the band suffix is certain.
_SAFE_BAND = re.compile(r"_(B\d[0-9A])\.jp2$", re.IGNORECASE)
_SAFE_BASELINE = re.compile(r"_N(\d{2})(\d{2})_")
_NAME_TIMES = (
    (re.compile(r"(?<!\d)(\d{8}T\d{6})(?!\d)"), "%Y%m%dT%H%M%S"),
    (re.compile(r"(?<!\d)(\d{4}-\d{2}-\d{2})(?!\d)"), "%Y-%m-%d"),
    (re.compile(r"(?<!\d)(\d{8})(?!\d)"), "%Y%m%d"),
)
_TIME_TAGS = ("SENSING_TIME", "ACQUISITION_TIME", "SENSING_DATE", "ACQUISITION_DATE")
_SUN_TAGS = (
    ("SUN_ZENITH", "SUN_AZIMUTH"),
    ("MEAN_SOLAR_ZENITH_ANGLE", "MEAN_SOLAR_AZIMUTH_ANGLE"),
)
_LAYOUTS = (
    "Sentinel-2 L1C products as unzipped *.SAFE folders, folders of the 13 band files "
    "(T<tile>_<YYYYMMDDTHHMMSS>_B01.jp2 ... _B12.jp2), or one 13-band GeoTIFF per date"
)


def local_files(
    request: SourceRequest,
    *,
    folder: str,
    resampling: ResamplingName = "nearest",
    radiometric_offset: OffsetMode = "auto",
    min_band_fraction: Annotated[float, Field(gt=0, le=1)] = 0.5,
) -> tuple[xr.Dataset, None]:
    """Sentinel-2 L1C products from a local ``folder`` (searched recursively), warped onto
    the AOI grid tile by tile. No account or network needed; no reference labels.

    Layouts (they may be mixed, in any sub-folders):

    - ``*.SAFE`` product folders: ``GRANULE/*/IMG_DATA/*_B01.jp2`` ... ``*_B12.jp2``; the
      time is ``SENSING_TIME`` of ``MTD_TL.xml`` (else the band file name), the offset and
      baseline come from ``MTD_MSIL1C.xml`` (else the ``_N0400_`` part of the SAFE name),
      the sun angles from ``MTD_TL.xml``. Each granule is one product.
    - a folder of band files ``T33UUU_20170216T102101_B01.jp2`` ... (the IMG_DATA files
      copied out): one product per tile and time in the name; an ``MTD_MSIL1C.xml`` or
      ``MTD_TL.xml`` beside them is read when it is of the same day.
    - GeoTIFFs (``*.tif``/``*.tiff``), one product each: 13 bands in S2 order (B01 ... B12,
      B8A after B08), or band descriptions naming them (any order, extra bands ignored); the
      time from a ``SENSING_TIME`` or ``ACQUISITION_TIME`` tag, else the file name
      (``20210601T103021``, ``2021-06-01`` or ``20210601``); a ``RADIO_ADD_OFFSET`` (one value
      or 13, comma-separated) or ``PROCESSING_BASELINE`` tag is honoured, and sun angles from
      ``SUN_ZENITH``/``SUN_AZIMUTH`` (or ``MEAN_SOLAR_ZENITH_ANGLE``/``..._AZIMUTH_ANGLE``).

    Rules:

    - Products dated outside ``time_interval`` (days, both ends included) are ignored;
      products whose extent misses the AOI are skipped with a warning (e.g. the neighbour
      tile of a download); an error if none is left.
    - Products of the same UTC day are one acquisition, timed at the earliest; per pixel the
      earliest product with data there wins (ties by path), all bands from that product.
    - ``radiometric_offset``: baseline 04.00 (from 2022-01-25, and reprocessed collections)
      stores DN + 1000. ``auto`` applies ``RADIO_ADD_OFFSET`` from the metadata, else -1000
      when the baseline is 04.00 or later, else -1000 for acquisitions from 2022-01-25;
      ``metadata`` applies only a ``RADIO_ADD_OFFSET`` the metadata or tags state (for
      exports already harmonised, which carry none); ``none`` keeps the DN as stored. Valid
      DN stay >= 1, no data stays 0.
    - A band pixel has data where the file's mask (its nodata value or internal mask) says so
      and its DN is not 0; a pixel has data (``is_data``) when at least ``min_band_fraction``
      of the 13 bands do (default: 7 of 13), so one band at 0 (band-specific swath edges, a
      coarse band's edge pixel) does not drop it. Pixels without data are 0 in every band.
    - Bands are warped with ``resampling`` (``nearest`` keeps DN exact: a 20 m pixel becomes
      2 x 2 pixels at 10 m); any product CRS is reprojected onto the grid.

    - The cube gets ``sun_zenith``/``sun_azimuth`` (time) coordinates, which the
      ``cloud_shadows`` link needs, when every acquisition's metadata gives them.

    ``folder`` may be relative to the directory the pipeline runs from.
    """
    reader = LocalFilesReader(
        folder, request, resampling=resampling, radiometric_offset=radiometric_offset,
        min_band_fraction=min_band_fraction,
    )  # fmt: skip
    attrs = {
        "source": "local_files",
        "processing_level": "L1C",
        "products": [p.name for p in reader.products],
        "radiometric_offset": radiometric_offset,
        "resampling": resampling,
    }
    cube = read_tiled(reader, request, attrs=attrs)
    sun = reader.sun_angles()
    if sun is not None:
        cube = cube.assign_coords(sun_zenith=("time", sun[0]), sun_azimuth=("time", sun[1]))
    return cube, None


@dataclass(frozen=True)
class Product:
    """One product (a granule, a band-file set or a GeoTIFF) as found on disk."""

    name: str  # its path, for messages
    time: pd.Timestamp  # sensing time, UTC (naive)
    files: tuple[tuple[Path, int], ...]  # per S2 band: (file, 1-based band index)
    offsets: tuple[int, ...] = (0,) * len(S2_BANDS)  # added to valid DN, per S2 band
    sun: tuple[float, float] | None = None  # mean sun zenith, azimuth (degrees)
    bounds: tuple[float, float, float, float] | None = None  # in the grid CRS, once opened


class LocalFilesReader:
    """A :class:`~perceptive.sources.tiled.TileReader` over the products of a folder."""

    name = "local_files"
    bands = S2_BANDS

    def __init__(
        self,
        folder: str | Path,
        request: SourceRequest,
        *,
        resampling: ResamplingName = "nearest",
        radiometric_offset: OffsetMode = "auto",
        min_band_fraction: float = 0.5,
    ) -> None:
        self.folder = Path(folder).expanduser()
        self.resampling = resampling
        self.radiometric_offset = radiometric_offset
        self.min_band_fraction = min_band_fraction
        found = find_products(self.folder, radiometric_offset)
        start, end = (pd.Timestamp(t).normalize() for t in request.time_interval)
        dated = [p for p in found if start <= p.time.normalize() <= end]
        if not dated:
            days = sorted({p.time.date().isoformat() for p in found})
            raise SourceError(
                f"local_files: none of the {len(found)} products in {self.folder} is dated "
                f"between {start.date()} and {end.date()} (they are from {_span(days)}); "
                "widen time_interval or add products of those dates."
            )
        opened = [_open_product(p, request.grid.crs) for p in dated]
        self.products = []
        for p in opened:
            if box(*p.bounds).intersects(request.aoi):
                self.products.append(p)
            else:
                log.warning("local_files: skipping %s: it does not overlap the AOI", p.name)
        if not self.products:
            raise SourceError(
                f"local_files: none of the {len(opened)} products in {self.folder} dated "
                f"{start.date()}..{end.date()} overlaps the AOI (bounds "
                f"{[round(v) for v in request.aoi.bounds]} in {request.grid.crs.to_string()}); "
                "download the Sentinel-2 tile(s) covering the AOI or check the AOI location."
            )
        self.products.sort(key=lambda p: (p.time, p.name))
        self._days: dict[pd.Timestamp, list[Product]] = {}
        for p in self.products:
            self._days.setdefault(p.time.normalize(), []).append(p)

    def acquisitions(self) -> pd.DatetimeIndex:
        """One time per UTC day: the earliest sensing time of that day's products."""
        return pd.DatetimeIndex([day[0].time for day in self._days.values()])

    def sun_angles(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Mean sun zenith and azimuth per acquisition (of its first product), when every
        acquisition's metadata gives them; else None."""
        suns = [day[0].sun for day in self._days.values()]
        if any(s is None for s in suns):
            return None
        zenith, azimuth = np.array(suns, dtype=np.float32).T
        return zenith, azimuth

    def fingerprint(self) -> dict[str, Any]:
        files = [
            [str(p.time), list(p.offsets), [[str(f), i, f.stat().st_size] for f, i in p.files]]
            for p in self.products
        ]
        return {
            "version": 1,
            "resampling": self.resampling,
            "radiometric_offset": self.radiometric_offset,
            "min_band_fraction": self.min_band_fraction,
            "products": files,
        }

    def read_tile(self, tile: Grid, times: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
        shape = (len(times), len(self.bands), tile.height, tile.width)
        bands = np.zeros(shape, dtype=np.uint16)
        is_data = np.zeros((len(times), tile.height, tile.width), dtype=bool)
        for i, time in enumerate(pd.DatetimeIndex(times)):
            for product in self._days.get(time.normalize(), []):
                if not box(*product.bounds).intersects(box(*tile.bounds)):
                    continue
                values, has_data = self._read_product(product, tile)
                take = has_data & ~is_data[i]
                bands[i][:, take] = values[:, take]
                is_data[i] |= take
        return bands, is_data

    def _read_product(self, product: Product, tile: Grid) -> tuple[np.ndarray, np.ndarray]:
        """(13, y, x) DN and the (y, x) data mask of one product on the tile."""
        values = np.zeros((len(self.bands), tile.height, tile.width), dtype=np.uint16)
        valid = np.zeros(values.shape, dtype=bool)
        method = Resampling[self.resampling]
        for b, (path, index) in enumerate(product.files):
            offset = product.offsets[b]
            try:
                warped = _warp_band(path, index, tile, method)
            except Exception as err:  # GDAL raises several types for damaged files
                raise SourceError(
                    f"{path}: band {self.bands[b]} of {product.name} cannot be read ({err}); "
                    "the file is damaged or truncated: download the product again."
                ) from err
            valid[b] = ~np.isnan(warped)
            dn = np.rint(np.where(valid[b], warped, 0)) + offset
            values[b] = np.where(valid[b], np.clip(dn, 1, 65535), 0).astype(np.uint16)
        has_data = valid.sum(axis=0) >= self.min_band_fraction * len(self.bands)
        values[:, ~has_data] = 0
        return values, has_data


def _warp_band(path: Path, index: int, tile: Grid, method: Resampling) -> np.ndarray:
    """Band ``index`` of ``path`` on the tile as float32, NaN where it has no data; reads
    only the file window under the tile (plus a few pixels for the resampling kernel)."""
    out = np.full((tile.height, tile.width), np.nan, dtype=np.float32)
    with rasterio.open(path) as src:
        left, bottom, right, top = transform_bounds(tile.crs, src.crs, *tile.bounds, 21)
        corners = (np.array([left, right, left, right]), np.array([bottom, bottom, top, top]))
        cols, rows = ~src.transform @ corners
        pad = 3  # source pixels beyond the tile, for the resampling kernel
        col0, row0 = max(math.floor(cols.min()) - pad, 0), max(math.floor(rows.min()) - pad, 0)
        col1 = min(math.ceil(cols.max()) + pad, src.width)
        row1 = min(math.ceil(rows.max()) + pad, src.height)
        if col1 <= col0 or row1 <= row0:
            return out
        win = Window(col0, row0, col1 - col0, row1 - row0)
        data = src.read(index, window=win)
        mask = src.read_masks(index, window=win) > 0
        source = np.where(mask & (data != 0), data, 0).astype(np.uint16)
        reproject(
            source, out, src_transform=src.transform @ Affine.translation(col0, row0),
            src_crs=src.crs, src_nodata=0, dst_transform=tile.transform, dst_crs=tile.crs,
            dst_nodata=np.nan, resampling=method,
        )  # fmt: skip
    return out


def find_products(folder: Path, radiometric_offset: OffsetMode = "auto") -> list[Product]:
    """Every product under ``folder`` (any layout), with time and offsets, not yet opened."""
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise SourceError(
            f"local_files: folder {folder} {what} (resolved: {folder.resolve()}); set "
            f"`folder` to the directory holding {_LAYOUTS}."
        )
    is_safe = _safe_name(folder.name)
    safes = [folder] if is_safe else sorted(p for p in folder.rglob("*") if _is_safe(p))
    products = [p for safe in safes for p in _safe_products(safe, radiometric_offset)]
    if not is_safe:
        loose = [
            p
            for p in sorted(folder.rglob("*"))
            if p.is_file() and not any(_safe_name(d) for d in p.relative_to(folder).parts[:-1])
        ]
        products += _band_file_products(
            [p for p in loose if p.suffix.lower() == ".jp2"], radiometric_offset
        )
        products += [
            _geotiff_product(p, radiometric_offset)
            for p in loose
            if p.suffix.lower() in (".tif", ".tiff")
        ]
    if not products:
        zips = sorted(folder.rglob("*.zip"))
        hint = f" It holds {len(zips)} .zip file(s): unzip them first." if zips else ""
        raise SourceError(f"local_files: {folder} holds no products: expected {_LAYOUTS}.{hint}")
    return products


def _safe_name(name: str) -> bool:
    return name.upper().endswith(".SAFE")


def _is_safe(path: Path) -> bool:
    return _safe_name(path.name) and path.is_dir()


def _safe_products(safe: Path, mode: OffsetMode) -> list[Product]:
    """One product per granule of a SAFE folder."""
    if "MSIL2A" in safe.name.upper():
        raise SourceError(
            f"local_files: {safe} is a Level-2A product; this source reads Level-1C (the "
            "pipelines mask clouds themselves): download the MSIL1C product of that date."
        )
    meta = _product_metadata(safe / "MTD_MSIL1C.xml")
    if meta["baseline"] is None and (m := _SAFE_BASELINE.search(safe.name)):
        meta["baseline"] = f"{m[1]}.{m[2]}"
    granules = sorted(g for g in (safe / "GRANULE").glob("*") if g.is_dir())
    if not granules:
        raise SourceError(
            f"local_files: {safe} has no GRANULE/<granule>/IMG_DATA folder; the product is "
            "incomplete: download it again (and unzip it fully)."
        )
    products = []
    for granule in granules:
        files = {}
        for f in sorted((granule / "IMG_DATA").glob("*")):
            if (m := _SAFE_BAND.search(f.name)) and m[1].upper() in S2_BANDS:
                files[m[1].upper()] = f
        name = str(granule)
        tile_meta = _tile_metadata(granule / "MTD_TL.xml")
        time = tile_meta["time"] or _time_in_names([*files.values(), safe], name)
        product = Product(name, time, _band_files(files, name), sun=tile_meta["sun"])
        products.append(_with_offsets(product, meta, mode))
    return products


def _band_file_products(files: list[Path], mode: OffsetMode) -> list[Product]:
    """Products of loose band files, one per folder, tile and time in their names."""
    groups: dict[tuple[Path, str, str], dict[str, Path]] = {}
    for f in files:
        m = _BAND_FILE.match(f.name)
        if m is None:
            log.warning(
                "local_files: ignoring %s: not named T<tile>_<YYYYMMDDTHHMMSS>_<band>.jp2", f
            )
            continue
        if m[3].upper() in S2_BANDS:  # TCI and other extras are not bands
            groups.setdefault((f.parent, m[1].upper(), m[2]), {})[m[3].upper()] = f
    products = []
    for (parent, tile, stamp), band_files in sorted(groups.items()):
        name = str(parent / f"{tile}_{stamp}_*.jp2")
        time = _parse_time(stamp, name)
        meta = _product_metadata(parent / "MTD_MSIL1C.xml")
        tile_meta = _tile_metadata(parent / "MTD_TL.xml")
        if not _same_day(meta["time"], time):  # metadata of another product: not ours
            meta = {"baseline": None, "offsets": None}
        sun = tile_meta["sun"] if _same_day(tile_meta["time"], time) else None
        product = Product(name, time, _band_files(band_files, name), sun=sun)
        products.append(_with_offsets(product, meta, mode))
    return products


def _same_day(a: pd.Timestamp | None, b: pd.Timestamp) -> bool:
    return a is not None and a.normalize() == b.normalize()


def _geotiff_product(path: Path, mode: OffsetMode) -> Product:
    """A multi-band GeoTIFF as one product (bands by description, else in S2 order)."""
    with _open(path) as src:
        tags = {k.upper(): v for k, v in src.tags().items()}
        names = [_band_name(d) for d in src.descriptions]
        count = src.count
    named = {n: i + 1 for i, n in enumerate(names) if n in S2_BANDS}
    if named:
        missing = [b for b in S2_BANDS if b not in named]
        if missing:
            raise SourceError(
                f"local_files: {path} has no band {', '.join(missing)} (its band descriptions "
                f"name {', '.join(named)}); export all 13 Sentinel-2 L1C bands."
            )
        files = tuple((path, named[b]) for b in S2_BANDS)
    elif count == len(S2_BANDS):
        files = tuple((path, i + 1) for i in range(count))
    else:
        raise SourceError(
            f"local_files: {path} has {count} bands and no band descriptions naming them; "
            "give 13 bands in Sentinel-2 order (B01 ... B08, B8A, B09 ... B12) or set their "
            "descriptions to the band names."
        )
    stamp = next((tags[k] for k in _TIME_TAGS if tags.get(k)), None)
    time = _parse_time(stamp, str(path)) if stamp else _time_in_names([path], str(path))
    offsets = tags.get("RADIO_ADD_OFFSET")
    meta = {"baseline": tags.get("PROCESSING_BASELINE"), "offsets": None}
    if offsets:
        try:
            values = [int(float(v)) for v in offsets.split(",")]
        except ValueError:
            values = []
        if len(values) not in (1, len(S2_BANDS)):
            raise SourceError(
                f"local_files: {path} has tag RADIO_ADD_OFFSET={offsets!r}; give one integer "
                "or 13 comma-separated ones (S2 band order)."
            )
        meta["offsets"] = tuple(values * len(S2_BANDS) if len(values) == 1 else values)
    sun = None
    for zenith, azimuth in _SUN_TAGS:
        if tags.get(zenith) and tags.get(azimuth):
            try:
                sun = (float(tags[zenith]), float(tags[azimuth]))
            except ValueError:
                log.warning("local_files: %s has unreadable %s/%s tags", path, zenith, azimuth)
            break
    return _with_offsets(Product(str(path), time, files, sun=sun), meta, mode)


def _band_name(description: str | None) -> str | None:
    """'B1', 'b01', 'B8A' -> the S2 band name, else None."""
    m = re.fullmatch(r"\s*B0?(\d{1,2}|8A)\s*", description or "", re.IGNORECASE)
    if m is None:
        return None
    digits = m[1].upper()
    return f"B{digits.zfill(2)}" if digits != "8A" else "B8A"


def _band_files(files: dict[str, Path], name: str) -> tuple[tuple[Path, int], ...]:
    missing = [b for b in S2_BANDS if b not in files]
    if missing:
        raise SourceError(
            f"local_files: product {name} has no band {', '.join(missing)} (found "
            f"{', '.join(sorted(files)) or 'none'}); download the product again, or remove "
            "it from the folder."
        )
    return tuple((files[b], 1) for b in S2_BANDS)


def _with_offsets(product: Product, meta: dict, mode: OffsetMode) -> Product:
    """The product with the offsets its DN need (see ``radiometric_offset`` in local_files)."""
    n = len(S2_BANDS)
    if mode == "none":
        offsets = (0,) * n
    elif meta.get("offsets") is not None:
        offsets = tuple(meta["offsets"])
    elif mode == "metadata":
        offsets = (0,) * n
    elif meta.get("baseline") is not None:
        offsets = (BASELINE_04_OFFSET if _baseline(meta["baseline"]) >= 4 else 0,) * n
    else:
        offsets = (BASELINE_04_OFFSET if product.time >= BASELINE_04_START else 0,) * n
    return replace(product, offsets=offsets)


def _baseline(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise SourceError(f"local_files: processing baseline {text!r} is not a number") from None


def _time_at(root, tag: str, path: Path):
    """The time in the first ``tag`` element of a metadata file, or None when it has none."""
    element = _first(root, tag)
    if element is None or not element.text:
        return None
    return _parse_time(element.text.strip(), str(path))


def _product_metadata(path: Path) -> dict:
    """Start time, baseline and per-band RADIO_ADD_OFFSET of an MTD_MSIL1C.xml (None where
    absent)."""
    meta: dict[str, Any] = {"time": None, "baseline": None, "offsets": None}
    root = _xml(path)
    if root is None:
        return meta
    meta["time"] = _time_at(root, "PRODUCT_START_TIME", path)
    baseline = _first(root, "PROCESSING_BASELINE")
    meta["baseline"] = baseline.text.strip() if baseline is not None and baseline.text else None
    found = {}
    for el in _all(root, "RADIO_ADD_OFFSET"):
        try:
            found[int(el.get("band_id", ""))] = int(float(el.text or ""))
        except ValueError:
            raise SourceError(
                f"local_files: {path} has an unreadable RADIO_ADD_OFFSET ({ET.tostring(el)!r})"
            ) from None
    if found:
        missing = [S2_BANDS[i] for i in range(len(S2_BANDS)) if i not in found]
        if missing:
            raise SourceError(f"local_files: {path} gives no RADIO_ADD_OFFSET for {missing}")
        meta["offsets"] = tuple(found[i] for i in range(len(S2_BANDS)))
    return meta


def _tile_metadata(path: Path) -> dict:
    """SENSING_TIME and mean sun angles of a granule's MTD_TL.xml (None where absent)."""
    meta: dict[str, Any] = {"time": None, "sun": None}
    root = _xml(path)
    if root is None:
        return meta
    meta["time"] = _time_at(root, "SENSING_TIME", path)
    sun = _first(root, "Mean_Sun_Angle")
    if sun is not None:
        zenith, azimuth = _first(sun, "ZENITH_ANGLE"), _first(sun, "AZIMUTH_ANGLE")
        try:
            meta["sun"] = (float(zenith.text), float(azimuth.text))
        except (AttributeError, TypeError, ValueError):
            log.warning("local_files: %s has an unreadable Mean_Sun_Angle; ignored", path)
    return meta


def _xml(path: Path) -> ET.Element | None:
    if not path.is_file():
        return None
    try:
        return ET.parse(path).getroot()
    except ET.ParseError as err:
        raise SourceError(
            f"local_files: metadata file {path} is not valid XML ({err}); it is damaged: "
            "download the product again."
        ) from None


def _all(root: ET.Element, tag: str):
    return (el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == tag)


def _first(root: ET.Element, tag: str) -> ET.Element | None:
    return next(_all(root, tag), None)


def _parse_time(text: str, where: str) -> pd.Timestamp:
    try:
        time = pd.Timestamp(text)
    except ValueError:
        raise SourceError(f"local_files: {where}: {text!r} is not a date/time") from None
    return time.tz_convert("UTC").tz_localize(None) if time.tzinfo else time


def _time_in_names(paths: list[Path], name: str) -> pd.Timestamp:
    """The first date/time written in one of the file names (UTC)."""
    for path in paths:
        for pattern, fmt in _NAME_TIMES:
            if m := pattern.search(path.name):
                try:
                    return pd.Timestamp(pd.to_datetime(m[1], format=fmt))
                except ValueError:
                    continue
    raise SourceError(
        f"local_files: cannot tell when {name} was acquired: no SENSING_TIME metadata or tag "
        "and no date in its name; add a SENSING_TIME tag (gdal_edit -mo "
        "SENSING_TIME=2021-06-01T10:30:00) or put the date in the name (..._20210601.tif)."
    )


def _open(path: Path):
    try:
        return rasterio.open(path)
    except RasterioError as err:
        raise SourceError(
            f"local_files: {path} cannot be opened ({err}); the file is damaged or "
            "truncated: download the product again."
        ) from None


def _open_product(product: Product, crs) -> Product:
    """Check every file of a product opens and is georeferenced; its extent in ``crs``."""
    bounds, seen = None, set()
    for (path, _), band in zip(product.files, S2_BANDS, strict=True):
        if path in seen:
            continue
        seen.add(path)
        with _open(path) as src:
            if src.crs is None or src.transform.is_identity:
                raise SourceError(
                    f"local_files: {path} (band {band} of {product.name}) has no "
                    "georeferencing; use the product's original files."
                )
            if bounds is None:
                bounds = transform_bounds(src.crs, crs, *src.bounds, densify_pts=21)
    return replace(product, bounds=bounds)


def _span(days: list[str]) -> str:
    return days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}"
