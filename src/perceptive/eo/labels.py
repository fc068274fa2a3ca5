"""Reference labels on the cube's pixel grid: polygons → uint8 class raster, then erosion.

Training needs one class id per pixel, on exactly the grid of the features cube. Polygons
come in any CRS; they are reprojected to the grid CRS and burnt with the pixel-centre rule
(a pixel takes a polygon's class when its centre lies inside, so a boundary pixel goes to the
polygon holding its centre, and a pixel whose centre no polygon holds stays unlabelled);
where polygons overlap, the later one in the table wins. :func:`rasterize_parcels` burns the
polygon numbers with the same rule, so each labelled pixel names the parcel its class came
from (what keeps a parcel on one side of the train/validation split). Erosion then drops parcel-edge
pixels whose spectra mix two classes (eo-learn's ``ErosionTask``), which makes cleaner
training and validation samples.
"""

from __future__ import annotations

from collections.abc import Iterable

import geopandas as gpd
import numpy as np
import pandas as pd
from rasterio import features as rio_features
from scipy import ndimage
from shapely.geometry import box

from perceptive.eo.grid import Grid
from perceptive.eo.legend import NO_DATA, LandCoverClass


class LabelError(ValueError):
    """Reference labels cannot be turned into a label raster on the grid."""


def _check_class_ids(
    values: pd.Series, class_column: str, legend: Iterable[LandCoverClass] | None
) -> np.ndarray:
    if values.isna().any():
        bad = int(values.isna().sum())
        raise LabelError(
            f"Column {class_column!r} has {bad} empty value(s); give every polygon a class id "
            "or drop the unlabelled polygons."
        )
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.isna().any():
        examples = sorted({str(v) for v in values[numeric.isna()]})[:5]
        raise LabelError(
            f"Column {class_column!r} must hold integer class ids, found {examples}; "
            "map class names to ids of the legend first."
        )
    ids = numeric.to_numpy(dtype=np.float64)
    if not np.all(ids == np.round(ids)):
        raise LabelError(f"Column {class_column!r} must hold integer class ids, found fractions.")
    ids = ids.astype(np.int64)
    outside = sorted(set(ids[(ids < 0) | (ids > 255)].tolist()))
    if outside:
        raise LabelError(
            f"Class ids {outside[:10]} in column {class_column!r} are outside 0..255 and do "
            "not fit the uint8 label raster; renumber them to legend ids."
        )
    if legend is not None:
        known = {c.id for c in legend}
        unknown = sorted(set(ids.tolist()) - known)
        if unknown:
            counts = pd.Series(ids).value_counts()
            listed = ", ".join(f"{i}: {counts[i]}" for i in unknown)
            raise LabelError(
                f"Class ids {unknown} in column {class_column!r} are not in the legend "
                f"(class id: number of polygons: {listed}; legend ids {sorted(known)}). Add "
                "them to parameter 'legend', map the source's codes to legend ids with "
                "'reference.class_mapping', or fix the reference data."
            )
    return ids


