"""quickscorer: LightGBM's answers bit for bit, by bit vectors; hand-checked on one tree, then
against LightGBM on multiclass, binary, wide trees and missing values; refusals named."""

from __future__ import annotations

import lightgbm
import numpy as np
import pytest

from perceptive.eo.quickscorer import QuickScorer, Unsupported

RNG = np.random.default_rng(7)
X = RNG.normal(size=(4000, 12)).astype(np.float32)
Y = (X[:, 0] > 0).astype(int) + (X[:, 1] + X[:, 2] > 0.7) + (X[:, 3] > 1)  # 4 classes


def _with_missing(X: np.ndarray, fraction: float = 0.08) -> np.ndarray:
    X = X.copy()
    X[np.random.default_rng(3).random(X.shape) < fraction] = np.nan
    return X


def _fit(X, y, **params) -> lightgbm.LGBMClassifier:
    params = {"n_estimators": 25, "num_leaves": 15, "verbose": -1, "n_jobs": 1, **params}
    return lightgbm.LGBMClassifier(**params).fit(X, y)


def test_one_tree_scores_as_computed_by_hand(tmp_path):
    # one stump per class on feature 0 at threshold 0.5: x <= 0.5 is class 0's leaf
    X1 = np.array([[0.0], [1.0]] * 50, dtype=np.float32)
    y1 = np.array([0, 1] * 50)
    booster = _fit(X1, y1, n_estimators=1, num_leaves=2, min_child_samples=1).booster_
    tree = booster.dump_model()["tree_info"][0]["tree_structure"]
    left, right = tree["left_child"]["leaf_value"], tree["right_child"]["leaf_value"]
    threshold = tree["threshold"]
    assert 0.0 < threshold < 1.0
    below = np.nextafter(np.float32(threshold), np.float32(-np.inf))
    pixels = np.array([[below], [np.float32(threshold) + np.float32(1e-3)], [np.nan]], np.float32)
    raw = QuickScorer(booster).raw_score(pixels)
    # binary: one output; NaN counts as 0.0 (missing type None), which is <= the threshold
    np.testing.assert_array_equal(raw[:, 0], [left, right, left])
    p = 1 / (1 + np.exp(-np.array([left, right])))
    np.testing.assert_allclose(QuickScorer(booster)(pixels[:2])[:, 1], p, rtol=1e-6)


def test_a_pixel_on_the_threshold_goes_left_as_in_lightgbm():
    model = _fit(X, Y)
    scorer = QuickScorer(model.booster_)
    node = model.booster_.dump_model()["tree_info"][0]["tree_structure"]
    at = np.repeat(X[:1], 3, axis=0)
    f = node["split_feature"]
    t = np.float32(node["threshold"])  # the float32 nearest LightGBM's double threshold
    at[:, f] = [t, np.nextafter(t, np.float32(np.inf)), np.nextafter(t, np.float32(-np.inf))]
    expected = model.booster_.predict(at, raw_score=True)
    np.testing.assert_array_equal(scorer.raw_score(at), expected)


@pytest.mark.parametrize(
    ("name", "train", "params"),
    [
        ("multiclass, 15 leaves", X, {}),
        ("multiclass, 31 leaves, missing values in training", _with_missing(X), {"num_leaves": 31}),
        ("multiclass, 63 leaves (64-bit vectors)", X, {"num_leaves": 63, "n_estimators": 10}),
        ("binary", X, {"binary": True}),
    ],
)
def test_probabilities_equal_lightgbm_bit_for_bit(name, train, params):
    y = (Y > 1).astype(int) if params.pop("binary", False) else Y
    model = _fit(train, y, **params)
    scorer = QuickScorer(model.booster_)
    pixels = _with_missing(X[:1500], 0.03)  # missing values at prediction too
    raw = model.booster_.predict(pixels, raw_score=True).reshape(len(pixels), -1)
    np.testing.assert_array_equal(scorer.raw_score(pixels), raw)
    np.testing.assert_array_equal(scorer(pixels), model.predict_proba(pixels).astype(np.float32))


def test_empty_and_odd_sized_inputs():
    model = _fit(X, Y)
    scorer = QuickScorer(model.booster_)
    assert scorer(X[:0]).shape == (0, 4)
    for n in (1, 127, 129, 300):  # around the block size
        np.testing.assert_array_equal(scorer(X[:n]), model.predict_proba(X[:n]).astype(np.float32))
    with pytest.raises(ValueError, match=r"expected \(n, 12\) pixels"):
        scorer(X[:, :5])


def test_it_pickles_and_answers_the_same():
    import pickle

    scorer = QuickScorer(_fit(X, Y).booster_)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(scorer))(X[:50]), scorer(X[:50]))


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        (lambda: _fit(X, Y, num_leaves=100, n_estimators=3), "more than 64 leaves"),
        (
            lambda: _fit(X, Y, boosting_type="rf", subsample=0.5, subsample_freq=1, n_estimators=3),
            "random forest",
        ),
        (
            lambda: lightgbm.train(
                {"objective": "regression", "verbose": -1}, lightgbm.Dataset(X, Y), 3
            ),
            "objective 'regression'",
        ),
    ],
)
def test_models_it_cannot_score_are_refused_by_name(model, reason):
    booster = model()
    booster = getattr(booster, "booster_", booster)
    with pytest.raises(Unsupported, match=reason):
        QuickScorer(booster)


def test_categorical_splits_are_refused():
    Xc = X.copy()
    Xc[:, 0] = RNG.integers(0, 6, len(X))
    y = (Xc[:, 0] % 2).astype(int)
    booster = lightgbm.train(
        {"objective": "binary", "verbose": -1, "min_data_per_group": 5},
        lightgbm.Dataset(Xc, y, categorical_feature=[0]),
        3,
    )
    with pytest.raises(Unsupported, match="categorical split"):
        QuickScorer(booster)
