"""perceptive.eo.grid: AOI parsing, UTM choice, snapping, clear errors."""

import pytest
from pyproj import CRS

from perceptive.eo.grid import GridError, aoi_geometry, grid_for_aoi, utm_crs_for


def test_utm_zone_of_a_point():
    assert utm_crs_for(14.5, 46.0) == CRS.from_epsg(32633)  # Ljubljana
    assert utm_crs_for(-70.6, -33.4) == CRS.from_epsg(32719)  # Santiago


def test_bbox_in_wgs84_becomes_a_snapped_utm_grid():
    geom, crs = aoi_geometry({"bbox": [14.50, 46.00, 14.52, 46.01], "crs": "EPSG:4326"})
    grid = grid_for_aoi(geom, crs, 10.0)
    assert grid.crs == CRS.from_epsg(32633)
    assert grid.left % 10 == 0 and grid.top % 10 == 0
    # 0.02 deg of longitude at 46 N is ~1545 m; 0.01 deg latitude ~1112 m
    assert 150 <= grid.width <= 160 and 110 <= grid.height <= 115


def test_projected_bbox_keeps_its_exact_size():
    geom, crs = aoi_geometry({"bbox": [500000, 5094880, 505120, 5100000], "crs": "EPSG:32633"})
    grid = grid_for_aoi(geom, crs, 10.0)
    assert (grid.width, grid.height, grid.left, grid.top) == (512, 512, 500000, 5100000)
    assert grid.transform.a == 10 and grid.transform.e == -10


@pytest.mark.parametrize(
    ("aoi", "message"),
    [
        ({"bbox": [10, 0, 10, 5], "crs": "EPSG:32633"}, "no area"),
        ({"bbox": [1, 2, 3], "crs": "EPSG:32633"}, r"\[minx, miny, maxx, maxy\]"),
        (
            {
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]],
                }
            },
            "invalid.*make_valid",
        ),
        ({"geometry": {"type": "Point", "coordinates": [14.5, 46.0]}}, "no area"),
        ({"bbox": [0, 0, 1, 1], "crs": "EPSG:99999999"}, "not a CRS"),
        ({}, "exactly one of"),
    ],
)
def test_bad_aoi_gets_a_clear_error(aoi, message):
    with pytest.raises(GridError, match=message):
        aoi_geometry(aoi)
