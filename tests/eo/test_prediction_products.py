"""Prediction at scale: chunked maps equal whole ones, the compiled model answers exactly as
LightGBM, and the saved maps are Cloud-Optimised GeoTIFFs that GIS tools read fully."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import rasterio
import xarray as xr
from kedro.io.core import Version
from pyproj import CRS
from rio_cogeo.cogeo import cog_validate

from perceptive.datasets import GeoTiffDataset
from perceptive.eo.classifier import train_model
from perceptive.eo.compiled import compile_model, exact_compiled_predict_proba
from perceptive.eo.cube import attach_grid
from perceptive.eo.grid import Grid
from perceptive.eo.legend import map_attrs
from perceptive.eo.prediction import PROBABILITY_NODATA, central_pixels, predict_map
from tests.eo.test_prediction import FAST_LGBM, trained  # noqa: F401  (fixture)


def _all_pixels(cube: xr.DataArray) -> np.ndarray:
    values = np.asarray(cube.transpose("time", "feature", "y", "x").values)
    return values.reshape(values.shape[0] * values.shape[1], -1).T


@pytest.mark.parametrize("chunks", [{"y": 7, "x": 9}, {"y": -1, "x": -1}])
def test_chunked_prediction_equals_whole(trained, chunks):  # noqa: F811
    _, cube, _, model = trained
    whole = predict_map(cube.compute(), model, probabilities=True)
    chunked = predict_map(cube.chunk(chunks), model, probabilities=True)
    assert chunked["lulc"].chunks is not None
    xr.testing.assert_identical(chunked.compute(), whole)
    # the probabilities are the model's own, in percent, nodata where nothing is valid
    assert np.isnan(_all_pixels(cube)[4]).all()  # pixel (0, 4): never valid
    assert (whole["probability"].values[:, 0, 4] == PROBABILITY_NODATA).all()
    assert whole["probability"].sizes["class"] == len(model.class_ids)
    expected = np.rint(model.predict_proba(_all_pixels(cube)[[40 * 10 + 20]]) * 100)[0]
    np.testing.assert_array_equal(whole["probability"].values[:, 10, 20], expected)


def test_tl2cgen_model_predicts_exactly_as_lightgbm(trained, tmp_path):  # noqa: F811
    _, cube, _, model = trained
    fast = exact_compiled_predict_proba(model, central_pixels(cube, side=16), tmp_path, "tl2cgen")
    assert fast is not None
    X = _all_pixels(cube)
    X = X[~np.all(np.isnan(X), axis=1)]
    np.testing.assert_array_equal(fast(X), model.predict_proba(X))
    compiled = predict_map(cube, model, predict_proba=fast).compute()
    xr.testing.assert_identical(compiled, predict_map(cube, model).compute())
    # compiled once: the cached library is reused, not rebuilt
    (library,) = tmp_path.glob("*/model.so")
    stamp = library.stat().st_mtime_ns
    assert compile_model(model, tmp_path) == library
    assert library.stat().st_mtime_ns == stamp


def test_quickscorer_model_predicts_exactly_as_lightgbm(trained, tmp_path):  # noqa: F811
    _, cube, _, model = trained
    fast = exact_compiled_predict_proba(model, central_pixels(cube, side=16), tmp_path)
    assert type(fast).__name__ == "QuickScorer"
    assert not list(tmp_path.iterdir())  # nothing to cache: built in a second
    X = _all_pixels(cube)
    X = X[~np.all(np.isnan(X), axis=1)]
    assert np.isnan(X).any()  # partly valid pixels too: missing values go LightGBM's way
    np.testing.assert_array_equal(fast(X), model.predict_proba(X))
    chunked = predict_map(cube.chunk({"y": 7, "x": 9}), model, predict_proba=fast).compute()
    xr.testing.assert_identical(chunked, predict_map(cube, model).compute())


@pytest.mark.parametrize("engine", ["quickscorer", "tl2cgen"])
def test_a_non_lightgbm_model_falls_back(trained, tmp_path, engine):  # noqa: F811
    _, cube, samples, _ = trained
    forest = train_model(samples, {"method": "random_forest", "n_estimators": 5})
    assert exact_compiled_predict_proba(forest, central_pixels(cube), tmp_path, engine) is None
    assert not list(tmp_path.iterdir())


def test_a_model_that_cannot_be_compiled_falls_back_with_a_warning(
    trained,  # noqa: F811
    tmp_path,
    monkeypatch,
    caplog,
):
    _, cube, _, model = trained
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    with caplog.at_level("WARNING", logger="perceptive.eo.compiled"):
        fast = exact_compiled_predict_proba(
            model, central_pixels(cube), tmp_path / "cache", "tl2cgen"
        )
    assert fast is None
    assert "Could not compile the model" in caplog.text and "no-such-compiler" in caplog.text
    assert not list((tmp_path / "cache").rglob("*.so"))


H = W = 1100  # large enough for overviews (512 px blocks)
GRID = Grid(CRS.from_epsg(32633), 500000.0, 5000000.0, 10.0, W, H)


def _class_map() -> xr.DataArray:
    values = (np.add.outer(np.arange(H) // 100, np.arange(W) // 100) % 10 + 1).astype(np.uint8)
    values[:50, :50] = 0
    lulc = xr.DataArray(values, dims=("y", "x"), attrs=map_attrs())
    lulc.attrs.update(long_name="land cover class id", provenance=json.dumps({"run_id": "r1"}))
    return attach_grid(lulc, GRID).chunk({"y": 300, "x": 256})


def test_lulc_map_is_a_valid_cog_with_legend_and_provenance(tmp_path):
    lulc = _class_map()
    path = tmp_path / "lulc_map.tif"
    version = Version(None, "2017-01-01T00.00.00.000Z")
    GeoTiffDataset(
        filepath=str(path), version=version, save_args={"overview_resampling": "mode"}
    ).save(lulc)
    saved = path / version.save / "lulc_map.tif"
    is_valid, errors, _ = cog_validate(str(saved))
    assert is_valid, errors
    with rasterio.open(saved) as src:
        assert src.crs == GRID.crs
        assert src.transform == GRID.transform
        assert src.nodata == 0
        assert src.dtypes[0] == "uint8"
        assert src.colormap(1)[5][:3] == (6, 154, 243)  # water, from the legend
        assert src.colormap(1)[2][:3] == (5, 73, 7)  # forest
        assert src.overviews(1) == [2, 4]
        assert src.descriptions[0] == "land cover class id"
        assert json.loads(src.tags()["PROVENANCE"]) == {"run_id": "r1"}
        assert src.tags()["CLASS_2"] == "forest"
        np.testing.assert_array_equal(src.read(1), lulc.values)
        # mode overviews keep class ids (an average would invent classes between them)
        assert set(np.unique(src.read(1, out_shape=(H // 4, W // 4)))) <= set(range(11))
    # class names where GDAL (and so QGIS) reads band category names: the PAM sidecar
    aux = ET.parse(saved.with_name("lulc_map.tif.aux.xml"))
    names = [c.text or "" for c in aux.iter("Category")]
    assert names[0] == "no data" and names[2] == "forest" and names[10] == "snow and ice"
    assert not [p for p in saved.parent.iterdir() if ".partial-" in p.name]
    back = GeoTiffDataset(filepath=str(path), version=Version(None, None)).load()
    np.testing.assert_array_equal(back.values, lulc.values)


def test_confidence_map_keeps_nodata_and_description(tmp_path):
    confidence = xr.DataArray(
        np.tile(np.arange(100, dtype=np.uint8), (30, 4))[:, : W // 10],
        dims=("y", "x"),
        attrs={"nodata": 0, "long_name": "probability of the predicted class (%)"},
    )
    grid = Grid(CRS.from_epsg(32633), 500000.0, 5000000.0, 10.0, W // 10, 30)
    path = tmp_path / "confidence.tif"
    GeoTiffDataset(filepath=str(path)).save(attach_grid(confidence, grid))
    assert cog_validate(str(path))[0]
    with rasterio.open(path) as src:
        assert src.nodata == 0 and src.dtypes[0] == "uint8"
        assert src.descriptions[0] == "probability of the predicted class (%)"
        np.testing.assert_array_equal(src.read(1), confidence.values)


def test_map_preview_has_a_scale_bar(trained):  # noqa: F811
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    from perceptive.eo.plots import plot_lulc_map

    _, cube, _, model = trained
    fig = plot_lulc_map(predict_map(cube, model)["lulc"], model.legend)
    (bar,) = [a for a in fig.axes[0].artists if isinstance(a, AnchoredSizeBar)]
    # 40 px of 10 m = 400 m wide: the round length nearest below a fifth (80 m) is 50 m
    assert bar.txt_label.get_text() == "50 m"
