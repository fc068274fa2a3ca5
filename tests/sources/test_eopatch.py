"""The eopatch source on EOPatch folders written here in eo-learn's on-disk format.

The writer below follows the format as eo-learn 1.5 saves it (checked once against a patch
saved by eo-learn itself, outside the project): ``bbox.geojson`` with an ``urn:ogc:def:crs``
name, ``timestamps.json`` of naive ISO times, ``<type>/<NAME>.npy(.gz)``,
``vector_timeless/<NAME>.gpkg(.gz)``; and the 0.x layout with pickled ``bbox`` / ``timestamp``.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import pickle
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from pyproj import CRS
from shapely.geometry import box

from perceptive.eo.cube import S2_BANDS, CubeError, validate_l1c_cube
from perceptive.eo.grid import Grid
from perceptive.sources import METHODS
from perceptive.sources.eopatch import EOPatchError, eopatch, to_dn
from perceptive.sources.tiled import SourceRequest

UTM33 = CRS.from_epsg(32633)
#: 4 x 3 px of 9.995 x 9.998 m: the bbox of a typical EOPatch does not divide into 10 m.
LEFT, BOTTOM, RIGHT, TOP = 500000.0, 5099000.0, 500039.98, 5099029.994
TIMES = [dt.datetime(2017, 3, 1, 10, 0, 5), dt.datetime(2017, 3, 6, 10, 0, 7)]


def write_patch(
    root: Path,
    *,
    bbox=(LEFT, BOTTOM, RIGHT, TOP),
    epsg: int = 32633,
    times=TIMES,
    compress: bool = True,
    old: bool = False,
    **features,
) -> Path:
    """An EOPatch folder: ``features`` are ``data__NAME=array`` / ``mask__NAME=...`` /
    ``mask_timeless__NAME=...`` / ``vector_timeless__NAME=GeoDataFrame``."""
    root.mkdir(parents=True)
    if old:  # eo-learn 0.x: pickled sentinelhub BBox and list of datetimes, no extension
        from sentinelhub import CRS as SHCRS
        from sentinelhub import BBox

        (root / "bbox").write_bytes(pickle.dumps(BBox(bbox, SHCRS(epsg)), protocol=2))
        (root / "timestamp").write_bytes(pickle.dumps(list(times), protocol=2))
    else:
        minx, miny, maxx, maxy = bbox
        ring = [[minx, miny], [minx, maxy], [maxx, maxy], [maxx, miny], [minx, miny]]
        doc = {
            "crs": {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{epsg}"}},
            "type": "Polygon",
            "coordinates": [ring],
        }
        (root / "bbox.geojson").write_text(json.dumps(doc, indent=2))
        (root / "timestamps.json").write_text(json.dumps([t.isoformat() for t in times]))
    for key, value in features.items():
        kind, name = key.split("__")
        (root / kind).mkdir(exist_ok=True)
        if kind.startswith("vector"):
            plain = root / kind / f"{name}.gpkg"
            value.to_file(plain, driver="GPKG")
            if compress:
                (root / kind / f"{name}.gpkg.gz").write_bytes(gzip.compress(plain.read_bytes()))
                plain.unlink()
            continue
        buffer = io.BytesIO()
        np.save(buffer, value)
        if compress:
            (root / kind / f"{name}.npy.gz").write_bytes(gzip.compress(buffer.getvalue()))
        else:
            (root / kind / f"{name}.npy").write_bytes(buffer.getvalue())
    return root


def request_for(bbox=(LEFT, BOTTOM, RIGHT, TOP), interval=("2017-01-01", "2017-12-31")):
    """A SourceRequest whose AOI is ``bbox`` on a 10 m grid (as the ingestion makes it)."""
    grid = Grid(UTM33, 500000.0, 5099030.0, 10.0, 4, 3)
    return SourceRequest(
        grid=grid,
        aoi=box(*bbox),
        tiles=gpd.GeoDataFrame(geometry=[box(*grid.bounds)], crs=UTM33),
        time_interval=tuple(pd.Timestamp(t) for t in interval),
        tile_size=2,
        staging=Path("unused"),
    )


def _bands(value: float = 0.1) -> np.ndarray:
    """(2, 3, 4, 13) float32 reflectance, band i = value + i / 100."""
    refl = value + np.arange(13, dtype=np.float32) / 100
    return np.broadcast_to(refl, (2, 3, 4, 13)).astype(np.float32).copy()


# --------------------------------------------------------------------------- values


def test_reads_bands_masks_and_indices_on_the_patch_grid(tmp_path):
    bands = _bands()
    bands[0, 0, 0, :] = np.nan  # no data in eo-learn's float bands
    bands[1, 2, 3, 4] = 0.12344  # rounds to DN 1234 (1234.4)
    is_data = np.ones((2, 3, 4, 1), np.uint8)
    is_data[0, 0, 0] = 0
    is_data[1, 1, 1] = 0
    clm = np.zeros((2, 3, 4, 1), np.uint8)
    clm[1, 0, 2] = 1
    ndvi = np.full((2, 3, 4, 1), 0.5, np.float32)
    clp = np.full((2, 3, 4, 1), 0.25, np.float32)
    path = write_patch(
        tmp_path / "p", data__BANDS=bands, data__NDVI=ndvi, data__CLP=clp,
        mask__IS_DATA=is_data, mask__CLM=clm,
    )  # fmt: skip
    cube, labels = eopatch(request_for(), path=str(path))
    validate_l1c_cube(cube)
    assert labels is None  # no LULC in this patch
    assert list(cube["band"].values) == list(S2_BANDS)
    assert cube["bands"].dtype == np.uint16 and cube["bands"].dims == ("time", "band", "y", "x")
    dn = cube["bands"].values
    assert dn[0, 0, 1, 0] == 1000 and dn[0, 12, 1, 0] == 2200  # 0.10 and 0.22 reflectance
    assert dn[1, 4, 2, 3] == 1234
    assert (dn[0, :, 0, 0] == 0).all()  # NaN -> 0
    assert (dn[1, :, 1, 1] == 0).all()  # IS_DATA false -> 0, though the floats were there
    assert cube["is_data"].dtype == bool and not cube["is_data"].values[1, 1, 1]
    assert cube["cloud_mask"].values.sum() == 1 and cube["cloud_mask"].values[1, 0, 2]
    assert cube["NDVI"].dtype == np.float32 and cube["NDVI"].dims == ("time", "y", "x")
    assert cube["NDVI"].values[0, 2, 2] == 0.5 and np.isnan(cube["NDVI"].values[1, 1, 1])
    assert cube["cloud_prob"].dtype == np.float32 and cube["cloud_prob"].values[0, 0, 1] == 0.25
    assert "CLP" not in cube and "IS_DATA" not in cube
    assert list(cube["time"].values) == [np.datetime64(t, "ns") for t in TIMES]


def test_non_square_grid_coordinates_and_transform(tmp_path):
    path = write_patch(tmp_path / "p", data__NDVI=np.zeros((2, 3, 4, 1), np.float32))
    cube, _ = eopatch(request_for(), path=str(path))
    # 39.98 m / 4 px = 9.995 m wide, 29.994 m / 3 px = 9.998 m tall
    np.testing.assert_allclose(
        cube["x"].values, [500004.9975, 500014.9925, 500024.9875, 500034.9825], atol=1e-6
    )
    np.testing.assert_allclose(cube["y"].values, [5099024.995, 5099014.997, 5099004.999], atol=1e-6)
    a, b, c, d, e, f = list(cube.rio.transform())[:6]
    np.testing.assert_allclose([a, b, c, d, e, f], [9.995, 0, 500000, 0, -9.998, 5099029.994])
    assert cube.rio.crs == UTM33
    assert cube.chunks["y"] == (2, 1) and cube.chunks["x"] == (2, 2)  # tile_size 2


def test_uncompressed_files_and_integer_dn_bands(tmp_path):
    dn = np.full((2, 3, 4, 13), 1500, np.uint16)
    path = write_patch(tmp_path / "p", compress=False, data__L1C_data=dn)
    cube, _ = eopatch(request_for(), path=str(path))
    assert (cube["bands"].values == 1500).all()  # integers are DN already
    assert "is_data" not in cube  # no IS_DATA: the DN-0 rule decides downstream


def test_band_subset_named_and_put_in_sentinel2_order(tmp_path):
    six = np.zeros((2, 3, 4, 6), np.float32)
    names = ["B08", "B02", "B03", "B04", "B11", "B12"]
    for i in range(6):
        six[..., i] = (i + 1) / 10  # B08 0.1, B02 0.2, B03 0.3, B04 0.4, B11 0.5, B12 0.6
    path = write_patch(tmp_path / "p", data__BANDS=six)
    with pytest.raises(EOPatchError, match="6 channels.*band_names"):
        eopatch(request_for(), path=str(path))
    cube, _ = eopatch(request_for(), path=str(path), band_names=names)
    validate_l1c_cube(cube)
    assert list(cube["band"].values) == ["B02", "B03", "B04", "B08", "B11", "B12"]
    np.testing.assert_array_equal(
        cube["bands"].values[0, :, 0, 0], [2000, 3000, 4000, 1000, 5000, 6000]
    )


def test_frames_outside_the_time_interval_are_dropped(tmp_path):
    path = write_patch(tmp_path / "p", data__NDVI=np.zeros((2, 3, 4, 1), np.float32))
    cube, _ = eopatch(request_for(interval=("2017-03-02", "2017-03-06")), path=str(path))
    assert list(cube["time"].values) == [np.datetime64(TIMES[1], "ns")]  # end day included


# --------------------------------------------------------------------------- same-day frames


def test_same_day_frames_merge_per_pixel(tmp_path):
    """Two granules of one pass: frame A covers the left half, frame B the right half plus a
    pixel that is cloudy in A. Per pixel the first valid frame wins."""
    times = [dt.datetime(2017, 5, 1, 10, 0, 0), dt.datetime(2017, 5, 1, 10, 0, 30)]
    ndvi = np.stack([np.full((3, 4, 1), 0.1), np.full((3, 4, 1), 0.2)]).astype(np.float32)
    is_data = np.zeros((2, 3, 4, 1), np.uint8)
    is_data[0, :, :2] = 1  # A: columns 0-1
    is_data[1, :, 1:] = 1  # B: columns 1-3 (column 1 in both)
    clm = np.zeros((2, 3, 4, 1), np.uint8)
    clm[0, 0, 1] = 1  # cloudy in A, clear in B
    path = write_patch(
        tmp_path / "p", times=times, data__NDVI=ndvi, mask__IS_DATA=is_data, mask__CLM=clm
    )
    cube, _ = eopatch(request_for(), path=str(path))
    assert list(cube["time"].values) == [np.datetime64(times[0], "ns")]
    expected = np.array(
        [[0.1, 0.2, 0.2, 0.2], [0.1, 0.1, 0.2, 0.2], [0.1, 0.1, 0.2, 0.2]], np.float32
    )  # column 1: A where valid in A; row 0 takes B (A cloudy there)
    np.testing.assert_array_equal(cube["NDVI"].values[0], expected)
    assert cube["is_data"].values.all()  # the union of both granules
    assert not cube["cloud_mask"].values.any()  # the cloudy pixel came from the clear frame


# --------------------------------------------------------------------------- labels


def test_raster_labels_become_polygons_with_class_id(tmp_path):
    lulc = np.array([[1, 1, 2, 0], [1, 1, 2, 0], [5, 5, 5, 5]], np.uint8)[..., None]
    path = write_patch(
        tmp_path / "p", data__NDVI=np.zeros((2, 3, 4, 1), np.float32), mask_timeless__LULC=lulc
    )
    _, labels = eopatch(request_for(), path=str(path))
    assert labels.crs == UTM33
    pixel = 9.995 * 9.998
    areas = labels.assign(area=labels.area).groupby("class_id")["area"].sum()
    assert sorted(areas.index) == [1, 2, 5]  # 0 is no data: no polygon
    np.testing.assert_allclose(areas.loc[[1, 2, 5]].values, [4 * pixel, 2 * pixel, 4 * pixel])
    forest = labels[labels["class_id"] == 2].geometry.iloc[0]
    np.testing.assert_allclose(forest.bounds, [500019.99, 5099009.998, 500029.985, 5099029.994])


def test_vector_labels_read_from_gzipped_geopackage(tmp_path):
    parcels = gpd.GeoDataFrame(
        {"lulc": [3, 8]},
        geometry=[box(500000, 5099000, 500020, 5099020), box(500020, 5099000, 500039, 5099029)],
        crs="EPSG:32633",
    ).to_crs("EPSG:4326")  # a patch vector may be in any CRS
    path = write_patch(
        tmp_path / "p", data__NDVI=np.zeros((2, 3, 4, 1), np.float32),
        mask_timeless__LULC=np.ones((3, 4, 1), np.uint8), vector_timeless__LULC=parcels,
    )  # fmt: skip
    _, labels = eopatch(request_for(), path=str(path))
    assert list(labels["class_id"]) == [3, 8]  # the vector wins over the raster
    assert labels.crs == UTM33
    np.testing.assert_allclose(labels.geometry.iloc[0].bounds, [500000, 5099000, 500020, 5099020])
    _, named = eopatch(request_for(), path=str(path), label_column="lulc", labels="LULC")
    assert list(named["class_id"]) == [3, 8]
    with pytest.raises(EOPatchError, match="no class column 'kind'.*'lulc'"):
        eopatch(request_for(), path=str(path), label_column="kind")


# --------------------------------------------------------------------------- old format


def test_old_pickled_bbox_and_timestamp(tmp_path):
    ndvi = np.arange(24, dtype=np.float32).reshape(2, 3, 4, 1)
    path = write_patch(tmp_path / "p", old=True, compress=False, data__NDVI=ndvi)
    assert (path / "bbox").is_file() and (path / "timestamp").is_file()
    cube, _ = eopatch(request_for(), path=str(path))
    assert cube.rio.crs == UTM33
    np.testing.assert_allclose(list(cube.rio.transform())[:6], [9.995, 0, LEFT, 0, -9.998, TOP])
    assert list(cube["time"].values) == [np.datetime64(t, "ns") for t in TIMES]
    np.testing.assert_array_equal(cube["NDVI"].values, ndvi[..., 0])


def test_old_pickle_protocol_0_and_plain_state(tmp_path):
    """An older sentinelhub pickled its BBox with a public ``crs`` and protocol 0."""
    pickled = (
        b"ccopy_reg\n_reconstructor\n(csentinelhub.common\nBBox\nc__builtin__\nobject\nNtR"
        b"(dVmin_x\nF500000.0\nsVmin_y\nF5099000.0\nsVmax_x\nF500039.98\nsVmax_y\n"
        b"F5099029.994\nsVcrs\ncsentinelhub.constants\nCRS\n(V32633\ntRsb."
    )
    path = write_patch(tmp_path / "p", old=True, data__NDVI=np.zeros((2, 3, 4, 1), np.float32))
    (path / "bbox").unlink()
    (path / "bbox.pkl").write_bytes(pickled)
    cube, _ = eopatch(request_for(), path=str(path))
    np.testing.assert_allclose(list(cube.rio.transform())[:6], [9.995, 0, LEFT, 0, -9.998, TOP])


def test_a_pickle_with_anything_else_is_refused(tmp_path):
    class Sneaky:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = write_patch(tmp_path / "p", old=True, data__NDVI=np.zeros((2, 3, 4, 1), np.float32))
    (path / "timestamp").write_bytes(pickle.dumps([Sneaky()]))
    with pytest.raises(EOPatchError, match=r"builtins\.print is not part of"):
        eopatch(request_for(), path=str(path))


# --------------------------------------------------------------------------- errors


def test_missing_named_feature_lists_what_the_patch_has(tmp_path):
    path = write_patch(
        tmp_path / "p", data__NDVI=np.zeros((2, 3, 4, 1), np.float32),
        mask__CLM=np.zeros((2, 3, 4, 1), np.uint8),
    )  # fmt: skip
    with pytest.raises(EOPatchError, match=r"no feature data/BANDS.*data/\[NDVI\], mask/\[CLM\]"):
        eopatch(request_for(), path=str(path), bands="BANDS")
    with pytest.raises(EOPatchError, match=r"band_names is set.*no bands feature.*data/\[NDVI\]"):
        eopatch(request_for(), path=str(path), band_names=["B04", "B08"])


def test_unknown_layout_says_what_was_expected(tmp_path):
    (tmp_path / "p" / "data").mkdir(parents=True)
    with pytest.raises(EOPatchError, match="not an EOPatch folder.*bbox.geojson"):
        eopatch(request_for(), path=str(tmp_path / "p"))
    with pytest.raises(EOPatchError, match="No EOPatch folder at"):
        eopatch(request_for(), path=str(tmp_path / "nowhere"))


def test_other_errors_name_the_fix(tmp_path):
    ndvi = np.zeros((2, 3, 4, 1), np.float32)
    path = write_patch(tmp_path / "p", data__NDVI=ndvi)
    with pytest.raises(EOPatchError, match="no frame between 2018-01-01.*2017-03-01"):
        eopatch(request_for(interval=("2018-01-01", "2018-12-31")), path=str(path))
    with pytest.raises(EOPatchError, match="does not overlap the AOI.*aoi parameter"):
        eopatch(request_for(bbox=(600000, 5000000, 600100, 5000100)), path=str(path))
    wgs = write_patch(tmp_path / "wgs", bbox=(14.5, 46.0, 14.51, 46.01), epsg=4326, data__NDVI=ndvi)
    with pytest.raises(EOPatchError, match="geographic CRS"):
        eopatch(request_for(), path=str(wgs))
    uneven = write_patch(tmp_path / "uneven", data__NDVI=ndvi, mask__CLM=np.zeros((1, 3, 4, 1)))
    with pytest.raises(EOPatchError, match=r"2 timestamps.*'mask/CLM': 1"):
        eopatch(request_for(), path=str(uneven))


def test_registered_with_checked_options():
    assert "eopatch" in METHODS
    checked = METHODS.validate({"method": "eopatch", "path": "x"})
    assert checked == {
        "method": "eopatch", "path": "x", "bands": None, "band_names": None,
        "labels": "LULC", "label_column": None,
    }  # fmt: skip
    with pytest.raises(ValueError, match="pth"):
        METHODS.validate({"method": "eopatch", "pth": "x"})


def test_to_dn_rounds_reflectance_and_keeps_dn():
    refl = np.array([0.1, 0.12344, np.nan, -0.01, 7.0e-5], np.float32)
    assert to_dn(refl).tolist() == [1000, 1234, 0, 0, 1]
    floats_in_dn = np.array([1234.4, 0.0, 70000.0], np.float32)  # > 6.5535: DN already
    assert to_dn(floats_in_dn).tolist() == [1234, 0, 65535]
    assert to_dn(np.array([5, 70000], np.int32)).tolist() == [5, 65535]


def test_a_bandless_patch_cube_passes_validation_and_a_maskonly_one_does_not(tmp_path):
    ndvi = np.zeros((2, 3, 4, 1), np.float32)
    cube, _ = eopatch(request_for(), path=str(write_patch(tmp_path / "p", data__NDVI=ndvi)))
    validate_l1c_cube(cube)
    assert cube["is_data"].values.all()  # no IS_DATA, no bands: every NDVI is finite
    with pytest.raises(CubeError, match="neither 'bands' nor any per-frame float layer"):
        validate_l1c_cube(cube.drop_vars("NDVI"))
