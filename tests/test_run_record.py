"""Run records, artefact provenance and MLflow tracking, through real Kedro runs."""

from __future__ import annotations

import importlib
import json
import math
import shutil
from pathlib import Path

import mlflow
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from kedro.io.core import AbstractVersionedDataset
from pydantic import BaseModel

from perceptive.pipeline_registry import LINKS
from perceptive.provenance import jsonable
from perceptive.run_listing import flatten, list_runs, runs
from tests.conftest import PROJECT, SMALL_AOI, run_kedro

#: The two classifiers compared on one `samples` version (update here if the parameter changes).
CLASSIFIER_A = {"method": "lightgbm", "n_estimators": 30}
CLASSIFIER_B = {"method": "random_forest", "n_estimators": 20}

SMALL_INGESTION = {"aoi": SMALL_AOI, "tile_size": 128}


def records(data_root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((data_root / "runs").glob("*.json"))]


def full_run_record(data_root: Path) -> dict:
    (record,) = [r for r in records(data_root) if r["pipelines"] == ["__default__"]]
    return record


def mlflow_client(data_root: Path) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(f"sqlite:///{data_root}/mlflow.db")


def mlflow_runs(data_root: Path) -> list:
    client = mlflow_client(data_root)
    experiment = client.get_experiment_by_name("perceptive")
    return client.search_runs([experiment.experiment_id])


def mlflow_run_of(data_root: Path, record: dict):
    (run,) = [
        r
        for r in mlflow_runs(data_root)
        if r.data.tags.get("perceptive.save_version") == record["save_version"]
    ]
    return run


def link_nodes() -> list:
    """Every node of the five links (built from their modules: the registry holds only the
    pipelines of the last run)."""
    modules = [importlib.import_module(f"perceptive.pipelines.{link}") for link in LINKS]
    return [node for module in modules for node in module.create_pipeline().nodes]


def node_by_name(name: str):
    (node,) = [n for n in link_nodes() if n.name == name]
    return node


def versioned_inputs(node_name: str, versioned: set[str]) -> set[str]:
    """The versioned datasets a node depends on, looking through in-memory inputs to the nodes
    that made them."""
    producers = {out: n for n in link_nodes() for out in n.outputs}
    found = set()
    for name in node_by_name(node_name).inputs:
        if name in versioned:
            found.add(name)
        elif name in producers:
            found |= versioned_inputs(producers[name].name, versioned)
    return found


# --- the record of a full run -------------------------------------------------------------------
def test_full_run_record_covers_every_node_and_dataset(small_run):
    data_root, catalog = small_run
    record = full_run_record(data_root)
    version = record["save_version"]
    assert record["outcome"] == "finished" and record["error"] is None
    assert record["run_id"] == version
    assert record["started"] < record["finished"] and record["wall_s"] > 0

    expected_nodes = {n.name for n in link_nodes()}
    assert set(record["nodes"]) == expected_nodes
    for name, node in record["nodes"].items():
        assert node["outcome"] == "finished", name
        assert node["wall_s"] > 0, name
        assert node["peak_mib"] > 10, name  # the process's resident peak, in MiB
    assert sum(n["wall_s"] for n in record["nodes"].values()) <= record["wall_s"]

    # every versioned dataset of the catalog was saved once, under the run's version
    versioned = {n for n, ds in catalog.items() if isinstance(ds, AbstractVersionedDataset)}
    assert set(record["datasets"]) == versioned and len(versioned) >= 14
    assert {entry["saved"] for entry in record["datasets"].values()} == {version}
    for name in versioned:
        assert version in catalog.get(name).list_versions(full_path=False), name
    assert record["datasets"]["features_cube"]["loaded"] == version  # read back in the same run

    assert record["parameters"]["tile_size"] == 128  # resolved, with the --params overrides
    assert record["runtime_params"]["tile_size"] == 128
    assert 0 < record["metrics"]["overall_accuracy"] <= 1
    assert record["git"]["commit"] and isinstance(record["git"]["dirty"], bool)
    assert record["packages"]["kedro"].startswith("1.") and record["packages"]["mlflow"]
    assert record["python"].startswith("3.")


