"""Shared fixtures: run the real Kedro project in a temporary data folder on a small demo AOI."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")

PROJECT = Path(__file__).resolve().parents[1]

#: A 256 x 256 px demo AOI (the top-left corner of the default one), 4 tiles of 128 px.
SMALL_AOI = {"bbox": [500000, 5097440, 502560, 5100000], "crs": "EPSG:32633"}
SMALL_RUN = {
    "aoi": SMALL_AOI,
    "tile_size": 128,
    "sampling": {"n_samples": 12000, "block_size": 32},
    "classifier": {"n_estimators": 80},
}


def run_kedro(data_root: Path, pipelines: list[str] | None = None, load_versions=None, **params):
    """Run pipelines of the project with ``data_root`` and parameter overrides; return the
    session's catalog so tests can load what was written."""
    bootstrap_project(PROJECT)
    runtime = {"data_root": str(data_root), **params}
    with KedroSession.create(project_path=PROJECT, runtime_params=runtime) as session:
        session.run(pipeline_names=pipelines, load_versions=load_versions or {})
        return session.load_context().catalog


@pytest.fixture(scope="session")
def small_run(tmp_path_factory):
    """The whole workflow once on the small demo AOI; (data_root, catalog)."""
    data_root = tmp_path_factory.mktemp("data")
    catalog = run_kedro(data_root, **SMALL_RUN)
    return data_root, catalog


def kill_when(child: subprocess.Popen, ready: Callable[[], bool], timeout: float, what: str):
    """SIGKILL ``child`` as soon as ``ready()`` holds (polled); fail the test if the child ends
    or ``timeout`` s pass first (``what`` says what was awaited). Waits for the child to die."""
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and child.poll() is None:
            if ready():
                break
            time.sleep(0.005)
        else:
            pytest.fail(f"{what} never happened (or the run finished before it could be killed)")
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL


@pytest.fixture(scope="session")
def s3_server():
    """A local S3 server (moto's, speaking the real S3 protocol over HTTP) for the whole
    session; the process's AWS environment points at it, as a user's would at their store.
    Yields the endpoint URL. Runs started as subprocesses inherit the environment."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {
        "AWS_ACCESS_KEY_ID": "perceptive-test",
        "AWS_SECRET_ACCESS_KEY": "perceptive-test-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield endpoint
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()


@pytest.fixture
def s3_root(s3_server) -> str:
    """A new, empty bucket on the local S3 server, as a data_root URL ``s3://<bucket>/data``."""
    import fsspec

    bucket = f"perceptive-{uuid.uuid4().hex[:12]}"
    fs = fsspec.filesystem("s3")
    fs.mkdir(bucket)
    fs.invalidate_cache()
    return f"s3://{bucket}/data"
