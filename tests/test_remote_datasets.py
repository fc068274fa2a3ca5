"""Every dataset of the catalog on an object store, against a local S3 server (moto's): a
version is written in place and counts once its manifest is written (perceptive.datasets.remote)."""

from __future__ import annotations

import fsspec
import geopandas as gpd
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr
from kedro.io.core import DatasetError, Version
from shapely.geometry import box

from perceptive.datasets import (
    AtomicCSVDataset,
    AtomicJSONDataset,
    AtomicMatplotlibDataset,
    AtomicParquetDataset,
    AtomicPickleDataset,
    GeoTiffDataset,
    VectorDataset,
    ZarrDataset,
)
from perceptive.datasets.manifest import SUFFIX, CorruptedDatasetError
from perceptive.datasets.remote import as_path
from perceptive.datasets.storage import StorageError, check_writable

V1, V2 = "2026-11-26T04.00.00.000Z", "2026-11-26T05.00.00.000Z"


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PERCEPTIVE_CACHE", str(tmp_path / "cache"))


def _saved(cls, filepath, data, version, **kwargs):
    cls(filepath=filepath, version=Version(None, version), **kwargs).save(data)


def _newest(cls, filepath, **kwargs):
    return cls(filepath=filepath, version=Version(None, None), **kwargs)


def _cube(offset=0.0) -> xr.Dataset:
    values = np.arange(2 * 6 * 8, dtype="float32").reshape(2, 6, 8) + offset
    return xr.Dataset({"bands": (("time", "y", "x"), values)}).chunk({"y": 3, "x": 4})


def _map() -> xr.DataArray:
    values = np.arange(64, dtype="uint8").reshape(8, 8) % 5
    coords = {"y": 5_100_000 - 5.0 - 10 * np.arange(8), "x": 500_005.0 + 10 * np.arange(8)}
    data = xr.DataArray(values, dims=("y", "x"), coords=coords).rio.write_crs("EPSG:32633")
    data.attrs.update(nodata=0, colormap={1: "#ff0000", 2: "#00ff00"}, class_names={1: "crop"})
    return data


def test_a_zarr_cube_goes_to_the_store_chunk_by_chunk_and_comes_back(s3_root):
    path = f"{s3_root}/02_intermediate/cube.zarr"
    _saved(ZarrDataset, path, _cube(), V1)
    _saved(ZarrDataset, path, _cube(offset=1000), V2)
    fs = fsspec.filesystem("s3")
    stored = path.removeprefix("s3://")
    chunks = fs.glob(f"{stored}/{V2}/cube.zarr/bands/c/*/*/*")
    assert len(chunks) == 1 * 2 * 2  # written in place, one object per chunk (time, y, x)
    assert fs.exists(f"{stored}/{V2}/cube.zarr{SUFFIX}")
    newest = _newest(ZarrDataset, path)
    assert newest.load()["bands"].values[1, 5, 7] == 2 * 6 * 8 - 1 + 1000
    assert newest.list_versions(full_path=False) == [V2, V1]


def test_a_version_without_its_manifest_never_counts(s3_root):
    """A save killed after its data and before its manifest: listed by no load, refused when
    pinned, and the version before it is what the newest load gives."""
    path = f"{s3_root}/04_feature/features.zarr"
    _saved(ZarrDataset, path, _cube(), V1)
    _cube(offset=1000).to_zarr(f"{path}/{V2}/features.zarr", consolidated=False)  # no manifest
    assert float(_newest(ZarrDataset, path).load()["bands"].max()) == 2 * 6 * 8 - 1
    pinned = ZarrDataset(filepath=path, version=Version(V2, None))
    with pytest.raises(CorruptedDatasetError, match="never finished"):
        pinned.load()


def test_a_lost_chunk_on_the_store_is_an_error_naming_it(s3_root):
    path = f"{s3_root}/04_feature/features.zarr"
    _saved(ZarrDataset, path, _cube(), V1)
    fs = fsspec.filesystem("s3")
    fs.rm(f"{path.removeprefix('s3://')}/{V1}/features.zarr/bands/c/0/1/1")
    with pytest.raises(CorruptedDatasetError, match=r"1 file\(s\) missing: bands/c/0/1/1"):
        _newest(ZarrDataset, path).load()


def test_a_failed_save_leaves_no_version(s3_root):
    def broken(block):
        raise RuntimeError("the node's computation failed")

    cube = _cube()
    cube["bands"] = cube["bands"].copy(data=cube["bands"].data.map_blocks(broken, dtype="float32"))
    path = f"{s3_root}/04_feature/features.zarr"
    with pytest.raises(DatasetError, match="computation failed"):
        _saved(ZarrDataset, path, cube, V1)
    assert not fsspec.filesystem("s3").exists(f"{path.removeprefix('s3://')}/{V1}")
    with pytest.raises(DatasetError):
        _newest(ZarrDataset, path).load()


