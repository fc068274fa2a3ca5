"""Run records, provenance, pruning, resuming and comparison outputs on an object-store
data_root (``s3://``), against a local S3 server (the ``s3_root`` fixture)."""

from __future__ import annotations

import io
import json
from pathlib import Path, PurePosixPath
from types import SimpleNamespace

import fsspec
import numpy as np
import pandas as pd
import pytest
import rasterio
from click.testing import CliRunner
from kedro.io import DataCatalog
from kedro.io.core import Version
from kedro_datasets.json import JSONDataset
from mlflow.tracking import MlflowClient
from upath import UPath

from perceptive.compare import (
    METRICS,
    RESULT,
    _has_result,
    _TrackingStore,
    _write_outputs,
    data_root_of_record,
)
from perceptive.datasets.manifest import SUFFIX as MANIFEST
from perceptive.datasets.remote import as_path
from perceptive.leftovers import sweep_partials
from perceptive.pipeline_registry import LINKS
from perceptive.provenance import write_json_atomic, write_sidecar
from perceptive.pruning import prune_runs
from perceptive.resume import _History, read_provenance
from perceptive.run_listing import list_runs, read_records, runs
from perceptive.run_record import RunVersionTaken, _Run, data_root_of

V1, V2, V3 = "2026-11-26T04.00.00.000Z", "2026-11-26T05.00.00.000Z", "2026-11-26T06.00.00.000Z"


def objects(url: str) -> list[str]:
    """Every object under ``url``, relative to it, as the store lists it now."""
    fs = fsspec.filesystem("s3")
    fs.invalidate_cache()
    root = url.removeprefix("s3://")
    return sorted(key[len(root) + 1 :] for key in fs.find(root))


def put(url: str, content: str | bytes) -> None:
    data = content.encode() if isinstance(content, str) else content
    fsspec.filesystem("s3").pipe(url.removeprefix("s3://"), data)


def record(version: str, outcome: str = "finished", **extra) -> str:
    return json.dumps({"save_version": version, "outcome": outcome, "pipelines": ["p"], **extra})


# --- records -----------------------------------------------------------------------------------
def test_records_on_a_store_are_read_newest_first(s3_root):
    put(f"{s3_root}/runs/{V1}.json", record(V1, parameters={"classifier": {"name": "rf"}}))
    put(f"{s3_root}/runs/{V2}.json", record(V2, parameters={"classifier": {"name": "lgbm"}}))

    assert [r["save_version"] for r in read_records(s3_root)] == [V2, V1]
    table = list_runs(s3_root)
    assert table.index(V2) < table.index(V1)
    assert "classifier.name=lgbm" in table and "classifier.name=rf" in table

    listed = CliRunner().invoke(runs, ["--data-root", s3_root])
    assert listed.exit_code == 0, listed.output
    assert listed.output.index(V2) < listed.output.index(V1)


def test_data_root_of_keeps_a_url_and_roots_a_local_folder_in_the_project(tmp_path):
    def context(root):
        loader = SimpleNamespace(runtime_params={"data_root": root})
        return SimpleNamespace(config_loader=loader, project_path=str(tmp_path))

    remote = data_root_of(context("s3://bucket/x"))
    assert isinstance(remote, UPath) and str(remote) == "s3://bucket/x"
    local = data_root_of(context("data"))
    assert type(local) is type(Path()) and local == tmp_path / "data"  # not a UPath


def test_a_run_claims_its_version_on_a_store_and_records_urls(s3_root):
    metrics = JSONDataset(filepath=f"{s3_root}/07/metrics.json", version=Version(None, V1))
    run = _Run({"run_id": V1}, DataCatalog({"metrics": metrics}), None, as_path(s3_root), None)

    claimed = json.loads(as_path(f"{s3_root}/runs/{V1}.json").read_text())
    assert claimed["data_root"] == s3_root  # the URL, not "s3:/bucket/..."
    assert claimed["outcome"] == "running"
    assert run._dataset("metrics")["path"] == f"{s3_root}/07/metrics.json"  # pruning's key
    with pytest.raises(RunVersionTaken):
        _Run({"run_id": V1}, DataCatalog(), None, as_path(s3_root), None)


