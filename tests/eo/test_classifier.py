import pickle

import numpy as np
import pandas as pd
import pytest

from perceptive.eo.classifier import ClassifierError, LulcModel, build_estimator, train_model
from perceptive.eo.legend import DEFAULT_LEGEND, legend_from_config

FAST_LGBM = {
    "method": "lightgbm",
    "n_estimators": 20,
    "num_leaves": 7,
    "n_jobs": 1,
    "verbose": -1,
    "random_state": 0,
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


def test_build_estimator_by_name_and_by_dotted_path():
    lgbm = build_estimator({"method": "lightgbm", "n_estimators": 7})
    assert type(lgbm).__name__ == "LGBMClassifier" and lgbm.get_params()["n_estimators"] == 7
    rf = build_estimator({"method": "sklearn.ensemble.RandomForestClassifier", "n_estimators": 5})
    assert type(rf).__name__ == "RandomForestClassifier" and rf.n_estimators == 5
    # LightGBM's own parameters (passed on through **kwargs) are accepted, aliases included
    assert (
        build_estimator({"method": "lightgbm", "min_data_in_leaf": 5}).get_params()[
            "min_data_in_leaf"
        ]
        == 5
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"method": "nosuchpackage.Model"}, "cannot import classifier 'nosuchpackage.Model'"),
        ({"method": "sklearn.ensemble.NoSuchForest"}, "cannot import .*NoSuchForest"),
        ({"method": "sklearn.linear_model.LinearRegression"}, "not a scikit-learn classifier"),
        ({"method": "random_forest", "bogus_kw": 1}, r"no option\(s\) \['bogus_kw'\]"),
        ({"method": "lightgbm", "num_leafs": 3}, r"no option\(s\) \['num_leafs'\]"),
        ({"method": "random_forest", "n_estimators": -1}, "n_estimators.*must be an int"),
        ({"n_estimators": 3}, "must be a mapping with a 'method'"),
        ({"method": "LGBMClassifier"}, "unknown classifier 'LGBMClassifier'.*dotted class path"),
    ],
)
def test_build_estimator_errors(spec, message):
    with pytest.raises(ClassifierError, match=message):
        build_estimator(spec)


def test_train_maps_ids_and_back():
    samples = make_samples()
    model = train_model(samples, FAST_LGBM)
    assert isinstance(model, LulcModel)
    assert model.legend == DEFAULT_LEGEND  # the samples carry none
    assert model.info["params"]["n_estimators"] == 20  # the estimator's own get_params
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
    model = train_model(make_samples(), {"method": "random_forest", "n_estimators": 10})
    assert model.predict(np.array([[8.1, 0.0]], np.float32)).tolist() == [8]


def test_model_takes_the_legend_its_samples_carry():
    legend = [{"id": 2, "name": "pine", "colour": "#00ff00"}, {"id": 5, "name": "lake",
              "colour": "#0000ff"}, {"id": 8, "name": "town", "colour": "#ff0000"}]  # fmt: skip
    samples = make_samples()
    samples.attrs["legend"] = legend
    model = train_model(samples, FAST_LGBM)
    assert model.legend == legend_from_config(legend)


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
