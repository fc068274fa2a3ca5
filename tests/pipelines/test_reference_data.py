"""Reference data of one's own: a raster on another grid and CRS, codes mapped to legend ids,
and the errors for a file that cannot label the AOI. Through the real ingestion node (the
snapshot it hands over) and sampling's rasterisation, then through a Kedro session.

Expected label rasters are written out by hand from the pixel geometry, never read from the
output under test.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import xarray as xr
from affine import Affine
from pyproj import CRS
from rasterio import features as rio_features
from rasterio.warp import Resampling, reproject
from shapely.geometry import box

from perceptive.eo.cube import attach_grid
from perceptive.eo.grid import Grid
from perceptive.eo.labels import rasterize_labels
from perceptive.params import Reference
from perceptive.pipelines.ingestion.nodes import import_reference_labels
from perceptive.pipelines.ingestion.pipeline import create_pipeline as ingestion
from tests.conftest import run_kedro
from tests.pipelines.test_wiring import TINY, TINY_AOI, run

UTM = CRS.from_epsg(32633)
#: 6 x 4 px of 10 m, top-left corner (500000, 5000040).
GRID = Grid(UTM, 500000.0, 5000040.0, 10.0, width=6, height=4)


def empty_cube(grid: Grid) -> xr.Dataset:
    """A cube with only the grid: all import_reference_labels reads of it."""
    return attach_grid(xr.Dataset(), grid)


@pytest.fixture(scope="module", autouse=True)
def project():
    from kedro.framework.startup import bootstrap_project

    from tests.pipelines.test_wiring import PROJECT

    bootstrap_project(PROJECT)


def write_raster(path: Path, codes: np.ndarray, transform: Affine, crs, nodata=None) -> Path:
    with rasterio.open(
        path, "w", driver="GTiff", width=codes.shape[1], height=codes.shape[0], count=1,
        dtype=codes.dtype, crs=crs, transform=transform, nodata=nodata,
    ) as dst:  # fmt: skip
        dst.write(codes, 1)
    return path


def label_raster(file: Path, grid: Grid = GRID, **reference) -> np.ndarray:
    """Ingestion's snapshot of ``file``, burnt onto ``grid`` as sampling does."""
    params = Reference(file=str(file), **{"class_column": "class_id", "class_mapping": None,
                                          **reference})  # fmt: skip
    snapshot = import_reference_labels(None, params, empty_cube(grid))
    return rasterize_labels(snapshot, grid)


def test_a_coarser_raster_takes_the_code_of_the_pixel_holding_each_centre(tmp_path):
    # 20 m pixels from (499990, 5000050): cube column i (centre 500005 + 10 i) falls in raster
    # column floor((15 + 10 i) / 20) = 0 1 1 2 2 3, row j in floor((15 + 10 j) / 20) = 0 1 1 2
    codes = np.array([[1, 2, 3, 4], [5, 6, 7, 8], [9, 255, 1, 2]], dtype=np.uint8)
    transform = Affine(20, 0, 499990, 0, -20, 5000050)
    path = write_raster(tmp_path / "coarse.tif", codes, transform, UTM, nodata=255)
    expected = np.array(
        [
            [1, 2, 2, 3, 3, 4],
            [5, 6, 6, 7, 7, 8],
            [5, 6, 6, 7, 7, 8],
            [9, 0, 0, 1, 1, 2],  # raster pixel (2, 1) is nodata: unlabelled
        ],
        dtype=np.uint8,
    )
    out = label_raster(path)
    np.testing.assert_array_equal(out, expected)
    nearest = np.zeros((GRID.height, GRID.width), np.uint8)  # rasterio's own resampling
    reproject(
        codes, nearest, src_transform=transform, src_crs=UTM, dst_transform=GRID.transform,
        dst_crs=UTM, resampling=Resampling.nearest,
    )  # fmt: skip
    nearest[nearest == 255] = 0  # nodata: unlabelled
    np.testing.assert_array_equal(out, nearest)


