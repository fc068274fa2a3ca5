"""Bad input of every kind, fed to the real functions on small inputs: each case must be refused
with an error whose message names the problem (a phrase of it is matched, not only the type),
or be handled as documented.

Groups: AOIs (``perceptive.eo.grid``, the ``define_aoi`` node), cubes (``validate_*``, the
feature_engineering nodes, ``interpolate``), reference data (the ``import_reference_labels``
node, ``rasterize_labels``) and parameters (the project's config loader, for cases that
tests/test_parameters.py does not run). tests/test_bad_input.py runs a few of these through
the Kedro session.

A case marked ``xfail(strict=True)`` is an input that is NOT refused clearly today; its reason
says what happens. The test states the behaviour we want, so the mark must go when it is fixed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr
from pyproj import CRS
from rasterio.transform import from_origin
from shapely.geometry import Polygon, box

from perceptive.config import ParameterError, ProjectConfigLoader
from perceptive.eo.aoi import utm_zones_crossed
from perceptive.eo.cube import S2_BANDS, CubeError, make_l1c_cube, validate_l1c_cube
from perceptive.eo.grid import Grid, GridError, aoi_geometry, grid_for_aoi, grid_of
from perceptive.eo.interpolation import interpolate
from perceptive.eo.labels import LabelError, rasterize_labels
from perceptive.eo.legend import LandCoverClass
from perceptive.eo.reference import ReferenceDataError
from perceptive.params import Aoi, DateGrid, Reference
from perceptive.pipelines.feature_engineering.nodes import compute_features, compute_masks
from perceptive.pipelines.ingestion.nodes import define_aoi, import_reference_labels

PROJECT = Path(__file__).resolve().parents[1]
UTM33 = CRS.from_epsg(32633)
#: 8 x 8 px at 10 m in the top-left corner of the demo AOI.
GRID = Grid(UTM33, 500000.0, 5100000.0, 10.0, 8, 8)
INTERVAL = ["2017-04-01", "2017-06-30"]
NO_MASKING = {"method": "none"}
LINEAR = {"method": "linear", "edges": "hold"}


def xfail(reason: str):
    """An input that is not refused clearly today (``reason``: what happens instead)."""
    return pytest.mark.xfail(strict=True, reason=reason)


def case(make: Callable, error: type[Exception], message: str, *, id: str, marks=()):
    """``make(tmp_path)`` must raise ``error`` with ``message`` (a regex) in its text."""
    return pytest.param(make, error, message, id=id, marks=marks)


def check_refused(make, error, message, tmp_path):
    with pytest.raises(error, match=message):
        make(tmp_path)


# --------------------------------------------------------------------------- AOIs


def geometry_aoi(coordinates, kind="Polygon", crs="EPSG:4326") -> dict:
    return {"geometry": {"type": kind, "coordinates": coordinates}, "crs": crs}


def grid_of_aoi(aoi: dict, **kwargs) -> Grid:
    return grid_for_aoi(*aoi_geometry(aoi), **kwargs)


def defined(aoi: dict, max_cube_gb: float = 250):
    """The ingestion pipeline's first node on ``aoi`` (a year at 10 m, 256 px tiles)."""
    return define_aoi(Aoi(**aoi), 10, 256, ["2017-01-01", "2017-12-31"], max_cube_gb)


BOW_TIE_LON_LAT = [[[15.0, 46.0], [15.1, 46.1], [15.1, 46.0], [15.0, 46.1], [15.0, 46.0]]]
#: 0.4° across the antimeridian near Fiji, given the GeoJSON way (longitudes -179.8 / 179.8).
ACROSS_ANTIMERIDIAN = [[[179.8, -17.0], [-179.8, -17.0], [-179.8, -16.8], [179.8, -16.8],
                        [179.8, -17.0]]]  # fmt: skip
#: Tokyo given as [lat, lon]: a latitude of 139.7 does not exist.
TOKYO_SWAPPED = {"bbox": [35.6, 139.6, 35.7, 139.7], "crs": "EPSG:4326"}


