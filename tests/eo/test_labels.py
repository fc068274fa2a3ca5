import geopandas as gpd
import numpy as np
import pytest
from pyproj import CRS
from shapely.geometry import box

from perceptive.eo.grid import Grid
from perceptive.eo.labels import LabelError, erode_labels, rasterize_labels, rasterize_parcels
from perceptive.eo.legend import DEFAULT_LEGEND

UTM = CRS.from_epsg(32633)
# 6 x 4 px grid of 10 m pixels, top-left corner (500000, 5000040)
GRID = Grid(UTM, 500000.0, 5000040.0, 10.0, width=6, height=4)


def frame(geoms, ids, crs=UTM, column="class_id"):
    return gpd.GeoDataFrame({column: ids}, geometry=geoms, crs=crs)


def test_rasterize_pixel_centre_rule():
    # polygon A covers columns 0-1 fully and the *left 40 %* of column 2 (centre not inside)
    a = box(500000, 5000000, 500024, 5000040)
    # polygon B covers rows 0-1 of columns 4-5, plus 60 % of column 3 (centre inside)
    b = box(500034, 5000020, 500060, 5000040)
    out = rasterize_labels(frame([a, b], [2, 5]), GRID)
    expected = np.array(
        [
            [2, 2, 0, 5, 5, 5],
            [2, 2, 0, 5, 5, 5],
            [2, 2, 0, 0, 0, 0],
            [2, 2, 0, 0, 0, 0],
        ],
        dtype=np.uint8,
    )
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)


def test_overlapping_polygons_the_later_row_wins_in_labels_and_parcels():
    first = box(500000, 5000000, 500040, 5000040)  # columns 0-3
    second = box(500020, 5000000, 500060, 5000040)  # columns 2-5: overlaps columns 2-3
    reference = frame([first, second], [2, 5])
    labels = rasterize_labels(reference, GRID)
    parcels = rasterize_parcels(reference, GRID)
    np.testing.assert_array_equal(labels, np.tile([2, 2, 5, 5, 5, 5], (4, 1)))
    np.testing.assert_array_equal(parcels, np.tile([1, 1, 2, 2, 2, 2], (4, 1)))
    swapped = frame([second, first], [5, 2])  # the other order: the other polygon wins
    np.testing.assert_array_equal(
        rasterize_labels(swapped, GRID), np.tile([2, 2, 2, 2, 5, 5], (4, 1))
    )


def test_parcels_follow_the_pixel_centre_rule_of_the_labels():
    a = box(500000, 5000000, 500024, 5000040)  # as in the pixel-centre test above
    b = box(500034, 5000020, 500060, 5000040)
    reference = frame([a, b, box(500000, 5000000, 500010, 5000010)], [2, 5, 0])  # class 0 skipped
    parcels = rasterize_parcels(reference, GRID)
    labels = rasterize_labels(reference, GRID)
    np.testing.assert_array_equal(parcels > 0, labels > 0)
    assert parcels.dtype == np.int32
    assert set(np.unique(parcels[labels == 2])) == {1}
    assert set(np.unique(parcels[labels == 5])) == {2}


def test_rasterize_reprojects_from_wgs84():
    poly = box(500000, 5000000, 500060, 5000040)  # the whole grid
    wgs = frame([poly], [3]).to_crs(4326)
    out = rasterize_labels(wgs, GRID)
    # reprojection is not exact at the edges, but the inner pixels must be burnt
    assert (out[1:-1, 1:-1] == 3).all()
    assert set(np.unique(out)) <= {0, 3}


def test_rasterize_other_column_and_legend_ok():
    out = rasterize_labels(
        frame([box(500000, 5000000, 500060, 5000040)], [1], column="lc"),
        GRID,
        class_column="lc",
        legend=DEFAULT_LEGEND,
    )
    assert (out == 1).all()


def test_error_no_crs():
    gdf = gpd.GeoDataFrame({"class_id": [1]}, geometry=[box(0, 0, 1, 1)])
    with pytest.raises(LabelError, match="no CRS"):
        rasterize_labels(gdf, GRID)


def test_error_missing_column_lists_available():
    gdf = frame([box(500000, 5000000, 500010, 5000010)], [1], column="code")
    with pytest.raises(LabelError, match=r"no column 'class_id'.*\['code'\]"):
        rasterize_labels(gdf, GRID)


def test_error_ids_out_of_range():
    gdf = frame([box(500000, 5000000, 500010, 5000010)], [300])
    with pytest.raises(LabelError, match="outside 0..255"):
        rasterize_labels(gdf, GRID)


