"""The local_files source: real L1C JP2 warped onto the grid, times, baseline offset, data mask,
same-day merge and the errors a user meets with a folder of downloads."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine
from pyproj import CRS, Transformer
from shapely.geometry import box

from perceptive.eo.cube import S2_BANDS, validate_l1c_cube
from perceptive.eo.grid import Grid
from perceptive.eo.links import LinkError, Registry
from perceptive.sources.local_files import LocalFilesReader, local_files
from perceptive.sources.tiled import SourceError, SourceRequest

CROP = Path(__file__).resolve().parents[1] / "data" / "s2_l1c_crop"
STAMP = "T33UUU_20170216T102101"
#: The crop: 96 x 96 px at 10 m, UTM 33N.
CROP_GRID = Grid(CRS.from_epsg(32633), 336000.0, 5819040.0, 10.0, 96, 96)
RES = {b: 60 if b in ("B01", "B09", "B10") else 10 if b in ("B02", "B03", "B04", "B08") else 20
       for b in S2_BANDS}  # fmt: skip
YEAR_2017 = ("2017-01-01", "2017-12-31")

#: Synthetic products: 12 x 12 px at 10 m (6 x 6 at 20 m, 2 x 2 at 60 m).
SYN_LEFT, SYN_TOP, SYN_PX = 400000.0, 5000000.0, 12
SYN_GRID = Grid(CRS.from_epsg(32633), SYN_LEFT, SYN_TOP, 10.0, SYN_PX, SYN_PX)


def request_for(grid: Grid, staging: Path, interval=YEAR_2017, tile_size: int = 64, aoi=None):
    """A SourceRequest as the ingestion pipeline makes it (tiles as in define_aoi)."""
    tiles = []
    for row in range(0, grid.height, tile_size):
        for col in range(0, grid.width, tile_size):
            h, w = min(tile_size, grid.height - row), min(tile_size, grid.width - col)
            tiles.append({"tile_id": f"r{row // tile_size:03d}c{col // tile_size:03d}",
                          "row_off": row, "col_off": col, "height": h, "width": w,
                          "geometry": box(*grid.window(row, col, h, w).bounds)})  # fmt: skip
    return SourceRequest(
        grid=grid, aoi=aoi if aoi is not None else box(*grid.bounds),
        tiles=gpd.GeoDataFrame(tiles, crs=grid.crs),
        time_interval=tuple(pd.Timestamp(t) for t in interval), tile_size=tile_size,
        staging=staging,
    )  # fmt: skip


def read(folder, grid: Grid, tmp_path: Path, **options):
    request = request_for(grid, tmp_path / "staging", **options.pop("request", {}))
    cube, labels = local_files(request, folder=str(folder), **options)
    assert labels is None
    return validate_l1c_cube(cube).compute()


def crop_band(band: str) -> np.ndarray:
    with rasterio.open(CROP / f"{STAMP}_{band}.jp2") as src:
        return src.read(1)


def band(cube, name: str, t: int = 0) -> np.ndarray:
    return cube["bands"].sel(band=name).values[t]


# --- synthetic products -----------------------------------------------------------------------


def synthetic(seed: int, px: int = SYN_PX) -> dict[str, np.ndarray]:
    """Native-resolution DN per band, all valid (1000 ... 3999)."""
    rng = np.random.default_rng(seed)
    return {b: rng.integers(1000, 4000, (px * 10 // RES[b],) * 2).astype(np.uint16)
            for b in S2_BANDS}  # fmt: skip


def write_jp2(path: Path, data: np.ndarray, left: float, top: float, res: float, epsg=32633):
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = dict(driver="JP2OpenJPEG", width=data.shape[1], height=data.shape[0], count=1,
                   dtype="uint16", crs=CRS.from_epsg(epsg),
                   transform=Affine(res, 0, left, 0, -res, top))  # fmt: skip
    with rasterio.open(path, "w", **profile, REVERSIBLE="YES", QUALITY=100) as dst:
        dst.write(data, 1)


def write_band_files(folder: Path, stamp: str, arrays, left=SYN_LEFT, top=SYN_TOP, tile="T33UUU"):
    for b, data in arrays.items():
        write_jp2(folder / f"{tile}_{stamp}_{b}.jp2", data, left, top, RES[b])


def write_safe(root: Path, time: str, arrays, baseline="03.00", offset: int | None = None,
               left=SYN_LEFT, top=SYN_TOP, tile="T33UUU", sun=(35.5, 160.25)) -> Path:  # fmt: skip
    """A SAFE product of one granule, with MTD_MSIL1C.xml (baseline, RADIO_ADD_OFFSET if
    given) and MTD_TL.xml (SENSING_TIME, mean sun angles)."""
    stamp = pd.Timestamp(time).strftime("%Y%m%dT%H%M%S")
    safe = root / f"S2A_MSIL1C_{stamp}_N{baseline.replace('.', '')}_R022_{tile}_{stamp}.SAFE"
    granule = safe / "GRANULE" / f"L1C_{tile}_A000001_{stamp}"
    (granule / "IMG_DATA").mkdir(parents=True)
    write_band_files(granule / "IMG_DATA", stamp, arrays, left, top, tile)
    offsets = "".join(f'<RADIO_ADD_OFFSET band_id="{i}">{offset}</RADIO_ADD_OFFSET>'
                      for i in range(13)) if offset is not None else ""  # fmt: skip
    (safe / "MTD_MSIL1C.xml").write_text(
        '<n1:Level-1C_User_Product xmlns:n1="urn:test:l1c"><n1:General_Info><Product_Info>'
        f"<PRODUCT_START_TIME>{time}Z</PRODUCT_START_TIME>"
        f"<PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE></Product_Info>"
        "<Product_Image_Characteristics><QUANTIFICATION_VALUE>10000</QUANTIFICATION_VALUE>"
        f"<Radiometric_Offset_List>{offsets}</Radiometric_Offset_List>"
        "</Product_Image_Characteristics></n1:General_Info></n1:Level-1C_User_Product>"
    )
    (granule / "MTD_TL.xml").write_text(
        '<n1:Level-1C_Tile_ID xmlns:n1="urn:test:tl"><n1:General_Info>'
        f"<SENSING_TIME>{time}Z</SENSING_TIME></n1:General_Info><n1:Geometric_Info>"
        f"<Tile_Angles><Mean_Sun_Angle><ZENITH_ANGLE>{sun[0]}</ZENITH_ANGLE>"
        f"<AZIMUTH_ANGLE>{sun[1]}</AZIMUTH_ANGLE></Mean_Sun_Angle></Tile_Angles>"
        "</n1:Geometric_Info></n1:Level-1C_Tile_ID>"
    )
    return safe


def upsampled(data: np.ndarray, b: str) -> np.ndarray:
    """A native-resolution band as it must appear on the 10 m grid (nearest)."""
    f = RES[b] // 10
    return np.kron(data, np.ones((f, f), dtype=data.dtype))


# --- the real crop ----------------------------------------------------------------------------


def test_real_jp2_on_their_own_grid_keep_every_dn(tmp_path):
    cube = read(CROP, CROP_GRID, tmp_path)  # 4 tiles of up to 64 px
    assert list(cube["time"].values) == [np.datetime64("2017-02-16T10:21:01")]
    # 10 m bands are the file's pixels; 20 m and 60 m pixels become 2x2 and 6x6 blocks
    for b in ("B02", "B08"):
        np.testing.assert_array_equal(band(cube, b), crop_band(b))
    for b in ("B05", "B8A", "B12", "B01", "B10"):
        np.testing.assert_array_equal(band(cube, b), upsampled(crop_band(b), b))
    assert band(cube, "B05")[0:2, 0:2].tolist() == [[crop_band("B05")[0, 0]] * 2] * 2
    assert cube["is_data"].values.all()
    assert cube.attrs["products"] == [str(CROP / f"{STAMP}_*.jp2")]
    assert "sun_zenith" not in cube.coords  # band files carry no sun angles


def test_shifted_grid_puts_pixels_at_their_place_and_no_data_outside(tmp_path):
    # 30 m west and 20 m north of the crop: 3 columns and 2 rows outside it
    grid = Grid(CROP_GRID.crs, CROP_GRID.left - 30, CROP_GRID.top + 20, 10.0, 40, 40)
    cube = read(CROP, grid, tmp_path, request={"tile_size": 32})
    b05, b02 = crop_band("B05"), crop_band("B02")
    assert (band(cube, "B05")[2:4, 3:5] == b05[0, 0]).all()
    assert (band(cube, "B05")[2:4, 5:7] == b05[0, 1]).all()
    np.testing.assert_array_equal(band(cube, "B02")[2:, 3:], b02[:38, :37])
    assert not cube["is_data"].values[0, :2].any() and not cube["is_data"].values[0, :, :3].any()
    assert (cube["bands"].values[0][:, :2] == 0).all()
    assert cube["is_data"].values[0, 2:, 3:].all()


def test_other_crs_takes_the_nearest_file_pixel(tmp_path):
    # UTM 32N over the crop: each output pixel takes the B02 pixel under its centre
    to32 = Transformer.from_crs(32633, 32632, always_xy=True)
    x, y = to32.transform(336480.0, 5818560.0)
    grid = Grid(CRS.from_epsg(32632), round(x) - 300.0, round(y) + 300.0, 10.0, 60, 60)
    cube = read(CROP, grid, tmp_path)
    to33 = Transformer.from_crs(32632, 32633, always_xy=True)
    xx, yy = np.meshgrid(grid.x, grid.y)
    sx, sy = to33.transform(xx, yy)
    with rasterio.open(CROP / f"{STAMP}_B02.jp2") as src:
        cols, rows = ~src.transform @ (sx, sy)
    inside = (cols > 0.5) & (cols < 95.5) & (rows > 0.5) & (rows < 95.5)
    expected = crop_band("B02")[rows[inside].astype(int), cols[inside].astype(int)]
    assert inside.sum() > 1000
    np.testing.assert_array_equal(band(cube, "B02")[inside], expected)
    assert cube["is_data"].values[0][inside].all()


def test_average_onto_a_20m_grid_is_the_mean_of_2x2_pixels(tmp_path):
    grid = Grid(CROP_GRID.crs, CROP_GRID.left, CROP_GRID.top, 20.0, 48, 48)
    cube = read(CROP, grid, tmp_path, resampling="average")
    mean = crop_band("B04").astype(float).reshape(48, 2, 48, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(band(cube, "B04"), mean, atol=1)
    np.testing.assert_array_equal(band(cube, "B05"), crop_band("B05"))


def test_real_jp2_in_a_safe_folder_take_time_and_sun_from_metadata(tmp_path):
    safe = write_safe(tmp_path / "in", "2017-02-16T10:21:01.026", {}, baseline="02.04")
    img = next((safe / "GRANULE").glob("*")) / "IMG_DATA"
    for f in CROP.glob("*.jp2"):
        shutil.copy(f, img / f.name)
    cube = read(tmp_path / "in", CROP_GRID, tmp_path)
    assert cube["time"].values[0] == np.datetime64("2017-02-16T10:21:01.026")
    assert float(cube["sun_zenith"][0]) == 35.5 and float(cube["sun_azimuth"][0]) == 160.25
    np.testing.assert_array_equal(band(cube, "B03"), crop_band("B03"))


# --- times, baseline offset, merge, data mask (synthetic products) ----------------------------


def test_times_come_from_the_files_and_the_interval_filters_them(tmp_path):
    for i, time in enumerate(["2021-06-01T10:05:59", "2021-03-01T10:15:21", "2022-01-01T10:00:00"]):
        write_safe(tmp_path / "in", time, synthetic(i))
    cube = read(tmp_path / "in", SYN_GRID, tmp_path,
                request={"interval": ("2021-03-01", "2021-12-31")})  # fmt: skip
    times = pd.DatetimeIndex(cube["time"].values)
    assert list(times) == [pd.Timestamp("2021-03-01T10:15:21"), pd.Timestamp("2021-06-01T10:05:59")]
    np.testing.assert_array_equal(band(cube, "B02", 0), synthetic(1)["B02"])  # sorted by time
    np.testing.assert_array_equal(band(cube, "B02", 1), synthetic(0)["B02"])


def test_baseline_04_offset_gives_2022_dn_the_meaning_of_2021_dn(tmp_path):
    data = synthetic(5)
    stored = {b: (v + 1000).astype(np.uint16) for b, v in data.items()}  # baseline 04.00
    stored["B02"][0, 0] = 500  # below the offset: darkest valid DN, stays valid
    stored["B02"][0, 1] = 0  # no data stays no data
    write_safe(tmp_path / "in", "2021-07-01T10:00:00", data)
    write_safe(tmp_path / "in", "2022-07-01T10:00:00", stored, baseline="04.00", offset=-1000)
    cube = read(tmp_path / "in", SYN_GRID, tmp_path,
                request={"interval": ("2021-01-01", "2022-12-31")})  # fmt: skip
    dn_2021, dn_2022 = cube["bands"].values
    assert (dn_2022[:, 1:] == dn_2021[:, 1:]).all()
    assert (dn_2022[S2_BANDS.index("B03")] == dn_2021[S2_BANDS.index("B03")]).all()
    assert band(cube, "B02", 1)[0, 0] == 1 and band(cube, "B02", 1)[0, 1] == 0
    assert cube["is_data"].values.all()


def test_offset_without_metadata_follows_the_acquisition_date(tmp_path):
    data = synthetic(6)
    write_band_files(tmp_path / "in" / "a", "20220125T100000", data)
    write_band_files(tmp_path / "in" / "b", "20220124T100000", data)
    interval = {"interval": ("2022-01-01", "2022-01-31")}
    cube = read(tmp_path / "in", SYN_GRID, tmp_path, request=interval)
    before, after = cube["bands"].values
    assert (after.astype(int) == before.astype(int) - 1000).all()  # from 2022-01-25 on
    np.testing.assert_array_equal(before[S2_BANDS.index("B02")], data["B02"])
    for mode in ("metadata", "none"):  # no metadata says so: the DN as stored
        kept = read(tmp_path / "in", SYN_GRID, tmp_path / mode, request=interval,
                    radiometric_offset=mode)  # fmt: skip
        assert (kept["bands"].values[1] == kept["bands"].values[0]).all()


def test_metadata_beside_band_files_is_used_only_for_its_own_day(tmp_path):
    data = synthetic(7)
    stored = {b: (v + 1000).astype(np.uint16) for b, v in data.items()}
    safe = write_safe(tmp_path / "safe", "2021-09-09T10:00:00", {}, baseline="05.00", offset=-1000)
    write_band_files(tmp_path / "in", "20210909T100000", stored)  # copied out of the SAFE
    write_band_files(tmp_path / "in", "20210910T100000", stored)  # another product
    shutil.copy(safe / "MTD_MSIL1C.xml", tmp_path / "in")
    shutil.copy(next(safe.rglob("MTD_TL.xml")), tmp_path / "in")
    cube = read(
        tmp_path / "in", SYN_GRID, tmp_path, request={"interval": ("2021-01-01", "2021-12-31")}
    )
    np.testing.assert_array_equal(band(cube, "B02", 0), data["B02"])  # offset of its metadata
    np.testing.assert_array_equal(band(cube, "B02", 1), stored["B02"])  # 2021, no metadata
    assert "sun_zenith" not in cube.coords  # the second product has no sun angles


def test_same_day_products_merge_first_valid_pixel_wins(tmp_path):
    # two adjacent granules of one pass overlapping by 6 columns; the first has no data in
    # its last 2 columns (10 of 13 bands at 0 there), which the second fills
    first, second = synthetic(1), synthetic(2)
    for b in S2_BANDS:
        if RES[b] <= 20:
            first[b][:, -(20 // RES[b]) :] = 0
    write_safe(tmp_path / "in", "2017-05-05T10:20:01", first, tile="T33UUU")
    write_safe(tmp_path / "in", "2017-05-05T10:20:05", second, tile="T33UVU",
               left=SYN_LEFT + 60)  # fmt: skip
    grid = Grid(SYN_GRID.crs, SYN_LEFT, SYN_TOP, 10.0, 18, SYN_PX)
    cube = read(tmp_path / "in", grid, tmp_path)
    assert list(cube["time"].values) == [np.datetime64("2017-05-05T10:20:01")]
    b02 = band(cube, "B02")
    np.testing.assert_array_equal(b02[:, :10], first["B02"][:, :10])  # first wins the overlap
    np.testing.assert_array_equal(b02[:, 10:], second["B02"][:, 4:])  # second fills the rest
    for b in ("B05", "B01"):  # all bands of a pixel come from one product
        assert (band(cube, b)[:, 9] == upsampled(first[b], b)[:, 9]).all()
        assert (band(cube, b)[:, 10] == upsampled(second[b], b)[:, 4]).all()
    assert cube["is_data"].values.all()


def test_is_data_keeps_a_pixel_with_one_band_at_zero(tmp_path):
    data = synthetic(3)
    data["B02"][0, 0] = 0  # one band without data: the pixel stays
    for b in S2_BANDS:  # bottom-right 6x6: only the four 10 m bands have data
        if RES[b] == 20:
            data[b][3:, 3:] = 0
        elif RES[b] == 60:
            data[b][1, 1] = 0
    write_band_files(tmp_path / "in", "20170601T100000", data)
    cube = read(tmp_path / "in", SYN_GRID, tmp_path)
    is_data = cube["is_data"].values[0]
    assert is_data[0, 0] and band(cube, "B02")[0, 0] == 0 and band(cube, "B03")[0, 0] > 0
    assert not is_data[6:, 6:].any() and (cube["bands"].values[0][:, 6:, 6:] == 0).all()
    assert is_data.sum() == 144 - 36
    loose = read(tmp_path / "in", SYN_GRID, tmp_path / "loose", min_band_fraction=0.3)
    assert loose["is_data"].values[0].all()  # 4 of 13 bands is enough at 0.3
    np.testing.assert_array_equal(band(loose, "B08")[6:, 6:], data["B08"][6:, 6:])


def test_geotiffs_by_band_description_or_order_with_time_from_tag_or_name(tmp_path):
    data = {b: upsampled(v, b) for b, v in synthetic(9).items()}  # all at 10 m
    order = list(reversed(S2_BANDS))
    profile = dict(driver="GTiff", width=SYN_PX, height=SYN_PX, count=13, dtype="uint16",
                   crs="EPSG:32633",
                   transform=Affine(10, 0, SYN_LEFT, 0, -10, SYN_TOP))  # fmt: skip
    (tmp_path / "in").mkdir()
    with rasterio.open(tmp_path / "in" / "scene.tif", "w", **profile) as dst:
        dst.write(np.stack([data[b] for b in order]))
        dst.descriptions = tuple(b.replace("B0", "B") for b in order)  # "B1", "B8A", ...
        dst.update_tags(SENSING_TIME="2017-04-02T10:10:10Z", SUN_ZENITH=50, SUN_AZIMUTH=150)
    with rasterio.open(tmp_path / "in" / "s2_2017-08-30.tif", "w", **profile) as dst:
        dst.write(np.stack([data[b] for b in S2_BANDS]))
        dst.update_tags(MEAN_SOLAR_ZENITH_ANGLE=40.5, MEAN_SOLAR_AZIMUTH_ANGLE=155)
    cube = read(tmp_path / "in", SYN_GRID, tmp_path)
    assert list(pd.DatetimeIndex(cube["time"].values)) == [
        pd.Timestamp("2017-04-02T10:10:10"), pd.Timestamp("2017-08-30")]  # fmt: skip
    for t in (0, 1):
        for b in ("B01", "B8A", "B12"):
            np.testing.assert_array_equal(band(cube, b, t), data[b])
    assert cube["sun_zenith"].values.tolist() == [50.0, 40.5]
    assert cube["sun_azimuth"].values.tolist() == [150.0, 155.0]


# --- errors -----------------------------------------------------------------------------------


def test_missing_or_empty_folder_is_named(tmp_path):
    request = request_for(SYN_GRID, tmp_path / "staging")
    with pytest.raises(SourceError, match=r"nowhere.*does not exist"):
        LocalFilesReader(tmp_path / "nowhere", request)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "S2A_MSIL1C_x.zip").write_bytes(b"")
    with pytest.raises(SourceError, match=r"empty holds no products.*unzip them"):
        LocalFilesReader(tmp_path / "empty", request)


def test_missing_band_names_band_and_product(tmp_path):
    data = synthetic(1)
    safe = write_safe(tmp_path / "safe", "2017-05-01T10:00:00", data)
    next(safe.rglob("*_B8A.jp2")).unlink()
    request = request_for(SYN_GRID, tmp_path / "staging")
    with pytest.raises(SourceError, match=r"L1C_T33UUU_A000001_20170501T100000 has no band B8A"):
        LocalFilesReader(tmp_path / "safe", request)
    del data["B09"], data["B10"]
    write_band_files(tmp_path / "loose", "20170501T100000", data)
    with pytest.raises(SourceError, match=r"T33UUU_20170501T100000_\*\.jp2 has no band B09, B10"):
        LocalFilesReader(tmp_path / "loose", request)


def test_level_2a_product_is_refused_by_name(tmp_path):
    (tmp_path / "in" / "S2A_MSIL2A_20170501T100000_N0500_R022_T33UUU_x.SAFE").mkdir(parents=True)
    with pytest.raises(SourceError, match=r"MSIL2A_20170501.*is a Level-2A product"):
        LocalFilesReader(tmp_path / "in", request_for(SYN_GRID, tmp_path / "staging"))


def test_corrupt_file_is_named_when_listing(tmp_path):
    write_band_files(tmp_path / "in", "20170501T100000", synthetic(1))
    bad = tmp_path / "in" / "T33UUU_20170501T100000_B11.jp2"
    bad.write_bytes(b"not a jpeg2000 file" * 10)
    with pytest.raises(SourceError, match=r"T33UUU_20170501T100000_B11\.jp2 cannot be opened"):
        LocalFilesReader(tmp_path / "in", request_for(SYN_GRID, tmp_path / "staging"))


def test_truncated_file_fails_its_tiles_naming_the_file(tmp_path):
    shutil.copytree(CROP, tmp_path / "in")
    bad = tmp_path / "in" / f"{STAMP}_B03.jp2"
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])  # header fine, data cut
    with pytest.raises(SourceError, match=r"4 of 4 tiles could not be read") as err:
        read(tmp_path / "in", CROP_GRID, tmp_path)
    assert f"{STAMP}_B03.jp2: band B03" in str(err.value) and "truncated" in str(err.value)


def test_products_off_the_aoi_are_skipped_with_a_warning(tmp_path, caplog):
    write_band_files(tmp_path / "in", "20170501T100000", synthetic(1))
    write_band_files(tmp_path / "in", "20170502T100000", synthetic(2), left=SYN_LEFT + 1e5,
                     tile="T33UVU")  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="perceptive.sources.local_files"):
        cube = read(tmp_path / "in", SYN_GRID, tmp_path)
    assert len(cube["time"]) == 1 and cube["time"].values[0] == np.datetime64("2017-05-01T10")
    assert "T33UVU_20170502T100000_*.jp2: it does not overlap the AOI" in caplog.text
    far = Grid(SYN_GRID.crs, SYN_LEFT + 3e5, SYN_TOP, 10.0, SYN_PX, SYN_PX)
    with pytest.raises(SourceError, match=r"none of the 2 products .* overlaps the AOI"):
        LocalFilesReader(tmp_path / "in", request_for(far, tmp_path / "staging"))


def test_no_product_in_the_interval_says_which_dates_there_are(tmp_path):
    write_band_files(tmp_path / "in", "20190501T100000", synthetic(1))
    with pytest.raises(SourceError, match=r"between 2017-01-01 and 2017-12-31 .* from 2019-05-01"):
        LocalFilesReader(tmp_path / "in", request_for(SYN_GRID, tmp_path / "staging"))


def test_options_are_checked_from_the_signature():
    registry = Registry("source", "source(request, **options)")
    registry.register("local_files", local_files)
    checked = registry.validate({"method": "local_files", "folder": "downloads"})
    assert checked == {"method": "local_files", "folder": "downloads", "resampling": "nearest",
                       "radiometric_offset": "auto", "min_band_fraction": 0.5}  # fmt: skip
    with pytest.raises(LinkError, match="resampling"):
        registry.validate({"method": "local_files", "folder": "x", "resampling": "lanczos"})
    with pytest.raises(LinkError, match="folder"):
        registry.validate({"method": "local_files"})