def test_full_run_is_one_mlflow_run_with_the_record(small_run):
    data_root, _ = small_run
    record = full_run_record(data_root)
    run = mlflow_run_of(data_root, record)
    assert record["mlflow"] == {"tracking_uri": f"sqlite:///{data_root}/mlflow.db",
                                "run_id": run.info.run_id}  # fmt: skip
    assert run.info.status == "FINISHED"
    assert "mlflow.parentRunId" not in run.data.tags  # not a nested duplicate
    assert run.data.tags["perceptive.outcome"] == "finished"
    assert run.data.tags["perceptive.pipelines"] == "__default__"
    assert run.data.tags["perceptive.git_commit"] == record["git"]["commit"]
    assert run.data.metrics["overall_accuracy"] == pytest.approx(
        record["metrics"]["overall_accuracy"]
    )
    logged = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/run_record.json")
    assert logged == record
    assert run.info.artifact_uri.startswith((data_root / "mlartifacts").as_uri())
    assert mlflow.active_run() is None  # closed, not left open for the next run
    for stray in ("mlruns", "mlartifacts", "mlflow.db"):
        assert not (PROJECT / stray).exists(), stray


# --- provenance in each artefact ----------------------------------------------------------------
def check_provenance(provenance: dict, dataset: str, node: str, record: dict) -> None:
    versions = {name: entry["saved"] for name, entry in record["datasets"].items()}
    assert provenance["dataset"] == dataset and provenance["node"] == node
    assert provenance["run_id"] == provenance["save_version"] == record["save_version"]
    assert provenance["inputs"] == {
        name: versions[name] for name in versioned_inputs(node, set(versions))
    }
    expected_params = {
        i.removeprefix("params:") for i in node_by_name(node).inputs if "params:" in i
    }
    assert expected_params <= set(provenance["parameters"])
    for name in expected_params:
        assert provenance["parameters"][name] == jsonable(record["parameters"][name]), name


def test_provenance_in_zarr_attrs(small_run):
    data_root, catalog = small_run
    record = full_run_record(data_root)
    l1c = json.loads(catalog.load("l1c_cube").attrs["provenance"])
    check_provenance(l1c, "l1c_cube", "fetch_l1c", record)
    assert l1c["inputs"] == {"aoi_tiles": record["save_version"]}  # the tiles it read
    assert l1c["parameters"]["aoi"] == record["parameters"]["aoi"]  # via the in-memory grid
    features = json.loads(catalog.load("features_cube").attrs["provenance"])
    check_provenance(features, "features_cube", "compute_features", record)
    assert features["inputs"]["l1c_cube"] == record["save_version"]


def test_provenance_in_geotiff_tag(small_run):
    data_root, _ = small_run
    record = full_run_record(data_root)
    path = data_root / "07_model_output" / "lulc_map.tif" / record["save_version"] / "lulc_map.tif"
    with rasterio.open(path) as src:
        provenance = json.loads(src.tags()["PROVENANCE"])
    check_provenance(provenance, "lulc_map", "make_maps", record)
    assert {"prediction_cube", "model"} <= set(provenance["inputs"])
    assert provenance["parameters"]["postprocessing"] == {"method": "none"}


def test_provenance_in_json_and_sidecars(small_run):
    data_root, catalog = small_run
    record = full_run_record(data_root)
    metrics = catalog.load("validation_metrics")
    check_provenance(metrics["provenance"], "validation_metrics", "evaluate", record)

    folder = data_root / "05_model_input" / "samples.parquet" / record["save_version"]
    samples = json.loads((folder / "samples.provenance.json").read_text())
    check_provenance(samples, "samples", "sample_training_pixels", record)
    assert "features_cube" in samples["inputs"]

    folder = data_root / "06_models" / "model.pkl" / record["save_version"]
    model = json.loads((folder / "model.provenance.json").read_text())
    check_provenance(model, "model", "train", record)
    assert model["inputs"] == {"samples": record["save_version"]}
    assert model["parameters"]["classifier"] == record["parameters"]["classifier"]


