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

At large AOIs neither raster is ever a whole-AOI array: with ``chunks`` (the features cube's
chunks) both rasterisers return a lazy dask array whose chunks each burn only the polygons
whose bounding box meets them (a spatial index), and :func:`erode_labels` erodes a dask array
with ``map_overlap`` (depth = the radius), which gives the whole-array result exactly,
chunk borders included.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterable

import dask.array as da
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from rasterio import features as rio_features
from rasterio.errors import NotGeoreferencedWarning
from scipy import ndimage
from shapely.geometry import box

from perceptive.eo.grid import Grid
from perceptive.eo.legend import NO_DATA, LandCoverClass

# rasterio silences this warning of its in-memory dataset's creation with catch_warnings,
# which is not thread-safe: chunks burnt in parallel let it through, though every call here
# passes a transform.
warnings.filterwarnings(
    "ignore", "Dataset has no geotransform", NotGeoreferencedWarning, "rasterio.features"
)

#: Dask chunks of a (y, x) raster: an int, a (rows, cols) pair, or dask's tuples of sizes.
Chunks = int | tuple


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
    chunks: Chunks | None = None,
) -> np.ndarray | da.Array:
    """Burn reference polygons into a (height, width) uint8 class raster on ``grid``.

    Polygons are reprojected to the grid CRS; a pixel gets a polygon's class when its centre
    is inside (``all_touched=False``); where polygons overlap the later row wins; pixels
    outside every polygon are 0 (no data). When ``legend`` is given, every class id must be
    one of its ids. Raises a :class:`LabelError` naming the problem and the fix (the checks
    of the table run at once, also for a lazy raster).

    ``chunks`` (dask chunks of (y, x), e.g. the features cube's) gives a lazy dask array
    instead of a numpy one: each chunk burns only the polygons meeting it, on its own window
    of the grid, so no whole-AOI array is ever made.
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
    keep = ids != NO_DATA
    geoms = np.asarray(projected.values, dtype=object)[keep]
    return _burn(geoms, ids[keep], grid, np.uint8, chunks)


def rasterize_parcels(
    reference: gpd.GeoDataFrame,
    grid: Grid,
    class_column: str = "class_id",
    chunks: Chunks | None = None,
) -> np.ndarray | da.Array:
    """A (height, width) int32 raster of parcel numbers: 1 + the polygon's row position in
    ``reference``, 0 outside every polygon. Burnt with :func:`rasterize_labels`' rules
    (pixel centre, later row wins, class 0 polygons skipped), so it matches the label raster
    pixel for pixel; call that first for the checks of the reference data. ``chunks``: a
    lazy dask array, chunk by chunk, as in :func:`rasterize_labels`."""
    projected = reference.geometry.to_crs(grid.crs)
    ids = pd.to_numeric(reference[class_column], errors="coerce").to_numpy()
    geoms = np.asarray(projected.values, dtype=object)
    numbers = np.arange(1, len(geoms) + 1, dtype=np.int64)
    keep = np.array(
        [
            g is not None and not g.is_empty and i != NO_DATA
            for g, i in zip(geoms, ids, strict=True)
        ],
        dtype=bool,
    )
    return _burn(geoms[keep], numbers[keep], grid, np.int32, chunks)


def _burn(
    geoms: np.ndarray, values: np.ndarray, grid: Grid, dtype: type, chunks: Chunks | None
) -> np.ndarray | da.Array:
    """``values`` burnt at ``geoms`` (pixel centres, later wins, 0 elsewhere) on ``grid``: a
    lazy dask array of ``chunks`` (each chunk burns the geometries whose bounding box meets
    its window, found with an STR tree, in table order), or numpy when ``chunks`` is None."""
    shape = (grid.height, grid.width)
    tree = shapely.STRtree(geoms)  # built here, once: chunks only query it

    def burn(block_info=None) -> np.ndarray:
        (y0, y1), (x0, x1) = block_info[None]["array-location"]
        window = grid.window(y0, x0, y1 - y0, x1 - x0)
        return _burn_window(geoms, values, tree, window, dtype)

    if chunks is None:
        return _burn_window(geoms, values, tree, grid, dtype)
    normalized = da.core.normalize_chunks(chunks, shape)
    return da.map_blocks(
        burn,
        chunks=normalized,
        dtype=dtype,
        meta=np.empty((0, 0), dtype),
        name=f"rasterize-{uuid.uuid4().hex}",
    )


def _burn_window(
    geoms: np.ndarray, values: np.ndarray, tree: shapely.STRtree, window: Grid, dtype: type
) -> np.ndarray:
    out = np.zeros((window.height, window.width), dtype=dtype)
    hits = np.sort(tree.query(box(*window.bounds)))  # table order: the later one wins
    if hits.size == 0:
        return out
    shapes = zip(geoms[hits], (int(v) for v in values[hits]), strict=True)
    try:
        rio_features.rasterize(
            shapes, out=out, transform=window.transform, fill=0, all_touched=False, dtype=dtype
        )
    except ValueError as err:  # rasterio: "No valid geometry objects found for rasterize"
        if "No valid geometry" not in str(err):
            raise
    return out


def disk(radius: int) -> np.ndarray:
    """A boolean disk footprint of ``radius`` pixels (Euclidean, centre included)."""
    r = int(radius)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return (yy * yy + xx * xx) <= r * r


def erode_labels(labels: np.ndarray | da.Array, radius: int = 1) -> np.ndarray | da.Array:
    """Set to 0 every pixel whose disk neighbourhood (``radius`` px) holds more than one value.

    Like eo-learn's per-class ``ErosionTask``: a labelled pixel survives only if all pixels
    within ``radius`` carry its class; pixels next to another class *or* to unlabelled (0)
    pixels are dropped. The raster border is not treated as a boundary (outside pixels are
    ignored). ``radius=0`` returns a copy. A dask array gives a lazy one in the same chunks,
    eroded with ``map_overlap`` (``radius`` px of the neighbouring chunks), equal to the
    whole-array erosion pixel for pixel.
    """
    lazy = isinstance(labels, da.Array)
    labels = labels if lazy else np.asarray(labels)
    if labels.ndim != 2:
        raise LabelError(f"labels must be a 2-D (y, x) raster, got shape {labels.shape}.")
    if radius < 0:
        raise LabelError(f"Erosion radius must be >= 0 pixels, got {radius}.")
    if lazy:
        labels = labels.astype(np.uint8)
        if radius == 0:
            return labels
        out = da.map_overlap(
            _erode, labels, depth=radius, boundary="none", dtype=np.uint8, radius=radius
        )  # "none": no padding at the raster border, where _erode's mode="nearest" applies
        return out if out.chunks == labels.chunks else out.rechunk(labels.chunks)
    out = labels.astype(np.uint8, copy=True)
    if radius == 0:
        return out
    return _erode(out, radius)


def _erode(out: np.ndarray, radius: int) -> np.ndarray:
    """Erode a uint8 (y, x) block in place (see :func:`erode_labels`)."""
    out = out.copy() if not out.flags.writeable else out
    footprint = disk(radius)
    # mode="nearest" clamps outside positions onto the border, which only repeats values that
    # are already in the (convex) disk neighbourhood, i.e. outside pixels are ignored.
    hi = ndimage.maximum_filter(out, footprint=footprint, mode="nearest")
    lo = ndimage.minimum_filter(out, footprint=footprint, mode="nearest")
    out[hi != lo] = NO_DATA
    return out
