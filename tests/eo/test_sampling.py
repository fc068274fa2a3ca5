import logging

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from pyproj import CRS
from scipy.spatial import cKDTree

from perceptive.eo.cube import attach_grid
from perceptive.eo.grid import Grid
from perceptive.eo.sampling import (
    METHODS,
    SamplingError,
    assign_blocks,
    check_user_split,
    feature_columns,
    sample_feature_names,
    sample_pixels,
    samples_summary,
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
    meta = ["label", "x", "y", "row", "col", "block", "fold", "split", "edge", "parcel"]
    assert list(table.columns) == [*cols, *meta]
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
        scheme={"method": "proportional", "max_per_class": 50},
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


def parcels_of(labels: np.ndarray, size: int = 6) -> np.ndarray:
    """Parcels of ``size`` x ``size`` px tiling the raster (ids from 1), none where unlabelled."""
    rows, cols = np.indices(labels.shape)
    ids = (rows // size) * (-(-labels.shape[1] // size)) + cols // size + 1
    return np.where(labels > 0, ids, 0).astype(np.int32)


def test_no_training_pixel_within_the_erosion_radius_of_a_held_out_pixel():
    features, labels = make_features(height=64, width=64), make_labels(64, 64)
    for radius in (1, 2):
        table = sample_pixels(
            features, labels, n_samples=10**6, block_size=8, validation_fraction=0.3,
            test_fraction=0.2, seed=5, erosion_radius=radius,
        )  # fmt: skip
        train = table[table["split"] == "train"][["row", "col"]].to_numpy()
        held = table[table["split"] != "train"][["row", "col"]].to_numpy()
        assert len(train) and len(held)
        distance, _ = cKDTree(train).query(held)
        assert distance.min() > radius
        # held-out blocks keep their edge pixels (flagged), training has none
        assert table.loc[table["split"] == "train", "edge"].sum() == 0
        assert table.loc[table["split"] != "train", "edge"].any()


def test_no_parcel_on_both_sides_and_a_parcel_goes_to_the_block_holding_most_of_it():
    features, labels = make_features(height=64, width=64), np.ones((64, 64), np.uint8)
    parcels = parcels_of(labels, size=6)  # 6 px parcels across 8 px blocks: many cross edges
    table = sample_pixels(
        features, labels, n_samples=10**6, block_size=8, validation_fraction=0.3, seed=1,
        parcels=parcels,
    )  # fmt: skip
    assert table.groupby("parcel")["split"].nunique().max() == 1
    assert table.groupby("parcel")["block"].nunique().max() == 1
    # parcel of rows 6-11, cols 6-11: 4 px in block 0, 8 in block 1, 8 in block 8, 16 in block 9
    parcel = parcels[6, 6]
    assert set(table.loc[table["parcel"] == parcel, "block"]) == {9}


def test_same_seed_same_samples_with_every_option():
    features, labels = make_features(), make_labels()
    options = dict(
        n_samples=150, block_size=8, validation_fraction=0.2, test_fraction=0.1,
        erosion_radius=1, parcels=parcels_of(labels), n_folds=3,
        scheme={"method": "balanced", "min_per_class": 20},
    )  # fmt: skip
    a = sample_pixels(features, labels, seed=9, **options)
    b = sample_pixels(features, labels, seed=9, **options)
    c = sample_pixels(features, labels, seed=10, **options)
    pd.testing.assert_frame_equal(a, b)
    assert not a[["row", "col"]].equals(c[["row", "col"]])


def test_balanced_scheme_draws_equal_counts_with_a_minimum():
    counts = pd.Series({1: 500, 2: 50, 3: 10})  # candidate pixels per class
    rng = np.random.default_rng(0)
    wanted = METHODS.run({"method": "balanced", "min_per_class": 40}, counts, 90, rng)
    assert wanted.to_dict() == {1: 40, 2: 40, 3: 10}
    wanted = METHODS.run({"method": "balanced"}, counts, 300, rng)  # 100 per class
    assert wanted.to_dict() == {1: 100, 2: 50, 3: 10}


def test_proportional_scheme_numbers_are_those_of_a_uniform_draw():
    counts = pd.Series({1: 600, 2: 300, 3: 100})
    rng = np.random.default_rng(0)
    draws = pd.DataFrame(
        [METHODS.run({"method": "proportional"}, counts, 100, rng) for _ in range(400)]
    )
    assert (draws.sum(axis=1) == 100).all()
    # a uniform draw of 100 of 1000 pixels: 60 / 30 / 10 expected per class
    np.testing.assert_allclose(draws.mean().to_numpy(), [60, 30, 10], atol=1.0)
    capped = METHODS.run({"method": "proportional", "max_per_class": 50}, counts, 10**6, rng)
    assert capped.to_dict() == {1: 50, 2: 50, 3: 50}
    everything = METHODS.run({"method": "proportional"}, counts, 10**6, rng)
    assert everything.to_dict() == counts.to_dict()


def test_a_class_that_erosion_removes_gives_a_warning_with_counts(caplog):
    features, labels = make_features(), make_labels()
    labels[10:12, 30:32] = 4  # a 2 x 2 px class: radius 1 erodes all of it
    with caplog.at_level(logging.WARNING, logger="perceptive.eo.sampling"):
        table = sample_pixels(
            features, labels, erosion_radius=1, **{**SETTINGS, "n_samples": 10**6}
        )
    assert "removes every training pixel of class(es) {4: 4}" in caplog.text
    assert 4 not in set(table.loc[table["split"] == "train", "label"])
    assert len(table) > 0  # the run goes on


def test_samples_summary_counts_per_class_split_and_fold():
    features, labels = make_features(), make_labels()
    table = sample_pixels(features, labels, **SETTINGS)
    summary = samples_summary(table, {1: "one", 2: "two", 3: "three"})
    assert summary["count"].sum() == len(table)
    rows = summary[(summary["class_id"] == 2) & (summary["split"] == "train")]
    expected = int(((table["label"] == 2) & (table["split"] == "train")).sum())
    assert rows["count"].sum() == expected
    assert set(summary["name"]) == {"one", "two", "three"}


def test_a_user_split_gives_each_pixel_the_split_of_its_parcel():
    labels = make_labels()  # 40 x 48
    parcels = np.zeros(labels.shape, np.int32)  # four quadrants: parcels 1 2 / 3 4
    parcels[:20, :24], parcels[:20, 24:], parcels[20:, :24], parcels[20:, 24:] = 1, 2, 3, 4
    parcels[labels == 0] = 0
    splits = np.array(["train", "validation", "train", "test"], dtype=object)
    table = sample_pixels(
        make_features(), labels, **{**SETTINGS, "n_samples": 2000}, erosion_radius=1,
        parcels=parcels, parcel_splits=splits,
    )  # fmt: skip
    top, right = table["row"] < 20, table["col"] >= 24
    expected = np.select([top & right, ~top & right], ["validation", "test"], "train")
    np.testing.assert_array_equal(table["split"].to_numpy(), expected)
    assert ((table["fold"] == -1) == (table["split"] == "test")).all()
    train = table[table["split"] == "train"]
    assert train["col"].max() <= 22  # erosion radius 1 keeps training off column 23


def test_a_user_split_with_other_values_lists_them_with_counts():
    reference = pd.DataFrame({"set": ["train", "Test ", "calibration", None, "calibration"]})
    assert check_user_split(reference.iloc[:2], "set").tolist() == ["train", "test"]
    with pytest.raises(SamplingError, match=r"'calibration': 2, '<empty>': 1\. Fix"):
        check_user_split(reference, "set")
    with pytest.raises(SamplingError, match=r"no column 'split'.*\['set'\]"):
        check_user_split(reference, "split")


def test_lazy_labels_chunk_by_chunk_give_the_same_table_whatever_the_scheduler():
    import dask
    import dask.array as da

    features, labels = make_features(height=64, width=64), make_labels(64, 64)
    parcels = parcels_of(labels)
    options = dict(
        n_samples=500, block_size=8, validation_fraction=0.3, test_fraction=0.1, seed=4,
        erosion_radius=1, parcels=da.from_array(parcels, chunks=16),
    )  # fmt: skip
    with dask.config.set(scheduler="synchronous"):
        a = sample_pixels(features, da.from_array(labels, chunks=16), **options)
    with dask.config.set(scheduler="threads"):
        b = sample_pixels(features, labels, **{**options, "parcels": parcels})
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 500


def test_when_every_candidate_is_drawn_the_chunks_do_not_matter():
    labels = make_labels(64, 64)
    options = dict(
        n_samples=10**6, block_size=8, validation_fraction=0.3, seed=2, erosion_radius=2,
        parcels=parcels_of(labels),
    )  # fmt: skip
    tables = [sample_pixels(make_features(64, 64, chunk=c), labels, **options) for c in (16, 40)]
    pd.testing.assert_frame_equal(*tables)
    # every labelled pixel is a candidate in held-out blocks; training keeps its core pixels
    # farther than 2 px from any held-out pixel
    held = tables[0][tables[0]["split"] != "train"]
    assert held["edge"].any()
    assert not tables[0].loc[tables[0]["split"] == "train", "edge"].any()