def test_error_ids_not_in_legend_names_them_the_legend_ids_and_the_fix():
    gdf = frame([box(500000, 5000000, 500010, 5000010)] * 4, [42, 3, 42, 77])
    with pytest.raises(LabelError, match=r"\[42, 77\] .*not in the legend") as err:
        rasterize_labels(gdf, GRID, legend=DEFAULT_LEGEND)
    message = str(err.value)
    assert "42: 2, 77: 1" in message  # polygons per unknown id
    assert f"legend ids {list(range(11))}" in message
    assert "'legend'" in message and "'reference.class_mapping'" in message


def test_error_no_intersection_gives_both_bounds():
    gdf = frame([box(600000, 5000000, 600010, 5000010)], [1])
    with pytest.raises(LabelError, match=r"600000.0.*500000.0, 5000000.0, 500060.0, 5000040.0"):
        rasterize_labels(gdf, GRID)


def test_error_empty():
    gdf = gpd.GeoDataFrame({"class_id": []}, geometry=[], crs=UTM)
    with pytest.raises(LabelError, match="empty"):
        rasterize_labels(gdf, GRID)


def test_erode_radius_one_drops_boundaries():
    labels = np.array(
        [
            [1, 1, 1, 1, 2, 2],
            [1, 1, 1, 1, 2, 2],
            [1, 1, 1, 1, 2, 2],
            [0, 0, 1, 1, 2, 2],
        ],
        dtype=np.uint8,
    )
    expected = np.array(
        [
            [1, 1, 1, 0, 0, 2],
            [1, 1, 1, 0, 0, 2],
            [0, 0, 1, 0, 0, 2],
            [0, 0, 0, 0, 0, 2],
        ],
        dtype=np.uint8,
    )
    out = erode_labels(labels, radius=1)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(erode_labels(labels, radius=0), labels)


def test_erode_radius_two_uses_a_disk():
    labels = np.ones((7, 7), dtype=np.uint8)
    labels[0, 0] = 3  # a corner pixel of another class
    out = erode_labels(labels, radius=2)
    # disk of radius 2 reaches (0,0) from (0,2),(1,1),(2,0) but not from (1,2)/(2,1)/(2,2)
    assert out[0, 2] == 0 and out[1, 1] == 0 and out[2, 0] == 0
    assert out[1, 2] == 1 and out[2, 1] == 1 and out[2, 2] == 1
    assert out[0, 0] == 0
    assert out[6, 6] == 1  # far from the intruder, raster border not an edge


def test_lazy_rasters_equal_the_whole_grid_ones_in_any_chunks():
    rng = np.random.default_rng(0)
    grid = Grid(UTM, 500000.0, 5000400.0, 10.0, width=37, height=29)
    corners = rng.uniform([500000, 5000110], [500370, 5000400], size=(40, 2))
    sizes = rng.uniform(5, 120, size=(40, 2))  # overlapping boxes, edges anywhere in a pixel
    geoms = [box(x, y - h, x + w, y) for (x, y), (w, h) in zip(corners, sizes, strict=True)]
    reference = frame(geoms, rng.integers(0, 4, 40))  # class 0 boxes are skipped
    labels, parcels = rasterize_labels(reference, grid), rasterize_parcels(reference, grid)
    assert len(np.unique(parcels)) > 10
    for chunks in (8, (5, 11), 29):
        lazy = rasterize_labels(reference, grid, chunks=chunks)
        assert lazy.chunks[0][0] == (chunks if isinstance(chunks, int) else chunks[0])
        np.testing.assert_array_equal(lazy.compute(), labels)
        np.testing.assert_array_equal(
            rasterize_parcels(reference, grid, chunks=chunks).compute(), parcels
        )


def test_lazy_erosion_equals_the_whole_array_one_across_chunk_borders():
    import dask.array as da

    labels = np.random.default_rng(1).integers(0, 3, (31, 27)).astype(np.uint8)
    labels[5:20, 4:22] = 2  # a large patch whose core survives
    for radius in (0, 1, 2, 3):
        expected = erode_labels(labels, radius)
        for chunks in ((8, 8), (3, 10), (31, 27)):
            lazy = erode_labels(da.from_array(labels, chunks=chunks), radius)
            assert lazy.chunks == da.from_array(labels, chunks=chunks).chunks
            np.testing.assert_array_equal(lazy.compute(), expected)