def test_a_raster_in_another_crs_and_resolution_gives_the_labels_of_the_same_vector(tmp_path):
    grass = box(500000, 5000000, 500030, 5000040)  # columns 0-2, every row
    water = box(500040, 5000020, 500060, 5000040)  # columns 4-5, rows 0-1
    vector = gpd.GeoDataFrame({"class_id": [3, 5]}, geometry=[grass, water], crs=UTM)
    expected = np.array(
        [[3, 3, 3, 0, 5, 5], [3, 3, 3, 0, 5, 5], [3, 3, 3, 0, 0, 0], [3, 3, 3, 0, 0, 0]],
        dtype=np.uint8,
    )
    vector.to_file(tmp_path / "labels.gpkg", engine="pyogrio")
    np.testing.assert_array_equal(label_raster(tmp_path / "labels.gpkg"), expected)

    # the same polygons burnt in WGS84 at 1e-5 degrees (about 0.8 x 1.1 m): each cube-pixel
    # centre is 5 m, several raster pixels, from the nearest class edge
    wgs = vector.to_crs(4326)
    left, bottom, right, top = wgs.buffer(1e-4).total_bounds
    transform = Affine(1e-5, 0, left, 0, -1e-5, top)
    shape = (round((top - bottom) / 1e-5), round((right - left) / 1e-5))
    codes = rio_features.rasterize(
        zip(wgs.geometry, wgs["class_id"], strict=True), out_shape=shape, transform=transform,
        fill=255, dtype=np.uint8,
    )  # fmt: skip
    assert set(np.unique(codes)) == {3, 5, 255}
    path = write_raster(tmp_path / "labels_wgs84.tif", codes, transform, "EPSG:4326", nodata=255)
    np.testing.assert_array_equal(label_raster(path), expected)


def test_a_raster_over_the_aoi_is_read_only_there_and_its_snapshot_keeps_the_codes(tmp_path):
    codes = np.full((100, 100), 7, dtype=np.int16)  # 1 km of 10 m pixels around the grid
    codes[:50] = 2
    transform = Affine(10, 0, 499500, 0, -10, 5000500)  # row 50 starts at y = 5000000
    path = write_raster(tmp_path / "big.tif", codes, transform, UTM)
    params = Reference(file=str(path), class_column="unused", class_mapping={"2": 1, "7": 8})
    snapshot = import_reference_labels(None, params, empty_cube(GRID))
    assert sorted(snapshot["code"]) == [2, 7]
    assert sorted(snapshot["class_id"]) == [1, 8]
    assert snapshot.crs == UTM
    assert box(*snapshot.total_bounds).within(box(499490, 4999490, 500510, 5000510))
    assert box(*snapshot.total_bounds).area < 300 * 300  # a window over the grid, not 1 km²
    out = rasterize_labels(snapshot, GRID)
    assert (out == 1).all()  # the grid (y 5000000 .. 5000040) lies in the rows of code 2


@pytest.fixture
def land_register(tmp_path) -> Path:
    """Six parcels over the tiny AOI with a register's own codes in column ``lu``."""
    path = tmp_path / "register.gpkg"
    left, top = TINY_AOI["bbox"][0], TINY_AOI["bbox"][3]
    parcels = [box(left + 100 * i, top - 100, left + 100 * (i + 1), top) for i in range(6)]
    gpd.GeoDataFrame({"lu": [211, 311, 211, 999, 512, 999]}, geometry=parcels, crs=UTM).to_file(
        path, engine="pyogrio"
    )
    return path


def test_class_mapping_maps_the_codes_to_legend_ids(land_register):
    mapping = {211: 1, "311": 2, 999: 0, 512: 9}  # keys as YAML gives them: int or text
    reference = {"file": str(land_register), "class_column": "lu", "class_mapping": mapping}
    labels = run(ingestion(), reference=reference)["reference_labels"]
    assert labels["lu"].tolist() == [211, 311, 211, 999, 512, 999]
    assert labels["class_id"].tolist() == [1, 2, 1, 0, 9, 0]


def test_codes_missing_from_the_mapping_are_listed_with_counts(land_register):
    reference = {"file": str(land_register), "class_column": "lu",
                 "class_mapping": {211: 1, 311: 2}}  # fmt: skip
    with pytest.raises(ValueError, match=r"2 code\(s\) of column 'lu'") as err:
        run(ingestion(), reference=reference)
    message = str(err.value)
    assert "'999': 2, '512': 1" in message
    assert "'211'" not in message and "'311'" not in message
    assert "reference.class_mapping" in message and "code: legend id" in message


def test_a_vector_file_off_the_aoi_names_both_extents(tmp_path):
    path = tmp_path / "elsewhere.gpkg"
    far = box(600000, 5000000, 600100, 5000100)
    gpd.GeoDataFrame({"class_id": [1]}, geometry=[far], crs=UTM).to_file(path, engine="pyogrio")
    with pytest.raises(ValueError, match="does not overlap the AOI") as err:
        run(ingestion(), reference={"file": str(path)})
    message = str(err.value)
    assert "EPSG:32633" in message
    assert "(600000.0, 5000000.0, 600100.0, 5000100.0)" in message
    assert "(500000.0, 5099360.0, 500640.0, 5100000.0)" in message  # TINY_AOI


