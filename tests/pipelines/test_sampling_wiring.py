"""The sampling and modelling pipelines with non-default sampling and evaluation parameters
(scheme, block size, folds, test split), run with SequentialRunner on an in-memory catalog as in
``test_wiring.py``: each parameter must show in the outputs. Also the demo's truth column.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from perceptive.eo.accuracy import MIN_BLOCKS
from perceptive.pipelines.modelling.pipeline import create_pipeline as modelling
from perceptive.pipelines.sampling.pipeline import create_pipeline as sampling
from tests.pipelines.test_wiring import run, upstream  # noqa: F401  (module fixture)


@pytest.fixture(scope="module", autouse=True)
def project():
    from kedro.framework.startup import bootstrap_project

    from tests.pipelines.test_wiring import PROJECT

    bootstrap_project(PROJECT)


def _sampling(upstream, **sampling_overrides) -> dict[str, Any]:  # noqa: F811
    inputs = {
        "features_cube": upstream["features_cube"],
        "label_raster": upstream["label_raster"],
        "reference_labels": upstream["reference_labels"],
    }
    return run(sampling().only_nodes("sample_training_pixels"), inputs, sampling=sampling_overrides)


def test_scheme_balanced_draws_the_same_count_from_every_class(upstream):  # noqa: F811
    proportional = _sampling(upstream, n_samples=600)["samples"]
    balanced = _sampling(
        upstream, n_samples=600, scheme={"method": "balanced", "min_per_class": 40}
    )
    balanced = balanced["samples"]
    available = _sampling(upstream)["samples"]["label"].value_counts()  # every candidate
    per_class = max(600 // len(available), 40)
    expected = {int(c): min(int(n), per_class) for c, n in available.items()}
    assert balanced["label"].value_counts().to_dict() == expected
    shares = proportional["label"].value_counts(normalize=True)
    assert shares.max() > 1.5 / len(available)  # proportional keeps an unbalanced mix


def test_scheme_proportional_max_per_class_caps_each_class(upstream):  # noqa: F811
    table = _sampling(upstream, scheme={"method": "proportional", "max_per_class": 30})["samples"]
    assert table["label"].value_counts().max() <= 30


def test_n_folds_and_test_fraction_split_the_blocks(upstream):  # noqa: F811
    out = _sampling(upstream, n_folds=3, test_fraction=0.2, validation_fraction=0.2)
    table, summary = out["samples"], out["samples_summary"]
    assert set(table["split"]) == {"train", "validation", "test"}
    assert set(table.loc[table["split"] != "test", "fold"]) == {0, 1, 2}
    assert set(table.loc[table["split"] == "test", "fold"]) == {-1}
    assert table.groupby("block")["fold"].nunique().max() == 1  # a block sits in one fold
    assert table.groupby("parcel")["split"].nunique().max() == 1  # no parcel on two sides
    counted = summary.groupby(["class_id", "split"])["count"].sum()
    expected = table.groupby(["label", "split"]).size()
    assert counted.to_dict() == expected.to_dict()
    assert {"name", "fold", "edge"} <= set(summary.columns)


def test_modelling_cross_validates_over_the_folds_and_reports_the_test_blocks(upstream):  # noqa: F811
    samples = _sampling(upstream, n_folds=3, test_fraction=0.2)["samples"]
    out = run(
        modelling(), {"samples": samples},
        evaluation={"cross_validation": True, "n_bootstrap": 60},
    )  # fmt: skip
    report = out["validation_metrics"]
    cv = report["cross_validation"]
    assert [f["fold"] for f in cv["folds"]] == [0, 1, 2]
    scores = [f["overall_accuracy"] for f in cv["folds"]]
    assert cv["overall_accuracy_mean"] == pytest.approx(np.mean(scores))
    assert cv["overall_accuracy_std"] == pytest.approx(np.std(scores, ddof=1))
    test = samples[(samples["split"] == "test") & ~samples["edge"]]
    assert report["test"]["n_samples"] == len(test)
    low, high = report["overall_accuracy_ci95"]
    assert low <= report["overall_accuracy"] <= high
    if report["n_groups"] < MIN_BLOCKS:
        assert report["warnings"]
    importance = out["feature_importance"]
    assert importance["importance"].sum() == pytest.approx(1.0)
    assert set(importance["feature"]) == set(upstream["features_cube"]["feature"].values.tolist())
    assert importance["method"].iloc[0] == "lightgbm gain"


def test_importance_of_estimators_without_gain(upstream):  # noqa: F811
    samples = upstream["samples"]
    forest = {"method": "random_forest", "n_estimators": 5, "random_state": 0}
    table = run(modelling(), {"samples": samples}, classifier=forest)["feature_importance"]
    assert table["method"].iloc[0] == "impurity decrease"
    assert table["importance"].sum() == pytest.approx(1.0)
    knn = {"method": "sklearn.neighbors.KNeighborsClassifier", "n_neighbors": 5}
    table = run(modelling(), {"samples": samples}, classifier=knn)["feature_importance"]
    assert table["method"].iloc[0] == "permutation"
    assert (table["importance"] >= 0).all()
    assert table["importance"].sum() == pytest.approx(1.0)  # some column matters


def test_demo_truth_is_reported_beside_the_reference_labels(upstream):  # noqa: F811
    features = upstream["features_cube"].copy()
    features.attrs["source"] = {"method": "demo", "revisit_days": 5, "seed": 42,
                                "mislabel_fraction": 0.3}  # fmt: skip
    inputs = {"features_cube": features, "reference_labels": upstream["reference_labels"]}
    samples = run(sampling(), inputs)["samples"]
    assert "true_label" in samples
    from perceptive.params import Aoi
    from perceptive.sources.demo import demo_scene  # the truth, worked out independently
    from tests.pipelines.test_wiring import INTERVAL, TINY_AOI

    truth = demo_scene(Aoi(**TINY_AOI).grid(10), INTERVAL, mislabel_fraction=0.3).truth()
    expected = truth["land_cover"].values[samples["row"], samples["col"]]
    np.testing.assert_array_equal(samples["true_label"], expected)
    report = run(modelling().only_nodes("train", "evaluate"), {"samples": samples})
    demo = report["validation_metrics"]["demo_truth"]
    assert demo["against_reference_labels"]["n_samples"] == demo["against_truth"]["n_samples"]
    assert "demo only" in demo["note"]
