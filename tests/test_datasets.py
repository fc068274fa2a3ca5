"""perceptive.datasets: versioned round trips, atomic saves, georeferenced GeoTIFFs."""

import dask.array as da
import geopandas as gpd
import numpy as np
import pytest
import rasterio
import xarray as xr
from kedro.io.core import DatasetError, Version
from shapely.geometry import box

from perceptive.datasets import GeoTiffDataset, VectorDataset, ZarrDataset
from perceptive.eo.cube import attach_grid, make_l1c_cube
from perceptive.eo.grid import Grid
from perceptive.eo.legend import map_attrs

GRID = Grid(rasterio.crs.CRS.from_epsg(32633), 500000.0, 5100000.0, 10.0, 40, 30)


def _cube():
    bands = (
        da.arange(2 * 13 * 30 * 40, dtype="uint16").reshape(2, 13, 30, 40).rechunk((2, 13, 16, 16))
    )
    return make_l1c_cube(bands, ["2017-01-01", "2017-01-06"], GRID)


def test_zarr_versions_round_trip_lazily(tmp_path):
    path = str(tmp_path / "cube.zarr")
    cube = _cube()
    ZarrDataset(filepath=path, version=Version(None, "2017-01-01T00.00.00.000Z")).save(cube)
    ZarrDataset(filepath=path, version=Version(None, "2017-02-01T00.00.00.000Z")).save(cube + 1)

    latest = ZarrDataset(filepath=path, version=Version(None, None))
    assert latest.list_versions(full_path=False) == [
        "2017-02-01T00.00.00.000Z",
        "2017-01-01T00.00.00.000Z",
    ]
    loaded = latest.load()
    assert isinstance(loaded["bands"].data, da.Array)  # lazy
    np.testing.assert_array_equal(loaded["bands"].values, cube["bands"].values + 1)
    assert loaded.rio.crs == GRID.crs
    old = ZarrDataset(filepath=path, version=Version("2017-01-01T00.00.00.000Z", None)).load()
    np.testing.assert_array_equal(old["bands"].values, cube["bands"].values)


def test_failed_save_leaves_no_version_behind(tmp_path):
    path = tmp_path / "cube.zarr"

    def explode(block):
        raise RuntimeError("disk on fire")

    broken = _cube().copy()
    broken["bands"] = broken["bands"].copy(
        data=broken["bands"].data.map_blocks(explode, dtype="uint16")
    )
    dataset = ZarrDataset(filepath=str(path), version=Version(None, "2017-01-01T00.00.00.000Z"))
    with pytest.raises(DatasetError, match="disk on fire"):
        dataset.save(broken)
    leftovers = list(path.rglob("*")) if path.exists() else []
    assert not [p for p in leftovers if p.name.endswith(".zarr")], leftovers
    assert ZarrDataset(filepath=str(path), version=Version(None, None)).exists() is False


def test_saved_version_is_never_overwritten(tmp_path):
    version = Version(None, "2017-01-01T00.00.00.000Z")
    ZarrDataset(filepath=str(tmp_path / "c.zarr"), version=version).save(_cube())
    with pytest.raises(DatasetError):
        ZarrDataset(filepath=str(tmp_path / "c.zarr"), version=version).save(_cube())


def test_geotiff_keeps_crs_transform_nodata_and_colours(tmp_path):
    values = np.arange(30 * 40, dtype="uint8").reshape(30, 40) % 11
    lulc = attach_grid(xr.DataArray(values, dims=("y", "x"), attrs=map_attrs()), GRID)
    path = tmp_path / "map.tif"
    GeoTiffDataset(filepath=str(path)).save(lulc)
    with rasterio.open(path) as src:
        assert src.crs == GRID.crs
        assert src.transform == GRID.transform
        assert src.nodata == 0
        assert src.colormap(1)[5][:3] == (6, 154, 243)  # water
        assert src.tags()["CLASS_2"] == "forest"
        np.testing.assert_array_equal(src.read(1), values)
    back = GeoTiffDataset(filepath=str(path)).load()
    np.testing.assert_array_equal(back.values, values)
    np.testing.assert_allclose(back["x"].values, GRID.x)


def test_vector_round_trip_keeps_crs(tmp_path):
    frame = gpd.GeoDataFrame(
        {"class_id": [1, 2]}, geometry=[box(0, 0, 1, 1), box(1, 0, 2, 1)], crs=32633
    )
    dataset = VectorDataset(filepath=str(tmp_path / "labels.gpkg"), version=Version(None, "v1"))
    dataset.save(frame)
    back = VectorDataset(filepath=str(tmp_path / "labels.gpkg"), version=Version("v1", None)).load()
    assert back.crs == frame.crs
    assert back["class_id"].tolist() == [1, 2]
