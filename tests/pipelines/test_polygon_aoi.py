"""A polygon AOI is honoured from cube to map, and the demo says it is a demo."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
import rasterio
from shapely.geometry import Polygon, box, mapping

from perceptive.eo.aoi import split_tiles
from perceptive.eo.grid import Grid
from perceptive.sources import METHODS as SOURCES
from perceptive.sources import SourceRequest
from tests.conftest import SMALL_RUN, run_kedro

#: The small demo AOI cut along its diagonal: a pixel centre (5 + 10c, 5 + 10r) from the
#: top-left corner is inside when 10 (c + r) + 10 < 2556, i.e. c + r <= 254.
TRIANGLE = Polygon([(500000, 5100000), (502556, 5100000), (500000, 5097444)])


@pytest.fixture(scope="module")
def triangle_run(tmp_path_factory):
    data_root = tmp_path_factory.mktemp("triangle")
    aoi = {"geometry": mapping(TRIANGLE), "crs": "EPSG:32633"}
    catalog = run_kedro(data_root, **{**SMALL_RUN, "aoi": aoi})
    return data_root, catalog


def inside() -> np.ndarray:
    row, col = np.indices((256, 256))
    return col + row <= 254


def test_pixels_outside_the_polygon_are_no_data_from_cube_to_map(triangle_run):
    data_root, catalog = triangle_run
    cube = catalog.load("l1c_cube")
    assert cube.sizes["x"] == cube.sizes["y"] == 256  # the triangle's bounding box
    np.testing.assert_array_equal(cube["aoi_mask"].values, inside())
    assert (cube["bands"].isel(time=0).values[:, ~inside()] == 0).all()

    masks = catalog.load("masks_cube")
    is_valid = masks["is_valid"].values
    assert not is_valid[:, ~inside()].any()
    # the valid fraction counts the AOI's pixels only (worked out here from the masks)
    expected = is_valid[:, inside()].sum(axis=1) / inside().sum()
    np.testing.assert_allclose(masks["valid_fraction"].values, expected, rtol=1e-6)

    samples = catalog.load("samples")
    col = np.round((samples["x"] - 500005) / 10).astype(int)
    row = np.round((5099995 - samples["y"]) / 10).astype(int)
    assert (col + row <= 254).all()  # no sample from outside the AOI

    lulc = catalog.load("lulc_map").values.squeeze()
    assert (lulc[~inside()] == 0).all()  # nodata outside
    assert (lulc[inside()] != 0).mean() > 0.99


def test_demo_data_says_it_is_a_demo(triangle_run):
    data_root, catalog = triangle_run
    record = json.loads(max((data_root / "runs").glob("*.json")).read_text())
    assert record["synthetic_demo"] is True
    assert catalog.load("l1c_cube").attrs["synthetic_demo"]
    assert json.loads(catalog.load("features_cube").attrs["provenance"])["synthetic_demo"]
    (map_path,) = (data_root / "07_model_output" / "lulc_map.tif").glob("*/lulc_map.tif")
    with rasterio.open(map_path) as src:
        assert src.tags()["synthetic_demo"] == "true"
    (sidecar,) = (data_root / "05_model_input" / "samples.parquet").glob("*/*.provenance.json")
    assert json.loads(sidecar.read_text())["synthetic_demo"] is True


def demo_request(grid: Grid, tmp_path) -> SourceRequest:
    return SourceRequest(
        grid=grid, aoi=box(*grid.bounds), tiles=split_tiles(grid, box(*grid.bounds), 32),
        time_interval=(pd.Timestamp("2017-01-01"), pd.Timestamp("2017-02-01")),
        tile_size=32, staging=tmp_path,
    )  # fmt: skip


def test_the_demo_warns_outside_its_own_aoi(tmp_path, caplog):
    from pyproj import CRS

    own = Grid(CRS.from_epsg(32633), 500000.0, 5100000.0, 10.0, 64, 64)
    elsewhere = Grid(CRS.from_epsg(32610), 500000.0, 4200000.0, 10.0, 64, 64)  # California
    with caplog.at_level(logging.WARNING, logger="perceptive.sources"):
        SOURCES.run({"method": "demo"}, demo_request(own, tmp_path))
        assert not caplog.records
        cube, _ = SOURCES.run({"method": "demo"}, demo_request(elsewhere, tmp_path))
    assert "SYNTHETIC" in caplog.text and "not the demo's own" in caplog.text
    assert cube.attrs["synthetic_demo"] is True
