import pickle

import numpy as np
import pandas as pd
import pytest

from perceptive.eo.classifier import (
    DEFAULT_CLASSIFIER_SPEC,
    ClassifierError,
    LulcModel,
    build_estimator,
    train_model,
)

FAST_LGBM = {
    "class": "lightgbm.LGBMClassifier",
    "kwargs": {"n_estimators": 20, "num_leaves": 7, "n_jobs": 1, "verbose": -1, "random_state": 0},
}


def make_samples(n=600, seed=0) -> pd.DataFrame:
    """Three legend classes (2, 5, 8) separable on feature a; b is noise."""
    rng = np.random.default_rng(seed)
    ids = rng.choice(np.array([2, 5, 8], dtype=np.uint8), size=n)
    a = ids.astype(np.float32) + rng.normal(scale=0.3, size=n).astype(np.float32)
    b = rng.normal(size=n).astype(np.float32)
    return pd.DataFrame(
        {
            "a_2017-01-01": a,
            "b_2017-01-01": b,
            "label": ids,
            "x": 0.0,
            "y": 0.0,
            "row": 0,
            "col": 0,
            "block": np.arange(n) % 10,
            "split": np.where(np.arange(n) % 10 < 8, "train", "validation"),
        }
    )


def test_build_estimator_default_and_dotted_path():
    est = build_estimator(None)
    assert type(est).__name__ == "LGBMClassifier"
    assert est.get_params()["n_estimators"] == DEFAULT_CLASSIFIER_SPEC["kwargs"]["n_estimators"]
    rf = build_estimator(
        {"class": "sklearn.ensemble.RandomForestClassifier", "kwargs": {"n_estimators": 5}}
    )
    assert rf.n_estimators == 5


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"class": "nosuchpackage.Model"}, "Cannot import module 'nosuchpackage'"),
        ({"class": "sklearn.ensemble.NoSuchForest"}, "has no attribute 'NoSuchForest'"),
        ({"class": "sklearn.linear_model.LinearRegression"}, "not a scikit-learn classifier"),
        (
            {"class": "sklearn.ensemble.RandomForestClassifier", "kwargs": {"bogus_kw": 1}},
            "Cannot build sklearn.ensemble.RandomForestClassifier",
        ),
        ({"kwargs": {}}, "must be a mapping with 'class'"),
        ({"class": "LGBMClassifier"}, "not a dotted path"),
    ],
)
def test_build_estimator_errors(spec, message):
    with pytest.raises(ClassifierError, match=message):
        build_estimator(spec)


def test_train_maps_ids_and_back():
    samples = make_samples()
    model = train_model(samples, FAST_LGBM)
    assert isinstance(model, LulcModel)
    assert model.class_ids.dtype == np.uint8
    np.testing.assert_array_equal(model.class_ids, [2, 5, 8])
    assert model.feature_names == ["a_2017-01-01", "b_2017-01-01"]
    assert model.info["n_train"] == int((samples["split"] == "train").sum())
    val = samples[samples["split"] == "validation"]
    X = val[model.feature_names].to_numpy(np.float32)
    pred = model.predict(X)
    assert pred.dtype == np.uint8
    assert set(np.unique(pred)) <= {2, 5, 8}
    assert (pred == val["label"].to_numpy()).mean() > 0.95
    proba = model.predict_proba(X)
    assert proba.shape == (len(X), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(model.class_ids[proba.argmax(axis=1)], pred)


def test_model_is_picklable_and_nan_tolerant():
    model = train_model(make_samples(), FAST_LGBM)
    clone = pickle.loads(pickle.dumps(model))
    X = np.array([[2.0, 0.0], [8.0, np.nan], [5.0, 1.0]], dtype=np.float32)
    np.testing.assert_array_equal(clone.predict(X), model.predict(X))
    np.testing.assert_array_equal(model.predict(X), [2, 8, 5])


def test_random_forest_is_swappable():
    spec = {"class": "sklearn.ensemble.RandomForestClassifier", "kwargs": {"n_estimators": 10}}
    model = train_model(make_samples(), spec)
    assert model.predict(np.array([[8.1, 0.0]], np.float32)).tolist() == [8]


def test_train_errors():
    samples = make_samples()
    with pytest.raises(ClassifierError, match="single class"):
        train_model(samples.assign(label=np.uint8(5)), FAST_LGBM)
    bad = samples.copy()
    bad.loc[0, "label"] = 0
    bad.loc[0, "split"] = "train"
    with pytest.raises(ClassifierError, match="no data"):
        train_model(bad, FAST_LGBM)
    with pytest.raises(ClassifierError, match="No training samples"):
        train_model(samples.assign(split="validation"), FAST_LGBM)
    model = train_model(samples, FAST_LGBM)
    with pytest.raises(ClassifierError, match=r"expects \(n, 2\)"):
        model.predict(np.zeros((3, 5), np.float32))
