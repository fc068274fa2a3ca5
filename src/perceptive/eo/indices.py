"""Spectral indices and the per-frame feature stack fed to temporal interpolation.

Why: the eo-learn LULC classifier sees, per date, six reflectance bands plus three derived
channels (NDVI, NDWI, NORM). This module computes them from the L1C cube lazily, in float32,
with NaN wherever the input has no data, and stacks them along a ``feature`` dimension. A
feature the cube already holds as a per-frame layer of that name (an imported EOPatch's
``NDVI``) is taken as it is, so a cube without bands still gives features.

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

from perceptive.eo.cube import S2_BANDS, per_frame_layers, reflectance

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

#: The bands each index reads (NORM: its ``norm_bands``), to say up front what a cube lacks.
INDEX_BANDS: dict[str, tuple[str, ...]] = {
    "NDVI": ("B08", "B04"),
    "NDWI": ("B03", "B08"),
    "NORM": LULC_BANDS,
    "NDMI": ("B08", "B11"),
    "NDBI": ("B11", "B08"),
    "NDRE": ("B8A", "B05"),
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


def _check_available(
    l1c: xr.Dataset, features: Sequence[str], norm_bands: Sequence[str] | None
) -> None:
    """A ValueError naming every feature the cube can give neither as a layer of that name
    nor from its bands, with what each needs and what the cube has."""
    layers = per_frame_layers(l1c)
    bands = [str(b) for b in l1c["band"].values] if "bands" in l1c else []
    needs = {**INDEX_BANDS, "NORM": tuple(norm_bands) if norm_bands is not None else ()}
    lacking = []
    for name in features:
        if name in layers:
            continue
        wanted = needs.get(name, (name,))
        if name == "NORM" and norm_bands is None:
            wanted = () if bands else ("any band",)
        missing = [b for b in wanted if b not in bands]
        if missing:
            lacking.append(f"{name} (needs band(s) {missing} or a layer {name!r})")
    if lacking:
        raise ValueError(
            f"The cube cannot give feature(s) {'; '.join(lacking)}. It has bands {bands or 'none'} "
            f"and per-frame layers {layers or 'none'}; choose features from those (parameter "
            "'features'), or read the missing bands or layers from the source."
        )


def feature_stack(
    l1c: xr.Dataset,
    features: Sequence[str] = DEFAULT_FEATURES,
    norm_bands: Sequence[str] | None = LULC_BANDS,
) -> xr.DataArray:
    """Per-frame features (time, feature, y, x) float32 of an L1C cube.

    ``features`` are band names (reflectance) and/or indices (``NDVI``, ``NDWI``, ``NORM``...),
    in the order given; the result has a ``feature`` coordinate with those names. A feature the
    cube already holds as a per-frame float layer of that name (an EOPatch's ``NDVI``, say) is
    taken as it is, since it is the source's own value and the bands may be absent; the others
    are computed from ``bands``. Values are NaN where the input has no data (DN 0). Lazy when
    the cube is.
    """
    features = check_feature_names(features)
    _check_available(l1c, features, norm_bands)
    layers = per_frame_layers(l1c)
    refl = reflectance(l1c["bands"]) if "bands" in l1c else None
    builders = {**INDICES, "NORM": lambda r: band_norm(r, norm_bands)}

    def layer(name: str) -> xr.DataArray:
        if name in layers:
            return l1c[name].astype(np.float32)
        if name in builders:
            return builders[name](refl)
        return _band(refl, name).astype(np.float32)

    stack = xr.concat(
        [layer(f).rename(None).drop_vars("band", errors="ignore") for f in features],
        dim="feature",
        coords="minimal",
        compat="override",
        join="exact",
    )
    stack = stack.assign_coords(feature=features).transpose("time", "feature", "y", "x")
    stack.attrs = {"long_name": "per-frame features (reflectance and indices)"}
    if norm_bands is not None and "NORM" in features and "NORM" not in layers:
        stack.attrs["norm_bands"] = ",".join(norm_bands)
    taken = [f for f in features if f in layers]
    if taken:
        stack.attrs["from_source"] = ",".join(taken)
    return stack.rename("features")