def test_a_geotiff_map_is_uploaded_whole_and_read_from_a_verified_copy(s3_root, tmp_path):
    path = f"{s3_root}/07_model_output/lulc_map.tif"
    _saved(GeoTiffDataset, path, _map(), V1)
    fs = fsspec.filesystem("s3")
    folder = f"{path.removeprefix('s3://')}/{V1}"
    assert sorted(p.rsplit("/", 1)[1] for p in fs.ls(folder)) == [
        "lulc_map.tif",
        "lulc_map.tif.aux.xml",
        "lulc_map.tif.manifest.json",
    ]
    back = _newest(GeoTiffDataset, path).load()
    np.testing.assert_array_equal(back.values, _map().values)
    assert back.rio.crs.to_epsg() == 32633
    copy = next((tmp_path / "cache").rglob(f"{V1}/lulc_map.tif"))
    with rasterio.open(copy) as src:
        assert src.colormap(1)[1] == (255, 0, 0, 255)
    # a damaged local copy is fetched again, not read
    copy.write_bytes(copy.read_bytes()[:-100])
    np.testing.assert_array_equal(_newest(GeoTiffDataset, path).load().values, _map().values)


def test_a_damaged_geotiff_on_the_store_is_refused(s3_root):
    path = f"{s3_root}/07_model_output/lulc_map.tif"
    _saved(GeoTiffDataset, path, _map(), V1)
    fs = fsspec.filesystem("s3")
    stored = f"{path.removeprefix('s3://')}/{V1}/lulc_map.tif"
    content = bytearray(fs.cat_file(stored))
    content[-50] ^= 0xFF  # same size, one byte changed
    fs.pipe_file(stored, bytes(content))
    with pytest.raises(CorruptedDatasetError, match="changed content"):
        _newest(GeoTiffDataset, path).load()


def test_vector_tables_models_and_figures_round_trip(s3_root):
    tiles = gpd.GeoDataFrame({"tile": [1, 2]}, geometry=[box(0, 0, 1, 1), box(1, 0, 2, 1)],
                             crs="EPSG:32633")  # fmt: skip
    frame = pd.DataFrame({"class": [1, 2, 3], "area_ha": [0.5, 1.5, 2.0]})
    figure, axes = plt.subplots()
    axes.plot([0, 1], [1, 0])
    cases = [
        (VectorDataset, "aoi_tiles.gpkg", tiles),
        (AtomicParquetDataset, "samples.parquet", frame),
        (AtomicCSVDataset, "class_areas.csv", frame),
        (AtomicPickleDataset, "model.pkl", {"rounds": 23}),
        (AtomicJSONDataset, "metrics.json", {"overall_accuracy": 0.88}),
        (AtomicMatplotlibDataset, "plot.png", figure),
    ]
    fs = fsspec.filesystem("s3")
    for cls, name, data in cases:
        path = f"{s3_root}/x/{name}"
        kwargs = {"save_args": {"index": False}} if cls is AtomicCSVDataset else {}
        _saved(cls, path, data, V1, **kwargs)
        assert fs.exists(f"{path.removeprefix('s3://')}/{V1}/{name}{SUFFIX}"), name
        if cls is AtomicMatplotlibDataset:
            continue  # saved only
        back = _newest(cls, path).load()
        if isinstance(data, gpd.GeoDataFrame):
            assert list(back["tile"]) == [1, 2] and back.crs.to_epsg() == 32633
        elif isinstance(data, pd.DataFrame):
            pd.testing.assert_frame_equal(pd.DataFrame(back), data, check_dtype=False)
        else:
            assert back == data
    plt.close(figure)


def test_an_unfinished_table_save_is_not_the_newest(s3_root):
    path = f"{s3_root}/05_model_input/samples.parquet"
    _saved(AtomicParquetDataset, path, pd.DataFrame({"a": [1]}), V1)
    fs = fsspec.filesystem("s3")
    pd.DataFrame({"a": [2]}).to_parquet(  # its data arrived, its manifest never did
        fs.open(f"{path.removeprefix('s3://')}/{V2}/samples.parquet", "wb")
    )
    assert _newest(AtomicParquetDataset, path).load()["a"].tolist() == [1]


def test_a_missing_bucket_is_refused_before_anything_runs(s3_server):
    with pytest.raises(StorageError, match="s3://no-such-bucket-here.*Create the bucket"):
        check_writable([as_path("s3://no-such-bucket-here/data/02_intermediate")])


def test_a_writable_bucket_passes_the_check_and_keeps_nothing(s3_root):
    check_writable([as_path(f"{s3_root}/02_intermediate")])
    bucket = s3_root.removeprefix("s3://").split("/")[0]
    assert fsspec.filesystem("s3").ls(bucket, refresh=True) == []