AOI_CASES = [
    case(lambda _: aoi_geometry(geometry_aoi(BOW_TIE_LON_LAT)), GridError,
         r"AOI geometry is invalid \(Self-intersection.*make_valid", id="self-intersecting"),
    case(lambda _: aoi_geometry({"bbox": [float("nan"), 46.0, 15.1, 46.1]}), GridError,
         r"invalid \(Invalid Coordinate\[nan", id="nan-coordinate"),
    case(lambda _: aoi_geometry(geometry_aoi([])), GridError, "AOI geometry has no area",
         id="empty-polygon"),
    case(lambda _: aoi_geometry(geometry_aoi([15.0, 46.0], "Point")), GridError,
         "not a point or line", id="point"),
    case(lambda _: aoi_geometry(geometry_aoi([[15.0, 46.0], [15.1, 46.1]], "LineString")),
         GridError, "not a point or line", id="line"),
    case(lambda _: aoi_geometry({"bbox": [179.8, -17.0, -179.8, -16.8]}), GridError,
         r"has no area: .*minx < maxx", id="antimeridian-bbox"),
    case(lambda _: aoi_geometry(TOKYO_SWAPPED), GridError,
         r"look swapped.*Give x \(easting or longitude\) first", id="lon-lat-swapped"),
    case(lambda _: aoi_geometry({"bbox": [0, 0, 1, 1], "crs": "WGS85"}), GridError,
         "aoi.crs 'WGS85' is not a CRS pyproj knows", id="unknown-crs"),
    case(lambda _: grid_of_aoi({"bbox": [15.0, 46.0, 15.1, 46.1]}, target_crs="EPSG:4326"),
         GridError, r"Grid CRS EPSG:4326 is not projected; use a UTM CRS", id="geographic-grid"),
    case(lambda _: grid_of_aoi({"bbox": [15.0, 46.0, 15.1, 46.1]}, resolution=0), GridError,
         "resolution must be positive, got 0", id="zero-resolution"),
    case(lambda _: Grid(UTM33, 500000.0, 5100000.0, 10.0, 8, 8, resolution_y=-10.0), GridError,
         "Pixel sizes must be positive", id="negative-pixel-height"),
    case(lambda _: aoi_geometry("Vienna"), GridError,
         "Parameter 'aoi' must be a mapping with 'bbox', 'geometry' or 'file'", id="not-a-mapping"),
    case(lambda _: aoi_geometry({"bbox": [15.0, 46.0, 15.1]}), GridError,
         r"aoi.bbox must be \[minx, miny, maxx, maxy\], got \[15.0, 46.0, 15.1\]",
         id="bbox-three-numbers"),
    case(lambda _: aoi_geometry({"geometry": {"type": "Blob", "coordinates": [1]}}), GridError,
         "aoi.geometry is not a GeoJSON geometry: Unknown geometry type", id="not-geojson"),
    case(lambda _: aoi_geometry({"geometry": None, "bbox": None}), GridError,
         "needs exactly one of 'bbox', 'geometry' or 'file'; got none", id="no-aoi-at-all"),
    case(lambda _: defined({"bbox": [10.0, 40.0, 20.0, 50.0]}), GridError,
         r"AOI is too large: 85380 x 111088 px .* over the limit max_cube_gb=250",
         id="huge-10-degrees"),
    case(lambda _: defined({"bbox": [500000, 5000000, 600000, 5100000], "crs": "EPSG:32633"},
                           max_cube_gb=1),
         GridError, r"about 189.8 GB .* max_cube_gb=1\. Split the AOI", id="huge-for-the-limit"),
    case(lambda _: defined({"bbox": [-180, -80, 180, 80]}), GridError,
         r"too large: it spans 360.0° of longitude", id="whole-world"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "error", "message"), AOI_CASES)
def test_bad_aoi_is_refused(make, error, message, tmp_path):
    check_refused(make, error, message, tmp_path)


def test_an_aoi_across_the_antimeridian_is_gridded_where_it_is():
    aoi = geometry_aoi(ACROSS_ANTIMERIDIAN)
    grid = grid_of_aoi(aoi)
    # a UTM zone at the antimeridian, 0.4° (42.6 km at 17° S) by 0.2° (22.1 km)
    assert grid.crs.to_epsg() in (32701, 32760)
    assert 4200 < grid.width < 4400 and 2100 < grid.height < 2400
    geom, crs = aoi_geometry(aoi)
    assert utm_zones_crossed(geom, crs) == ["EPSG:32760", "EPSG:32701"]  # both sides of 180°


# --------------------------------------------------------------------------- cubes


def l1c(n_frames=6, dtype=np.uint16, times=None, bands=S2_BANDS, value=1000, grid=GRID):
    """A small L1C cube, every band ``value``, as the ingestion pipeline writes it."""
    if times is None:
        times = pd.date_range(INTERVAL[0], periods=n_frames, freq="10D")
    data = np.full((len(times), len(bands), grid.height, grid.width), value, dtype=dtype)
    cube = make_l1c_cube(data, times, grid, band_names=bands)
    cube.attrs["time_interval"] = list(INTERVAL)
    return cube