def test_a_raster_off_the_aoi_names_both_extents(tmp_path):
    transform = Affine(10, 0, 600000, 0, -10, 5000100)
    codes = np.ones((10, 10), dtype=np.uint8)
    path = write_raster(tmp_path / "elsewhere.tif", codes, transform, UTM)
    with pytest.raises(ValueError, match="does not overlap the AOI") as err:
        label_raster(path)
    message = str(err.value)
    assert "(600000.0, 5000000.0, 600100.0, 5000100.0)" in message
    assert "(500000.0, 5000000.0, 500060.0, 5000040.0)" in message  # GRID


def test_a_raster_with_only_nodata_over_the_aoi_is_refused(tmp_path):
    codes = np.zeros((10, 10), dtype=np.uint8)
    path = write_raster(tmp_path / "empty.tif", codes, Affine(10, 0, 499950, 0, -10, 5000090), UTM,
                        nodata=0)  # fmt: skip
    with pytest.raises(ValueError, match=r"no labelled pixel \(only nodata\) over the AOI"):
        label_raster(path)


# --------------------------------------------------------------------------- through Kedro

#: 80 m patches from (499920, 5100080), one patch beyond the tiny AOI on every side.
PATCH, ORIGIN = 80, (499920, 5100080)
CODE_TO_CLASS = {21: 3, 51: 5}


@pytest.fixture(scope="module")
def register_raster(tmp_path_factory) -> Path:
    """A checkerboard of 80 m patches of codes 21 and 51 at 4 m in UTM (so no cube-pixel
    centre lies on a raster pixel edge); patch (1, 1), the AOI's top-left one, is nodata."""
    n = 800 // 4  # 10 patches of 20 px
    row, col = np.indices((n, n)) // (PATCH // 4)
    codes = np.where((row + col) % 2 == 0, 21, 51).astype(np.uint8)
    codes[(row == 1) & (col == 1)] = 0
    path = tmp_path_factory.mktemp("register") / "register.tif"
    return write_raster(path, codes, Affine(4, 0, ORIGIN[0], 0, -4, ORIGIN[1]), UTM, nodata=0)


def test_a_raster_register_with_a_mapping_gives_the_samples_of_its_patches(
    tmp_path, register_raster
):
    reference = {"file": str(register_raster), "class_mapping": CODE_TO_CLASS}
    params = {**TINY, "cloud_masking": {"method": "none"}, "reference": reference}
    catalog = run_kedro(tmp_path, ["ingestion", "feature_engineering", "sampling"], **params)
    samples = catalog.load("samples")
    patch_row = ((ORIGIN[1] - samples["y"]) // PATCH).astype(int)
    patch_col = ((samples["x"] - ORIGIN[0]) // PATCH).astype(int)
    assert not ((patch_row == 1) & (patch_col == 1)).any()  # the nodata patch
    expected = np.where((patch_row + patch_col) % 2 == 0, 3, 5)
    np.testing.assert_array_equal(samples["label"].to_numpy(), expected)
    assert set(samples["label"]) == {3, 5}  # the demo's own labels hold more classes
    assert samples.groupby("parcel")["label"].nunique().max() == 1  # a patch is a parcel
    snapshot = catalog.load("reference_labels")
    assert set(zip(snapshot["code"], snapshot["class_id"], strict=True)) == {(21, 3), (51, 5)}


def test_split_column_of_the_reference_labels_replaces_the_block_split(tmp_path):
    """80 m parcels over the tiny AOI, split by the user: columns 0-1 test, 6-7 validation."""
    left, top = TINY_AOI["bbox"][0], TINY_AOI["bbox"][3]
    rows, cols = np.divmod(np.arange(64), 8)
    path = tmp_path / "visited.gpkg"
    gpd.GeoDataFrame(
        {
            "lc": np.where((rows + cols) % 2 == 0, 3, 5),
            "set": np.select([cols <= 1, cols >= 6], ["test", " Validation"], "train"),
        },
        geometry=[
            box(left + 80 * c, top - 80 * (r + 1), left + 80 * (c + 1), top - 80 * r)
            for r, c in zip(rows, cols, strict=True)
        ],
        crs=UTM,
    ).to_file(path, engine="pyogrio")
    params = {**TINY, "cloud_masking": {"method": "none"}}
    params["reference"] = {"file": str(path), "class_column": "lc"}
    params["sampling"] = {**TINY["sampling"], "split_column": "set"}
    samples = run_kedro(tmp_path, ["ingestion", "feature_engineering", "sampling"], **params).load(
        "samples"
    )
    column = ((samples["x"] - left) // 80).astype(int)
    expected = np.select([column <= 1, column >= 6], ["test", "validation"], "train")
    np.testing.assert_array_equal(samples["split"].to_numpy(), expected)
    assert set(samples["split"]) == {"train", "validation", "test"}
    assert ((samples["fold"] == -1) == (samples["split"] == "test")).all()
