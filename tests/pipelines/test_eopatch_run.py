"""The whole workflow, through Kedro, on an EOPatch that holds only NDVI, IS_DATA, CLM and LULC.

No bands at all: cloud masking takes the patch's own CLM, the features are its NDVI, the
reference labels its LULC raster, and the map comes out on the patch's own (non-square) grid.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import rasterio
from affine import Affine

from tests.conftest import run_kedro
from tests.sources.test_eopatch import write_patch

N = 96  # px per side
#: 96 px of 9.995 m across and 96 px of 9.998 m down, as eo-learn patches come.
LEFT, TOP = 500000.0, 5100000.0
RIGHT, BOTTOM = LEFT + N * 9.995, TOP - N * 9.998
PARCEL = 24  # px: a 4 x 4 layout of parcels
CLASSES = np.array([[1, 2, 3, 1], [3, 1, 2, 3], [2, 3, 1, 2], [1, 2, 3, 1]], np.uint8)


def _profile(class_id: int, doy: np.ndarray) -> np.ndarray:
    """NDVI over the season: cultivated land peaks in early summer then is harvested, forest
    stays high, grassland is mid and mown in July."""
    if class_id == 1:
        return 0.2 + 0.65 * np.exp(-(((doy - 170) / 30) ** 2))
    if class_id == 2:
        return 0.75 + 0.1 * np.sin((doy - 100) / 365 * 2 * np.pi)
    return np.where((doy > 190) & (doy < 215), 0.35, 0.6)


def _patch(root):
    days = [dt.datetime(2017, 3, 5, 10, 0) + dt.timedelta(days=15 * i) for i in range(15)]
    times = sorted([*days, days[6] + dt.timedelta(seconds=40)])  # two granules on one day
    doy = np.array([t.timetuple().tm_yday for t in times], float)
    lulc = np.kron(CLASSES, np.ones((PARCEL, PARCEL), np.uint8))
    rng = np.random.default_rng(0)
    ndvi = np.stack([_profile(c, doy) for c in (1, 2, 3)])[lulc - 1]  # (y, x, time)
    ndvi = np.moveaxis(ndvi, -1, 0) + 0.03 * rng.standard_normal((len(times), N, N))
    is_data = np.ones((len(times), N, N), bool)
    is_data[6, :, N // 2 :] = False  # the day's first granule covers the west half
    is_data[7, :, : N // 2] = False  # the second the east half
    clm = np.zeros((len(times), N, N), bool)
    clm[3, 10:30, 20:45] = True  # a cloud, where the NDVI is nonsense
    ndvi[3][clm[3]] = 0.05
    ndvi[~is_data] = 0.0  # eo-learn writes something there too
    return write_patch(
        root, bbox=(LEFT, BOTTOM, RIGHT, TOP), times=times,
        data__NDVI=ndvi[..., None].astype(np.float32),
        mask__IS_DATA=is_data[..., None].astype(np.uint8),
        mask__CLM=clm[..., None].astype(np.uint8),
        mask_timeless__LULC=lulc[..., None],
    ), lulc  # fmt: skip


def test_an_ndvi_only_eopatch_runs_to_a_map_on_its_own_grid(tmp_path):
    path, lulc = _patch(tmp_path / "patch")
    catalog = run_kedro(
        tmp_path / "data",
        aoi={"bbox": [LEFT, BOTTOM, RIGHT, TOP], "crs": "EPSG:32633"},
        time_interval=["2017-03-01", "2017-10-31"],
        source={"method": "eopatch", "path": str(path)},
        cloud_masking={"method": "from_source"},
        features=["NDVI"],
        tile_size=48,
        sampling={"n_samples": 4000, "block_size": 16},
        classifier={"n_estimators": 40},
        evaluation={"n_bootstrap": 50},
    )
    cube = catalog.load("l1c_cube")
    assert "bands" not in cube and cube.sizes["time"] == 15  # the same-day pair merged
    features = catalog.load("features_cube")
    assert list(features["feature"].values) == ["NDVI"]
    assert features.attrs["features_from_source"] == "NDVI"

    (tif,) = (tmp_path / "data" / "07_model_output" / "lulc_map.tif").glob("*/lulc_map.tif")
    with rasterio.open(tif) as src:
        assert src.crs.to_epsg() == 32633
        assert (src.width, src.height) == (N, N)
        assert src.transform.almost_equals(Affine(9.995, 0, LEFT, 0, -9.998, TOP))
        lulc_map = src.read(1)
    # three classes with distinct NDVI years: the map follows the patch's labels
    assert (lulc_map == lulc).mean() > 0.9
