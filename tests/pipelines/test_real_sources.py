"""Real-data sources through `kedro run`: credentials from conf, a polygon AOI honoured, the
staging store reused by a rerun, and secrets kept out of every output."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import yaml
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from sentinelhub import SentinelHubDownloadClient
from shapely.geometry import Polygon, box

from perceptive.eo.cube import S2_BANDS
from tests.conftest import PROJECT, run_kedro
from tests.sources.fake_sentinelhub import CLIENT_SECRET, FakeSentinelHub, Scene, dn

#: Settings of the later links that fit an AOI of a few hundred metres (checked at start).
SMALL_AOI_SETTINGS = {"sampling": {"block_size": 8}, "cloud_masking": {"processing_resolution": 20}}
CROP = PROJECT / "tests" / "data" / "s2_l1c_crop"
#: The crop's 10 m grid: 96 x 96 px from (336000, 5819040), UTM 33N.
CROP_LEFT, CROP_TOP = 336000.0, 5819040.0


def labels_file(tmp_path: Path, bounds, crs="EPSG:32633") -> str:
    """One labelled polygon over the AOI (these sources bring no labels of their own)."""
    path = tmp_path / "labels.geojson"
    gpd.GeoDataFrame({"class_id": [2]}, geometry=[box(*bounds)], crs=crs).to_file(path)
    return str(path)


def test_local_files_with_a_polygon_aoi(tmp_path):
    # a triangle over the crop, x + depth < 636 m from its corner: a pixel centre
    # (5 + 10c, 5 + 10r) is inside when c + r < 62.6 (no centre on the edge)
    triangle = Polygon([(336000, 5819040), (336636, 5819040), (336000, 5818404)])
    aoi_file = tmp_path / "aoi.geojson"
    gpd.GeoDataFrame(geometry=[triangle], crs="EPSG:32633").to_file(aoi_file)
    params = {
        "source": {"method": "local_files", "folder": str(CROP)},
        "aoi": {"file": str(aoi_file), "crs": "EPSG:32633"},
        "time_interval": ["2017-02-01", "2017-02-28"],
        "tile_size": 32,
        **SMALL_AOI_SETTINGS,
        "reference": {"file": labels_file(tmp_path, triangle.bounds)},
    }
    catalog = run_kedro(tmp_path / "data", ["ingestion"], **params)
    cube = catalog.load("l1c_cube")
    assert cube.sizes["y"] == cube.sizes["x"] == 64  # the triangle's bounding box
    with rasterio.open(next(CROP.glob("*_B02.jp2"))) as src:
        b02 = src.read(1)[:64, :64]  # the grid starts at the crop's corner, same 10 m pixels
    row, col = np.indices((64, 64))
    inside = col + row < 63
    got = cube["bands"].sel(band="B02").isel(time=0).values
    np.testing.assert_array_equal(got[inside], b02[inside])
    assert (got[~inside] == 0).all()
    np.testing.assert_array_equal(cube["aoi_mask"].values, inside)
    assert not cube["is_data"].values[0][~inside].any()
    tiles = catalog.load("aoi_tiles").set_index("tile_id")
    assert not tiles.loc["r001c001", "in_aoi"]  # the bottom-right tile misses the triangle

    # a rerun reads only tiles the staging store does not hold: mark one tile undone and
    # change a done tile's pixels there; the rerun restores the first and keeps the second
    store = next((tmp_path / "data" / "01_raw" / "staging").glob("local_files-*.zarr"))
    (store.with_name(store.name + ".done") / "r000c000").unlink()
    import xarray as xr

    staged = xr.open_zarr(store, consolidated=False, mask_and_scale=False)
    patch = staged[["bands"]].isel(y=slice(0, 32), x=slice(32, 64)).load()
    patch["bands"][:] = 7
    patch.drop_vars(["time", "band"], errors="ignore").to_zarr(
        store, region={"time": slice(None), "band": slice(None), "y": slice(0, 32),
                       "x": slice(32, 64)}, consolidated=False,
    )  # fmt: skip
    again = run_kedro(tmp_path / "data", ["ingestion"], **params).load("l1c_cube")
    got = again["bands"].sel(band="B02").isel(time=0).values
    np.testing.assert_array_equal(got[:32, :32][inside[:32, :32]], b02[:32, :32][inside[:32, :32]])
    assert (got[:32, 32:][inside[:32, 32:]] == 7).all()  # not read again


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the fake speaks plain HTTP
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for var in ("SH_CLIENT_ID", "SH_CLIENT_SECRET", "SH_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    SentinelHubDownloadClient.clear_cache()
    scenes = [Scene("a", datetime(2017, 5, 3, 10, 10), 10.0),
              Scene("b", datetime(2017, 5, 13, 10, 10), 35.0)]  # fmt: skip
    server = FakeSentinelHub(scenes=scenes).start()
    yield server
    server.stop()
    SentinelHubDownloadClient.clear_cache()


def test_sentinelhub_with_credentials_from_conf_local(tmp_path, fake_hub):
    conf = tmp_path / "conf"
    shutil.copytree(PROJECT / "conf", conf)
    (conf / "local" / "credentials.yml").write_text(
        yaml.safe_dump({"sentinelhub": fake_hub.credentials()})
    )
    bbox = [500000, 5099680, 500320, 5100000]  # 32 x 32 px, two tiles of 16 by 2 rows
    params = {
        "data_root": str(tmp_path / "data"),
        "source": {"method": "sentinelhub", "retry_wait": 0.01},
        "aoi": {"bbox": bbox, "crs": "EPSG:32633"},
        "time_interval": ["2017-05-01", "2017-05-31"],
        "tile_size": 16,
        **SMALL_AOI_SETTINGS,
        "reference": {"file": labels_file(tmp_path, bbox)},
    }
    bootstrap_project(PROJECT)
    with KedroSession.create(
        project_path=PROJECT, conf_source=str(conf), runtime_params=params
    ) as session:
        session.run(pipeline_names=["ingestion"])
        cube = session.load_context().catalog.load("l1c_cube")

    x, y = np.meshgrid(cube["x"].values, cube["y"].values)
    assert [str(t)[:10] for t in cube["time"].values] == ["2017-05-03", "2017-05-13"]
    for t, scene in enumerate(fake_hub.scenes):
        for b, name in enumerate(S2_BANDS):
            np.testing.assert_array_equal(
                cube["bands"].sel(band=name).isel(time=t).values, dn(x, y, scene.when, b)
            )
    assert cube["is_data"].values.all()

    # the secret is in conf/local only: no output, record, provenance or log holds it
    leaks = [
        path
        for path in [*(tmp_path / "data").rglob("*"), *PROJECT.glob("*.log")]
        if path.is_file() and CLIENT_SECRET.encode() in path.read_bytes()
    ]
    assert leaks == []
    record = json.loads(max((tmp_path / "data" / "runs").glob("*.json")).read_text())
    assert record["outcome"] == "finished" and record["synthetic_demo"] is False