def features_of(cube, masks=None, features=("NDVI",), min_valid_fraction=0.8):
    """The compute_features node (masks from the compute_masks node without cloud masking)."""
    if masks is None:
        masks = compute_masks(cube, NO_MASKING, NO_MASKING)
    return compute_features(
        cube, masks, list(features), min_valid_fraction, DateGrid(step_days=16), LINEAR
    )


def all_cloudy(_):
    cube = l1c()
    masks = compute_masks(cube, NO_MASKING, NO_MASKING)
    masks["cloud_mask"][:] = True
    masks["is_valid"][:] = False
    masks["valid_fraction"][:] = 0.0
    return features_of(cube, masks)


def dates(*days: str) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(list(days))


def without_crs(_):
    return validate_l1c_cube(l1c().drop_vars("spatial_ref"))


def masks_as_uint8(_):
    cube = l1c()
    masks = compute_masks(cube, NO_MASKING, NO_MASKING)
    return features_of(cube, masks.assign(is_valid=masks["is_valid"].astype(np.uint8)))


def masks_of_another_run(_):
    other = l1c(times=pd.date_range("2017-04-02", periods=6, freq="10D"))
    return features_of(l1c(), compute_masks(other, NO_MASKING, NO_MASKING))


def interval_elsewhere(_):
    cube = l1c()
    cube.attrs["time_interval"] = ["2018-01-01", "2018-12-31"]
    return features_of(cube)


def without_interval(_):
    cube = l1c()
    del cube.attrs["time_interval"]
    return features_of(cube)


def s2cloudless(cube):
    spec = {"method": "s2cloudless", "processing_resolution": 160, "threshold": 0.4,
            "average_over": 2, "dilation_size": 1, "snow": "cloud"}  # fmt: skip
    return compute_masks(cube, spec, NO_MASKING)


def series(times, valid_times=None):
    """(time, feature, y, x) data and (time, y, x) valid masks for ``interpolate``."""
    data = xr.DataArray(np.ones((len(times), 1, 2, 2), np.float32),
                        dims=("time", "feature", "y", "x"), coords={"time": times})  # fmt: skip
    valid_times = times if valid_times is None else valid_times
    valid = xr.DataArray(np.ones((len(valid_times), 2, 2), bool), dims=("time", "y", "x"),
                         coords={"time": valid_times})  # fmt: skip
    return data, valid


def interpolate_unsorted(_):
    data, valid = series(dates("2017-04-11", "2017-04-01"))
    return interpolate(data, valid, dates("2017-04-05"), LINEAR)


def interpolate_other_times(_):
    data, valid = series(dates("2017-04-01", "2017-04-11"), dates("2017-04-01", "2017-04-12"))
    return interpolate(data, valid, dates("2017-04-05"), LINEAR)


