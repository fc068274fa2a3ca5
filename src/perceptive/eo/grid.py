"""The pixel grid of an area of interest: projected CRS, pixel size, transform, pixel centres.

Every cube, label raster and map of one AOI shares one grid, so they line up pixel for pixel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
from affine import Affine
from pyproj import CRS, Transformer
from shapely import geometry as sg
from shapely.geometry.base import BaseGeometry


class GridError(ValueError):
    """The AOI or grid settings cannot give a valid pixel grid."""


@dataclass(frozen=True)
class Grid:
    """A north-up pixel grid: ``crs``, top-left corner, pixel size and shape.

    Pixels are ``resolution`` wide and ``resolution_y`` tall (None: square, the usual case).
    A grid read from elsewhere keeps its own pixel size: an eo-learn EOPatch bbox split into
    its array shape gives e.g. 9.995 x 9.998 m pixels, and snapping them to 10 m would shift
    every pixel of the patch.
    """

    crs: CRS
    left: float
    top: float
    resolution: float
    width: int
    height: int
    resolution_y: float | None = None

    def __post_init__(self) -> None:
        if not (self.resolution > 0 and (self.resolution_y is None or self.resolution_y > 0)):
            raise GridError(
                f"Pixel sizes must be positive, got {self.resolution} x {self.resolution_y}."
            )

    @property
    def res_x(self) -> float:
        """Pixel width in CRS units."""
        return self.resolution

    @property
    def res_y(self) -> float:
        """Pixel height in CRS units (positive; rows grow southwards)."""
        return self.resolution if self.resolution_y is None else self.resolution_y

    @property
    def is_square(self) -> bool:
        return self.resolution_y is None or math.isclose(
            self.resolution_y, self.resolution, rel_tol=1e-9
        )

    @property
    def pixel_area(self) -> float:
        """Area of one pixel in squared CRS units (m²), e.g. for class areas."""
        return self.res_x * self.res_y

    @property
    def transform(self) -> Affine:
        return Affine(self.res_x, 0.0, self.left, 0.0, -self.res_y, self.top)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in the grid CRS."""
        return (
            self.left,
            self.top - self.height * self.res_y,
            self.left + self.width * self.res_x,
            self.top,
        )

    @property
    def x(self) -> np.ndarray:
        """Pixel-centre x coordinates."""
        return self.left + (np.arange(self.width) + 0.5) * self.res_x

    @property
    def y(self) -> np.ndarray:
        """Pixel-centre y coordinates (decreasing: north-up)."""
        return self.top - (np.arange(self.height) + 0.5) * self.res_y

    def window(self, row_off: int, col_off: int, height: int, width: int) -> Grid:
        """The sub-grid of a window (e.g. one tile or one chunk)."""
        return Grid(
            self.crs,
            self.left + col_off * self.res_x,
            self.top - row_off * self.res_y,
            self.resolution,
            width,
            height,
            self.resolution_y,
        )


