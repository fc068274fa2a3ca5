"""The arms pipeline: two classifiers in one run on the same samples, each under its namespace."""

from __future__ import annotations

import shutil

import pytest
from kedro.framework.session import KedroSession

from perceptive.run_listing import read_records
from tests.conftest import PROJECT, SMALL_RUN, run_kedro

ARM_PARAMS = {"arms": {"rf": {"classifier": {"n_estimators": 30}}}}


@pytest.fixture(scope="module")
def arms_run(small_run, tmp_path_factory):
    """Both arms on a copy of the session's small run (its samples and features)."""
    source, _ = small_run
    data_root = tmp_path_factory.mktemp("arms") / "data"
    shutil.copytree(source, data_root, ignore=shutil.ignore_patterns("mlflow.db", "mlartifacts"))
    catalog = run_kedro(data_root, ["arms"], **SMALL_RUN, **ARM_PARAMS)
    return data_root, catalog


def test_each_arm_trains_its_own_classifier_on_the_shared_samples(arms_run):
    data_root, catalog = arms_run
    lgbm, rf = catalog.load("lgbm.model"), catalog.load("rf.model")
    assert lgbm.info["estimator"].endswith("LGBMClassifier")
    assert rf.info["estimator"].endswith("RandomForestClassifier")
    assert rf.info["params"]["n_estimators"] == 30  # the arm's own parameter reached it
    assert lgbm.info["params"]["n_estimators"] == 200
    assert lgbm.info["n_train"] == rf.info["n_train"]  # one samples table for both
    record = read_records(data_root)[0]
    assert record["pipelines"] == ["arms"]
    assert "samples" in record["datasets"] and "lgbm.samples" not in record["datasets"]
    reports = [catalog.load(f"{arm}.validation_metrics") for arm in ("lgbm", "rf")]
    assert reports[0]["n_samples"] == reports[1]["n_samples"]
    assert reports[0]["model"] != reports[1]["model"]
    assert {"lgbm.overall_accuracy", "rf.overall_accuracy"} <= set(record["metrics"])


def test_each_arm_writes_its_own_map_under_its_namespace(arms_run):
    data_root, catalog = arms_run
    maps = [catalog.load(f"{arm}.lulc_map") for arm in ("lgbm", "rf")]
    assert maps[0].shape == maps[1].shape == (256, 256)
    assert (maps[0].values != maps[1].values).any()
    assert any((data_root / "07_model_output" / "arms" / "rf" / "lulc_map.tif").iterdir())


def test_namespaces_runs_one_arm(arms_run):
    data_root, _ = arms_run
    runtime = {"data_root": str(data_root), **SMALL_RUN, **ARM_PARAMS}
    with KedroSession.create(project_path=PROJECT, runtime_params=runtime) as session:
        session.run(pipeline_names=["arms"], namespaces=["rf"])
    nodes = list(read_records(data_root)[0]["nodes"])
    assert "rf.train" in nodes and "rf.make_maps" in nodes
    assert all(name.startswith("rf.") for name in nodes)


def test_an_arm_the_pipeline_does_not_have_is_refused(tmp_path):
    from perceptive.config import ParameterError

    with pytest.raises(ParameterError, match=r"arms.*\['lgbm', 'rf'\]"):
        run_kedro(tmp_path, ["arms"], arms={"et": {"classifier": {"method": "random_forest"}}})
