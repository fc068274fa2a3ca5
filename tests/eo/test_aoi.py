"""The AOI as the pipelines use it: tiles aligned with the chunks, the polygon mask, its size."""

from __future__ import annotations

import numpy as np
import pytest
from pyproj import CRS
from shapely.geometry import Polygon, box

from perceptive.eo.aoi import (
    aoi_mask,
    check_size,
    estimated_cube_gb,
    split_tiles,
    utm_zones_crossed,
)
from perceptive.eo.grid import Grid, GridError

UTM33 = CRS.from_epsg(32633)
#: 50 x 40 px at 10 m: tiles of 16 px make 4 columns (16, 16, 16, 2) and 3 rows (16, 16, 8).
GRID = Grid(UTM33, 500000.0, 5100000.0, 10.0, 50, 40)


def test_tiles_cover_the_grid_from_the_top_left_like_the_chunks():
    tiles = split_tiles(GRID, box(*GRID.bounds), 16)
    assert len(tiles) == 12
    first = tiles.set_index("tile_id").loc["r000c000"]
    assert (first.row_off, first.col_off, first.height, first.width) == (0, 0, 16, 16)
    assert first.geometry.bounds == (500000.0, 5099840.0, 500160.0, 5100000.0)
    corner = tiles.set_index("tile_id").loc["r002c003"]
    assert (corner.row_off, corner.col_off, corner.height, corner.width) == (32, 48, 8, 2)
    assert corner.geometry.bounds == (500480.0, 5099600.0, 500500.0, 5099680.0)
    assert tiles.geometry.area.sum() == pytest.approx(50 * 40 * 100.0)  # no gap, no overlap
    assert tiles["in_aoi"].all()


def test_tiles_away_from_a_polygon_aoi_are_not_read():
    # a triangle over the left part only: the right-hand column of tiles misses it
    triangle = Polygon([(500000, 5099600), (500300, 5100000), (500000, 5100000)])
    tiles = split_tiles(GRID, triangle, 16).set_index("tile_id")
    assert tiles.loc["r000c000", "in_aoi"]
    assert not tiles.loc["r000c003", "in_aoi"]  # x from 500480
    assert not tiles.loc["r002c003", "in_aoi"]


def test_aoi_mask_keeps_the_pixels_whose_centre_is_inside():
    # a triangle x + y < 36 under a 4 x 4 px grid: the centre (5 + 10c, 35 - 10r) is inside
    # when 40 + 10 (c - r) < 36, i.e. strictly below the diagonal
    grid = Grid(UTM33, 0.0, 40.0, 10.0, 4, 4)
    half = Polygon([(0, 0), (36, 0), (0, 36)])
    mask = aoi_mask(grid, half, 2).values  # 2 px chunks: the mask is made chunk by chunk
    expected = np.array(
        [[0, 0, 0, 0],
         [1, 0, 0, 0],
         [1, 1, 0, 0],
         [1, 1, 1, 0]],
        bool,
    )  # fmt: skip
    np.testing.assert_array_equal(mask, expected)


def test_cube_size_estimate_and_the_limit():
    # 1000 x 1000 px, 13 bands of 2 bytes, 73 frames (365 days / 5) = 1.898 GB
    grid = Grid(UTM33, 500000.0, 5100000.0, 10.0, 1000, 1000)
    aoi = box(*grid.bounds)
    size = estimated_cube_gb(grid, aoi, "2017-01-01", "2017-12-31")
    assert size == pytest.approx(1000 * 1000 * 13 * 2 * 73 / 1e9)
    assert check_size(grid, aoi, "2017-01-01", "2017-12-31", 2.0) == pytest.approx(size)
    with pytest.raises(GridError, match=r"too large.*about 1\.9 GB.*max_cube_gb=1"):
        check_size(grid, aoi, "2017-01-01", "2017-12-31", 1.0)


def test_an_aoi_across_a_utm_zone_border_is_reported():
    wgs84 = CRS.from_epsg(4326)
    assert utm_zones_crossed(box(14.0, 46.0, 14.5, 46.5), wgs84) == ["EPSG:32633"]
    assert utm_zones_crossed(box(17.5, 46.0, 18.5, 46.5), wgs84) == ["EPSG:32633", "EPSG:32634"]