def rasterize_labels(
    reference: gpd.GeoDataFrame,
    grid: Grid,
    class_column: str = "class_id",
    legend: Iterable[LandCoverClass] | None = None,
) -> np.ndarray:
    """Burn reference polygons into a (height, width) uint8 class raster on ``grid``.

    Polygons are reprojected to the grid CRS; a pixel gets a polygon's class when its centre
    is inside (``all_touched=False``); where polygons overlap the later row wins; pixels
    outside every polygon are 0 (no data). When ``legend`` is given, every class id must be
    one of its ids. Raises a :class:`LabelError` naming the problem and the fix.
    """
    if not isinstance(reference, gpd.GeoDataFrame):
        raise LabelError(
            f"reference must be a GeoDataFrame of polygons, got {type(reference).__name__}."
        )
    if len(reference) == 0:
        raise LabelError(
            "The reference labels are empty (no features); check the file path, layer and any "
            "filter applied when reading it."
        )
    if reference.crs is None:
        raise LabelError(
            "The reference labels have no CRS; set it (e.g. gdf.set_crs('EPSG:32633') or in "
            "QGIS) so they can be reprojected to the grid."
        )
    if class_column not in reference.columns:
        available = [c for c in reference.columns if c != reference.geometry.name]
        raise LabelError(
            f"The reference labels have no column {class_column!r}; available columns: "
            f"{available}. Set the class column parameter to one of them."
        )
    usable = reference[~(reference.geometry.isna() | reference.geometry.is_empty)]
    if len(usable) == 0:
        raise LabelError("Every geometry of the reference labels is empty or missing.")
    ids = _check_class_ids(usable[class_column], class_column, legend)

    projected = usable.geometry.to_crs(grid.crs)
    aoi = box(*grid.bounds)
    if not projected.intersects(aoi).any():
        ref_bounds = tuple(round(float(v), 1) for v in projected.total_bounds)
        grid_bounds = tuple(round(float(v), 1) for v in grid.bounds)
        raise LabelError(
            f"No reference polygon intersects the AOI. In {grid.crs.to_string()}, the polygons "
            f"span {ref_bounds} and the AOI grid spans {grid_bounds} (left, bottom, right, "
            "top); use reference labels for this AOI or check their CRS."
        )
    shapes = ((geom, int(i)) for geom, i in zip(projected.values, ids, strict=True) if i != NO_DATA)
    out = np.zeros((grid.height, grid.width), dtype=np.uint8)
    try:
        rio_features.rasterize(
            shapes,
            out=out,
            transform=grid.transform,
            fill=NO_DATA,
            all_touched=False,
            dtype=np.uint8,
        )
    except ValueError as err:  # rasterio: "No valid geometry objects found for rasterize"
        if "No valid geometry" not in str(err):
            raise
    return out


def rasterize_parcels(
    reference: gpd.GeoDataFrame, grid: Grid, class_column: str = "class_id"
) -> np.ndarray:
    """A (height, width) int32 raster of parcel numbers: 1 + the polygon's row position in
    ``reference``, 0 outside every polygon. Burnt with :func:`rasterize_labels`' rules
    (pixel centre, later row wins, class 0 polygons skipped), so it matches the label raster
    pixel for pixel; call that first for the checks of the reference data."""
    projected = reference.geometry.to_crs(grid.crs)
    ids = pd.to_numeric(reference[class_column], errors="coerce").to_numpy()
    shapes = [
        (geom, number)
        for number, (geom, class_id) in enumerate(zip(projected.values, ids, strict=True), 1)
        if geom is not None and not geom.is_empty and class_id != NO_DATA
    ]
    out = np.zeros((grid.height, grid.width), dtype=np.int32)
    if shapes:
        rio_features.rasterize(
            shapes, out=out, transform=grid.transform, fill=0, all_touched=False, dtype=np.int32
        )
    return out


def disk(radius: int) -> np.ndarray:
    """A boolean disk footprint of ``radius`` pixels (Euclidean, centre included)."""
    r = int(radius)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return (yy * yy + xx * xx) <= r * r


def erode_labels(labels: np.ndarray, radius: int = 1) -> np.ndarray:
    """Set to 0 every pixel whose disk neighbourhood (``radius`` px) holds more than one value.

    Like eo-learn's per-class ``ErosionTask``: a labelled pixel survives only if all pixels
    within ``radius`` carry its class; pixels next to another class *or* to unlabelled (0)
    pixels are dropped. The raster border is not treated as a boundary (outside pixels are
    ignored). ``radius=0`` returns a copy.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise LabelError(f"labels must be a 2-D (y, x) raster, got shape {labels.shape}.")
    if radius < 0:
        raise LabelError(f"Erosion radius must be >= 0 pixels, got {radius}.")
    out = labels.astype(np.uint8, copy=True)
    if radius == 0:
        return out
    footprint = disk(radius)
    # mode="nearest" clamps outside positions onto the border, which only repeats values that
    # are already in the (convex) disk neighbourhood, i.e. outside pixels are ignored.
    hi = ndimage.maximum_filter(out, footprint=footprint, mode="nearest")
    lo = ndimage.minimum_filter(out, footprint=footprint, mode="nearest")
    out[hi != lo] = NO_DATA
    return out