# --- provenance --------------------------------------------------------------------------------
def test_json_and_sidecar_are_written_in_place_and_read_back(s3_root):
    written = write_json_atomic(as_path(s3_root) / "a" / "b.json", {"x": [1, 2]})
    assert json.loads(written.read_text()) == {"x": [1, 2]}
    assert objects(s3_root) == ["a/b.json"]  # no .partial- sibling on a store

    dataset = JSONDataset(filepath=f"{s3_root}/07/metrics.json", version=Version(V1, V1))
    dataset.save({"kappa": 0.5})
    provenance = {"run_id": V1, "node": "assess", "parameters": {"k": 1}}
    sidecar = write_sidecar(dataset, "metrics", provenance)
    assert str(sidecar) == f"{s3_root}/07/metrics.json/{V1}/metrics.provenance.json"
    assert read_provenance(dataset, "metrics", V1) == provenance


def test_a_stored_version_counts_for_resuming_once_its_manifest_exists(s3_root):
    dataset = JSONDataset(filepath=f"{s3_root}/07/metrics.json", version=Version(V1, V1))
    history = _History([], DataCatalog({"metrics": dataset}))
    put(f"{s3_root}/07/metrics.json/{V1}/metrics.json", "{}")
    assert not history._on_disk("metrics", V1)  # a save cut short: no manifest
    put(f"{s3_root}/07/metrics.json/{V1}/metrics.json{MANIFEST}", "{}")
    assert history._on_disk("metrics", V1)


def test_provenance_of_a_stored_geotiff_is_read_through_fsspec(s3_root):
    buffer = io.BytesIO()
    profile = {"driver": "GTiff", "width": 4, "height": 4, "count": 1, "dtype": "uint8"}
    with rasterio.MemoryFile() as memory:
        with memory.open(**profile) as tif:
            tif.write(np.zeros((1, 4, 4), "uint8"))
            tif.update_tags(PROVENANCE=json.dumps({"node": "predict"}))
        buffer.write(memory.read())
    put(f"{s3_root}/07/lulc_map.tif/{V1}/lulc_map.tif", buffer.getvalue())
    stub = SimpleNamespace(
        _protocol="s3",
        _get_versioned_path=lambda v: PurePosixPath(
            s3_root.removeprefix("s3://"), "07", "lulc_map.tif", v, "lulc_map.tif"
        ),
    )
    assert read_provenance(stub, "lulc_map", V1) == {"node": "predict"}


# --- pruning and sweeping ----------------------------------------------------------------------
def test_prune_on_a_store_keeps_every_version_a_kept_run_used(s3_root):
    def version(dataset, v):
        folder = f"{s3_root}/02_intermediate/{dataset}.zarr/{v}"
        put(f"{folder}/{dataset}.zarr/zarr.json", "{}")
        put(f"{folder}/{dataset}.zarr/c/0", b"12345")
        put(f"{folder}/{dataset}.zarr{MANIFEST}", "{}")

    def entry(dataset, **versions):
        return {"path": f"{s3_root}/02_intermediate/{dataset}.zarr", **versions}

    for v in (V1, V2, V3):
        version("x", v)
    for v in (V1, V2):
        version("y", v)
    put(f"{s3_root}/runs/{V1}.json", record(V1, datasets={"x": entry("x", saved=V1)}))
    put(f"{s3_root}/runs/{V2}.json", record(V2, datasets={"y": entry("y", saved=V2)}))
    # the newest run made x and read y of the oldest
    kept = {"x": entry("x", saved=V3), "y": entry("y", loaded=V1)}
    put(f"{s3_root}/runs/{V3}.json", record(V3, datasets=kept))
    before = objects(s3_root)

    dry = prune_runs(s3_root, keep=1, dry_run=True)
    assert sorted(p.name for p in dry.versions) == [V1, V2, V2]
    assert dry.bytes == 3 * (2 + 5 + 2)  # zarr.json, the chunk, the manifest
    assert objects(s3_root) == before

    pruned = prune_runs(s3_root, keep=1)
    assert sorted(p.name for p in pruned.records) == [f"{V1}.json", f"{V2}.json"]
    left = objects(s3_root)
    assert {o.split("/")[2] for o in left if o.startswith("02_")} == {V3, V1}
    assert not any(o.startswith(f"02_intermediate/x.zarr/{V1}") for o in left)
    assert any(o.startswith(f"02_intermediate/y.zarr/{V1}/y.zarr/") for o in left)
    assert [o for o in left if o.startswith("runs/")] == [f"runs/{V3}.json"]


