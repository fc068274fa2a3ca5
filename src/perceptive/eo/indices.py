"""Spectral indices and the per-frame feature stack fed to temporal interpolation.

Why: the eo-learn LULC classifier sees, per date, six reflectance bands plus three derived
channels (NDVI, NDWI, NORM). This module computes them from the L1C cube lazily, in float32,
with NaN wherever the input has no data, and stacks them along a ``feature`` dimension.

Indices are a registry, :data:`INDICES` (name -> function of the reflectance array), so the
``features`` parameter may list any of them; adding one is a function and a registry line:
- NDVI (B08, B04) and NDWI, McFeeters' (B03 - B08) / (B03 + B08), as in the eo-learn LULC
  example;
- NORM, the Euclidean norm sqrt(sum of squared reflectances) over B02, B03, B04, B08, B11, B12,
  the bands of the example's BANDS feature (the current eo-learn LULC notebook downloads only
  those six and applies its norm to them; the older 0.x example used all 13 L1C bands);
  ``norm_bands`` changes it, e.g. ``S2_BANDS`` for all 13;
- NDMI (B08 - B11) / (B08 + B11), moisture (Gao's NDWI); NDBI (B11 - B08) / (B11 + B08),
  built-up; NDRE (B8A - B05) / (B8A + B05), red edge with the narrow NIR band.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import xarray as xr

from perceptive.eo.cube import S2_BANDS, reflectance

#: Bands of the eo-learn LULC feature set, also the default bands of NORM.
LULC_BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B08", "B11", "B12")
#: The eo-learn LULC feature set: 6 bands + NDVI, NDWI, NORM.
DEFAULT_FEATURES: tuple[str, ...] = (*LULC_BANDS, "NDVI", "NDWI", "NORM")


def _band(refl: xr.DataArray, name: str) -> xr.DataArray:
    have = [str(b) for b in refl["band"].values]
    if name not in have:
        raise ValueError(f"Band {name!r} is missing from the cube (it has {have}).")
    return refl.sel(band=name, drop=True)


def normalized_difference(a: xr.DataArray, b: xr.DataArray) -> xr.DataArray:
    """(a - b) / (a + b) as float32; NaN where a + b == 0 or either input is NaN."""
    a = a.astype(np.float32)
    b = b.astype(np.float32)
    total = a + b
    nd = (a - b) / total.where(total != 0)
    return nd.astype(np.float32)


def ndvi(refl: xr.DataArray) -> xr.DataArray:
    """NDVI = (B08 - B04) / (B08 + B04) of a (time, band, y, x) reflectance array."""
    return normalized_difference(_band(refl, "B08"), _band(refl, "B04")).rename("NDVI")


def ndwi(refl: xr.DataArray) -> xr.DataArray:
    """NDWI (McFeeters) = (B03 - B08) / (B03 + B08) of a (time, band, y, x) reflectance array."""
    return normalized_difference(_band(refl, "B03"), _band(refl, "B08")).rename("NDWI")


def band_norm(refl: xr.DataArray, bands: Sequence[str] | None = LULC_BANDS) -> xr.DataArray:
    """Euclidean norm sqrt(sum_i B_i^2) over ``bands`` (all bands of ``refl`` when None),
    float32, NaN where any of those bands is missing."""
    names = [str(b) for b in refl["band"].values] if bands is None else list(bands)
    for name in names:
        _band(refl, name)  # clear error for a missing band
    sub = refl.sel(band=names).astype(np.float32)
    # sum with skipna=False so a missing band gives NaN, not a too-small norm
    norm = np.sqrt((sub * sub).sum("band", skipna=False))
    return norm.astype(np.float32).rename("NORM")


def _nd(name: str, a: str, b: str) -> Callable[[xr.DataArray], xr.DataArray]:
    def index(refl: xr.DataArray) -> xr.DataArray:
        return normalized_difference(_band(refl, a), _band(refl, b)).rename(name)

    index.__doc__ = f"{name} = ({a} - {b}) / ({a} + {b}) of a (time, band, y, x) reflectance."
    return index


#: Derived features by name (besides the bands themselves): reflectance -> (time, y, x).
INDICES: dict[str, Callable[[xr.DataArray], xr.DataArray]] = {
    "NDVI": ndvi,
    "NDWI": ndwi,
    "NORM": band_norm,
    "NDMI": _nd("NDMI", "B08", "B11"),
    "NDBI": _nd("NDBI", "B11", "B08"),
    "NDRE": _nd("NDRE", "B8A", "B05"),
}


def check_feature_names(features: Sequence[str]) -> list[str]:
    """``features`` as a list when every name is a band or a known index, once each."""
    features = list(features)
    if not features:
        raise ValueError("features is empty; give at least one band or index name.")
    available = [*S2_BANDS, *INDICES]
    unknown = [f for f in features if f not in available]
    if unknown:
        raise ValueError(f"Unknown feature(s) {unknown}; available: {', '.join(available)}.")
    if len(set(features)) != len(features):
        raise ValueError(f"Duplicate feature names in {features}.")
    return features


def feature_stack(
    l1c: xr.Dataset,
    features: Sequence[str] = DEFAULT_FEATURES,
    norm_bands: Sequence[str] | None = LULC_BANDS,
) -> xr.DataArray:
    """Per-frame features (time, feature, y, x) float32 of an L1C cube.

    ``features`` are band names (reflectance) and/or ``NDVI``, ``NDWI``, ``NORM``, in the order
    given; the result has a ``feature`` coordinate with those names. Values are NaN where the
    input has no data (DN 0). Lazy when the cube is.
    """
    features = check_feature_names(features)
    if "bands" not in l1c:
        raise ValueError(f"The L1C cube has no 'bands' variable (has {sorted(l1c.data_vars)}).")
    refl = reflectance(l1c["bands"])
    builders = {**INDICES, "NORM": lambda r: band_norm(r, norm_bands)}
    layers = [
        builders[f](refl) if f in builders else _band(refl, f).astype(np.float32) for f in features
    ]
    stack = xr.concat(
        [layer.rename(None).drop_vars("band", errors="ignore") for layer in layers],
        dim="feature",
        coords="minimal",
        compat="override",
        join="exact",
    )
    stack = stack.assign_coords(feature=features).transpose("time", "feature", "y", "x")
    stack.attrs = {"long_name": "per-frame features (reflectance and indices)"}
    if norm_bands is not None and "NORM" in features:
        stack.attrs["norm_bands"] = ",".join(norm_bands)
    return stack.rename("features")
