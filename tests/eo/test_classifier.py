import pickle

import numpy as np
import pandas as pd
import pytest
from lightgbm import LGBMClassifier, early_stopping

from perceptive.eo.classifier import (
    ClassifierError,
    EarlyStopping,
    LulcModel,
    build_estimator,
    stopping_blocks,
    train_model,
)
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


def test_stopping_blocks_are_whole_seeded_and_leave_every_class_to_train_on():
    # blocks 0-9 of cultivated land (1); block 3 also holds the only forest (2) pixels
    train = pd.DataFrame({"block": np.repeat(np.arange(10), 5), "label": 1})
    train.loc[train["block"] == 3, "label"] = [1, 2, 2, 1, 2]
    drawn = [stopping_blocks(train, 0.3, seed) for seed in range(20)]
    for held in drawn:
        assert len(held) == 3 and set(held) <= set(range(10))
        assert 3 not in held  # holding it out would leave no forest to train on
    assert drawn[0] == stopping_blocks(train, 0.3, 0)  # seeded
    assert len({tuple(held) for held in drawn}) > 1
    assert len(stopping_blocks(train, 0.01, 0)) == 1  # at least one block
    only = train[train["block"] == 3]
    with pytest.raises(ClassifierError, match="cannot hold out any of the 1 training block"):
        stopping_blocks(only, 0.5, 0)


def test_early_stopping_keeps_the_rounds_the_held_out_training_blocks_ask_for():
    samples = make_samples(n=3000)
    samples["b_2017-01-01"] *= 4  # a noisy column to overfit on
    spec = {**FAST_LGBM, "n_estimators": 300}
    model = train_model(samples, spec, EarlyStopping(0.25, 10, seed=1))
    chosen = model.info["early_stopping"]
    best, held = chosen["best_iteration"], chosen["holdout_blocks"]
    assert len(held) == 2 and set(held) <= set(range(8))  # blocks 8, 9 are validation
    train = samples[samples["split"] == "train"]
    names = model.feature_names
    # the same stopping, worked out here with LightGBM directly
    stop = train["block"].isin(held)
    assert chosen["n_holdout"] == int(stop.sum())
    options = {k: v for k, v in spec.items() if k != "method"}
    trial = LGBMClassifier(**options)
    codes = {2: 0, 5: 1, 8: 2}  # eval_y is scored unencoded (lightgbm-org/LightGBM#7400)
    trial.fit(train.loc[~stop, names], train.loc[~stop, "label"].map(codes),
              eval_X=train.loc[stop, names], eval_y=train.loc[stop, "label"].map(codes),
              callbacks=[early_stopping(10, verbose=False)])  # fmt: skip
    assert best == trial.best_iteration_ < 300
    # then refitted on every training block with those rounds only
    assert model.estimator.booster_.num_trees() == best * 3
    assert model.info["params"]["n_estimators"] == best and chosen["max_rounds"] == 300
    direct = LGBMClassifier(**{**options, "n_estimators": best}).fit(train[names], train["label"])
    X = samples[names]
    np.testing.assert_allclose(model.predict_proba(X), direct.predict_proba(X), atol=1e-6)


def test_early_stopping_refuses_an_estimator_without_rounds():
    spec = {"method": "random_forest", "n_estimators": 5}
    with pytest.raises(ClassifierError, match="RandomForestClassifier cannot stop early"):
        train_model(make_samples(), spec, EarlyStopping(0.2, 10, seed=0))
