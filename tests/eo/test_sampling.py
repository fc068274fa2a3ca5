import numpy as np
import pandas as pd
import pytest
import xarray as xr
from pyproj import CRS

from perceptive.eo.cube import attach_grid
from perceptive.eo.grid import Grid
from perceptive.eo.sampling import (
    SamplingError,
    assign_blocks,
    feature_columns,
    sample_feature_names,
    sample_pixels,
)

FEATURES = ["B02", "NDVI", "NORM"]


#: Sampling settings for tests that are about something else.
SETTINGS = {"n_samples": 300, "block_size": 8, "validation_fraction": 0.2, "seed": 42}


def make_features(height=40, width=48, n_time=4, chunk=16, seed=0) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(n_time, len(FEATURES), height, width)).astype(np.float32)
    grid = Grid(CRS.from_epsg(32633), 500000.0, 5000000.0, 10.0, width, height)
    arr = xr.DataArray(
        values,
        dims=("time", "feature", "y", "x"),
        coords={
            "time": pd.date_range("2017-01-01", periods=n_time, freq="16D"),
            "feature": FEATURES,
        },
        name="features",
    )
    arr = attach_grid(arr, grid)
    return arr.chunk({"time": -1, "feature": -1, "y": chunk, "x": chunk})


def make_labels(height=40, width=48) -> np.ndarray:
    labels = np.zeros((height, width), dtype=np.uint8)
    labels[:, : width // 2] = 1
    labels[: height // 2, width // 2 :] = 2
    labels[height // 2 :, width // 2 :] = 3
    labels[:2] = 0  # an unlabelled strip
    return labels


def test_feature_columns_time_major():
    cols = feature_columns(make_features(n_time=2))
    assert cols == [
        "B02_2017-01-01",
        "NDVI_2017-01-01",
        "NORM_2017-01-01",
        "B02_2017-01-17",
        "NDVI_2017-01-17",
        "NORM_2017-01-17",
    ]


def test_assign_blocks():
    blocks = assign_blocks(5, 7, 3)
    assert blocks.shape == (5, 7)
    assert blocks[0, 0] == 0 and blocks[2, 2] == 0
    assert blocks[0, 3] == 1 and blocks[0, 6] == 2
    assert blocks[3, 0] == 3 and blocks[4, 6] == 5
    assert len(np.unique(blocks)) == 6


def test_sample_columns_dtypes_and_values():
    features = make_features()
    labels = make_labels()
    table = sample_pixels(
        features, labels, n_samples=300, block_size=8, seed=1, validation_fraction=0.2
    )
    cols = feature_columns(features)
    assert list(table.columns) == [*cols, "label", "x", "y", "row", "col", "block", "split"]
    assert sample_feature_names(table) == cols
    assert all(table[c].dtype == np.float32 for c in cols)
    assert table["label"].dtype == np.uint8
    assert table["block"].dtype == np.int32
    assert len(table) == 300
    assert (table["label"] != 0).all()
    np.testing.assert_array_equal(table["label"], labels[table["row"], table["col"]])
    eager = features.values
    for _, rec in table.sample(20, random_state=0).iterrows():
        r, c = int(rec["row"]), int(rec["col"])
        expected = eager[:, :, r, c].reshape(-1)  # (time, feature) C-order
        np.testing.assert_array_equal(rec[cols].to_numpy(dtype=np.float32), expected)
        assert rec["x"] == float(features["x"][c]) and rec["y"] == float(features["y"][r])


def test_deterministic_and_seed_dependent():
    features, labels = make_features(), make_labels()
    a = sample_pixels(
        features, labels, n_samples=200, block_size=8, seed=7, validation_fraction=0.2
    )
    b = sample_pixels(
        features, labels, n_samples=200, block_size=8, seed=7, validation_fraction=0.2
    )
    c = sample_pixels(
        features, labels, n_samples=200, block_size=8, seed=8, validation_fraction=0.2
    )
    pd.testing.assert_frame_equal(a, b)
    assert not a[["row", "col"]].equals(c[["row", "col"]])


def test_blocks_are_pure_and_fraction_roughly_right():
    features, labels = make_features(height=64, width=64), np.ones((64, 64), np.uint8)
    table = sample_pixels(
        features, labels, n_samples=10**6, block_size=8, seed=3, validation_fraction=0.2
    )
    assert len(table) == 64 * 64  # all labelled pixels, no cap reached
    splits_per_block = table.groupby("block")["split"].nunique()
    assert (splits_per_block == 1).all()
    share = (table["split"] == "validation").mean()
    assert 0.15 <= share <= 0.25
    expected_blocks = assign_blocks(64, 64, 8)[table["row"], table["col"]]
    np.testing.assert_array_equal(table["block"], expected_blocks)


def test_all_nan_pixels_dropped():
    features = make_features().load()
    features[:, :, 10, :] = np.nan  # row 10 never valid
    features[0, 0, 11, :] = np.nan  # row 11 partly valid: kept
    labels = make_labels()
    table = sample_pixels(
        features, labels, n_samples=10**6, block_size=8, validation_fraction=0.2, seed=42
    )
    assert 10 not in set(table["row"])
    assert 11 in set(table["row"])
    assert len(table) == (labels != 0).sum() - 48


def test_max_per_class_caps_classes():
    features, labels = make_features(), make_labels()
    table = sample_pixels(
        features,
        labels,
        n_samples=10**6,
        block_size=8,
        max_per_class=50,
        validation_fraction=0.2,
        seed=42,
    )
    assert table["label"].value_counts().to_dict() == {1: 50, 2: 50, 3: 50}


def test_errors():
    features = make_features()
    with pytest.raises(SamplingError, match="one 64x64 px block"):
        sample_pixels(
            features, make_labels(), block_size=64, n_samples=300, validation_fraction=0.2, seed=42
        )
    with pytest.raises(SamplingError, match="no labelled pixel"):
        sample_pixels(features, np.zeros((40, 48), np.uint8), **SETTINGS)
    with pytest.raises(SamplingError, match="shape"):
        sample_pixels(features, np.ones((4, 4), np.uint8), **SETTINGS)
