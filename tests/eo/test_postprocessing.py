"""Post-processing link: the majority filter against hand-worked cases, the sieve against
patch sizes counted here, and chunked results equal to whole-map results."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from pyproj import CRS

from perceptive.eo.cube import attach_grid
from perceptive.eo.grid import Grid
from perceptive.eo.links import LinkError
from perceptive.eo.postprocessing import METHODS


def as_map(values: np.ndarray, resolution: float = 10.0) -> xr.DataArray:
    h, w = values.shape
    grid = Grid(CRS.from_epsg(32633), 500000.0, 5000000.0, resolution, w, h)
    return attach_grid(xr.DataArray(values.astype(np.uint8), dims=("y", "x")), grid)


def test_none_is_the_default_and_changes_nothing():
    lulc = as_map(np.arange(12).reshape(3, 4) % 3)
    assert METHODS.validate({"method": "none"}) == {"method": "none"}
    assert METHODS.run({"method": "none"}, lulc) is lulc


def test_majority_filter_hand_worked_case():
    values = np.array(
        [
            [1, 1, 2, 2],
            [1, 3, 2, 2],
            [1, 1, 0, 2],
        ]
    )
    out = METHODS.run({"method": "majority", "window": 3}, as_map(values)).values
    # Worked out by hand, 3 x 3 windows, nodata (0) and outside the map not counted:
    # (0,0): 1,1,1,3 -> 1; (0,1): 1,1,2,1,3,2 -> 1; (0,2): 1,2,2,3,2,2 -> 2; (0,3): 2x4 -> 2
    # (1,1): 1,1,2,1,3,2,1,1 -> 1; (1,2): 1,2,2,3,2,2,1,2 -> 2
    # (2,1): 1,3,2,1,1 -> 1; (2,2) is nodata and stays 0; (2,3): 2,2,2 -> 2
    expected = np.array(
        [
            [1, 1, 2, 2],
            [1, 1, 2, 2],
            [1, 1, 0, 2],
        ]
    )
    np.testing.assert_array_equal(out, expected)


def test_majority_tie_keeps_the_pixels_own_class():
    values = np.array([[1, 2], [2, 1]])  # every 3 x 3 window: two 1s and two 2s
    out = METHODS.run({"method": "majority", "window": 3}, as_map(values)).values
    np.testing.assert_array_equal(out, values)


def test_majority_window_must_be_odd():
    with pytest.raises(LinkError, match="window.*odd"):
        METHODS.validate({"method": "majority", "window": 4})


def _patches(values: np.ndarray) -> list[tuple[int, int]]:
    """(class, size) of every 4-connected patch, counted with scipy (not GDAL)."""
    from scipy import ndimage

    found = []
    for class_id in np.unique(values):
        labels, n = ndimage.label(values == class_id)
        found += [(int(class_id), int((labels == i).sum())) for i in range(1, n + 1)]
    return found


def test_sieve_removes_patches_under_the_unit_and_nothing_else():
    values = np.ones((20, 20), dtype=np.uint8)
    values[10:, :] = 2  # two large patches: 200 px each
    values[2:4, 2:4] = 3  # 4 px = 0.04 ha: under a 0.05 ha unit
    values[2:4, 10:13] = 4  # 6 px = 0.06 ha: kept
    values[14, 14] = 5  # 1 px inside class 2: removed
    values[5:7, 15:17] = 0  # nodata: never sieved, never absorbs
    out = METHODS.run({"method": "sieve", "min_area_ha": 0.05}, as_map(values)).values
    expected = values.copy()
    expected[2:4, 2:4] = 1
    expected[14, 14] = 2
    np.testing.assert_array_equal(out, expected)
    assert min(size for class_id, size in _patches(out) if class_id != 0) >= 5


@pytest.mark.parametrize(
    "spec",
    [
        {"method": "majority", "window": 5},
        {"method": "sieve", "min_area_ha": 0.3},
        {"method": "sieve", "min_area_ha": 2},  # 200 px: a halo wider than the map
    ],
)
def test_chunked_equals_whole_map(spec):
    rng = np.random.default_rng(1)
    coarse = rng.integers(0, 6, size=(12, 12))
    values = np.kron(coarse, np.ones((8, 8), dtype=np.int64))  # 96 x 96, 8 px blocks
    noise = rng.random(values.shape) < 0.1
    values[noise] = rng.integers(1, 6, size=int(noise.sum()))
    whole = METHODS.run(spec, as_map(values)).values
    chunked = METHODS.run(spec, as_map(values).chunk({"y": 25, "x": 40}))
    assert chunked.chunks is not None  # lazy, chunk by chunk
    np.testing.assert_array_equal(chunked.values, whole)
    assert (whole != values).any()  # the method did something
