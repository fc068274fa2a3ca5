"""The dask scheduler setting: the workflow on a LocalCluster gives the threaded run's outputs,
a bad setting stops the run before anything runs, and what a run opens it closes."""

from __future__ import annotations

import socket

import dask
import numpy as np
import psutil
import pytest
import rasterio
import xarray as xr
from distributed import Client, LocalCluster
from distributed.client import _get_global_client
from kedro.io import DataCatalog, MemoryDataset

from perceptive.config import ParameterError
from perceptive.engine import DaskEngine, DaskHooks, EngineError
from tests.conftest import SMALL_RUN, run_kedro

CLUSTER = {"scheduler": "local_cluster", "n_workers": 2, "threads_per_worker": 1}


def _children() -> set[int]:
    """This process's multiprocessing children (dask workers), not Python's resource tracker
    (started with the first worker, it stays until the interpreter exits)."""
    return {
        p.pid
        for p in psutil.Process().children(recursive=True)
        if "spawn_main" in " ".join(p.cmdline())
    }


@pytest.fixture(scope="module")
def threads_run(tmp_path_factory):
    data_root = tmp_path_factory.mktemp("threads")
    return data_root, run_kedro(data_root, **SMALL_RUN)


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory):
    """The same run on a 2-worker LocalCluster; also the child processes before and after.
    Its classifier is compiled by tl2cgen: the workers get the compiled model by its
    library's path, as a loaded one cannot be sent to another process. The threaded run
    predicts with the default, quickscorer: the two engines give the same map."""
    data_root = tmp_path_factory.mktemp("cluster")
    before = _children()
    catalog = run_kedro(data_root, **SMALL_RUN, dask=CLUSTER, compiled_model={"enabled": True, "engine": "tl2cgen"})
    return data_root, catalog, before, _children()


def _map(data_root, name):
    (path,) = (data_root / "07_model_output").glob(f"{name}/*/{name}")
    with rasterio.open(path) as src:
        colours = src.colormap(1) if name == "lulc_map.tif" else None
        return src.read(1), src.profile, colours, src.tags()


def _results(metrics: dict) -> dict:
    """The metrics without what names the run (provenance) or times it."""
    model = {k: v for k, v in metrics["model"].items() if k != "fit_seconds"}
    return {**metrics, "provenance": None, "model": model}


def test_local_cluster_gives_the_threaded_run_outputs(threads_run, cluster_run):
    (threads_root, threads), (cluster_root, cluster, *_) = threads_run, cluster_run
    for name in ("lulc_map.tif", "confidence.tif"):
        (a, profile_a, colours_a, _), (b, profile_b, colours_b, _) = (
            _map(threads_root, name),
            _map(cluster_root, name),
        )
        np.testing.assert_array_equal(a, b)  # pixel-identical
        assert profile_a == profile_b and colours_a == colours_b
    assert _results(threads.load("validation_metrics")) == _results(
        cluster.load("validation_metrics")
    )
    for cube in ("features_cube", "masks_cube"):
        xr.testing.assert_equal(threads.load(cube), cluster.load(cube))
    assert cluster.load("prediction_cube").attrs["predictor"] == "tl2cgen"
    assert threads.load("prediction_cube").attrs["predictor"] == "quickscorer"


def test_cluster_is_closed_after_the_run(cluster_run):
    *_, before, after = cluster_run
    assert after <= before  # no worker process (nanny or worker) left behind
    assert _get_global_client() is None  # no client left as dask's default
    assert dask.config.get("scheduler", None) is None


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"scheduler": "address"}, r"dask .*scheduler is address but no address is given"),
        ({"address": "tcp://10.0.0.5:8786"}, r"address 'tcp://10.0.0.5:8786' is only used with"),
        ({"scheduler": "processes"}, r"dask.scheduler = 'processes'.*'threads', 'local_cluster'"),
        ({"memory_limit": "lots"}, r"dask.memory_limit = 'lots'.*not a size"),
        ({"n_worker": 4}, r"dask.n_worker .*unknown key. Did you mean 'n_workers'"),
    ],
)
def test_bad_engine_setting_is_refused_before_anything_runs(tmp_path, setting, message):
    before = _children()
    with pytest.raises(ParameterError, match=message):
        run_kedro(tmp_path, **SMALL_RUN, dask={**CLUSTER, **setting})
    assert not any(tmp_path.glob("0*"))  # no dataset written
    assert _children() <= before  # no cluster started


def _catalog(dask_settings: dict) -> DataCatalog:
    return DataCatalog({"parameters": MemoryDataset({"dask": dask_settings})})


def _open(hooks: DaskHooks, catalog: DataCatalog) -> None:
    """Drive the ``before_pipeline_run`` wrapper as pluggy would, with no inner hook."""
    wrapper = hooks.before_pipeline_run(run_params={}, pipeline=None, catalog=catalog)
    next(wrapper)
    with pytest.raises(StopIteration):
        wrapper.send(None)


def test_address_uses_the_cluster_and_leaves_it_running():
    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        hooks = DaskHooks()
        _open(hooks, _catalog({"scheduler": "address", "address": cluster.scheduler_address}))
        client = hooks.engine.client
        assert dask.base.get_scheduler() == client.get  # the run's lazy work goes there
        assert int(dask.array.ones(10, chunks=5).sum().compute()) == 10
        hooks.after_pipeline_run()
        assert client.status == "closed" and _get_global_client() is None
        with Client(cluster) as other:  # the cluster is still there
            assert other.submit(sum, [1, 2]).result() == 3


def test_local_cluster_is_closed_when_the_run_fails():
    before = _children()
    hooks = DaskHooks()
    _open(hooks, _catalog({"scheduler": "local_cluster", "n_workers": 1}))
    assert _children() - before  # a worker process runs
    assert hooks.engine.client.get == dask.base.get_scheduler()
    hooks.on_pipeline_error()
    assert hooks.engine is None and _get_global_client() is None
    assert _children() <= before


def test_threads_start_nothing():
    with DaskEngine({"scheduler": "threads"}) as engine:
        assert engine.client is None and dask.config.get("scheduler", None) is None


def test_unreachable_scheduler_is_a_clear_error():
    with socket.socket() as sock:  # a free port, where nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    engine = DaskEngine({"scheduler": "address", "address": f"tcp://127.0.0.1:{port}"})
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        with pytest.raises(EngineError, match=r"Cannot reach the dask scheduler at 'tcp://"):
            engine.__enter__()
    assert _get_global_client() is None


def test_local_cluster_leaves_this_process_environment_alone(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    with DaskEngine({"scheduler": "local_cluster", "n_workers": 1}) as engine:
        assert engine.client.run(lambda: __import__("os").environ.get("OMP_NUM_THREADS"))
        assert "OMP_NUM_THREADS" not in __import__("os").environ
