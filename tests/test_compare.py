"""`kedro compare`: two variants run (or found), compared on the same validation pixels, with
every figure naming its runs and the comparison logged to the tracking store."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from kedro.framework.session import KedroSession
from mlflow.tracking import MlflowClient
from scipy import stats

from perceptive.compare import compare, plot_map_difference, plot_metrics
from perceptive.eo.sampling import VALIDATION
from perceptive.pipeline_registry import LINKS
from perceptive.run_listing import read_records
from tests.conftest import PROJECT, SMALL_RUN

MODELLING_AND_PREDICTION = {"train", "evaluate", "explain", "predict", "make_maps", "summarise"}


@pytest.fixture(scope="module")
def compared(small_run, tmp_path_factory):
    """`base` (the session's small run, copied with its record but no tracking store) against
    `rf`, which the comparison has to run."""
    source, _ = small_run
    data_root = tmp_path_factory.mktemp("compare") / "data"
    shutil.copytree(
        source, data_root, ignore=shutil.ignore_patterns("runs", "mlflow.db", "mlartifacts")
    )
    first = min((source / "runs").glob("*.json"))  # the small run's own record
    (data_root / "runs").mkdir()
    shutil.copy2(first, data_root / "runs" / first.name)
    params = {**SMALL_RUN, "data_root": str(data_root)}
    return data_root, params, compare(["base", "rf"], project_path=PROJECT, params=params)


def test_the_table_holds_both_variants_with_their_own_metrics(compared):
    _, _, result = compared
    table = result.table
    assert table["variant"].tolist() == ["base", "rf"]
    assert table["changes"].iloc[1].startswith("random forest")
    metrics = table[["_overall_accuracy", "_macro_f1", "_kappa"]].to_numpy(dtype=float)
    assert not np.allclose(metrics[0], metrics[1])  # a different classifier, other scores
    for key in ("_overall_accuracy", "_macro_f1", "_kappa"):
        for value, (low, high) in zip(table[key], table[f"{key}_ci95"], strict=True):
            assert low <= value <= high
    assert "McNemar p vs base" in result.text() and "rf" in result.text()


def test_the_rf_variant_reused_ingestion_features_and_samples(compared):
    _, _, result = compared
    base, rf = result.runs
    assert not base.ran_nodes  # base had a result: nothing was run for it
    assert set(rf.ran_nodes) == MODELLING_AND_PREDICTION
    assert set(rf.record["nodes"]) == MODELLING_AND_PREDICTION
    for name in ("features_cube", "samples"):
        assert rf.record["datasets"][name]["loaded"] == base.record["datasets"][name]["saved"]
    assert rf.record["datasets"]["model"]["saved"] == rf.version != base.version
    assert rf.mlflow_run_id is not None  # found through the tracking store
    # per-link cost of reused links comes from the run that made them, marked
    links = result.table["_links"].iloc[1]
    assert [links[link]["made_by"] for link in LINKS] == [base.version] * 3 + [rf.version] * 2
    assert result.table["time per link (s)"].iloc[1].count("*") == 3


def test_mcnemar_is_computed_on_the_same_validation_pixels(compared):
    data_root, params, result = compared

    with KedroSession.create(project_path=PROJECT, runtime_params=params) as session:
        catalog = session.load_context().catalog
    correct, pixels = [], []
    for run in result.runs:
        samples = catalog.load("samples", version=run.record["datasets"]["samples"]["loaded"]
                               or run.record["datasets"]["samples"]["saved"])  # fmt: skip
        model = catalog.load("model", version=run.record["datasets"]["model"]["saved"])
        held = samples[(samples["split"] == VALIDATION) & ~samples["edge"].astype(bool)]
        predicted = model.predict(held[model.feature_names].to_numpy("float32"))
        correct.append(predicted == held["label"].to_numpy())
        pixels.append(set(zip(held["row"], held["col"], strict=True)))
    assert pixels[0] == pixels[1]
    test = result.table["_mcnemar"].iloc[1]
    assert test["n_pixels"] == len(pixels[0])
    only_base = int((correct[0] & ~correct[1]).sum())
    only_rf = int((~correct[0] & correct[1]).sum())
    assert (test["only_first_correct"], test["only_second_correct"]) == (only_base, only_rf)
    expected = stats.binomtest(only_base, only_base + only_rf).pvalue
    assert test["p_value"] == pytest.approx(expected)


def test_every_file_and_figure_names_its_runs(compared):
    _, _, result = compared
    versions = [run.version for run in result.runs]
    files = sorted(p.name for p in result.folder.iterdir())
    assert files == ["comparison.csv", "comparison.md", "map_difference_rf_vs_base.png",
                     "metrics.png"]  # fmt: skip
    markdown = (result.folder / "comparison.md").read_text()
    csv = (result.folder / "comparison.csv").read_text()
    assert all(v in markdown and v in csv for v in versions)
    labels = [t.get_text() for t in plot_metrics(result.table).axes[0].get_yticklabels()]
    assert all(any(v in label for label in labels) for v in versions)
    two = np.array([[1, 2], [3, 0]], dtype=np.uint8)
    other = np.array([[1, 3], [3, 0]], dtype=np.uint8)
    from xarray import DataArray

    figure = plot_map_difference(DataArray(two), DataArray(other), *result.runs, {2: "a", 3: "b"})
    title = figure.axes[0].get_title()
    assert all(v in title for v in versions) and "33.3% of mapped pixels differ" in title
    legend = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert "a -> b (1 px)" in legend


def test_the_comparison_is_a_run_in_the_tracking_store(compared):
    data_root, _, result = compared
    client = MlflowClient(f"sqlite:///{data_root / 'mlflow.db'}")
    run = client.get_run(result.mlflow_run_id)
    assert run.data.tags["perceptive.kind"] == "comparison"
    assert run.data.tags["perceptive.compared_runs"] == ",".join(r.version for r in result.runs)
    assert {a.path for a in client.list_artifacts(result.mlflow_run_id)} >= {
        "comparison.csv", "metrics.png", "map_difference_rf_vs_base.png"
    }  # fmt: skip
    assert run.data.metrics["overall_accuracy.rf"] == pytest.approx(
        result.table["_overall_accuracy"].iloc[1]
    )


def test_comparing_again_finds_both_results_and_runs_nothing(compared):
    data_root, params, first = compared
    records = len(read_records(data_root))
    again = compare(["base", "rf"], project_path=PROJECT, params=params, run_missing=False)
    assert [r.version for r in again.runs] == [r.version for r in first.runs]
    assert len(read_records(data_root)) == records
    assert again.folder != first.folder


def test_the_command_refuses_an_unknown_variant_before_running_anything(tmp_path):
    from perceptive.cli import cli

    result = CliRunner().invoke(
        cli, ["compare", "base", "rff", "--params", f"data_root={tmp_path}"]
    )
    assert result.exit_code != 0
    assert "No variant 'rff'" in result.output and "Did you mean 'rf'?" in result.output
    assert not (Path(tmp_path) / "runs").exists()
