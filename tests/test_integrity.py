"""Integrity manifests: a saved version that lost or changed a file is never read silently."""

import json
import logging
import shutil
import warnings

import dask.array as da
import numpy as np
import pytest
import rasterio
import xarray as xr
from kedro.io.core import DatasetError, Version

from perceptive.datasets import GeoTiffDataset, ZarrDataset
from perceptive.datasets.manifest import CorruptedDatasetError
from perceptive.eo.cube import attach_grid
from perceptive.eo.grid import Grid
from perceptive.eo.legend import map_attrs

GRID = Grid(rasterio.crs.CRS.from_epsg(32633), 500000.0, 5100000.0, 10.0, 40, 30)
MAP_GRID = Grid(rasterio.crs.CRS.from_epsg(32633), 500000.0, 5100000.0, 10.0, 400, 300)
VERSION = "2017-01-01T00.00.00.000Z"
PROVENANCE = json.dumps({"dataset": "features_cube", "node": "compute_features"})


def _cube() -> xr.Dataset:
    """A small features-like cube: 2 dates x 3 features x 30 x 40 px, chunks of 16 px."""
    values = da.arange(2 * 3 * 30 * 40, dtype="float32").reshape(2, 3, 30, 40)
    cube = xr.Dataset(
        {
            "features": (("time", "feature", "y", "x"), values.rechunk((2, 1, 16, 16))),
            "valid_count": (("y", "x"), da.ones((30, 40), dtype="uint16", chunks=16)),
        },
        coords={
            "time": np.array(["2017-01-01", "2017-01-17"], dtype="datetime64[ns]"),
            "feature": ["B02", "NDVI", "NDWI"],
        },
        attrs={"provenance": PROVENANCE},
    )
    return attach_grid(cube, GRID)


@pytest.fixture
def saved(tmp_path):
    """(dataset for the newest version, store folder, what was saved)."""
    cube = _cube()
    path = tmp_path / "features_cube.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no zarr warnings: readable by other Zarr tools
        ZarrDataset(filepath=str(path), version=Version(None, VERSION), progress=False).save(cube)
    return (
        ZarrDataset(filepath=str(path), version=Version(None, None)),
        path / VERSION / path.name,
        cube,
    )


def test_untouched_version_loads_equal_without_warnings(saved):
    dataset, store, cube = saved
    assert (store.parent / "features_cube.zarr.manifest.json").exists()
    assert not [p for p in store.rglob("*") if "manifest" in p.name]  # nothing foreign inside
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = dataset.load()
        xr.testing.assert_identical(loaded.compute(), cube.compute())
    assert isinstance(loaded["features"].data, da.Array)  # still lazy
    assert loaded.rio.crs == GRID.crs


def test_deleted_chunk_is_named_with_version_and_pipeline(saved):
    dataset, store, _ = saved
    (store / "features" / "c" / "0" / "1" / "0" / "1").unlink()
    with pytest.raises(CorruptedDatasetError) as error:
        dataset.load()
    message = str(error.value)
    assert "features/c/0/1/0/1" in message
    assert VERSION in message and str(store) in message
    assert "kedro run --pipelines feature_engineering" in message
    assert isinstance(error.value, DatasetError)


def test_truncated_chunk_is_caught_at_load(saved):
    dataset, store, _ = saved
    chunk = store / "features" / "c" / "0" / "2" / "1" / "0"
    chunk.write_bytes(chunk.read_bytes()[:-10])
    with pytest.raises(CorruptedDatasetError, match="changed size: features/c/0/2/1/0"):
        dataset.load()


def test_deleted_variable_folder_is_caught_at_load(saved):
    dataset, store, _ = saved
    shutil.rmtree(store / "valid_count")
    with pytest.raises(CorruptedDatasetError, match=r"missing: valid_count/"):
        dataset.load()


def test_flipped_bytes_in_a_large_chunk_fail_at_compute_naming_the_dataset(saved, monkeypatch):
    dataset, store, _ = saved
    monkeypatch.setattr(ZarrDataset, "checksum_below", 0)  # as if every chunk were large
    chunk = store / "features" / "c" / "0" / "0" / "0" / "0"
    content = bytearray(chunk.read_bytes())
    content[len(content) // 2] ^= 0xFF  # same size, other bytes
    chunk.write_bytes(bytes(content))
    loaded = dataset.load()  # sizes match: the load is lazy and does not re-read chunks
    loaded["features"].isel(feature=2).compute()  # other chunks still read
    with pytest.raises(CorruptedDatasetError) as error:
        loaded["features"].isel(feature=0).compute()
    message = str(error.value)
    assert "'features_cube'" in message and VERSION in message
    assert "features/c/0/0/0/0" in message and "crc32c" in message


def test_flipped_bytes_in_a_small_chunk_are_caught_at_load(saved):
    dataset, store, _ = saved
    chunk = store / "valid_count" / "c" / "1" / "1"
    content = bytearray(chunk.read_bytes())
    content[0] ^= 0x01
    chunk.write_bytes(bytes(content))
    with pytest.raises(CorruptedDatasetError, match="changed content: valid_count/c/1/1"):
        dataset.load()


def test_old_version_without_manifest_loads_with_a_warning(tmp_path, caplog):
    """Versions written before manifests: consolidated metadata, no manifest."""
    path = tmp_path / "features_cube.zarr"
    cube = _cube()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the old writer's own zarr warnings
        cube.to_zarr(path / VERSION / path.name, consolidated=True, mode="w-")
    with caplog.at_level(logging.WARNING, logger="perceptive.datasets.manifest"):
        loaded = ZarrDataset(filepath=str(path), version=Version(None, None)).load()
    assert "no integrity manifest" in caplog.text and len(caplog.records) == 1
    xr.testing.assert_identical(loaded.compute(), cube.compute())


def _map(tmp_path):
    values = np.arange(300 * 400, dtype="uint8").reshape(300, 400) % 11
    lulc = attach_grid(xr.DataArray(values, dims=("y", "x"), attrs=map_attrs()), MAP_GRID)
    path = tmp_path / "lulc_map.tif"
    GeoTiffDataset(filepath=str(path), version=Version(None, VERSION)).save(lulc)
    return (
        GeoTiffDataset(filepath=str(path), version=Version(None, None)),
        path / VERSION / path.name,
        values,
    )


def test_geotiff_untouched_loads_and_random_bytes_are_caught(tmp_path):
    dataset, tif, values = _map(tmp_path)
    np.testing.assert_array_equal(dataset.load().values, values)
    size = tif.stat().st_size
    with open(tif, "r+b") as f:
        f.seek(size // 2)
        f.write(np.random.default_rng(0).bytes(64))
    assert tif.stat().st_size == size
    with pytest.raises(CorruptedDatasetError, match=rf"{VERSION}.*changed content: lulc_map.tif"):
        dataset.load()