CUBE_CASES = [
    case(lambda _: validate_l1c_cube(l1c(dtype=np.float32, value=np.nan)), CubeError,
         r"l1c_cube.bands has dtype float32, expected uint16", id="nan-float-bands"),
    case(lambda _: validate_l1c_cube(l1c(dtype=np.int16)), CubeError,
         r"l1c_cube.bands has dtype int16, expected uint16", id="int16-bands"),
    case(all_cloudy, ValueError,
         r"No frame has a valid-pixel fraction >= min_valid_fraction=0.8, 3 needed: 6 "
         r"frame\(s\), best 0.0%.*Lower min_valid_fraction.*check the cloud mask threshold",
         id="all-cloudy-frames"),
    case(lambda _: features_of(l1c(value=0)), ValueError,
         r"No frame has a valid-pixel fraction", id="no-data-at-all"),
    case(lambda _: features_of(l1c(n_frames=1)), ValueError,
         r"Only 1 frame\(s\) have a valid-pixel fraction .* 3 needed: 1 frame\(s\)",
         id="one-acquisition"),
    case(lambda _: validate_l1c_cube(l1c(times=dates("2017-04-01", "2017-04-01", "2017-04-11"))),
         CubeError, "l1c_cube.time must be sorted and unique.*merge same-day frames",
         id="duplicated-times"),
    case(lambda _: validate_l1c_cube(l1c(times=dates("2017-04-11", "2017-04-01", "2017-04-21"))),
         CubeError, "l1c_cube.time must be sorted and unique", id="unsorted-times"),
    case(lambda _: validate_l1c_cube(l1c(times=pd.DatetimeIndex([]))), CubeError,
         r"l1c_cube has an empty time series.*widen time_interval", id="empty-time-series"),
    case(lambda _: validate_l1c_cube(l1c().isel(time=0)), CubeError,
         "l1c_cube has no time dimension", id="no-time-dimension"),
    case(lambda _: validate_l1c_cube(l1c()["bands"]), CubeError,
         "l1c_cube must be an xarray.Dataset, got DataArray", id="a-dataarray"),
    case(masks_as_uint8, CubeError, "masks_cube.is_valid has dtype uint8, expected bool",
         id="masks-wrong-dtype"),
    case(lambda _: features_of(l1c(bands=("B02", "B03", "B04"))), ValueError,
         r"cannot give feature\(s\) NDVI \(needs band\(s\) \['B08'\] or a layer 'NDVI'\)",
         id="missing-band-for-a-feature"),
    case(lambda _: s2cloudless(l1c(bands=("B02", "B03", "B04", "B08"))), ValueError,
         r"s2cloudless needs all 13 L1C bands; the cube misses \['B01'", id="s2cloudless-bands"),
    case(lambda _: validate_l1c_cube(l1c(bands=("B02", "B03", "NIR"))), CubeError,
         r"band names must be distinct Sentinel-2 band names.*\['B02', 'B03', 'NIR'\]",
         id="unknown-band-name"),
    case(without_crs, CubeError, r"l1c_cube has no CRS; write one", id="missing-crs"),
    case(lambda _: validate_l1c_cube(l1c().rio.write_crs("EPSG:4326")), CubeError,
         r"l1c_cube is in EPSG:4326, a geographic CRS.*projected", id="geographic-crs"),
    case(lambda _: grid_of(l1c().sortby("y")), GridError,
         r"x must increase and y decrease \(north-up\)", id="south-up-cube"),
    case(lambda _: s2cloudless(l1c(grid=Grid(UTM33, 500000.0, 5100000.0, 10.0, 1, 1))),
         GridError, "Cannot infer the pixel size of a 1 x 1 pixel cube", id="one-pixel-cube"),
    case(masks_of_another_run, ValueError,
         "masks_cube and l1c_cube have different time stamps", id="masks-of-another-run"),
    case(interval_elsewhere, ValueError,
         r"date grid 2018-01-01 \.\. 2018-12-19 does not overlap the observations",
         id="interval-without-observations"),
    case(without_interval, CubeError, "does not record its time_interval",
         id="no-time-interval"),
    case(interpolate_unsorted, ValueError, "time must be sorted and unique before interpolation",
         id="interpolate-unsorted"),
    case(interpolate_other_times, ValueError, "data and valid must share the same time coordinate",
         id="interpolate-other-valid-times"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "error", "message"), CUBE_CASES)
def test_bad_cube_is_refused(make, error, message, tmp_path):
    check_refused(make, error, message, tmp_path)


def test_nan_observations_marked_valid_are_skipped_by_interpolation():
    """Documented: an observation is used where ``valid`` and its value is not NaN."""
    times = dates("2017-04-01", "2017-04-11", "2017-04-21")
    data, valid = series(times)
    data[1] = np.nan  # valid, but NaN: as if it were cloudy
    data[2] = 3.0
    out = interpolate(data, valid, dates("2017-04-11"), LINEAR)
    np.testing.assert_allclose(out.values, 2.0)  # halfway between 1 (1 Apr) and 3 (21 Apr)


def test_one_acquisition_is_held_at_every_date_by_interpolation():
    """Documented: outside a pixel's valid observations ``edges: hold`` keeps the nearest one."""
    data, valid = series(dates("2017-04-11"))
    out = interpolate(data, valid, dates("2017-04-01", "2017-04-17", "2017-05-03"), LINEAR)
    np.testing.assert_array_equal(out.values, 1.0)


def test_a_source_layer_of_nan_is_counted_as_no_observation():
    cube = l1c()
    nan = np.full((6, GRID.height, GRID.width), np.nan, np.float32)
    nan[2:4, 0, 0] = 0.5  # one pixel has two real NDVI values
    cube["NDVI"] = (("time", "y", "x"), nan)
    out = features_of(cube)
    assert int(out["valid_count"][0, 0]) == 2
    all_nan = out["features"].isnull().all(("time", "feature"))
    assert bool(all_nan.values.sum() == GRID.height * GRID.width - 1)
    assert bool((out["valid_count"].where(all_nan, 0) == 0).all())


