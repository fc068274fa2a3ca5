"""``kedro run --resume`` (perceptive.resume): only unfinished or out-of-date nodes run, and the
result equals an uninterrupted run's.

One full run on the small demo AOI (``baseline``) is shared; each test changes one thing and
checks which nodes the resumed run ran, from its run record.
"""

from __future__ import annotations

import copy
import importlib
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml
from click.testing import CliRunner
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from perceptive.cli import cli
from perceptive.pipeline_registry import LINKS
from perceptive.resume import plan_for_run
from perceptive.run_listing import read_records
from tests.conftest import PROJECT, SMALL_RUN, kill_when, run_kedro

INGESTION = {"define_aoi", "fetch_l1c", "import_reference_labels"}


def nodes_of(*links: str) -> set[str]:
    return {
        n.name
        for link in links
        for n in importlib.import_module(f"perceptive.pipelines.{link}").create_pipeline().nodes
    }


ALL_NODES = nodes_of(*LINKS)


def merged(base: dict, change: dict) -> dict:
    """``base`` with ``change`` merged in, key by key (as ``--params`` merges)."""
    out = dict(base)
    for key, value in change.items():
        old = out.get(key)
        out[key] = (
            merged(old, value) if isinstance(value, dict) and isinstance(old, dict) else value
        )
    return out


#: The small demo run, with fewer trees: training is most of a small run's time.
RUN = merged(SMALL_RUN, {"classifier": {"n_estimators": 20}})


def params(data_root: Path, **change) -> dict:
    return merged({"data_root": str(data_root), **RUN}, change)


def resume(data_root: Path, **change):
    """What ``kedro run --resume`` does: plan, then run the nodes to run with the reused
    versions pinned. Returns the plan and the record of the run (None when nothing ran)."""
    runtime = params(data_root, **change)
    plan = plan_for_run(PROJECT, runtime_params=runtime)
    if not plan.to_run:
        return plan, None
    bootstrap_project(PROJECT)
    with KedroSession.create(project_path=PROJECT, runtime_params=runtime) as session:
        session.run(node_names=plan.to_run, load_versions=plan.pins)
    return plan, newest_record(data_root)


def newest_record(data_root: Path) -> dict:
    return read_records(data_root)[0]


def saved_by(record: dict) -> set[str]:
    return {name for name, entry in record["datasets"].items() if entry.get("saved")}


def outputs_of(node_names: set[str]) -> set[str]:
    """The versioned datasets these nodes write (in-memory hand-overs are not in records)."""
    return {
        out
        for link in LINKS
        for n in importlib.import_module(f"perceptive.pipelines.{link}").create_pipeline().nodes
        if n.name in node_names
        for out in n.outputs
        if out not in {"aoi_grid", "aoi_shape", "source_reference_labels"}
    }


def lulc_pixels(data_root: Path, version: str) -> np.ndarray:
    path = data_root / "07_model_output" / "lulc_map.tif" / version / "lulc_map.tif"
    with rasterio.open(path) as src:
        return src.read()


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """(data_root, record) of one uninterrupted run of the whole workflow."""
    data_root = tmp_path_factory.mktemp("resume")
    run_kedro(data_root, **RUN)
    return data_root, newest_record(data_root)


def test_resume_with_same_parameters_runs_nothing(baseline, tmp_path, caplog):
    data_root, record = baseline
    config = tmp_path / "run.yml"
    config.write_text(yaml.safe_dump({"run": {"params": params(data_root)}}))
    before = read_records(data_root)

    with caplog.at_level(logging.INFO, logger="perceptive.resume"):
        result = CliRunner().invoke(cli, ["run", "--resume", "-c", str(config)])

    assert result.exit_code == 0, result.output
    assert "Nothing to run" in caplog.text
    assert "reuse  modelling/train" in caplog.text and record["save_version"] in caplog.text
    assert len(read_records(data_root)) == len(before)  # no run started


def test_classifier_change_reruns_only_modelling_and_prediction(baseline):
    data_root, base = baseline
    plan, record = resume(data_root, classifier={"n_estimators": 10})

    expected = nodes_of("modelling", "prediction")
    assert set(plan.to_run) == expected
    assert set(plan.reused.values()) == {base["save_version"]}
    assert "classifier.n_estimators (20 -> 10)" in next(
        s.reason for s in plan.steps if s.node == "train"
    )
    assert set(record["nodes"]) == expected
    assert saved_by(record) == outputs_of(expected)  # nothing upstream was written again
    assert record["datasets"]["samples"]["loaded"] == base["save_version"]
    assert record["datasets"]["features_cube"]["loaded"] == base["save_version"]
    metrics = read_provenance_params(data_root, record["save_version"])
    assert metrics["classifier"]["n_estimators"] == 10
    new_map = lulc_pixels(data_root, record["save_version"])
    assert not np.array_equal(new_map, lulc_pixels(data_root, base["save_version"]))


def read_provenance_params(data_root: Path, version: str) -> dict:
    path = data_root / "08_reporting" / "validation_metrics.json" / version
    return json.loads((path / "validation_metrics.json").read_text())["provenance"]["parameters"]


