"""Runs sharing a data_root never mix versions, and pruning keeps what kept runs used."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import pandas as pd
import pytest
from click.testing import CliRunner
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from perceptive.run_listing import runs
from perceptive.run_record import RunVersionTaken
from tests.conftest import PROJECT, SMALL_RUN, run_kedro

#: A version id later than any real one: what a concurrent run's newer output looks like.
LATER = "2099-01-01T00.00.00.000Z"


def record_of(data_root, version: str) -> dict:
    return json.loads((data_root / "runs" / f"{version}.json").read_text())


def newest_record(data_root) -> dict:
    return json.loads(max((data_root / "runs").glob("*.json")).read_text())


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    """One whole run on the small demo AOI; its data_root."""
    data_root = tmp_path_factory.mktemp("versions")
    run_kedro(data_root, **SMALL_RUN)
    return data_root


def test_a_run_reads_its_own_outputs_not_a_newer_one_of_another_run(workflow, tmp_path):
    data_root = tmp_path / "data"
    shutil.copytree(workflow, data_root)
    # another run's samples, newer than anything this run will write, with other labels
    samples_dir = data_root / "05_model_input" / "samples.parquet"
    (theirs,) = samples_dir.iterdir()
    other = pd.read_parquet(theirs / "samples.parquet")
    other = other[other["label"] == other["label"].iloc[0]]  # one class only: cannot train
    (samples_dir / LATER).mkdir()
    other.to_parquet(samples_dir / LATER / "samples.parquet")

    run_kedro(data_root, ["sampling", "modelling"], **SMALL_RUN)
    record = newest_record(data_root)
    mine = record["save_version"]
    assert record["outcome"] == "finished"
    samples = record["datasets"]["samples"]
    assert (samples["loaded"], samples["saved"]) == (mine, mine)
    assert record["datasets"]["features_cube"]["loaded"] == workflow_version(workflow)
    provenance = json.loads(
        next((data_root / "08_reporting" / "validation_metrics.json" / mine).glob("*")).read_text()
    )["provenance"]
    assert provenance["inputs"]["model"] == mine


def workflow_version(data_root) -> str:
    return newest_record(data_root)["save_version"]


def test_a_version_already_taken_stops_the_run(tmp_path):
    bootstrap_project(PROJECT)
    runtime = {"data_root": str(tmp_path), **SMALL_RUN}
    with KedroSession.create(project_path=PROJECT, runtime_params=runtime) as session:
        (tmp_path / "runs").mkdir()
        (tmp_path / "runs" / f"{session.session_id}.json").write_text("{}")
        with pytest.raises(RunVersionTaken, match="already taken by another run"):
            session.run(pipeline_names=["ingestion"])
    assert not (tmp_path / "02_intermediate" / "l1c_cube.zarr").exists()


def test_prune_keeps_every_version_a_kept_run_used(workflow, tmp_path):
    data_root = tmp_path / "data"
    shutil.copytree(workflow, data_root)
    first = workflow_version(data_root)
    run_kedro(data_root, ["modelling"], **{**SMALL_RUN, "classifier": {"n_estimators": 20}})
    second = newest_record(data_root)["save_version"]
    assert second != first

    dry = CliRunner().invoke(runs, ["--data-root", str(data_root), "prune", "--keep", "1",
                                    "--dry-run"])  # fmt: skip
    assert dry.exit_code == 0, dry.output
    assert "Would remove" in dry.output
    assert (data_root / "02_intermediate" / "l1c_cube.zarr" / first).exists()

    result = CliRunner().invoke(runs, ["--data-root", str(data_root), "prune", "--keep", "1"])
    assert result.exit_code == 0, result.output
    assert "Removed" in result.output
    # the kept (second) run trained on the first run's samples: those stay, with its own model
    assert (data_root / "05_model_input" / "samples.parquet" / first).exists()
    assert (data_root / "06_models" / "model.pkl" / second).exists()
    # what only the first run used goes, with its record
    assert not (data_root / "02_intermediate" / "l1c_cube.zarr" / first).exists()
    assert not (data_root / "06_models" / "model.pkl" / first).exists()
    assert not (data_root / "runs" / f"{first}.json").exists()
    assert record_of(data_root, second)["outcome"] == "finished"


def test_unfinished_saves_of_a_killed_run_are_swept_by_the_next(tmp_path):
    from perceptive.leftovers import sweep_partials

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    host = socket.gethostname()
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    killed, live = "2026-01-01T00.00.00.000Z", "2026-01-02T00.00.00.000Z"
    for version, pid in ((killed, int(dead.stdout)), (live, os.getpid())):
        record = {"save_version": version, "outcome": "running",
                  "process": {"host": host, "pid": pid}}  # fmt: skip
        (runs_dir / f"{version}.json").write_text(json.dumps(record))
    samples = tmp_path / "05_model_input" / "samples.parquet"
    for version in (killed, live):
        (samples / version).mkdir(parents=True)
        (samples / version / ".partial-1234abcd-samples.parquet").write_bytes(b"PAR1 half")
    cube = tmp_path / "04_feature" / "features_cube.zarr" / killed
    (cube / ".partial-5678abcd-features_cube.zarr" / "features").mkdir(parents=True)
    (cube / "features_cube.zarr").mkdir()  # a finished save of the same version stays
    (cube / "features_cube.zarr.manifest.json").write_text("{}")  # ... with its manifest
    # killed between the two renames of a save: the manifest is in place, the map is not
    lulc = tmp_path / "07_model_output" / "lulc_map.tif" / killed
    lulc.mkdir(parents=True)
    (lulc / "lulc_map.tif.manifest.json").write_text("{}")
    (lulc / "lulc_map.tif.aux.xml").write_text("<PAMDataset/>")
    for version in (killed, live):  # run records being written when the runs were killed
        (runs_dir / f".partial-9abc0123-{version}.json").write_text('{"save_ver')

    removed = sweep_partials(tmp_path)
    assert len(removed) == 5
    assert not lulc.exists()
    assert sorted(p.name for p in runs_dir.iterdir()) == sorted(
        [f"{killed}.json", f"{live}.json", f".partial-9abc0123-{live}.json"]
    )
    assert not (samples / killed).exists()  # only a partial was there: the folder goes too
    assert (samples / live / ".partial-1234abcd-samples.parquet").exists()  # still writing
    assert sorted(p.name for p in cube.iterdir()) == [
        "features_cube.zarr",
        "features_cube.zarr.manifest.json",
    ]