# --------------------------------------------------------------------------- reference data

#: 40 x 60 m in the top-left corner of GRID.
INSIDE = box(500000, 5099940, 500040, 5100000)


def reference(file=None, column="class_id", mapping=None) -> Reference:
    return Reference(file=None if file is None else str(file), class_column=column,
                     class_mapping=mapping)  # fmt: skip


def frame(geometry, crs="EPSG:32633", **columns) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(columns or {"class_id": [1] * len(geometry)}, geometry=geometry,
                            crs=crs)  # fmt: skip


def import_file(tmp_path, name, labels, **ref):
    path = tmp_path / name
    labels.to_file(path, engine="pyogrio")
    return import_reference_labels(None, reference(path, **ref), l1c(n_frames=1))


def import_labels(labels, **ref):
    return import_reference_labels(labels, reference(**ref), l1c(n_frames=1))


def import_text(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return import_reference_labels(None, reference(path), l1c(n_frames=1))


def raster_without_crs(tmp_path):
    path = tmp_path / "codes.tif"
    profile = {"driver": "GTiff", "width": 8, "height": 8, "count": 1, "dtype": "uint8",
               "transform": from_origin(500000, 5100000, 10, 10)}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.ones((1, 8, 8), np.uint8))
    return import_reference_labels(None, reference(path), l1c(n_frames=1))


LEGEND = [LandCoverClass(id=i, name=f"class {i}", colour="#000000") for i in range(4)]

REFERENCE_CASES = [
    case(lambda tmp: import_file(tmp, "empty.gpkg", frame([])), ValueError,
         r"Reference labels .*empty\.gpkg are empty; give a file with labelled polygons",
         id="empty-file"),
    case(lambda tmp: import_text(tmp, "empty.geojson", '{"type": "FeatureCollection", '
                                 '"features": []}'),
         ValueError, r"empty\.geojson are empty", id="empty-feature-collection"),
    case(lambda tmp: import_text(tmp, "zero.gpkg", ""), ValueError,
         r"reference\.file.*zero\.gpkg", id="zero-byte-file"),
    case(lambda tmp: import_text(tmp, "labels.csv", "class_id,x\n1,2\n"), ValueError,
         r"labels\.csv.*(no geometry|polygons)", id="table-without-geometry"),
    case(lambda tmp: import_file(tmp, "nocrs.gpkg", frame([INSIDE], crs=None)), ValueError,
         r"nocrs\.gpkg have no CRS; assign one", id="file-without-crs"),
    case(lambda _: import_labels(frame([INSIDE], crs=None)), ValueError,
         "The source's labels have no CRS", id="source-labels-without-crs"),
    case(raster_without_crs, ReferenceDataError,
         r"Reference raster .*codes\.tif has no CRS; assign one", id="raster-without-crs"),
    case(lambda tmp: import_file(tmp, "far.gpkg", frame([box(600000, 5000000, 600100, 5000100)])),
         ReferenceDataError,
         r"far\.gpkg does not overlap the AOI\. In EPSG:32633, it spans \(600000\.0, 5000000\.0",
         id="no-overlap"),
    case(lambda _: import_labels(frame([INSIDE], crs="EPSG:4326")), ReferenceDataError,
         "does not overlap the AOI.*check the CRS of the file", id="utm-labels-declared-lon-lat"),
    case(lambda _: import_labels(frame([Polygon(), None])), ValueError,
         "geometr(y|ies) .*(empty|missing)", id="empty-geometries"),
    case(lambda tmp: import_file(tmp, "lc.gpkg", frame([INSIDE], lc=[1]), column="landcover"),
         ValueError,
         r"no column 'landcover' \(parameter 'reference\.class_column'\); their columns are "
         r"\['lc'\]", id="missing-class-column"),
    case(lambda tmp: import_file(tmp, "codes.gpkg", frame([INSIDE] * 4, code=[211, 311, 999, 999]),
                                 column="code", mapping={"211": 1}),
         ReferenceDataError,
         r"2 code\(s\) of column 'code' are not in parameter 'reference\.class_mapping' "
         r"\(code: number of polygons\): '999': 2, '311': 1", id="unknown-codes-with-mapping"),
    case(lambda _: import_labels(frame([INSIDE] * 2, class_id=["forest", "water"]),
                                 mapping={"forest": 3}),
         ReferenceDataError, r"'water': 1\. Add each to the mapping", id="unknown-name-in-mapping"),
    case(lambda _: import_labels(gpd.GeoDataFrame(geometry=[], crs="EPSG:32633")), ValueError,
         r"No reference labels: this source has none of its own; set parameter "
         r"'reference\.file'", id="no-labels-at-all"),
    case(lambda _: rasterize_labels(frame([INSIDE] * 2, class_id=[1, 7]), GRID, legend=LEGEND),
         LabelError, r"Class ids \[7\] in column 'class_id' are not in the legend",
         id="class-not-in-legend"),
    case(lambda _: rasterize_labels(frame([INSIDE] * 2, class_id=["forest", "water"]), GRID),
         LabelError, r"must hold integer class ids, found \['forest', 'water'\]",
         id="class-names-not-ids"),
    case(lambda _: rasterize_labels(frame([INSIDE] * 2, class_id=[1, None]), GRID), LabelError,
         r"Column 'class_id' has 1 empty value\(s\)", id="empty-class-id"),
    case(lambda _: rasterize_labels(frame([INSIDE], class_id=[300]), GRID), LabelError,
         r"Class ids \[300\] .* outside 0\.\.255", id="class-id-above-255"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "error", "message"), REFERENCE_CASES)