# --- failed runs --------------------------------------------------------------------------------
def test_failed_node_gives_a_failed_record_and_mlflow_run(tmp_path):
    """A reference file that exists (so the parameters are valid) but is no vector file: the
    run fails in import_reference_labels, after two nodes ran."""
    broken = tmp_path / "nolabels.gpkg"
    broken.write_text("not a GeoPackage")
    with pytest.raises(Exception, match="nolabels"):
        run_kedro(tmp_path, ["ingestion"], **SMALL_INGESTION, reference={"file": str(broken)})
    (record,) = records(tmp_path)
    assert record["outcome"] == "failed"
    assert "nolabels" in record["error"]["message"] and record["error"]["type"]
    assert record["error"]["node"] == "import_reference_labels"
    assert record["nodes"]["import_reference_labels"]["outcome"] == "failed"
    assert record["nodes"]["fetch_l1c"]["outcome"] == "finished"
    assert record["parameters"]["reference"]["file"] == str(broken)

    run = mlflow_run_of(tmp_path, record)
    assert record["mlflow"]["run_id"] == run.info.run_id
    assert run.info.status == "FAILED"
    assert run.data.tags["perceptive.outcome"] == "failed"
    logged = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/run_record.json")
    assert logged["error"] == record["error"]
    assert mlflow.active_run() is None


def test_run_stopped_before_any_node_is_recorded_too(tmp_path):
    """A missing input is caught in a before_pipeline_run hook, after the MLflow run opened."""
    with pytest.raises(Exception, match="samples"):
        run_kedro(tmp_path, ["modelling"])
    (record,) = records(tmp_path)
    assert record["outcome"] == "failed" and record["nodes"] == {}
    assert "samples" in record["error"]["message"]
    run = mlflow_run_of(tmp_path, record)
    assert run.info.status == "FAILED"
    assert mlflow.active_run() is None


def test_aoi_longer_than_an_mlflow_parameter_is_truncated_there_only(tmp_path):
    """MLflow caps a parameter at 6000 characters; a detailed AOI outline is longer."""
    angles = np.linspace(0, 2 * np.pi, 400).tolist()
    ring = [
        [501280 + 1000.123456 * math.cos(a), 5098720 + 1000.123456 * math.sin(a)] for a in angles
    ]
    ring[-1] = ring[0]
    geometry = {"type": "Polygon", "coordinates": [ring]}
    aoi = {"geometry": geometry, "crs": "EPSG:32633", "bbox": None}
    assert len(str(geometry)) > 6000
    run_kedro(tmp_path, ["ingestion"], aoi=aoi, tile_size=128)
    (record,) = records(tmp_path)
    assert record["outcome"] == "finished"
    assert len(record["parameters"]["aoi"]["geometry"]["coordinates"][0]) == 400  # kept whole
    run = mlflow_run_of(tmp_path, record)
    assert run.info.status == "FINISHED"
    logged = [v for k, v in run.data.params.items() if k.startswith("aoi")]
    assert logged and all(len(v) <= 6000 for v in logged)


# --- two classifiers on one samples version -----------------------------------------------------
@pytest.fixture(scope="module")
def two_classifiers(small_run, tmp_path_factory):
    """`modelling` twice, with CLASSIFIER_A and CLASSIFIER_B, on a copy of small_run's data."""
    data_root = tmp_path_factory.mktemp("compare")
    tracking = shutil.ignore_patterns("runs", "mlflow.db", "mlartifacts")
    shutil.copytree(small_run[0], data_root, ignore=tracking, dirs_exist_ok=True)
    samples = Path("05_model_input") / "samples.parquet"
    run_kedro(data_root, ["modelling"], classifier=CLASSIFIER_A)
    run_kedro(data_root, ["modelling"], classifier=CLASSIFIER_B)
    (version,) = [p.name for p in (data_root / samples).iterdir()]
    return data_root, version


