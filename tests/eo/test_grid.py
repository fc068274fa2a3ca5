"""perceptive.eo.grid: AOI parsing, UTM choice, snapping, clear errors."""

import numpy as np
import pytest
import rioxarray  # noqa: F401  (the .rio accessor)
import xarray as xr
from pyproj import CRS

from perceptive.eo.grid import Grid, GridError, aoi_geometry, grid_for_aoi, grid_of, utm_crs_for


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


# --------------------------------------------------------------------------- non-square pixels

#: An EOPatch-like grid: 4 x 3 px of 9.995 m wide, 9.998 m tall.
PATCH = Grid(CRS.from_epsg(32633), 500000.0, 5099029.994, 9.995, 4, 3, resolution_y=9.998)


def test_non_square_grid_uses_both_pixel_sizes():
    assert not PATCH.is_square and PATCH.res_x == 9.995 and PATCH.res_y == 9.998
    assert tuple(PATCH.transform)[:6] == (9.995, 0.0, 500000.0, 0.0, -9.998, 5099029.994)
    np.testing.assert_allclose(PATCH.bounds, (500000.0, 5099000.0, 500039.98, 5099029.994))
    np.testing.assert_allclose(PATCH.x, [500004.9975, 500014.9925, 500024.9875, 500034.9825])
    np.testing.assert_allclose(PATCH.y, [5099024.995, 5099014.997, 5099004.999])
    np.testing.assert_allclose(PATCH.pixel_area, 99.930010)
    sub = PATCH.window(1, 2, 2, 2)
    np.testing.assert_allclose([sub.left, sub.top], [500019.99, 5099019.996])
    assert (sub.res_x, sub.res_y, sub.width, sub.height) == (9.995, 9.998, 2, 2)


def test_square_grid_is_unchanged():
    grid = Grid(CRS.from_epsg(32633), 500000.0, 5100000.0, 10.0, 3, 2)
    assert grid.is_square and grid.res_y == 10.0 and grid.resolution_y is None
    assert tuple(grid.transform)[:6] == (10.0, 0.0, 500000.0, 0.0, -10.0, 5100000.0)


def _frame(grid: Grid) -> xr.Dataset:
    ds = xr.Dataset(coords={"x": grid.x, "y": grid.y})
    return ds.rio.write_crs(grid.crs)


def test_grid_of_reads_x_and_y_spacing_separately():
    found = grid_of(_frame(PATCH))
    assert (found.width, found.height) == (4, 3)
    np.testing.assert_allclose(
        [found.left, found.top, found.res_x, found.res_y],
        [500000.0, 5099029.994, 9.995, 9.998],
    )
    assert not found.is_square
    square = grid_of(_frame(Grid(CRS.from_epsg(32633), 500000.0, 5100000.0, 10.0, 3, 2)))
    assert square.resolution == 10.0 and square.resolution_y is None  # float noise: square


def test_grid_of_one_row_takes_the_column_spacing():
    row = grid_of(_frame(PATCH.window(0, 0, 1, 4)))
    assert row.height == 1 and row.res_y == pytest.approx(9.995)


def test_grid_of_refuses_a_south_up_cube():
    flipped = _frame(PATCH).sortby("y")
    with pytest.raises(GridError, match="north-up"):
        grid_of(flipped)