def test_upstream_parameter_change_reruns_from_feature_engineering(baseline):
    data_root, base = baseline
    plan, record = resume(data_root, date_grid={"step_days": 32})

    reused = INGESTION | {"compute_masks"}  # masks do not depend on the date grid
    assert set(plan.reused) == reused
    assert set(plan.to_run) == ALL_NODES - reused
    assert "date_grid.step_days (16 -> 32)" in next(
        s.reason for s in plan.steps if s.node == "compute_features"
    )
    assert set(record["nodes"]) == ALL_NODES - reused
    assert saved_by(record) == outputs_of(ALL_NODES - reused)
    assert record["datasets"]["masks_cube"]["loaded"] == base["save_version"]

    # the resumed run's outputs are found again: the same change now runs nothing
    again = plan_for_run(PROJECT, runtime_params=params(data_root, date_grid={"step_days": 32}))
    assert again.to_run == []
    assert again.reused["compute_features"] == record["save_version"]
    assert again.reused["compute_masks"] == base["save_version"]


def test_resume_after_kill_finishes_like_an_uninterrupted_run(baseline, tmp_path):
    """``kedro run`` killed with SIGKILL as soon as its record shows ingestion and masks
    finished, then ``kedro run --resume`` (both real subprocesses): ingestion is reused, the
    rest runs, and the map is the one the uninterrupted baseline run made with the same
    parameters, pixel for pixel."""
    reference_root, reference = baseline
    data_root = tmp_path / "data"
    config = tmp_path / "run.yml"
    config.write_text(yaml.safe_dump({"run": {"params": params(data_root)}}))
    kedro = [str(Path(sys.executable).parent / "kedro"), "run", "-c", str(config)]
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "COLUMNS": "250"}  # whole log lines

    child = subprocess.Popen(
        kedro, cwd=PROJECT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )

    def feature_engineering_under_way() -> bool:  # ingestion and masks done, by the record
        records = read_records(data_root)
        nodes = records[0]["nodes"] if records else {}
        done = ("import_reference_labels", "compute_masks")
        return all(nodes.get(n, {}).get("outcome") == "finished" for n in done)

    kill_when(child, feature_engineering_under_way, 240, "feature_engineering")
    (killed,) = read_records(data_root)
    assert killed["outcome"] == "running"  # its record never got its end
    version = killed["save_version"]
    for name, entry in killed["nodes"].items():  # "finished" only once the outputs are saved
        if entry["outcome"] == "finished":
            assert all(killed["datasets"].get(o, {}).get("saved") for o in outputs_of({name}))
    reused = INGESTION | {"compute_masks"}
    if (data_root / f"04_feature/features_cube.zarr/{version}/features_cube.zarr").exists():
        reused.add("compute_features")  # saved just before the kill

    done = subprocess.run(
        [*kedro, "--resume"], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Resume:" in done.stdout + done.stderr

    record = newest_record(data_root)
    assert record["outcome"] == "finished"
    plan = [line for line in (done.stdout + done.stderr).splitlines() if "  run  " in line]
    assert set(record["nodes"]) == ALL_NODES - reused, plan  # the plan says why, if not
    assert saved_by(record) == outputs_of(ALL_NODES - reused)
    assert record["datasets"]["l1c_cube"]["loaded"] == version
    resumed_map = lulc_pixels(data_root, record["save_version"])
    assert np.array_equal(resumed_map, lulc_pixels(reference_root, reference["save_version"]))


@pytest.mark.parametrize(
    ("outcome", "labels_saved"),
    [("running", True), ("finished", True), ("finished", False)],
)
def test_resume_after_kill_between_save_and_record(baseline, tmp_path, outcome, labels_saved):
    """A run killed after ``import_reference_labels`` returned: its record shows the node
    running, or finished as records did before run_record.py waited for the saves, and no
    saved labels. When the labels are on disk their provenance stands in for the record and
    ingestion is reused; when they are not, the node runs, and with it all of ingestion, since
    its input ``source_reference_labels`` lives only in the memory of ``fetch_l1c``'s run."""
    base_root, base = baseline
    version = base["save_version"]
    data_root = tmp_path / "data"
    for folder in ("01_raw", "02_intermediate", "03_primary"):  # ingestion and masks
        shutil.copytree(base_root / folder, data_root / folder)
    if not labels_saved:
        shutil.rmtree(data_root / "01_raw" / "reference_labels.gpkg" / version)
    killed = copy.deepcopy(base)
    done = INGESTION | {"compute_masks"}
    killed.update(outcome="running", finished=None, parameters=None)
    killed["nodes"] = {n: e for n, e in killed["nodes"].items() if n in done}
    killed["nodes"]["import_reference_labels"]["outcome"] = outcome
    killed["datasets"] = {k: v for k, v in killed["datasets"].items() if k in outputs_of(done)}
    del killed["datasets"]["reference_labels"]  # the record was not written after the save
    (data_root / "runs").mkdir()
    (data_root / "runs" / f"{version}.json").write_text(json.dumps(killed))

    plan = plan_for_run(PROJECT, runtime_params=params(data_root))

    reasons = {s.node: s.reason for s in plan.steps}
    if labels_saved:
        assert plan.reused == dict.fromkeys(done, version), plan.summary()
        assert set(plan.to_run) == ALL_NODES - done
    else:
        assert set(plan.to_run) == ALL_NODES, plan.summary()
        assert reasons["import_reference_labels"] == "never finished"  # the cause, kept
        assert "source_reference_labels" in reasons["fetch_l1c"]
