"""The whole workflow with data_root on an object store (a local S3 server speaking the real
protocol), on a dask LocalCluster: the same map as on local disk, every version finished with its manifest, the run
record on the store, and a run killed mid-save leaving nothing that a later run would read."""

from __future__ import annotations

import os
import subprocess

import fsspec
import numpy as np
import pytest

from perceptive.datasets.manifest import SUFFIX
from perceptive.datasets.remote import as_path
from perceptive.run_listing import read_records
from tests.conftest import PROJECT, SMALL_RUN, kill_when, run_kedro
from tests.test_engine import CLUSTER, _results
from tests.test_resume import kedro_command


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("PERCEPTIVE_CACHE", str(cache))
    return cache


def _store_keys(root: str) -> list[str]:
    fs = fsspec.filesystem("s3")
    fs.invalidate_cache()
    return fs.find(root.removeprefix("s3://"))


def test_the_workflow_on_an_object_store_makes_the_local_run_s_map(s3_root, small_run, own_cache):
    """On a 2-worker LocalCluster, whose worker processes write the Zarr chunks to the store
    themselves, against the threaded run on local disk: the same map and metrics."""
    catalog = run_kedro(s3_root, **SMALL_RUN, dask=CLUSTER)
    _, local_catalog = small_run
    np.testing.assert_array_equal(
        catalog.load("lulc_map").values, local_catalog.load("lulc_map").values
    )
    assert _results(catalog.load("validation_metrics")) == _results(
        local_catalog.load("validation_metrics")
    )

    keys = _store_keys(s3_root)
    (record,) = read_records(as_path(s3_root))
    assert record["outcome"] == "finished" and record["data_root"] == s3_root
    version = record["save_version"]
    saved = {name: entry["path"] for name, entry in record["datasets"].items() if entry["saved"]}
    assert {"l1c_cube", "features_cube", "samples", "model", "lulc_map"} <= set(saved)
    for name, where in saved.items():  # every output the run saved is finished: its manifest
        assert where.startswith(s3_root), name
        stored = where.removeprefix("s3://")
        assert f"{stored}/{version}/{stored.rsplit('/', 1)[1]}{SUFFIX}" in keys, name
    assert not any(".partial-" in k for k in keys)
    # what stays on this machine: the MLflow store and the sources' staging, in the mirror
    mirror = own_cache / "remote" / "s3" / s3_root.removeprefix("s3://")
    assert (mirror / "mlflow.db").exists()
    assert (mirror / "01_raw" / "staging").is_dir()
    # the store's secret key, in the environment of the run, is written nowhere
    secret = os.environ["AWS_SECRET_ACCESS_KEY"].encode()
    fs = fsspec.filesystem("s3")
    assert not [k for k in keys if secret in fs.cat_file(k)]
    assert not [p for p in own_cache.rglob("*") if p.is_file() and secret in p.read_bytes()]


def test_a_run_killed_while_writing_to_the_store_leaves_no_version(s3_root, own_cache, tmp_path):
    """kill -9 while the L1C cube's chunks are being uploaded: its objects are there, its
    manifest is not, so no load takes it; the next run removes them and makes the cube."""
    runtime = {"data_root": s3_root, "aoi": SMALL_RUN["aoi"], "tile_size": 128}
    kedro, env = kedro_command(tmp_path, runtime)
    child = subprocess.Popen([*kedro, "--pipelines", "ingestion"], cwd=PROJECT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip

    def cube_chunks_arriving() -> bool:
        keys = _store_keys(f"{s3_root}/02_intermediate/l1c_cube.zarr")
        return any("/bands/c/" in k for k in keys)

    kill_when(child, cube_chunks_arriving, timeout=240, what="the L1C cube's upload")
    keys = _store_keys(f"{s3_root}/02_intermediate/l1c_cube.zarr")
    assert keys and not any(k.endswith(SUFFIX) for k in keys)  # killed before it finished

    catalog = run_kedro(s3_root, pipelines=["ingestion"], aoi=SMALL_RUN["aoi"], tile_size=128)
    cube = catalog.load("l1c_cube")
    assert cube.sizes["y"] == cube.sizes["x"] == 256
    assert cube["bands"].isel(time=-1).values.any()  # every chunk there and readable
    versions = {k.split("/l1c_cube.zarr/")[1].split("/")[0] for k in _store_keys(s3_root)
                if "/l1c_cube.zarr/" in k}  # fmt: skip
    finished = {v for v in versions
                if any(k.endswith(f"{v}/l1c_cube.zarr{SUFFIX}") for k in _store_keys(s3_root))}  # fmt: skip
    assert len(finished) == 1 and versions == finished  # the killed save was swept away
