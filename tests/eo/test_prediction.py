import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.figure import Figure
from pyproj import CRS

from perceptive.eo.accuracy import area_estimates, classification_report
from perceptive.eo.classifier import train_model
from perceptive.eo.cube import attach_grid
from perceptive.eo.grid import Grid, grid_of
from perceptive.eo.legend import DEFAULT_LEGEND
from perceptive.eo.plots import plot_confusion_matrix, plot_lulc_map
from perceptive.eo.prediction import (
    PredictionError,
    class_area_estimates,
    class_areas,
    predict_map,
)
from perceptive.eo.sampling import feature_columns, sample_pixels

FAST_LGBM = {
    "method": "lightgbm",
    "n_estimators": 30,
    "num_leaves": 7,
    "n_jobs": 1,
    "verbose": -1,
    "random_state": 0,
}
H, W = 32, 40
GRID = Grid(CRS.from_epsg(32633), 500000.0, 5000000.0, 10.0, W, H)


def truth_pattern() -> np.ndarray:
    """Quadrants of classes 1, 2, 5, 8."""
    truth = np.empty((H, W), np.uint8)
    truth[: H // 2, : W // 2] = 1
    truth[: H // 2, W // 2 :] = 2
    truth[H // 2 :, : W // 2] = 5
    truth[H // 2 :, W // 2 :] = 8
    return truth


def make_cube(truth: np.ndarray, n_time=3, seed=0) -> xr.DataArray:
    """Each class has its own signature on a *single* (time, feature) channel, so the model
    only reproduces the map if prediction flattens columns in the training order."""
    rng = np.random.default_rng(seed)
    names = ["B04", "B08", "NDVI"]
    values = rng.normal(scale=0.05, size=(n_time, len(names), H, W)).astype(np.float32)
    channel = {1: (0, 1), 2: (1, 0), 5: (2, 2), 8: (n_time - 1, 1)}
    for class_id, (t, f) in channel.items():
        values[t, f][truth == class_id] += 3.0
    values[:, :, 0, :5] = np.nan  # never-valid pixels
    values[1, :, 5, 5] = np.nan  # partly valid pixel
    arr = xr.DataArray(
        values,
        dims=("time", "feature", "y", "x"),
        coords={"time": pd.date_range("2017-01-01", periods=n_time, freq="16D"), "feature": names},
    )
    return attach_grid(arr, GRID).chunk({"time": -1, "feature": -1, "y": 16, "x": 16})


@pytest.fixture(scope="module")
def trained():
    truth = truth_pattern()
    cube = make_cube(truth)
    samples = sample_pixels(
        cube, truth, n_samples=600, block_size=8, validation_fraction=0.2, seed=0
    )
    return truth, cube, samples, train_model(samples, FAST_LGBM)


def test_model_reproduces_pattern_and_nodata(trained):
    truth, cube, _, model = trained
    ds = predict_map(cube, model)
    assert ds["lulc"].dtype == np.uint8 and ds["confidence"].dtype == np.uint8
    assert ds["lulc"].dims == ("y", "x")
    lulc, conf = ds["lulc"].values, ds["confidence"].values
    assert (lulc[0, :5] == 0).all() and (conf[0, :5] == 0).all()
    expected = truth.copy()
    expected[0, :5] = 0
    assert (lulc == expected).mean() > 0.99
    valid = expected != 0
    assert conf[valid].min() >= 1 and conf[valid].max() <= 100
    assert lulc[5, 5] != 0  # partly valid pixels are classified


def test_keeps_grid_and_crs(trained):
    _, cube, _, model = trained
    ds = predict_map(cube, model)
    np.testing.assert_array_equal(ds["x"], cube["x"])
    np.testing.assert_array_equal(ds["y"], cube["y"])
    assert ds.rio.crs == cube.rio.crs
    assert grid_of(ds) == GRID
    assert ds["lulc"].rio.nodata == 0


def test_lazy_equals_eager(trained):
    _, cube, _, model = trained
    lazy = predict_map(cube, model)
    assert lazy["lulc"].chunks is not None  # nothing computed yet
    eager = predict_map(cube.compute(), model)
    assert eager["lulc"].chunks is None
    xr.testing.assert_identical(lazy.compute(), eager)


def test_column_order_must_match(trained):
    _, cube, samples, model = trained
    assert model.feature_names == feature_columns(cube)
    reordered = cube.isel(feature=[2, 0, 1])
    with pytest.raises(PredictionError, match="different order"):
        predict_map(reordered, model)
    other_dates = cube.assign_coords(time=cube["time"] + np.timedelta64(1, "D"))
    with pytest.raises(PredictionError, match="another date grid"):
        predict_map(other_dates, model)
    # a transposed input is fine: predict_map reorders the dims itself
    ds = predict_map(cube.transpose("y", "x", "feature", "time"), model)
    assert ds["lulc"].shape == (H, W)


def test_class_areas(trained):
    truth, cube, _, model = trained
    lulc = np.zeros((4, 5), np.uint8)
    lulc[:, :2] = 2
    lulc[0, 2:] = 5
    table = class_areas(lulc, pixel_area_m2=100.0)
    assert list(table.columns) == [
        "class_id", "name", "pixels", "area_ha", "share", "share_of_aoi"
    ]  # fmt: skip
    assert len(table) == len(DEFAULT_LEGEND)
    forest = table.set_index("class_id").loc[2]
    assert forest["pixels"] == 8 and forest["area_ha"] == pytest.approx(0.08)
    assert forest["share"] == pytest.approx(8 / 11)
    assert forest["share_of_aoi"] == pytest.approx(8 / 20)
    assert np.isnan(table.set_index("class_id").loc[0, "share"])
    # lazy DataArray, pixel area from the coordinates
    lazy = predict_map(cube, model)["lulc"]
    from_lazy = class_areas(lazy)
    eager_counts = np.bincount(lazy.values.ravel(), minlength=11)
    np.testing.assert_array_equal(from_lazy["pixels"], eager_counts[from_lazy["class_id"]])
    assert from_lazy["area_ha"].sum() == pytest.approx(H * W * 100 / 10_000)


#: Validation counts as classification_report gives them: rows = reference, columns = map.
REFERENCE_BY_MAP = [[40, 3, 2], [5, 25, 1], [1, 2, 15]]  # classes 1, 2, 3


def _hand_map(*classes_and_pixels) -> np.ndarray:
    """A 10 x 10 map (10 m pixels, so 100 px = 1 ha) filled with (class, pixels) in order."""
    values = np.concatenate([np.full(n, c, np.uint8) for c, n in classes_and_pixels])
    return values.reshape(10, 10)


def test_class_area_estimates_are_olofssons_on_the_map_strata():
    areas = class_areas(_hand_map((1, 50), (2, 30), (3, 20)), pixel_area_m2=100.0)
    matrix = {"labels": [1, 2, 3], "matrix": REFERENCE_BY_MAP}
    table = class_area_estimates(areas, matrix).set_index("class_id")
    assert list(table.columns[:5]) == list(areas.columns[1:])  # the pixel counts stay
    # class 1 worked out by hand: map strata of 0.5, 0.3, 0.2 ha (columns of the matrix)
    expected = 0.5 * 40 / 46 + 0.3 * 3 / 30 + 0.2 * 2 / 18
    assert table.loc[1, "estimated_area_ha"] == pytest.approx(expected)
    assert table.loc[1, "users_accuracy"] == pytest.approx(40 / 46)
    assert table.loc[1, "producers_accuracy"] == pytest.approx(0.5 * 40 / 46 / expected)
    direct = area_estimates(np.array(REFERENCE_BY_MAP).T, [0.5, 0.3, 0.2], [1, 2, 3]).table
    pairs = {"area": "estimated_area_ha", "area_se": "estimated_area_se_ha",
             "area_ci_low": "estimated_area_ci95_low_ha",
             "area_ci_high": "estimated_area_ci95_high_ha", "users_accuracy": "users_accuracy",
             "users_accuracy_se": "users_accuracy_se", "producers_accuracy": "producers_accuracy",
             "producers_accuracy_se": "producers_accuracy_se"}  # fmt: skip
    for theirs, ours in pairs.items():
        np.testing.assert_allclose(table.loc[[1, 2, 3], ours], direct[theirs], err_msg=ours)
    assert table.loc[1, "estimate_note"].startswith("approximate: the validation pixels are")
    assert table.loc[[0, 4, 10], "estimated_area_ha"].isna().all()  # nodata, not assessed


def test_class_area_estimates_of_a_mapped_class_without_validation_pixels_are_nan(caplog):
    # class 4 is mapped and is a reference class once, but no validation pixel is mapped 4;
    # class 5 is mapped and absent from the matrix altogether
    areas = class_areas(_hand_map((1, 40), (2, 30), (3, 20), (4, 6), (5, 4)), 100.0)
    matrix = {"labels": [1, 2, 3, 4], "matrix": [[*row, 0] for row in REFERENCE_BY_MAP]
              + [[2, 0, 0, 0]]}  # fmt: skip
    with caplog.at_level("WARNING"):
        table = class_area_estimates(areas, matrix).set_index("class_id")
    assert "Mapped class(es) [4, 5] have no validation pixel" in caplog.text
    assert table.loc[[4, 5]].filter(like="estimated_area").isna().all().all()
    assert table.loc[[4, 5], "users_accuracy"].isna().all()
    assert (table.loc[[4, 5], "estimate_note"] == "no validation pixel in this map class").all()
    assert table.loc[[4, 5], "area_ha"].tolist() == [0.06, 0.04]  # still listed
    # the others: estimated over the strata with validation pixels (classes 1-3, 0.9 ha)
    counts = np.array(matrix["matrix"]).T
    direct = area_estimates(counts, [0.4, 0.3, 0.2, 0.0], [1, 2, 3, 4]).table
    np.testing.assert_allclose(table.loc[[1, 2, 3], "estimated_area_ha"], direct["area"][:3])
    np.testing.assert_allclose(table.loc[[1, 2, 3], "users_accuracy_se"],
                               direct["users_accuracy_se"][:3])  # fmt: skip
    assert table.loc[[1, 2, 3], "estimated_area_ha"].sum() < 0.9  # class 4's share of them
    assert np.isfinite(table.loc[[1, 2, 3], "producers_accuracy_se"]).all()


def test_plots(trained):
    _, cube, samples, model = trained
    val = samples[samples["split"] == "validation"]
    report = classification_report(
        val["label"], model.predict(val[model.feature_names].to_numpy(np.float32))
    )
    fig = plot_confusion_matrix(report)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2  # matrix + colour bar
    n = len(report["confusion_matrix"]["labels"])
    assert len(fig.axes[0].get_xticklabels()) == n
    lulc = predict_map(cube, model)["lulc"]
    fig = plot_lulc_map(lulc, DEFAULT_LEGEND)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    legend_box = fig.axes[0].get_legend()
    # classes 1, 2, 5, 8 and no data (present in the corner)
    assert [t.get_text() for t in legend_box.get_texts()] == [
        "no data", "cultivated land", "forest", "water", "artificial surface"
    ]  # fmt: skip
    assert len(legend_box.get_patches()) == 5