def test_bad_reference_data_is_refused(make, error, message, tmp_path):
    check_refused(make, error, message, tmp_path)


# --------------------------------------------------------------------------- parameters


def load(**runtime):
    """The project's parameters (conf/base, conf/local, then ``runtime``), validated."""
    loader = ProjectConfigLoader(
        conf_source=str(PROJECT / "conf"),
        base_env="base",
        default_run_env="local",
        runtime_params=runtime,
    )
    return loader["parameters"]


def parameters(params: dict, message: str, *, id: str, marks=()):
    return case(lambda _: load(**params), ParameterError, message, id=id, marks=marks)


ONE_PIXEL = {"bbox": [500000, 5099990, 500010, 5100000], "crs": "EPSG:32633"}

PARAMETER_CASES = [
    parameters({"time_interval": ["2017-01-01"]},
               r"time_interval = \['2017-01-01'\] \(set in --params\): too few items",
               id="one-date-interval"),
    parameters({"sampling": {"validation_fraction": 0.6, "test_fraction": 0.5}},
               r"validation_fraction \+ test_fraction = 1\.1 leaves nothing to train on",
               id="fractions-leave-no-training"),
    parameters({"features": []}, "features is empty; give at least one band or index",
               id="no-features"),
    parameters({"features": ["NDVI", "NDVI"]}, r"Duplicate feature names in \['NDVI', 'NDVI'\]",
               id="duplicate-features"),
    parameters({"max_cube_gb": 0}, r"max_cube_gb = 0 \(set in --params\): .*greater than 0",
               id="max_cube_gb-0"),
    parameters({"sampling": {"n_folds": 1}}, r"sampling\.n_folds = 1 .*greater than or equal to 2",
               id="one-fold"),
    parameters({"evaluation": {"n_bootstrap": 10}},
               r"evaluation\.n_bootstrap = 10 .*greater than or equal to 50", id="few-bootstraps"),
    parameters({"sampling": {"scheme": {"method": "stratified"}}},
               r"unknown sampling\.scheme method 'stratified'\. Choose one of: balanced",
               id="unknown-sampling-scheme"),
    parameters({"interpolation": {"method": "linear", "edges": "zero"}},
               r"option 'edges' = 'zero': Input should be 'hold' or 'nan'", id="interpolation-edges"),
    parameters({"postprocessing": {"method": "majority_filter"}},
               r"unknown postprocessing method 'majority_filter'\. Did you mean 'majority'\?",
               id="postprocessing-typo"),
    parameters({"reference": {"class_mapping": {"211": 300}}},
               r"reference\.class_mapping .*less than or equal to 255", id="mapping-id-above-255"),
    parameters({"aoi": "Vienna"}, r"aoi = 'Vienna' .*valid dictionary", id="aoi-a-name"),
    parameters({"aoi": ONE_PIXEL, "cloud_masking": {"method": "none"}},
               r"sampling\.erosion_radius = 1 .*larger than the AOI \(1 x 1 px\)",
               id="one-pixel-aoi"),
    parameters({"aoi": {**ONE_PIXEL, "crs": "EPSG:4326"}}, r"aoi.*(crs|EPSG:4326)",
               id="utm-coordinates-as-lon-lat"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "error", "message"), PARAMETER_CASES)
def test_bad_parameters_are_refused(make, error, message, tmp_path):
    check_refused(make, error, message, tmp_path)