def utm_crs_for(lon: float, lat: float) -> CRS:
    """The WGS84 / UTM zone CRS that contains a WGS84 point."""
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise GridError(f"Point ({lon}, {lat}) is not a WGS84 longitude/latitude.")
    zone = int((lon + 180) // 6) % 60 + 1
    epsg = (32600 if lat >= 0 else 32700) + zone
    return CRS.from_epsg(epsg)


def reproject_geometry(geom: BaseGeometry, src: CRS, dst: CRS) -> BaseGeometry:
    """Reproject a shapely geometry between two CRSs (x/y axis order)."""
    if CRS(src) == CRS(dst):
        return geom
    project = Transformer.from_crs(src, dst, always_xy=True).transform
    return shapely.transform(geom, project, interleaved=False)


def aoi_geometry(aoi: dict) -> tuple[BaseGeometry, CRS]:
    """Read the ``aoi`` parameter: a ``bbox`` [minx, miny, maxx, maxy] or a ``geometry``
    (GeoJSON-like mapping) or a ``file`` (any vector format geopandas reads), plus ``crs``.

    Raises a ``GridError`` that says what to fix when the AOI is invalid or has no area.
    """
    if not isinstance(aoi, dict):
        raise GridError(
            "Parameter 'aoi' must be a mapping with 'bbox', 'geometry' or 'file' "
            f"(and 'crs'), got {type(aoi).__name__}."
        )
    kinds = [k for k in ("bbox", "geometry", "file") if aoi.get(k) is not None]
    if len(kinds) != 1:
        raise GridError(
            "Parameter 'aoi' needs exactly one of 'bbox', 'geometry' or 'file'; "
            f"got {kinds or 'none'}."
        )
    try:
        crs = CRS.from_user_input(aoi.get("crs", "EPSG:4326"))
    except Exception as err:  # pyproj raises CRSError, a plain Exception subclass
        raise GridError(f"aoi.crs {aoi.get('crs')!r} is not a CRS pyproj knows: {err}") from err

    if kinds == ["bbox"]:
        bbox = list(aoi["bbox"])
        if len(bbox) != 4:
            raise GridError(f"aoi.bbox must be [minx, miny, maxx, maxy], got {bbox}.")
        minx, miny, maxx, maxy = map(float, bbox)
        if minx >= maxx or miny >= maxy:
            raise GridError(
                f"aoi.bbox {bbox} has no area: it must be [minx, miny, maxx, maxy] "
                "with minx < maxx and miny < maxy."
            )
        geom = sg.box(minx, miny, maxx, maxy)
    elif kinds == ["geometry"]:
        try:
            geom = sg.shape(aoi["geometry"])
        except Exception as err:  # shapely raises several types for malformed mappings
            raise GridError(f"aoi.geometry is not a GeoJSON geometry: {err}") from err
    else:
        import geopandas as gpd

        try:
            frame = gpd.read_file(aoi["file"])
        except Exception as err:  # pyogrio raises DataSourceError and others, file or format
            raise GridError(
                f"aoi.file {aoi['file']!r} cannot be read as a vector file ({err}); give the "
                "path of a GeoPackage, GeoJSON or Shapefile holding the AOI polygon."
            ) from None
        if frame.crs is None:
            raise GridError(f"AOI file {aoi['file']} has no CRS; set one (e.g. in QGIS) and retry.")
        geom, crs = frame.union_all(), frame.crs

    if not geom.is_valid:
        from shapely.validation import explain_validity

        raise GridError(
            f"AOI geometry is invalid ({explain_validity(geom)}); repair it, e.g. with "
            "shapely.make_valid or QGIS 'Fix geometries'."
        )
    if geom.is_empty or geom.area <= 0:
        raise GridError("AOI geometry has no area; give a polygon or a bbox, not a point or line.")
    if _inside_area_of_use(geom, crs) is False and _inside_area_of_use(_swap_xy(geom), crs):
        raise GridError(
            f"AOI coordinates {[round(v, 4) for v in geom.bounds]} look swapped: they lie outside "
            f"the area of {crs.name}, and would lie inside with x and y exchanged. Give x "
            "(easting or longitude) first: bbox [minx, miny, maxx, maxy], GeoJSON [lon, lat]."
        )
    west, south, east, north = geom.bounds
    if crs.is_geographic and not (-180 <= west <= east <= 180 and -90 <= south <= north <= 90):
        raise GridError(
            f"AOI coordinates {[round(v, 4) for v in geom.bounds]} are not longitude/latitude, "
            f"which aoi.crs {crs.to_string()} says they are. If they are metres, set aoi.crs "
            "to their projected CRS (e.g. EPSG:32633 for UTM zone 33N)."
        )
    return geom, crs


def _swap_xy(geom: BaseGeometry) -> BaseGeometry:
    return shapely.transform(geom, lambda xy: xy[:, ::-1])


def _inside_area_of_use(geom: BaseGeometry, crs: CRS, margin_deg: float = 10.0) -> bool | None:
    """Whether the geometry lies in the CRS's area of use (padded by ``margin_deg``, since a
    UTM zone is usable well past its edges); None when the CRS declares no area."""
    area = crs.area_of_use
    if area is None:
        return None
    try:
        lon_lat = reproject_geometry(geom, crs, CRS.from_epsg(4326))
    except Exception:  # pyproj raises ProjError for coordinates it cannot invert
        return False
    west, south, east, north = lon_lat.bounds
    finite = all(math.isfinite(v) for v in (west, south, east, north))
    return (
        finite
        and -90 <= south <= north <= 90
        and west >= area.west - margin_deg
        and east <= area.east + margin_deg
        and south >= area.south - margin_deg
        and north <= area.north + margin_deg
    )


def aoi_lonlat(geom: BaseGeometry, crs: CRS) -> BaseGeometry:
    """The AOI in WGS84 longitude/latitude, with its true extent: an AOI drawn across the
    antimeridian (vertices at 179.8 and -179.8) comes back with longitudes in 0..360, so it is
    0.4° wide, not 359.6°. An AOI wider than 180° of longitude either way is refused: no UTM
    grid holds it."""
    lonlat = reproject_geometry(geom, crs, CRS.from_epsg(4326))
    west, _, east, _ = lonlat.bounds
    if east - west <= 180:
        return lonlat
    shifted = shapely.transform(lonlat, lambda xy: np.column_stack([xy[:, 0] % 360, xy[:, 1]]))
    west_s, _, east_s, _ = shifted.bounds
    if east_s - west_s > 180 or not shifted.is_valid or shifted.area == 0:
        raise GridError(
            f"The AOI is too large: it spans {east - west:.1f}° of longitude, more than one UTM "
            "grid can hold. Split it into areas of a few UTM zones (6° each) and run each; an "
            "AOI across the antimeridian is fine when its vertices go the short way round."
        )
    return shifted


def grid_for_aoi(
    geom: BaseGeometry, crs: CRS, resolution: float = 10.0, target_crs: str | None = None
) -> Grid:
    """The grid covering the AOI: UTM zone of its centre unless ``target_crs`` is given,
    corners snapped to multiples of the resolution (as Sentinel-2 tiles are)."""
    if resolution <= 0:
        raise GridError(f"resolution must be positive, got {resolution}.")
    if target_crs is not None:
        dst = CRS.from_user_input(target_crs)
    else:
        centre = aoi_lonlat(geom, crs).centroid  # the antimeridian taken into account
        dst = utm_crs_for((centre.x + 180) % 360 - 180, centre.y)
    if not dst.is_projected:
        raise GridError(f"Grid CRS {dst.to_string()} is not projected; use a UTM CRS (metres).")
    minx, miny, maxx, maxy = reproject_geometry(geom, crs, dst).bounds
    left = math.floor(minx / resolution) * resolution
    top = math.ceil(maxy / resolution) * resolution
    width = max(1, math.ceil((maxx - left) / resolution - 1e-9))
    height = max(1, math.ceil((top - miny) / resolution - 1e-9))
    return Grid(dst, left, top, float(resolution), width, height)


def grid_of(ds) -> Grid:
    """The grid of a cube (an xarray object with x/y pixel-centre coordinates and a CRS).

    The pixel width comes from the x spacing and the height from the y spacing; a grid whose
    two sizes agree (to 1e-9) is square (``resolution_y`` None). An axis of one pixel takes the
    other axis' size.
    """
    x, y = np.asarray(ds["x"], dtype=np.float64), np.asarray(ds["y"], dtype=np.float64)
    if x.size < 2 and y.size < 2:
        raise GridError("Cannot infer the pixel size of a 1 x 1 pixel cube.")
    res_x = float(x[1] - x[0]) if x.size > 1 else float(y[0] - y[1])
    res_y = float(y[0] - y[1]) if y.size > 1 else res_x
    if res_x <= 0 or res_y <= 0:
        raise GridError(
            f"The cube's x must increase and y decrease (north-up), got steps {res_x} and "
            f"{-res_y}; flip the cube with ds.sortby('x').sortby('y', ascending=False)."
        )
    square = math.isclose(res_x, res_y, rel_tol=1e-9)
    return Grid(
        CRS.from_user_input(ds.rio.crs),
        float(x[0] - res_x / 2),
        float(y[0] + res_y / 2),
        res_x,
        int(x.size),
        int(y.size),
        None if square else res_y,
    )
