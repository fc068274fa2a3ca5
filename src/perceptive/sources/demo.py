"""The offline demo AOI: deterministic synthetic Sentinel-2 L1C for one year.

Everything global (parcels, roads, a river, clouds, cirrus, haze, shadows, snow, swath gaps,
atmosphere) is a cheap vector or parametric description of the whole AOI, drawn once from
``seed``. Pixels are only made chunk by chunk: each dask chunk (whole time series, 13 bands,
one spatial tile) is a pure function of (seed, window), so the cube is identical whatever the
tiling and never needs the AOI in memory.

The scene is meant to be about as hard as real data, so that swapping a link shows in the
score (measured against a real Slovenian 2017 patch by ``benchmarks/demo_realism.py``):
parcel edges are curved (a smooth warp of a Voronoi tessellation), a river and a few roads
cross the AOI (water and artificial-surface parcels, often narrower than two pixels); every
parcel has its own phenology (green-up, mowing, drought, harvest dates...) and some classes
overlap spectrally (fodder crops look like grassland, shrubland sits between grassland and
forest); snow comes in winter episodes that last weeks and the snow-and-ice parcels melt in
spring; clouds have thin fringes below the opacity a detector must find, cirrus is often too
thin to see, haze varies across the AOI, and low winter sun lengthens the atmospheric path.

How a pixel is made, per frame:

1. parcels are rasterised 4x supersampled on the window: coverage of the two main parcels gives
   the mixed pixels at parcel edges and the majority class (``truth().land_cover``);
2. each parcel has a surface spectrum per frame: a mix of a green endmember, dry vegetation and
   a background (soil, rock, urban, water) with fractions from its phenology (sowing/harvest,
   leaf-on/off, mowing, drought, turbidity, snow), plus per-pixel texture;
3. cloud shadows darken the surface, an atmosphere (path reflectance growing with haze and
   air mass, transmittance, water vapour in B09) turns it into TOA reflectance, thin cirrus and
   clouds are composited on top;
4. sensor noise, quantisation to DN (reflectance x 10000), 0 where the frame has no data.

Spatial fields (cloud fields, cirrus streaks, haze, texture, the parcel-edge warp) are sums of
a few random Fourier components, so they are continuous across chunk borders; per-pixel noise
comes from an integer hash of the global pixel position.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import dask
import dask.array as da
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
import xarray as xr
from affine import Affine
from pyproj import CRS
from rasterio import features
from scipy.spatial import cKDTree
from scipy.special import ndtri

from perceptive.eo.cube import QUANTIFICATION, S2_BANDS, attach_grid, make_l1c_cube
from perceptive.eo.grid import Grid, grid_of
from perceptive.eo.legend import DEFAULT_LEGEND, class_names

__all__ = ["DemoScene", "demo_grid", "demo_scene"]

#: Bump when the generator changes, so cached outputs (dask keys, catalog versions) differ.
GENERATOR_VERSION = 2

# ---------------------------------------------------------------------------------------------
# Spectral library (surface reflectance, bands in S2_BANDS order; the B10 column is unused for
# surfaces: the 1375 nm band sees almost no surface, see _toa).
# ---------------------------------------------------------------------------------------------
NB = len(S2_BANDS)
I_B09, I_B10, I_B11 = (S2_BANDS.index(b) for b in ("B09", "B10", "B11"))

#         B01    B02    B03    B04    B05    B06    B07    B08    B8A    B09   B10  B11    B12
_EM = {
    "crop": [0.020, 0.030, 0.075, 0.024, 0.115, 0.330, 0.440, 0.470, 0.490, 0.490, 0, 0.220, 0.095],
    "broadleaf": [0.018, 0.026, 0.062, 0.021, 0.098, 0.290, 0.375, 0.405, 0.420, 0.420, 0, 0.190, 0.080],
    "conifer": [0.012, 0.018, 0.042, 0.014, 0.062, 0.175, 0.235, 0.255, 0.265, 0.265, 0, 0.120, 0.050],
    "dry": [0.040, 0.055, 0.085, 0.120, 0.160, 0.200, 0.225, 0.240, 0.255, 0.260, 0, 0.330, 0.240],
    "soil_dark": [0.045, 0.060, 0.085, 0.110, 0.135, 0.160, 0.180, 0.200, 0.210, 0.215, 0, 0.270, 0.230],
    "soil_bright": [0.075, 0.095, 0.135, 0.185, 0.210, 0.230, 0.245, 0.260, 0.270, 0.280, 0, 0.350, 0.310],
    "rock": [0.080, 0.100, 0.130, 0.160, 0.180, 0.195, 0.205, 0.215, 0.220, 0.225, 0, 0.285, 0.245],
    "urban": [0.065, 0.075, 0.090, 0.100, 0.110, 0.120, 0.130, 0.140, 0.145, 0.150, 0, 0.200, 0.180],
    "water": [0.030, 0.035, 0.040, 0.022, 0.015, 0.008, 0.006, 0.005, 0.004, 0.003, 0, 0.002, 0.001],
    "turbid": [0.045, 0.055, 0.085, 0.070, 0.055, 0.025, 0.018, 0.015, 0.012, 0.008, 0, 0.004, 0.002],
    "snow": [0.900, 0.900, 0.880, 0.850, 0.830, 0.810, 0.790, 0.760, 0.740, 0.600, 0, 0.090, 0.070],
    "asphalt": [0.055, 0.060, 0.068, 0.075, 0.080, 0.085, 0.090, 0.095, 0.098, 0.100, 0, 0.120, 0.110],
}  # fmt: skip
_EM = {k: np.asarray(v, dtype=np.float32) for k, v in _EM.items()}

# Atmosphere: TOA = path * aerosol + trans * surface (trans of B09 scaled by water vapour).
_PATH = np.array(
    [0.095, 0.070, 0.038, 0.017, 0.016, 0.013, 0.012, 0.010, 0.009, 0.006, 0.0, 0.002, 0.001],
    dtype=np.float32,
)
_TRANS = np.array(
    [0.78, 0.82, 0.87, 0.90, 0.90, 0.91, 0.92, 0.92, 0.93, 0.50, 0.0, 0.92, 0.90], dtype=np.float32
)
# Opaque cloud TOA reflectance (B10 set per frame from cloud-top height).
_CLOUD = np.array(
    [0.50, 0.48, 0.47, 0.47, 0.48, 0.49, 0.50, 0.53, 0.53, 0.20, 0.0, 0.425, 0.25], dtype=np.float32
)  # B09 low: water vapour above the cloud top still absorbs
# Reflectance a cirrus layer of optical thickness 1 adds (it also dims what is below by 10 %).
_CIRRUS = np.array(
    [0.050, 0.050, 0.050, 0.045, 0.045, 0.045, 0.045, 0.045, 0.045, 0.040, 0.045, 0.040, 0.030],
    dtype=np.float32,
)
# How much a full shadow removes of the surface signal (diffuse skylight is blue-rich).
_SHADOW = np.array(
    [0.55, 0.62, 0.68, 0.72, 0.75, 0.78, 0.80, 0.82, 0.82, 0.82, 0.0, 0.85, 0.85], dtype=np.float32
)

# ---------------------------------------------------------------------------------------------
# Landscape: zones (landscape types) with class probabilities and parcel spacing (m).
# ---------------------------------------------------------------------------------------------
CULTIVATED, FOREST, GRASS, SHRUB, WATER, WETLAND, TUNDRA, ARTIFICIAL, BARE, SNOW = range(1, 11)
_ZONES = {
    # name: (share of zones, parcel spacing m, {class: probability})
    "agriculture": (0.42, 170.0, {1: 0.72, 3: 0.15, 2: 0.04, 8: 0.04, 9: 0.02, 5: 0.015, 6: 0.015}),
    "forest": (0.27, 330.0, {2: 0.78, 4: 0.08, 3: 0.07, 6: 0.03, 5: 0.02, 9: 0.02}),
    "pasture": (0.13, 220.0, {3: 0.60, 1: 0.15, 4: 0.10, 2: 0.10, 6: 0.03, 5: 0.02}),
    "urban": (0.05, 95.0, {8: 0.65, 3: 0.15, 9: 0.08, 2: 0.05, 5: 0.02, 1: 0.05}),
    "lake": (0.06, 450.0, {5: 0.85, 6: 0.15}),
    "highland": (0.07, 260.0, {9: 0.28, 7: 0.25, 10: 0.20, 4: 0.20, 3: 0.07}),
}  # fmt: skip
_ZONE_NAMES = tuple(_ZONES)
_ZONE_SPACING = 1200.0  # m between zone centres
_SUPERSAMPLE = 4


# ---------------------------------------------------------------------------------------------
# Small deterministic helpers
# ---------------------------------------------------------------------------------------------
def _hash32(*keys: np.ndarray | int) -> np.ndarray:
    """An avalanche integer hash of (broadcast) uint32 keys; the same inputs, the same output."""
    with np.errstate(over="ignore"):
        return _hash32_impl(*keys)


def _hash32_impl(*keys):
    h = np.uint32(0x9E3779B9)
    for k in keys:
        h = np.asarray(h, dtype=np.uint32)
        k = np.asarray(k).astype(np.uint32)
        h = h ^ (k * np.uint32(0x85EBCA6B))
        h = (h << np.uint32(13)) | (h >> np.uint32(19))
        h = h * np.uint32(5) + np.uint32(0xE6546B64)
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x7FEB352D)
    h = h ^ (h >> np.uint32(15))
    h = h * np.uint32(0x846CA68B)
    return h ^ (h >> np.uint32(16))


@dataclass(frozen=True)
class _Fourier:
    """A smooth random field: sum of cosines, unit variance, evaluated on any window."""

    kx: np.ndarray  # rad/m
    ky: np.ndarray
    phase: np.ndarray
    amp: np.ndarray

    @classmethod
    def random(cls, rng, n=24, wl=(300.0, 3000.0), slope=1.0, angle=None, spread=np.pi):
        lam = np.exp(rng.uniform(np.log(wl[0]), np.log(wl[1]), n))
        k = 2 * np.pi / lam
        centre = rng.uniform(0, np.pi) if angle is None else angle
        theta = centre + rng.uniform(-spread / 2, spread / 2, n)
        amp = (lam / wl[1]) ** slope * rng.uniform(0.5, 1.0, n)
        amp = amp / np.sqrt(np.sum(amp**2) / 2)
        return cls(k * np.cos(theta), k * np.sin(theta), rng.uniform(0, 2 * np.pi, n), amp)

    def __call__(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Field on the grid (v rows) x (u columns); separable, so O(n (h + w) + n h w). The
        sum runs in a fixed order in numpy (no BLAS): a pixel has the same value in whatever
        window it is made."""
        rows = np.multiply.outer(self.ky, v)  # (n, h)
        cols = np.multiply.outer(self.kx, u) + self.phase[:, None]  # (n, w)
        amp = self.amp[:, None]
        cos_r, sin_r = (
            (amp * np.cos(rows)).astype(np.float32),
            (amp * np.sin(rows)).astype(np.float32),
        )
        cos_c, sin_c = np.cos(cols).astype(np.float32), np.sin(cols).astype(np.float32)
        out = np.zeros((v.size, u.size), dtype=np.float32)
        term = np.empty_like(out)
        for i in range(len(self.amp)):
            # einsum makes the outer product ~2x faster than broadcasting (one row at a time)
            # and gives the same float32 products: no index is summed over
            out += np.einsum("j,k->jk", cos_r[i], cos_c[i], out=term)
            out -= np.einsum("j,k->jk", sin_r[i], sin_c[i], out=term)
        return out

    def at(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Field at scattered points (x, y), float64 (the same field as on a grid); by
        slices of points, so that many points never need a large temporary array."""
        out = np.empty(len(x))
        for i in range(0, len(x), 65536):
            sl = slice(i, i + 65536)
            phase = np.multiply.outer(x[sl], self.kx) + np.multiply.outer(y[sl], self.ky)
            out[sl] = np.cos(phase + self.phase) @ self.amp
        return out


def _smooth01(x):
    """Logistic step, float32."""
    return (1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Frames: clouds, cirrus, haze, shadows, gaps, snow, atmosphere
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Frame:
    kind: str  # "clear" | "partly" | "cloudy"
    aerosol: float  # mean scaling of the path reflectance
    haze: _Fourier | None  # its variation across the AOI (unit variance), hazy frames only
    haze_amp: float  # relative strength of that variation
    airmass: float  # path lengthening by the sun's zenith angle
    vapour: float  # B09 transmittance factor
    field: _Fourier | None  # stratiform / cumulus field
    field_threshold: float
    field_opacity: float
    field_fringe: float  # opacity of the thin veil around field clouds
    layer: _Fourier | None  # a thin layer (altostratus, haze) over much of the AOI
    layer_opacity: float
    blobs: np.ndarray  # (n, 7): cx, cy, radius, opacity, edge, fringe width, fringe opacity
    edge_noise: _Fourier
    cloud_brightness: float
    cloud_b10: float
    shadow_shift: tuple[float, float]  # (du, dv) m: shadow(u, v) = cloud(u + du, v + dv)
    sun: tuple[float, float]  # (zenith, azimuth) degrees, azimuth clockwise from north
    cirrus: _Fourier | None
    cirrus_max: float
    gap: tuple[float, float, float] | None  # nodata where a*u_n + b*v_n > c (AOI-normalised)
    snow: float  # regional snow cover 0..1 (parcels take it by their susceptibility)


def _make_frames(rng, times: pd.DatetimeIndex, bounds_m: tuple[float, float]) -> list[_Frame]:
    n = len(times)
    doy = times.day_of_year.to_numpy()
    winter = np.cos(2 * np.pi * (doy - 15) / 365.25)  # 1 mid-January, -1 mid-July
    kind = _frame_kinds(rng, winter)
    # Swath-edge gaps on ~8 % of frames (at least one when there are 10+ frames).
    gap_frames = set(rng.choice(n, size=max(int(n >= 10), round(0.08 * n)), replace=False).tolist())
    snow = _snow_cover(rng, doy)
    frames = []
    for i in range(n):
        sub = np.random.default_rng(rng.integers(2**63))
        frames.append(
            _frame(sub, str(kind[i]), doy[i], winter[i], snow[i], i in gap_frames, bounds_m)
        )
    return frames


def _frame_kinds(rng, winter: np.ndarray) -> np.ndarray:
    """ "clear", "partly" or "cloudy" per frame: ~30 % clear frames spread over the whole year
    (one in every stretch of ~3 frames, winter stretches skipped more often), then of the rest
    ~80 % partly and ~20 % overcast. Every season has a few clear views, as in a real year,
    but most acquisitions hold broken cloud: patches of km scale that hit some fields and not
    their neighbours, which is what an unmasked time series cannot average away."""
    n = len(winter)
    kind = np.full(n, "cloudy", dtype=object)
    edges = np.linspace(0, n, round(0.32 * n) + 1).astype(int)
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        i = int(rng.integers(a, b)) if b > a else -1
        if i >= 0 and rng.uniform() > 0.3 * max(winter[i], 0):
            kind[i] = "clear"
    rest = np.flatnonzero(kind != "clear")
    kind[rest[rng.uniform(size=rest.size) < 0.8]] = "partly"
    return kind


def _snow_cover(rng, doy: np.ndarray) -> np.ndarray:
    """Regional snow cover per frame: a few snowfalls from December to mid-March, each melting
    over one to three weeks, so that snow lies over several acquisitions as it does in a real
    winter (and not on single, isolated frames)."""
    n = int(rng.integers(2, 5))
    start = rng.uniform(-35, 70, n)  # days from 1 January (negative: December)
    depth = rng.uniform(0.4, 1.0, n)
    tau = rng.uniform(6, 18, n)
    t = np.where(doy > 300, doy - 365.25, doy).astype(np.float64)
    dt = t[:, None] - start[None]
    cover = np.max(np.where(dt >= 0, depth * np.exp(-np.maximum(dt, 0) / tau), 0), axis=1)
    return np.where(cover > 0.05, cover, 0.0)


def _frame(sub, kind: str, doy: int, winter: float, snow: float, gap: bool, bounds_m) -> _Frame:
    """One acquisition's atmosphere, drawn from its own generator ``sub``."""
    width_m, height_m = bounds_m
    # Sun geometry (mid-latitude, 10:30 local): zenith ~30 deg in June, ~68 deg in December.
    zenith = np.deg2rad(49 - 19 * np.cos(2 * np.pi * (doy - 172) / 365.25))
    azimuth = np.deg2rad(155.0)
    height = sub.uniform(800, 2500)
    reach = height * np.tan(zenith)
    shift = (float(reach * np.sin(azimuth)), float(-reach * np.cos(azimuth)))
    field, thr, fop, blobs = _clouds(sub, kind, width_m, height_m, reach)
    cirrus = None
    if sub.uniform() < (0.6 if kind != "clear" else 0.2):
        cirrus = _Fourier.random(sub, 10, wl=(400, 6000), slope=0.7, spread=0.5)
    layer = None
    if kind != "clear" and sub.uniform() < 0.8:
        layer = _Fourier.random(sub, 8, wl=(300, 2500), slope=0.8)
    high = sub.uniform() < 0.5  # high cloud tops see above the water vapour: bright B10
    hazy = kind != "clear" and sub.uniform() < 0.5
    return _Frame(
        kind=kind,
        aerosol=float(sub.uniform(1.6, 2.8) if hazy else sub.uniform(0.7, 1.1)),
        haze=_Fourier.random(sub, 6, wl=(1000, 6000), slope=0.8) if hazy else None,
        haze_amp=float(sub.uniform(0.3, 0.5)),
        airmass=float(1 + 0.12 * (1 / np.cos(zenith) - 1.15)),
        vapour=float(0.75 + 0.25 * winter + sub.uniform(-0.08, 0.08)),
        field=field,
        field_threshold=float(thr),
        field_opacity=float(fop),
        field_fringe=float(sub.uniform(0.1, 0.28)),
        layer=layer,
        layer_opacity=float(sub.uniform(0.05, 0.25)),
        blobs=blobs,
        edge_noise=_Fourier.random(sub, 8, wl=(150, 1200), slope=0.5),
        cloud_brightness=float(sub.uniform(0.9, 1.4)),
        cloud_b10=float(sub.uniform(0.04, 0.12) if high else sub.uniform(0.008, 0.025)),
        shadow_shift=shift,
        sun=(float(np.rad2deg(zenith)), float(np.rad2deg(azimuth))),
        cirrus=cirrus,
        cirrus_max=float(sub.uniform(0.1, 1.0) if kind != "clear" else sub.uniform(0.1, 0.4)),
        gap=_gap(sub) if gap else None,
        snow=float(snow),
    )


def _clouds(sub, kind: str, width_m: float, height_m: float, reach: float):
    """A frame's cloud field (or None), its threshold and opacity, and its round clouds."""
    field, thr, fop = None, np.inf, 0.0
    blobs = np.zeros((0, 7))
    if kind == "partly":
        cover = sub.uniform(0.2, 0.8)
        if sub.uniform() < 0.5:  # cumulus field
            field = _Fourier.random(sub, 16, wl=(250, 1500), slope=0.8)
            thr, fop = float(ndtri(1 - cover)), sub.uniform(0.7, 1.0)
        blobs = _blobs(sub, cover * (0.5 if field else 1.0), width_m, height_m, reach)
    elif kind == "cloudy":
        cover = sub.uniform(0.6, 1.15)
        field = _Fourier.random(sub, 16, wl=(1500, 12000), slope=1.0)
        thr = float(ndtri(1 - cover)) if cover < 1 else -8.0
        fop = sub.uniform(0.7, 1.0)
    elif sub.uniform() < 0.3:  # a few small clouds in some "clear" frames
        blobs = _blobs(sub, sub.uniform(0.0, 0.02), width_m, height_m, reach)
    return field, thr, fop, blobs


def _gap(sub) -> tuple[float, float, float]:
    """A swath edge: no data beyond a line across ~15-60 % of the AOI."""
    ang = np.deg2rad(sub.uniform(-15, 15))
    a, b = np.cos(ang), np.sin(ang)
    side = sub.choice([-1.0, 1.0])
    frac = sub.uniform(0.15, 0.6)
    # fraction ~ of the AOI beyond the line, measured along the u axis at mid height
    c = side * (a * (1 - frac if side > 0 else frac) + b * 0.5)
    return (float(side * a), float(side * b), float(c))


def _blobs(rng, cover, width_m, height_m, reach):
    """Round-ish clouds covering ~``cover`` of a buffered AOI: centre, radius, opacity, edge,
    and a fringe of thin cloud around each (width, opacity) that stays below what a detector
    must find (CLOUD_OPACITY_CUT) yet brightens what is under it, as real cloud edges do."""
    margin = 3000.0 + reach
    area = (width_m + 2 * margin) * (height_m + 2 * margin)
    r = np.exp(rng.uniform(np.log(80.0), np.log(1200.0), 4096))
    n = int(
        np.clip(
            np.searchsorted(np.cumsum(np.pi * r**2), -np.log1p(-min(cover, 0.95)) * area), 1, 4096
        )
    )
    r = r[:n]
    cx = rng.uniform(-margin, width_m + margin, n)
    cy = rng.uniform(-margin, height_m + margin, n)
    thick = rng.uniform(size=n) < 0.7
    op = np.where(thick, rng.uniform(0.7, 1.0, n), rng.uniform(0.15, 0.55, n))
    edge = 0.25 * r + 20.0
    fringe = 0.6 * r + 100.0
    fringe_op = np.minimum(op, rng.uniform(0.1, 0.28, n))
    return np.column_stack([cx, cy, r, op, edge, fringe, fringe_op])


def _cloud_opacity(fr: _Frame, u: np.ndarray, v: np.ndarray, thin: bool = True) -> np.ndarray:
    """Cloud opacity 0..1 on the (v, u) grid (m from the AOI top-left corner); ``thin``
    False leaves out the thin veils, fringes and layer (they cast no shadow worth drawing)."""
    alpha = np.zeros((v.size, u.size), dtype=np.float32)
    if fr.field is not None:
        n = fr.field(u, v) - np.float32(fr.field_threshold)
        alpha = np.clip(n / 0.4, 0, 1)
        if thin:
            np.maximum(alpha, fr.field_fringe * np.clip(n / 0.8 + 1, 0, 1), out=alpha)
        alpha = (fr.field_opacity * alpha).astype(np.float32)
    if thin and fr.layer is not None:  # thin everywhere, below what a detector must find
        layer = fr.layer_opacity * np.clip(0.5 + 0.4 * fr.layer(u, v), 0, 1)
        np.maximum(alpha, layer, out=alpha)
    if len(fr.blobs):
        _add_blobs(alpha, fr, u, v, thin)
    return alpha


def _add_blobs(alpha: np.ndarray, fr: _Frame, u: np.ndarray, v: np.ndarray, thin: bool) -> None:
    """Raise ``alpha`` to the opacity of the round clouds (and their fringes) over it."""
    cx, cy, r, _, edge, fringe, _ = fr.blobs.T
    reach = 1.3 * r + edge + (fringe if thin else 0)
    hit = (cx + reach > u[0]) & (cx - reach < u[-1]) & (cy + reach > v[0]) & (cy - reach < v[-1])
    # each cloud's square of the window: columns and rows within ``reach`` of its centre
    cols = np.abs(u - cx[hit, None]) < reach[hit, None]
    rows = np.abs(v - cy[hit, None]) < reach[hit, None]
    inside = cols.any(axis=1) & rows.any(axis=1)
    if not inside.any():
        return
    c0, c1 = cols.argmax(axis=1), u.size - cols[:, ::-1].argmax(axis=1)
    r0, r1 = rows.argmax(axis=1), v.size - rows[:, ::-1].argmax(axis=1)
    # the edge noise only where some cloud is
    top, left = r0[inside].min(), c0[inside].min()
    bottom, right = r1[inside].max(), c1[inside].max()
    wobble = 1.0 + 0.22 * fr.edge_noise(u[left:right], v[top:bottom])
    for (bx, by, br, bo, be, bf, bfo), a0, a1, b0, b1 in zip(
        fr.blobs[hit][inside], r0[inside], r1[inside], c0[inside], c1[inside], strict=True
    ):
        # a = max(bo * clip(outline / be, 0, 1), bfo * clip(outline / bf + 1, 0, 1)), in place
        outline = br * wobble[a0 - top : a1 - top, b0 - left : b1 - left]
        outline -= np.hypot((v[a0:a1] - by)[:, None], (u[b0:b1] - bx)[None]).astype(np.float32)
        a = outline / be
        np.clip(a, 0, 1, out=a)
        a *= bo
        if thin:
            veil = np.divide(outline, bf, out=outline)
            veil += 1
            np.clip(veil, 0, 1, out=veil)
            veil *= bfo
            np.maximum(a, veil, out=a)
        np.maximum(alpha[a0:a1, b0:b1], a, out=alpha[a0:a1, b0:b1])


# ---------------------------------------------------------------------------------------------
# Parcels: landscape zones, a Voronoi tessellation with curved edges, roads and a river
# ---------------------------------------------------------------------------------------------
_WARP_M = 15.0  # rms displacement of parcel edges (m): curved, irregular boundaries
_WARP_STEP = 20.0  # m between the vertices the warp moves
_ROAD_SPACING = 3000.0  # m of AOI extent per road
_ROAD_WIDTH = (8.0, 16.0)  # m: narrower than two pixels, as most real roads are
_RIVER_WIDTH = (16.0, 36.0)


def _make_parcels(rng, grid: Grid) -> gpd.GeoDataFrame:
    left, bottom, right, top = grid.bounds
    aoi = shapely.box(left, bottom, right, top)
    zone_centres, zone_types = _zones(rng, grid)
    pts, zone = _parcel_seeds(rng, grid, zone_centres, zone_types)
    m = 3 * max(z[1] for z in _ZONES.values())
    cells = shapely.voronoi_polygons(
        shapely.multipoints(pts),
        extend_to=shapely.box(left - 2 * m, bottom - 2 * m, right + 2 * m, top + 2 * m),
        ordered=True,
    )
    # cut wider than the AOI: the warp must not pull the tessellation's border inside it
    work = shapely.box(left, bottom, right, top).buffer(12 * _WARP_M, join_style="mitre")
    polys = shapely.intersection(np.asarray(shapely.get_parts(cells)), work)
    ok = ~shapely.is_empty(polys) & (shapely.area(polys) > 0)
    polys, zone = polys[ok], zone[ok]
    cls = _draw_classes(rng, zone)
    # warp before splitting: a split adds vertices on one side of a shared edge only, and the
    # warp of the two sides would then differ (gaps, overlaps)
    polys, cls, zone = _split_fields(rng, _warp(rng, polys), cls, zone)
    polys = shapely.intersection(polys, aoi)
    lines, line_cls, line_zone = _linear_features(rng, grid)
    polys = _cut(polys, lines)
    polys = np.concatenate([polys, shapely.intersection(lines, aoi)])
    cls = np.concatenate([cls, line_cls])
    names = np.concatenate([np.asarray(_ZONE_NAMES)[zone], line_zone])
    ok = ~shapely.is_empty(polys) & (shapely.area(polys) > 0)
    gdf = gpd.GeoDataFrame(
        {"class_id": cls[ok].astype(np.uint8), "zone": names[ok]},
        geometry=gpd.GeoSeries(polys[ok]),
        crs=grid.crs,
    )
    for key, val in _phenology_params(rng, cls[ok], names[ok]).items():
        gdf[key] = val
    gdf.index = pd.RangeIndex(len(gdf), name="parcel_id")
    return gdf


def _zones(rng, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Zone centres (jittered lattice) and landscape types, by quota over the zones whose
    centre is in the AOI (so even a small AOI holds every landscape)."""
    left, bottom, right, top = grid.bounds
    buf = 2 * _ZONE_SPACING
    zx = np.arange(left - buf, right + buf, _ZONE_SPACING)
    zy = np.arange(bottom - buf, top + buf, _ZONE_SPACING)
    zc = np.stack(np.meshgrid(zx, zy), -1).reshape(-1, 2)
    zc = zc + rng.uniform(-0.4, 0.4, zc.shape) * _ZONE_SPACING
    inside = (zc[:, 0] >= left) & (zc[:, 0] < right) & (zc[:, 1] >= bottom) & (zc[:, 1] < top)
    shares = np.array([z[0] for z in _ZONES.values()])
    ztype = rng.choice(len(shares), size=len(zc), p=shares / shares.sum())
    k = int(inside.sum())
    if k:
        quota = np.floor(shares * k).astype(int)
        if k >= len(shares):
            quota = np.maximum(quota, 1)
        while quota.sum() < k:
            quota[np.argmax(shares * k - quota)] += 1
        while quota.sum() > k:
            quota[np.argmax(quota)] -= 1
        ztype[np.flatnonzero(inside)] = rng.permutation(np.repeat(np.arange(len(shares)), quota))
    return zc, ztype


def _parcel_seeds(rng, grid: Grid, zc: np.ndarray, ztype: np.ndarray):
    """Parcel seeds: jittered lattice at the finest spacing, thinned to each zone's spacing."""
    left, bottom, right, top = grid.bounds
    s_min = min(z[1] for z in _ZONES.values())
    m = 3 * max(z[1] for z in _ZONES.values())
    px = np.arange(left - m, right + m, s_min)
    py = np.arange(bottom - m, top + m, s_min)
    pts = np.stack(np.meshgrid(px, py), -1).reshape(-1, 2)
    pts = pts + rng.uniform(-0.45, 0.45, pts.shape) * s_min
    zone = ztype[cKDTree(zc).query(pts)[1]]
    spacing = np.array([z[1] for z in _ZONES.values()])[zone]
    keep = rng.uniform(size=len(pts)) < (s_min / spacing) ** 2
    return pts[keep], zone[keep]


def _draw_classes(rng, zone: np.ndarray) -> np.ndarray:
    """Class per parcel from its zone's class probabilities."""
    cls = np.empty(len(zone), dtype=np.int64)
    for zi, (_, _, probs) in enumerate(_ZONES.values()):
        sel = np.flatnonzero(zone == zi)
        ids, p = np.array(list(probs)), np.array(list(probs.values()))
        cls[sel] = rng.choice(ids, size=sel.size, p=p / p.sum())
    return cls


def _split_fields(rng, polys, cls, zone):
    """Split some large cultivated parcels along a random line: elongated fields."""
    out_polys, out_cls, out_zone = [], [], []
    for poly, c, z in zip(polys, cls, zone, strict=True):
        parts = [poly]
        if c == CULTIVATED and poly.area > 2.0e4 and rng.uniform() < 0.6:
            cen = poly.centroid
            ang = rng.uniform(0, np.pi)
            d = np.array([np.cos(ang), np.sin(ang)]) * 5000
            nrm = np.array([-d[1], d[0]])
            off = rng.uniform(-0.25, 0.25) * np.sqrt(poly.area)
            o = np.array([cen.x, cen.y]) + nrm / 5000 * off
            half = shapely.Polygon([o - d, o + d, o + d + nrm, o - d + nrm])
            parts = [p for p in (poly.intersection(half), poly.difference(half)) if p.area > 0]
        out_polys += parts
        out_cls += [c] * len(parts)
        out_zone += [z] * len(parts)
    return np.asarray(out_polys), np.asarray(out_cls, np.int64), np.asarray(out_zone)


def _warp(rng, polys: np.ndarray) -> np.ndarray:
    """Curved, irregular parcel edges: every vertex (edges densified first) moves by one smooth
    displacement field, so neighbours keep sharing their edges (no gaps, no overlaps)."""
    fx = _Fourier.random(rng, 12, wl=(150.0, 1500.0), slope=0.6)
    fy = _Fourier.random(rng, 12, wl=(150.0, 1500.0), slope=0.6)

    def move(xy: np.ndarray) -> np.ndarray:
        x, y = xy[:, 0], xy[:, 1]
        return xy + _WARP_M * np.column_stack([fx.at(x, y), fy.at(x, y)])

    return shapely.transform(shapely.segmentize(polys, _WARP_STEP), move)


def _linear_features(rng, grid: Grid):
    """A meandering river and a few gently curving roads across the AOI (and past it), as
    buffered lines; where a road crosses the river, the road (a bridge) wins."""
    left, bottom, right, top = grid.bounds
    span = max(right - left, top - bottom)
    river = _meander(rng, grid, amplitude=(60.0, 220.0), wavelength=(800.0, 2500.0))
    river = river.buffer(rng.uniform(*_RIVER_WIDTH) / 2, quad_segs=2, cap_style="flat")
    roads = []
    for _ in range(1 + int(span // _ROAD_SPACING)):
        road = _meander(rng, grid, amplitude=(20.0, 150.0), wavelength=(2500.0, 9000.0))
        road = road.buffer(rng.uniform(*_ROAD_WIDTH) / 2, quad_segs=2, cap_style="flat")
        roads.append(shapely.difference(road, shapely.union_all(roads)) if roads else road)
    river = shapely.difference(river, shapely.union_all(roads))
    shapes = np.asarray([river, *roads], dtype=object)
    cls = np.asarray([WATER] + [ARTIFICIAL] * len(roads), dtype=np.int64)
    names = np.asarray(["river"] + ["road"] * len(roads))
    return shapes, cls, names


def _meander(rng, grid: Grid, amplitude, wavelength) -> shapely.LineString:
    """A line through a random point of the AOI at a random angle, swinging sideways by a sum
    of three sines, across the whole AOI (cut 500 m past its edges)."""
    left, bottom, right, top = grid.bounds
    centre = rng.uniform([left, bottom], [right, top])
    ang = rng.uniform(0, np.pi)
    along = np.array([np.cos(ang), np.sin(ang)])
    side = np.array([-along[1], along[0]])
    half = np.hypot(right - left, top - bottom) + 1000.0
    s = np.arange(-half, half + 40.0, 40.0)
    amp = rng.uniform(*amplitude, 3) * np.array([1.0, 0.5, 0.25])
    lam = rng.uniform(*wavelength, 3) / np.array([1.0, 1.7, 2.9])
    phase = rng.uniform(0, 2 * np.pi, 3)
    offset = np.sin(2 * np.pi * s[:, None] / lam + phase) @ amp
    line = shapely.LineString(centre + s[:, None] * along + offset[:, None] * side)
    return shapely.clip_by_rect(line, left - 500, bottom - 500, right + 500, top + 500)


def _cut(polys: np.ndarray, shapes: np.ndarray) -> np.ndarray:
    """Parcels minus the roads and river. Each long shape is first cut into ~1 km pieces, and
    a parcel only meets the pieces it touches: far cheaper than the whole network against
    every parcel (a 40 km AOI has tens of thousands of parcels and 15 roads)."""
    pieces = np.concatenate([_tiles(shape, 1000.0) for shape in shapes])
    hit_parcel, hit_piece = shapely.STRtree(pieces).query(polys, predicate="intersects")
    out = polys.copy()
    order = np.argsort(hit_parcel, kind="stable")
    parcels, starts = np.unique(hit_parcel[order], return_index=True)
    for i, group in zip(parcels, np.split(hit_piece[order], starts[1:]), strict=True):
        for piece in pieces[group]:  # mostly one
            out[i] = shapely.difference(out[i], piece)
    return out


def _tiles(shape, size: float) -> np.ndarray:
    """A polygon cut by a square grid of ``size`` m: its non-empty pieces."""
    xmin, ymin, xmax, ymax = shapely.bounds(shape)
    x, y = np.meshgrid(np.arange(xmin, xmax, size), np.arange(ymin, ymax, size))
    boxes = shapely.box(x.ravel(), y.ravel(), x.ravel() + size, y.ravel() + size)
    shapely.prepare(shape)
    pieces = shapely.intersection(shape, boxes[shapely.intersects(shape, boxes)])
    return pieces[~shapely.is_empty(pieces)]


# ---------------------------------------------------------------------------------------------
# Phenology
# ---------------------------------------------------------------------------------------------
def _phenology_params(rng, cls: np.ndarray, zone: np.ndarray) -> dict[str, np.ndarray]:
    """Per-parcel parameters (days of year, fractions), drawn for all parcels at once: each
    parcel has its own calendar, as neighbouring fields and meadows do."""
    n = len(cls)
    u = lambda a, b: rng.uniform(a, b, n).astype(np.float32)  # noqa: E731
    # winter cereal, spring cereal, summer crop (maize...), fodder (mown like grassland: sown
    # this spring or in an earlier year), fallow (unmown grass and weeds): the last two look
    # like grassland, as they do in real land registers
    crop = rng.choice(5, size=n, p=[0.3, 0.15, 0.42, 0.08, 0.05])
    # columns: start of green-up, peak, senescence, harvest, ploughing, autumn sowing (doy)
    up = np.select(
        [crop == 0, crop == 1, crop == 3], [u(55, 90), u(90, 125), u(90, 125)], u(120, 160)
    )
    sen = np.select([crop == 0, crop == 1], [u(155, 180), u(175, 200)], u(225, 255))
    harvest = np.select([crop == 0, crop == 1], [u(183, 208), u(200, 225)], u(250, 295))
    plough = harvest + u(10, 60)
    sow_autumn = np.where(crop == 0, u(265, 300), np.float32(999))
    n_mow = rng.choice(5, size=n, p=[0.15, 0.25, 0.3, 0.2, 0.1])
    mow = np.sort(rng.uniform(125, 275, (n, 4)), axis=1)
    for k in range(1, 4):
        mow[:, k] = np.maximum(mow[:, k], mow[:, k - 1] + 28)
    mow[np.arange(4)[None] >= n_mow[:, None]] = 999
    mown = (cls == GRASS) | ((cls == CULTIVATED) & (crop == 3))
    sown = ~((crop == 3) & (rng.uniform(size=n) < 0.5)) & (crop != 4)
    mow = np.where(mown[:, None], mow, 999).astype(np.float32)
    bright_sd = np.select([cls == ARTIFICIAL, cls == BARE], [0.09, 0.08], 0.07)
    texture = np.select([cls == ARTIFICIAL, cls == SHRUB], [0.30, 0.22], 0.16)
    # canopy cover / vigour: scales the green fraction (trees in grassland, gardens in towns...)
    lo = np.select(
        [cls == c for c in range(1, 11)], [0.9, 0.9, 0.85, 0.75, 1, 0.6, 0.6, 0.3, 0.0, 1], 1
    )
    hi = np.select(
        [cls == c for c in range(1, 11)], [1.15, 1.1, 1.15, 1.15, 1, 1.2, 1.4, 2.5, 3.0, 1], 1
    )
    road, river = zone == "road", zone == "river"
    return {
        "crop_type": np.where(cls == CULTIVATED, crop, -1).astype(np.int8),
        "sown": sown,
        "green_up_doy": up,
        "senescence_doy": sen,
        "harvest_doy": harvest,
        "plough_doy": plough,
        "autumn_sowing_doy": sow_autumn,
        "catch_crop": u(0.2, 0.5) * (rng.uniform(size=n) < 0.3),
        "peak_green": u(0.9, 1.0),
        "winter_green": u(0.0, 0.25),
        "onset_doy": u(70, 115),
        "autumn_doy": u(280, 320),
        "drought": u(0.15, 0.5) * (rng.uniform(size=n) < 0.5),
        "drought_doy": u(190, 235),
        "evergreen": (rng.uniform(size=n) < 0.3) & (cls == FOREST),
        "budburst_doy": u(95, 135),
        "leaf_fall_doy": u(275, 310),
        "mow1_doy": mow[:, 0],
        "mow2_doy": mow[:, 1],
        "mow3_doy": mow[:, 2],
        "mow4_doy": mow[:, 3],
        "flood": u(0.1, 0.6),
        "turbidity": np.where(river, u(0.4, 0.9), u(0.0, 0.8) * (rng.uniform(size=n) < 0.6)),
        "turbidity_peak_doy": u(70, 150),
        "soil_brightness": u(0.0, 1.0),
        "brightness": np.clip(1 + bright_sd * rng.standard_normal(n), 0.7, 1.35).astype(np.float32),
        "texture": texture.astype(np.float32),
        "vigour": np.where(road, u(0.0, 0.4), rng.uniform(lo, hi)).astype(np.float32),
        "nir_scale": u(0.88, 1.12),
        "vis_scale": u(0.85, 1.15),
        "snow_susceptibility": u(0.0, 0.6),
        "melt_doy": u(95, 130),
        "snow_return_doy": u(310, 335),
        "road": road,
    }


def _leaf(p, t):
    """Leaf-on share 0..1 of deciduous trees and shrubs (budburst .. leaf fall)."""
    return _smooth01((t - p["budburst_doy"]) / 6) * (1 - _smooth01((t - p["leaf_fall_doy"]) / 8))


def _mowing(p, t):
    """Green kept (product over cuts) and cut grass lying (dry) after up to four cuts."""
    cut = np.ones_like(p["mow1_doy"])
    cut_dry = np.zeros_like(cut)
    for k in ("mow1_doy", "mow2_doy", "mow3_doy", "mow4_doy"):
        dt = t - p[k]
        after = dt >= 0
        cut *= np.where(after, 1 - 0.7 * np.exp(-np.maximum(dt, 0) / 14), 1)
        cut_dry += np.where(after, 0.35 * np.exp(-np.maximum(dt, 0) / 6), 0)
    return cut, cut_dry


def _grassland(p, t, season):
    """Meadows and pastures: a dormant winter sward, the parcel's own spring onset and autumn
    decline, a summer drought dip on some, and mowing."""
    up = _smooth01((t - p["onset_doy"]) / 10) * (1 - _smooth01((t - p["autumn_doy"]) / 15))
    base = p["winter_green"]
    dip = p["drought"] * np.exp(-(((t - p["drought_doy"]) / 20) ** 2))
    cut, cut_dry = _mowing(p, t)
    green = np.clip(base + (p["peak_green"] - base) * up - dip, 0, 1) * cut
    dry = 0.3 * (1 - up) + 0.08 + cut_dry + 0.6 * dip
    return green, dry


def _cultivated(p, t, season):
    """Crops: sowing, green-up, senescence, harvest, ploughing (some with a catch crop after
    it); winter cereals are green from the autumn before; fodder crops are mown and fallow
    lies as unmown grass (both sown this spring or earlier)."""
    g = p["peak_green"]
    rise = _smooth01((t - p["green_up_doy"] - 12) / 7)
    fall = _smooth01((t - p["senescence_doy"]) / 6)
    harvested = t >= p["harvest_doy"]
    ploughed = t >= p["plough_doy"]
    green = g * rise * (1 - fall)
    dry = np.where(harvested, np.where(ploughed, 0.0, 0.35), g * rise * fall)
    winter_cereal = p["crop_type"] == 0
    early = 0.25 * (1 - rise) * (t < p["green_up_doy"] + 20)
    late = 0.3 * _smooth01((t - p["autumn_sowing_doy"] - 20) / 8)
    catch = p["catch_crop"] * _smooth01((t - p["plough_doy"] - 25) / 8)
    green = green + np.where(winter_cereal, early + late * ploughed, catch)
    grass_green, grass_dry = _grassland(p, t, season)
    established = np.where(p["sown"], rise, 1)
    grassy = p["crop_type"] >= 3
    return (
        np.where(grassy, grass_green * established, green),
        np.where(grassy, grass_dry * established, dry),
    )


def _forest(p, t, season):
    """Evergreen (conifer) or deciduous: bare crowns over litter from leaf fall to budburst."""
    leaf = _leaf(p, t)
    base = 0.12 + 0.5 * p["winter_green"]  # understorey, ivy, a few conifers
    green = np.where(p["evergreen"], 0.82 + 0.12 * season, base + (p["peak_green"] - base) * leaf)
    dry = np.where(p["evergreen"], 0.04, 0.75 * (1 - leaf))
    return green, dry


def _shrubland(p, t, season):
    """Deciduous shrubs over grass, between grassland and forest (less dense than forest)."""
    leaf = _leaf(p, t)
    base = p["winter_green"]
    green = base + (0.8 * p["peak_green"] - base) * leaf
    dry = 0.25 + 0.35 * (1 - leaf)
    return green, dry


def _wetland(p, t, season):
    """Reeds and sedges: late green-up, brown all winter."""
    up = _smooth01((t - p["onset_doy"] - 25) / 10) * (1 - _smooth01((t - p["autumn_doy"]) / 12))
    return 0.1 + 0.65 * up, 0.15 + 0.45 * (1 - up)


def _tundra(p, t, season):
    one = np.ones_like(p["peak_green"])
    return (
        0.05 + 0.35 * _smooth01((t - 165) / 6) * (1 - _smooth01((t - 240) / 6))
    ) * one, 0.35 * one


def _artificial(p, t, season):
    return (0.08 + 0.12 * season) * np.ones_like(p["peak_green"]), 0.0 * p["peak_green"]


def _bare(p, t, season):
    return (0.02 + 0.05 * season) * np.ones_like(p["peak_green"]), 0.0 * p["peak_green"]


def _snow_and_ice(p, t, season):
    """Snow fields above the tree line: sparse alpine vegetation once the snow is gone."""
    return (0.04 + 0.12 * season) * np.ones_like(p["peak_green"]), 0.2 * np.ones_like(season)


def _water(p, t, season):
    return (0.03 * np.clip(season - 0.6, 0, 1) / 0.4 * (p["turbidity"] > 0.3)), 0.0 * season


_PHENOLOGY = {
    CULTIVATED: _cultivated, FOREST: _forest, GRASS: _grassland, SHRUB: _shrubland,
    WATER: _water, WETLAND: _wetland, TUNDRA: _tundra, ARTIFICIAL: _artificial, BARE: _bare,
    SNOW: _snow_and_ice,
}  # fmt: skip


def _lying_snow(p, cls, t, snow_event):
    """Snow cover 0..1 per parcel: the season's own snow on tundra and snow fields (melting in
    spring, back in late autumn) and the winter's snowfalls on open land, less under trees."""
    melt = np.where(cls == SNOW, p["melt_doy"] + 15, p["melt_doy"])
    lying = np.clip(1 - _smooth01((t - melt) / 8) + _smooth01((t - p["snow_return_doy"]) / 8), 0, 1)
    snow = np.where(np.isin(cls, (TUNDRA, SNOW)), 0.92 * lying, 0).astype(np.float32)
    if snow_event > 0:
        open_land = np.isin(cls, (CULTIVATED, GRASS, SHRUB, BARE, WETLAND, TUNDRA, SNOW))
        cover = np.clip((snow_event - p["snow_susceptibility"]) / 0.15, 0, 1) * 0.95
        cover = np.where(open_land, cover, 0)
        cover = np.where(cls == SHRUB, 0.6 * cover, cover)  # shrubs stick out of the snow
        cover = np.where(cls == FOREST, snow_event * np.where(p["evergreen"], 0.15, 0.4), cover)
        cover = np.where(cls == ARTIFICIAL, snow_event * 0.5, cover)
        snow = np.maximum(snow, cover.astype(np.float32))
    return snow


def _fractions(p: dict[str, np.ndarray], cls: np.ndarray, doy: float, snow_event: float):
    """Cover fractions of parcels at one day of year: green, dry, water share of background,
    turbidity, snow (each (P,) float32)."""
    t = np.float32(doy)
    season = np.float32(0.5 - 0.5 * np.cos(2 * np.pi * (t - 20) / 365.25))  # 0 mid-Jan, 1 July
    green = np.zeros(len(cls), np.float32)
    dry = np.zeros(len(cls), np.float32)
    for c, phenology in _PHENOLOGY.items():  # on every parcel: cheaper than subsetting them
        m = cls == c
        if m.any():
            g, d = phenology(p, t, season)
            green = np.where(m, g, green)
            dry = np.where(m, d, dry)
    flood = np.exp(-(((t - 90) / 40) ** 2))
    water = np.select(
        [cls == WATER, cls == WETLAND], [1.0, np.clip(0.2 + p["flood"] * flood, 0, 1)], 0
    )
    turb = p["turbidity"] * (0.5 + 0.5 * np.cos(2 * np.pi * (t - p["turbidity_peak_doy"]) / 365.25))
    snow = _lying_snow(p, cls, t, snow_event)
    green = np.clip(green * p["vigour"], 0, 1)
    dry = np.clip(np.minimum(dry, 1 - green), 0, 1)
    return green, dry, water.astype(np.float32), turb.astype(np.float32), snow


def _sample_counts(samples: np.ndarray) -> np.ndarray:
    """For each of the (n, k) samples, how many samples of its row have its value; 0 for the
    value 0 (outside every parcel), which never wins when something else is there."""
    same = (samples[:, :, None] == samples[:, None, :]).sum(-1, dtype=np.uint8)
    return np.where(samples == 0, 0, same)


# ---------------------------------------------------------------------------------------------
# The world: everything global, drawn once per scene
# ---------------------------------------------------------------------------------------------
@dataclass
class _World:
    grid: Grid
    times: pd.DatetimeIndex
    seed: int
    parcels: gpd.GeoDataFrame
    frames: list[_Frame]
    texture_field: _Fourier
    noise_table: np.ndarray
    noise_keys: np.ndarray  # (T, 13, 2) uint32: multiplier (odd), offset
    tree: shapely.STRtree = field(init=False)
    params: dict = field(init=False)
    green_em: np.ndarray = field(init=False)  # (P, 13)
    background: np.ndarray = field(init=False)  # (P, 13)

    def __post_init__(self):
        self.tree = shapely.STRtree(np.asarray(self.parcels.geometry.values))
        cols = [c for c in self.parcels.columns if c not in ("geometry", "zone", "class_id")]
        self.params = {c: self.parcels[c].to_numpy() for c in cols}
        cls = self.parcels["class_id"].to_numpy().astype(np.int64)
        p = self.params
        green_em = np.where(
            (cls == FOREST)[:, None],
            np.where(p["evergreen"][:, None], _EM["conifer"], _EM["broadleaf"]),
            _EM["crop"],
        )
        # shrubs: broadleaf and herbs, spectrally between grassland and forest
        shrub = 0.5 * (_EM["broadleaf"] + _EM["crop"])
        green_em = np.where((cls == SHRUB)[:, None], shrub, green_em)
        sb = p["soil_brightness"][:, None]
        soil = (1 - sb) * _EM["soil_dark"] + sb * _EM["soil_bright"]
        bg = soil
        bg = np.where((cls == ARTIFICIAL)[:, None], _EM["urban"], bg)
        bg = np.where(
            np.isin(cls, (BARE, TUNDRA, SNOW))[:, None], 0.5 * _EM["rock"] + 0.5 * soil, bg
        )
        bg = np.where((cls == WETLAND)[:, None], _EM["soil_dark"] * 0.6, bg)
        bg = np.where(p["road"][:, None], _EM["asphalt"], bg)
        green_em = green_em * np.where(np.arange(NB) < 4, p["vis_scale"][:, None], 1)
        green_em = green_em * np.where(
            (np.arange(NB) >= 5) & (np.arange(NB) <= 9), p["nir_scale"][:, None], 1
        )
        self.green_em = green_em.astype(np.float32)
        self.background = bg.astype(np.float32)
        self.cls = cls

    # --- per-window pieces -----------------------------------------------------------------
    def coverage(self, row: int, col: int, h: int, w: int):
        """Parcels of a window: local parcel ids, main/second parcel per pixel and the main
        parcel's coverage (4x supersampled rasterisation), plus majority class."""
        g = self.grid
        res = g.resolution
        x0, y0 = g.left + col * res, g.top - row * res
        box = shapely.box(x0, y0 - h * res, x0 + w * res, y0)
        ids = np.sort(self.tree.query(box, predicate="intersects"))
        s = _SUPERSAMPLE
        if ids.size == 0:
            zeros = np.zeros((h, w), dtype=np.int32)
            return ids, zeros, zeros, np.ones((h, w), np.float32), np.zeros((h, w), np.uint8)
        transform = Affine(res / s, 0, x0, 0, -res / s, y0)
        geoms = self.parcels.geometry.values[ids]
        sub = features.rasterize(
            zip(geoms, range(1, ids.size + 1), strict=True),
            out_shape=(h * s, w * s),
            transform=transform,
            fill=0,
            dtype="int32",
        )
        sub = sub.reshape(h, s, w, s).transpose(0, 2, 1, 3).reshape(h * w, s * s)
        # Most pixels lie in one parcel (id1 = id2, f1 = 1): only the others are counted.
        id1, id2, f1 = sub[:, 0].copy(), sub[:, 0].copy(), np.ones(h * w, np.float32)
        mixed = np.flatnonzero((sub[:, 1:] != sub[:, :1]).any(axis=1))
        sm = sub[mixed]
        same = _sample_counts(sm)
        best = np.argmax(same, axis=-1)
        a1 = np.take_along_axis(sm, best[:, None], -1)[:, 0]
        n1 = np.take_along_axis(same, best[:, None], -1)[:, 0]
        other = np.where(sm == a1[:, None], 0, same)
        best2 = np.argmax(other, axis=-1)
        a2 = np.take_along_axis(sm, best2[:, None], -1)[:, 0]
        n2 = np.take_along_axis(other, best2[:, None], -1)[:, 0]
        a2 = np.where(n2 > 0, a2, a1)
        id1[mixed], id2[mixed] = np.where(a1 > 0, a1, a2), a2
        f1[mixed] = np.where(n2 > 0, n1 / np.maximum(n1 + n2, 1), 1.0)
        # majority class (classes, not parcels: two parcels of one class add up)
        lut = np.concatenate([[0], self.cls[ids]]).astype(np.uint8)
        csub = lut[sub]
        land = csub[:, 0].copy()
        mixed = np.flatnonzero((csub[:, 1:] != csub[:, :1]).any(axis=1))
        cm = csub[mixed]
        cbest = np.argmax(_sample_counts(cm), axis=-1)
        land[mixed] = np.take_along_axis(cm, cbest[:, None], -1)[:, 0]
        id1, id2, f1, land = (a.reshape(h, w) for a in (id1, id2, f1, land))
        return ids, np.maximum(id1 - 1, 0), np.maximum(id2 - 1, 0), f1, land

    def atmosphere_layers(
        self, t: int, u: np.ndarray, v: np.ndarray, rows: np.ndarray, cols: np.ndarray
    ):
        """Cloud opacity, cirrus thickness, shadow strength, no-data mask of one frame."""
        fr = self.frames[t]
        alpha = _cloud_opacity(fr, u, v)
        du, dv = fr.shadow_shift
        # thin cloud (fringes, veils) casts hardly any shadow
        shadow = 0.9 * np.clip((_cloud_opacity(fr, u + du, v + dv, thin=False) - 0.2) / 0.35, 0, 1)
        if fr.cirrus is not None:
            n = fr.cirrus(u, v)
            tau = fr.cirrus_max * np.clip((n - 0.3) / 1.2, 0, 1).astype(np.float32)
        else:
            tau = np.zeros_like(alpha)
        if fr.gap is not None:
            a, b, c = fr.gap
            un = (cols + 0.5) / self.grid.width
            vn = (rows + 0.5) / self.grid.height
            nodata = (a * un[None] + b * vn[:, None]) > c
        else:
            nodata = np.zeros(alpha.shape, dtype=bool)
        return alpha, tau, shadow, nodata

    def parcel_spectra(self, ids: np.ndarray, t: int):
        """Surface spectra (P, 13) of parcels ``ids`` at frame t, their green-direction term and
        snow cover."""
        doy = float(self.times[t].day_of_year)
        p = {k: v[ids] for k, v in self.params.items()}
        cls = self.cls[ids]
        green, dry, water, turb, snow = _fractions(p, cls, doy, self.frames[t].snow)
        wat = (1 - turb)[:, None] * _EM["water"] + turb[:, None] * _EM["turbid"]
        bg = (1 - water)[:, None] * self.background[ids] + water[:, None] * wat
        rest = np.clip(1 - green - dry, 0, 1)[:, None]
        surf = green[:, None] * self.green_em[ids] + dry[:, None] * _EM["dry"] + rest * bg
        surf = surf * p["brightness"][:, None]
        surf = (1 - snow)[:, None] * surf + snow[:, None] * _EM["snow"]
        direction = (self.green_em[ids] - bg) * (green * (1 - snow) * p["texture"])[:, None]
        return surf.astype(np.float32), direction.astype(np.float32), snow


def _window_coords(world: _World, row, col, h, w):
    res = world.grid.resolution
    rows = np.arange(row, row + h)
    cols = np.arange(col, col + w)
    return (cols + 0.5) * res, (rows + 0.5) * res, rows, cols


def _aerosol(fr: _Frame, u: np.ndarray, v: np.ndarray) -> np.ndarray | float:
    """Path reflectance scaling of a frame, (h, w) where its haze varies across the AOI."""
    if fr.haze is None:
        return fr.aerosol
    return fr.aerosol * np.maximum(1 + fr.haze_amp * fr.haze(u, v), 0.3)


def _transmittance(fr: _Frame) -> np.ndarray:
    """Atmospheric transmittance (13,) of a frame: less under heavy haze, water vapour in B09."""
    trans = _TRANS * (1 - 0.06 * (fr.aerosol - 1))
    trans[I_B09] = _TRANS[I_B09] * fr.vapour
    return trans


def _extent(layer: np.ndarray) -> tuple[slice, slice] | None:
    """The smallest window (rows, cols) holding every non-zero pixel of ``layer``, or None:
    a layer changes nothing where it is 0 (x * 1 + 0 == x), so it is applied there only."""
    rows = np.flatnonzero(layer.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(layer[rows[0] : rows[-1] + 1].any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


#: Band order of _l1c_block: B11 before B10, whose TOA is made from B11's (shaded) surface.
_BAND_ORDER = (*range(I_B10), I_B11, I_B10, *range(I_B11 + 1, NB))


def _l1c_block(world: _World, row: int, col: int, h: int, w: int) -> np.ndarray:
    """The (time, band, h, w) uint16 DN block of a window.

    Made band by band in (h, w) buffers, which stay in the CPU cache where (13, h, w)
    temporaries do not (~4x faster). Every pixel goes through the float32 (or float64)
    operations of the formulas in the comments, in their order: the same bits as evaluating
    those formulas on whole arrays."""
    T = len(world.times)
    u, v, rows, cols = _window_coords(world, row, col, h, w)
    ids, i1, i2, f1, _ = world.coverage(row, col, h, w)
    out = np.zeros((T, NB, h, w), dtype=np.uint16)
    if ids.size == 0:
        return out
    seed = np.uint32(world.seed & 0xFFFFFFFF)
    pix = _hash32(seed, rows[:, None], cols[None])  # (h, w)
    table = world.noise_table
    bright = 1 + 0.03 * table[pix >> np.uint32(16)] + 0.03 * world.texture_field(u, v)
    texture = table[(_hash32(pix, 7) >> np.uint32(16))] + 0.8 * world.texture_field(u + 7e4, v)
    b10_land = np.float32(0.0012)
    # Pixels mixing the same two parcels in the same proportion (most pixels: one parcel,
    # whole) share their spectra: they are made once per frame for each such pair.
    shares, share_of = np.unique(f1, return_inverse=True)  # f1 takes a few values: n1 / (n1 + n2)
    pair = (i1.astype(np.int64) * ids.size + i2) * shares.size + share_of.reshape(h, w)
    _, first, pair_of = np.unique(pair.ravel(), return_index=True, return_inverse=True)
    p1, p2, pf = i1.ravel()[first], i2.ravel()[first], f1.ravel()[first][:, None]
    pair_of = pair_of.reshape(h, w).astype(np.intp)
    surf, toa, b10, tmp, noise = (np.empty((h, w), np.float32) for _ in range(5))
    hashed = np.empty((h, w), np.uint32)
    for t in range(T):
        fr = world.frames[t]
        alpha, tau, shadow, nodata = world.atmosphere_layers(t, u, v, rows, cols)
        if nodata.all():
            continue
        # surf = max((s[i1] * f1 + s[i2] * (1 - f1)) * bright + d[i1] * texture, 0.001)
        surf_p, dir_p, _ = world.parcel_spectra(ids, t)
        mixed = np.ascontiguousarray((surf_p[p1] * pf + surf_p[p2] * (1 - pf)).T)
        direction = np.ascontiguousarray(dir_p[p1].T)
        shade = _extent(shadow)  # surf *= 1 - shadow * _SHADOW
        # toa = surf * trans + _PATH * airmass * aerosol (in float64 where aerosol is a number)
        trans, aerosol = _transmittance(fr), _aerosol(fr, u, v)
        path, hazy = _PATH * fr.airmass, np.ndim(aerosol) > 0
        if not hazy:
            path = path.astype(np.float64) * aerosol
        # toa = toa * (1 - 0.1 * tau) + tau * _CIRRUS, then toa * (1 - alpha) + weight * cloud
        cirrus = _extent(tau)
        if cirrus:
            tau = tau[cirrus]
            keep_c = 1 - 0.1 * tau
        cloudy = _extent(alpha)
        if cloudy:
            alpha = alpha[cloudy]
            keep_a, weight_a = 1 - alpha, alpha * (0.8 + 0.2 * alpha)  # thick cores brighter
            cloud = _CLOUD.copy()
            cloud[I_B10] = fr.cloud_b10
            cloud = cloud * fr.cloud_brightness
        for b in _BAND_ORDER:
            if b == I_B10:  # toa = 0.0012 + 0.008 * surf[B11] (set at B11): sees no surface
                tb = b10
            else:
                tb = toa
                # indices are in range by construction; "wrap" lets take write into ``out``
                # directly ("raise", the default, goes through a checked copy)
                np.take(mixed[b], pair_of, out=surf, mode="wrap")
                surf *= bright
                np.take(direction[b], pair_of, out=tmp, mode="wrap")
                tmp *= texture
                surf += tmp
                np.maximum(surf, 0.001, out=surf)
                if shade:
                    dim = np.multiply(shadow[shade], _SHADOW[b], out=tmp[shade])
                    np.multiply(surf[shade], np.subtract(1, dim, out=dim), out=surf[shade])
                if b == I_B11:
                    np.multiply(surf, 0.008, out=b10)
                    b10 += b10_land
                np.multiply(surf, trans[b], out=tb)
                tb += np.multiply(aerosol, path[b], out=tmp) if hazy else path[b]
            if cirrus:
                part = tb[cirrus]  # a view: in place
                part *= keep_c
                part += np.multiply(tau, _CIRRUS[b], out=tmp[cirrus])
            if cloudy:
                part = tb[cloudy]
                part *= keep_a
                part += np.multiply(weight_a, cloud[b], out=tmp[cloudy])
            # toa += (0.0015 + 0.008 * toa) * table[(pix * key0 + key1) >> 16]
            key0, key1 = world.noise_keys[t, b]
            np.multiply(pix, key0, out=hashed)
            hashed += key1
            hashed >>= np.uint32(16)
            np.take(table, hashed, out=noise, mode="wrap")
            np.multiply(tb, 0.008, out=tmp)
            tmp += 0.0015
            tmp *= noise
            tb += tmp
            # dn = clip(rint(toa * 10000), 1, 65535)
            tb *= QUANTIFICATION
            np.rint(tb, out=tb)
            np.clip(tb, 1, 65535, out=tb)
            out[t, b] = tb
        if nodata.any():
            out[t][:, nodata] = 0
    return out


_FLAG_CLOUD, _FLAG_CIRRUS, _FLAG_SHADOW, _FLAG_NODATA, _FLAG_SNOW = 1, 2, 4, 8, 16
_FLAG_HAZE = 32
#: Opacity from which a cloud counts as opaque (what a detector must find); cirrus from this
#: optical thickness is visible (B10 >~ 0.01); cloud shadows from this darkening strength.
CLOUD_OPACITY_CUT = 0.3
CIRRUS_CUT = 0.2
THICK_CIRRUS_CUT = 0.5
SHADOW_CUT = 0.25
#: Thin cloud (fringes, veils) from this opacity, or haze from this path reflectance (x a
#: clear day's): not opaque, so not ``cloud``, but not a clean view either; a detector that
#: flags it is not wrong.
HAZE_OPACITY_CUT = 0.05
HAZE_AEROSOL_CUT = 1.5


def _truth_block(world: _World, row: int, col: int, h: int, w: int) -> np.ndarray:
    """(time, h, w) uint8 bit flags: cloud, cirrus, shadow, no data, snow, haze."""
    T = len(world.times)
    u, v, rows, cols = _window_coords(world, row, col, h, w)
    ids, i1, _, _, _ = world.coverage(row, col, h, w)
    out = np.zeros((T, h, w), dtype=np.uint8)
    for t in range(T):
        alpha, tau, shadow, nodata = world.atmosphere_layers(t, u, v, rows, cols)
        cloud = (alpha >= CLOUD_OPACITY_CUT) | (tau >= THICK_CIRRUS_CUT)
        flags = cloud * np.uint8(_FLAG_CLOUD)
        flags |= ((tau >= CIRRUS_CUT) & ~cloud) * np.uint8(_FLAG_CIRRUS)
        flags |= ((shadow >= SHADOW_CUT) & ~cloud) * np.uint8(_FLAG_SHADOW)
        hazy = (alpha >= HAZE_OPACITY_CUT) | (_aerosol(world.frames[t], u, v) >= HAZE_AEROSOL_CUT)
        flags |= (hazy & ~cloud) * np.uint8(_FLAG_HAZE)
        if ids.size:
            _, _, snow = world.parcel_spectra(ids, t)
            flags |= (snow[i1] >= 0.5) * np.uint8(_FLAG_SNOW)
        flags[nodata] = _FLAG_NODATA
        out[t] = flags
    return out


def _land_block(world: _World, row: int, col: int, h: int, w: int) -> np.ndarray:
    return world.coverage(row, col, h, w)[4]


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------
def demo_grid(width: int = 512, height: int = 512, resolution: float = 10.0) -> Grid:
    """The demo AOI grid: EPSG:32633, top-left corner (500000, 5100000)."""
    return Grid(
        CRS.from_epsg(32633), 500000.0, 5100000.0, float(resolution), int(width), int(height)
    )


@dataclass(frozen=True, eq=False)
class DemoScene:
    """Deterministic synthetic Sentinel-2 L1C over ``grid`` at ``times`` (see module doc)."""

    grid: Grid
    times: pd.DatetimeIndex
    seed: int = 42
    mislabel_fraction: float = 0.03

    @functools.cached_property
    def _world(self) -> _World:
        times = pd.DatetimeIndex(self.times)
        rng = np.random.default_rng([int(self.seed), GENERATOR_VERSION])
        r_parcels, r_frames, r_misc = (
            np.random.default_rng(s) for s in rng.integers(2**63, size=3)
        )
        parcels = _make_parcels(r_parcels, self.grid)
        g = self.grid
        frames = _make_frames(r_frames, times, (g.width * g.resolution, g.height * g.resolution))
        table = r_misc.standard_normal(65536).astype(np.float32)
        keys = r_misc.integers(0, 2**32, size=(len(times), NB, 2), dtype=np.uint64).astype(
            np.uint32
        )
        keys[..., 0] |= np.uint32(1)
        texture = _Fourier.random(r_misc, 16, wl=(30.0, 400.0), slope=0.5)
        return _World(g, times, int(self.seed), parcels, frames, texture, table, keys)

    def _token(self, what: str, tile_size: int) -> str:
        g = self.grid
        key = (
            GENERATOR_VERSION, self.seed, self.mislabel_fraction, g.crs.to_wkt(), g.left, g.top,
            g.resolution, g.width, g.height, tuple(pd.DatetimeIndex(self.times).asi8), tile_size,
        )  # fmt: skip
        return f"demo-{what}-" + da.core.tokenize(*key)

    def parcels(self) -> gpd.GeoDataFrame:
        """The true parcels: geometry, ``class_id``, ``zone`` and phenology parameters."""
        return self._world.parcels.copy()

    def reference_labels(self) -> gpd.GeoDataFrame:
        """Parcel polygons with ``class_id``/``class_name`` as a reference data set would give
        them: ``mislabel_fraction`` of the parcels carry a wrong (plausible) class."""
        parcels = self._world.parcels
        rng = np.random.default_rng([int(self.seed), GENERATOR_VERSION, 7])
        cls = parcels["class_id"].to_numpy().astype(np.int64)
        n_wrong = int(round(self.mislabel_fraction * len(cls)))
        wrong = rng.choice(len(cls), size=min(n_wrong, len(cls)), replace=False)
        confusable = {
            CULTIVATED: (GRASS, BARE, GRASS), FOREST: (SHRUB, GRASS, SHRUB),
            GRASS: (CULTIVATED, SHRUB, WETLAND), SHRUB: (GRASS, FOREST, BARE),
            WATER: (WETLAND, WETLAND, GRASS), WETLAND: (GRASS, WATER, SHRUB),
            TUNDRA: (SHRUB, BARE, GRASS), ARTIFICIAL: (BARE, GRASS, CULTIVATED),
            BARE: (CULTIVATED, ARTIFICIAL, SHRUB), SNOW: (BARE, TUNDRA, BARE),
        }  # fmt: skip
        new = cls.copy()
        pick = rng.integers(0, 3, size=len(wrong))
        new[wrong] = [confusable[c][k] for c, k in zip(cls[wrong], pick, strict=True)]
        names = class_names(DEFAULT_LEGEND)
        return gpd.GeoDataFrame(
            {"class_id": new.astype(np.int64), "class_name": [names[c] for c in new]},
            geometry=parcels.geometry.values,
            crs=self.grid.crs,
            index=parcels.index,
        )

    def _blocks(self, fn, lead: tuple[int, ...], dtype, tile_size: int, what: str):
        if tile_size <= 0:
            raise ValueError(f"tile_size must be a positive number of pixels, got {tile_size}.")
        g = self.grid
        ych = da.core.normalize_chunks(tile_size, (g.height,))[0]
        xch = da.core.normalize_chunks(tile_size, (g.width,))[0]
        # one task of the graph holds the world (24 MB at 2048 x 2048 px), every block
        # depends on it: captured in each block's function instead, it was pickled once per
        # block for a dask.distributed cluster (1.5 GB in the client for 64 tiles)
        world = dask.delayed(self._world, pure=True, name=self._token("world", tile_size))

        def block(world, block_info=None):
            (r0, r1), (c0, c1) = block_info[None]["array-location"][-2:]
            return fn(world, r0, c0, r1 - r0, c1 - c0)

        chunks = tuple((n,) for n in lead) + (ych, xch)
        return da.map_blocks(
            block, world, chunks=chunks, dtype=dtype, meta=np.empty((0,) * len(chunks), dtype),
            name=self._token(what, tile_size),
        )  # fmt: skip

    def l1c_cube(self, tile_size: int = 256) -> xr.Dataset:
        """The lazy L1C cube, chunks (time: all, band: 13, y: tile_size, x: tile_size)."""
        T = len(self.times)
        bands = self._blocks(_l1c_block, (T, NB), np.uint16, tile_size, "l1c")
        attrs = {
            "source": "demo",
            "demo_seed": int(self.seed),
            "demo_generator_version": GENERATOR_VERSION,
            "processing_level": "L1C",
        }
        cube = make_l1c_cube(bands, self.times, self.grid, attrs=attrs)
        zenith, azimuth = np.array([f.sun for f in self._world.frames], np.float32).T
        return cube.assign_coords(sun_zenith=("time", zenith), sun_azimuth=("time", azimuth))

    def truth(self, tile_size: int = 256) -> xr.Dataset:
        """Lazy ground truth on the cube's grid: ``cloud`` (opaque, what a detector must
        find), ``cirrus`` (thin, not in ``cloud``), ``shadow``, ``no_data``, ``snow``,
        ``haze`` (thin cloud or heavy haze, not in ``cloud``: neither opaque nor clean)
        (time, y, x) bool and ``land_cover`` (y, x) uint8 (majority class per pixel)."""
        T = len(self.times)
        flags = self._blocks(_truth_block, (T,), np.uint8, tile_size, "truth")
        land = self._blocks(_land_block, (), np.uint8, tile_size, "land")
        dims = ("time", "y", "x")
        ds = xr.Dataset(
            {
                "cloud": (dims, (flags & _FLAG_CLOUD) > 0),
                "cirrus": (dims, (flags & _FLAG_CIRRUS) > 0),
                "shadow": (dims, (flags & _FLAG_SHADOW) > 0),
                "no_data": (dims, (flags & _FLAG_NODATA) > 0),
                "snow": (dims, (flags & _FLAG_SNOW) > 0),
                "haze": (dims, (flags & _FLAG_HAZE) > 0),
                "land_cover": (("y", "x"), land),
            },
            coords={
                "time": pd.DatetimeIndex(self.times).values.astype("datetime64[ns]"),
            },
            attrs={
                "source": "demo",
                "demo_seed": int(self.seed),
                "cloud_opacity_cut": CLOUD_OPACITY_CUT,
            },
        )
        ds["land_cover"].attrs.update(
            nodata=0, classes=[[c.id, c.name, c.colour] for c in DEFAULT_LEGEND]
        )
        return attach_grid(ds, self.grid)


def demo_scene(
    grid: Grid,
    time_interval: tuple[str, str] = ("2017-01-01", "2017-12-31"),
    revisit_days: int = 5,
    seed: int = 42,
    mislabel_fraction: float = 0.03,
) -> DemoScene:
    """A demo scene with one acquisition every ``revisit_days`` in ``time_interval``
    (both ends included), e.g. 73 frames for 2017 every 5 days."""
    if revisit_days <= 0:
        raise ValueError(f"revisit_days must be positive, got {revisit_days}.")
    if not 0 <= mislabel_fraction < 1:
        raise ValueError(f"mislabel_fraction must be in [0, 1), got {mislabel_fraction}.")
    start, end = (pd.Timestamp(t) for t in time_interval)
    if start.tzinfo is not None:
        start = start.tz_convert("UTC").tz_localize(None)
    if end.tzinfo is not None:
        end = end.tz_convert("UTC").tz_localize(None)
    times = pd.date_range(start.normalize(), end, freq=f"{int(revisit_days)}D")
    if len(times) == 0:
        raise ValueError(f"time_interval {time_interval} holds no acquisition date.")
    times = pd.DatetimeIndex(times.values.astype("datetime64[ns]"))
    return DemoScene(grid, times, int(seed), float(mislabel_fraction))


def demo_truth_for(cube: xr.Dataset) -> xr.DataArray | None:
    """The true land cover (y, x) of the demo scene a cube was made from, or None when the
    cube does not come from the demo source (its ``source`` attribute, ``{method: demo,
    <options>}``, and ``time_interval`` say which scene). Only the demo knows its truth: it
    shows how much the noisy reference labels cost in measured accuracy."""
    source = cube.attrs.get("source")
    if not isinstance(source, dict) or source.get("method") != "demo":
        return None
    options = {k: source[k] for k in ("revisit_days", "seed", "mislabel_fraction") if k in source}
    scene = demo_scene(grid_of(cube), tuple(cube.attrs["time_interval"]), **options)
    return scene.truth()["land_cover"].compute()