def changed_keys(a: dict, b: dict) -> set[str]:
    flat_a, flat_b = flatten(a), flatten(b)
    return {k for k in flat_a.keys() | flat_b.keys() if flat_a.get(k) != flat_b.get(k)}


def test_two_runs_compared_from_their_records(two_classifiers):
    data_root, samples_version = two_classifiers
    first, second = records(data_root)
    assert first["outcome"] == second["outcome"] == "finished"
    assert first["pipelines"] == second["pipelines"] == ["modelling"]
    # which parameters differed: the classifier, and only it
    differed = changed_keys(first["parameters"], second["parameters"])
    asked = changed_keys({"classifier": CLASSIFIER_A}, {"classifier": CLASSIFIER_B})
    assert asked <= differed
    assert all(key.startswith("classifier.") for key in differed), differed
    # both trained on the same samples
    for record in (first, second):
        samples = record["datasets"]["samples"]
        assert (samples["loaded"], samples["saved"]) == (samples_version, None)
        assert samples["path"] == str(data_root / "05_model_input" / "samples.parquet")
    for record in (first, second):
        folder = data_root / "06_models" / "model.pkl" / record["save_version"]
        provenance = json.loads((folder / "model.provenance.json").read_text())
        assert provenance["inputs"] == {"samples": samples_version}
    assert first["save_version"] != second["save_version"]


def test_two_runs_compared_through_mlflow(two_classifiers):
    data_root, samples_version = two_classifiers
    client = mlflow_client(data_root)
    experiment = client.get_experiment_by_name("perceptive")
    found = client.search_runs(
        [experiment.experiment_id],
        filter_string="tags.`perceptive.pipelines` = 'modelling'",
        order_by=["attributes.start_time ASC"],
    )
    assert len(found) == 2
    first, second = found
    differed = {
        k
        for k in first.data.params.keys() | second.data.params.keys()
        if first.data.params.get(k) != second.data.params.get(k)
    }
    assert differed and all(key.startswith("classifier") for key in differed), differed
    for run, record in zip(found, records(data_root), strict=True):
        assert run.info.status == "FINISHED"
        assert run.data.tags["perceptive.save_version"] == record["save_version"]
        logged = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/run_record.json")
        assert logged["datasets"]["samples"]["loaded"] == samples_version
        assert run.data.metrics["kappa"] == pytest.approx(record["metrics"]["kappa"])


def test_runs_listing_shows_what_differs(two_classifiers):
    data_root, _ = two_classifiers
    first, second = records(data_root)
    table = list_runs(data_root)
    lines = table.splitlines()
    assert len(lines) == 4  # header, rule, two runs
    assert second["save_version"] in lines[2] and first["save_version"] in lines[3]  # newest first
    method_b = flatten({"classifier": CLASSIFIER_B})["classifier.method"]
    assert f"classifier.method={method_b}" in lines[2]
    assert f"{second['metrics']['overall_accuracy']:.3f}" in lines[2]
    assert "tile_size" not in table  # the same in both runs, so not shown

    result = CliRunner().invoke(runs, ["--data-root", str(data_root), "--limit", "1"])
    assert result.exit_code == 0, result.output
    assert second["save_version"] in result.output
    assert first["save_version"] not in result.output


def test_listing_of_an_empty_folder(tmp_path):
    assert "No run records" in list_runs(tmp_path)


# --- JSON safety --------------------------------------------------------------------------------
def test_jsonable_makes_parameters_json_safe():
    class Aoi(BaseModel):
        bbox: tuple[float, float, float, float]
        crs: str

    value = {
        "aoi": Aoi(bbox=(0, 0, 1, 1), crs="EPSG:32633"),
        "n": np.int64(3),
        "x": np.float32(0.5),
        "bad": float("nan"),
        "path": Path("/a/b"),
        1: (1, 2),
    }
    assert jsonable(value) == {
        "aoi": {"bbox": [0.0, 0.0, 1.0, 1.0], "crs": "EPSG:32633"},
        "n": 3,
        "x": 0.5,
        "bad": None,
        "path": "/a/b",
        "1": [1, 2],
    }
    json.dumps(jsonable(value), allow_nan=False)