def test_the_sweep_removes_unfinished_saves_of_runs_that_are_over(s3_root):
    """A killed save on a store leaves its entry without a manifest: removed, with its
    sidecars, once its run is over; a finished entry, provenance and a live run's stay."""
    import os
    import socket

    over, live = f"{s3_root}/07_model_output/lulc_map.tif/{V1}", f"{s3_root}/07/c.zarr/{V2}"
    put(f"{over}/lulc_map.tif", b"half a map")
    put(f"{over}/lulc_map.tif.aux.xml", "<PAMDataset/>")
    put(f"{s3_root}/05/samples.parquet/{V1}/samples.parquet", b"whole")
    put(f"{s3_root}/05/samples.parquet/{V1}/samples.parquet{MANIFEST}", "{}")
    put(f"{s3_root}/05/samples.parquet/{V1}/samples.provenance.json", "{}")
    put(f"{live}/c.zarr/zarr.json", "{}")  # a run still writing
    put(f"{s3_root}/runs/{V1}.json", record(V1, outcome="running",  # killed: its pid is gone
                                            process={"host": socket.gethostname(), "pid": 2**22 + 7}))  # fmt: skip
    put(f"{s3_root}/runs/{V2}.json", record(V2, outcome="running",
                                            process={"host": socket.gethostname(), "pid": os.getpid()}))  # fmt: skip

    removed = sweep_partials(as_path(s3_root))

    assert sorted(p.name for p in removed) == ["lulc_map.tif", "lulc_map.tif.aux.xml"]
    left = objects(s3_root)
    assert not any(o.startswith("07_model_output/") for o in left)
    assert f"05/samples.parquet/{V1}/samples.parquet" in left
    assert f"05/samples.parquet/{V1}/samples.provenance.json" in left
    assert f"07/c.zarr/{V2}/c.zarr/zarr.json" in left


# --- comparison outputs ------------------------------------------------------------------------
class _Maps:
    """Catalogs that load one land-cover map, or fail to."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def load(self, run, name):
        if self.fail:
            raise RuntimeError("lulc_map is gone")
        return SimpleNamespace(values=np.ones((4, 4), "uint8"))


def _one_variant_table() -> tuple[list, pd.DataFrame]:
    run = SimpleNamespace(
        name="base", version=V1, mlflow_run_id=None, variant=SimpleNamespace(changes=lambda: "")
    )
    row = {"variant": "base", "changes": "-", "_overrides": "", "run": V1, "_mlflow_run": None}
    for key in METRICS:
        row |= {f"_{key}": 0.9, f"_{key}_ci95": [0.8, 0.95]}
    row |= {"_mcnemar": None, "_links": {k: {"wall_s": 1.0, "peak_mib": 2.0, "made_by": V1}
                                         for k in LINKS}}  # fmt: skip
    return [run], pd.DataFrame([row])


def test_comparison_files_are_written_in_place_on_a_store_and_logged(s3_root, tmp_path):
    compared, table = _one_variant_table()
    assert isinstance(data_root_of_record({"data_root": s3_root}), UPath)

    folder = _write_outputs(compared, table, _Maps(), data_root_of_record({"data_root": s3_root}))
    assert str(folder).startswith(f"{s3_root}/08_reporting/compare/")
    written = objects(str(folder))
    assert written == ["comparison.csv", "comparison.md", "metrics.png"]
    assert pd.read_csv(io.StringIO((folder / "comparison.csv").read_text()))["run"][0] == V1

    store = object.__new__(_TrackingStore)  # the tracking store alone, without a session
    store.client, store.experiment = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db"), "test"
    store.client.create_experiment("test", artifact_location=(tmp_path / "mlartifacts").as_uri())
    run_id = store.log_comparison(compared, table, folder)
    assert sorted(a.path for a in store.client.list_artifacts(run_id)) == written


def test_a_stored_map_is_a_result_once_its_manifest_exists(s3_root):
    found = {"data_root": s3_root, "datasets": {name: {"saved": V1} for name in RESULT}}
    lulc = f"{s3_root}/07_model_output/lulc_map.tif/{V1}/lulc_map.tif"
    put(lulc, b"tif")
    assert not _has_result(found)  # a save cut short, or a prune
    put(lulc + MANIFEST, "{}")
    assert _has_result(found)


def test_a_failed_comparison_leaves_nothing_on_the_store(s3_root):
    compared, table = _one_variant_table()
    with pytest.raises(RuntimeError, match="lulc_map is gone"):
        _write_outputs(compared, table, _Maps(fail=True), as_path(s3_root))
    assert objects(s3_root) == []
