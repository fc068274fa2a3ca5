"""The two web pages a person reads the project through, opened in a real browser: kedro-viz
shows every pipeline, and the MLflow UI compares two runs that differ in a parameter.

Both pages are JavaScript apps of other packages fed by our project (kedro-viz's static site
from our pipelines and catalog; MLflow's UI over our tracking store), so only a browser shows
that they render what we claim. Chromium is Debian's (``.ci/run`` installs it), driven by
Playwright without Playwright's own browser downloads, headless and offline. Screenshots of
both pages are written to ``tests/artifacts/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import mlflow
import pytest
import yaml
from playwright.sync_api import sync_playwright

from perceptive.pipeline_registry import LINKS
from tests.conftest import PROJECT, SMALL_RUN, run_kedro

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install chromium; .ci/run does)"
)
#: Headless on a closed network: without the background-networking flags Chromium keeps
#: trying to reach Google's hosts.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
ARTIFACTS = PROJECT / "tests" / "artifacts"
#: kedro-viz layers, in order: the data folders 01_raw ... 08_reporting.
LAYERS = ["raw", "intermediate", "primary", "feature", "model_input", "models", "model_output",
          "reporting"]  # fmt: skip
TIMEOUT_MS = 60_000
QUIET = {"KEDRO_DISABLE_TELEMETRY": "true", "MLFLOW_DISABLE_TELEMETRY": "true"}


def node_names(link: str) -> list[str]:
    module = importlib.import_module(f"perceptive.pipelines.{link}")
    return [node.name for node in module.create_pipeline().nodes]


def test_every_dataset_is_in_the_layer_of_its_folder():
    catalog = yaml.safe_load((PROJECT / "conf" / "base" / "catalog.yml").read_text())
    for name, entry in catalog.items():
        path = entry.get("filepath") or entry["path"]
        folder = re.search(r"/0(\d)_", path)
        expected = LAYERS[int(folder[1]) - 1]
        if name == "reference_labels":  # made from l1c_cube: see catalog.yml
            expected = "intermediate"
        assert entry.get("metadata", {}).get("kedro-viz", {}).get("layer") == expected, name


@pytest.fixture(scope="module")
def page():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield browser.new_page(viewport={"width": 1600, "height": 1000})
        finally:
            browser.close()


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / name)


# --------------------------------------------------------------------------- kedro-viz


@pytest.fixture(scope="module")
def viz_site(tmp_path_factory) -> Path:
    """``kedro viz build`` in a copy of the project (it writes ``./build``), so the project
    folder is left as it was. The copy has no data folder and no local configuration."""
    project = tmp_path_factory.mktemp("viz") / "project"
    project.mkdir()
    for name in ("pyproject.toml", ".telemetry"):
        shutil.copy2(PROJECT / name, project)
    ignore = shutil.ignore_patterns("local", "__pycache__")
    shutil.copytree(PROJECT / "conf", project / "conf", ignore=ignore)
    (project / "conf" / "local").mkdir()
    shutil.copytree(PROJECT / "src", project / "src", ignore=ignore)
    done = subprocess.run(
        [sys.executable, "-m", "kedro", "viz", "build"],
        cwd=project, env={**os.environ, **QUIET}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "circular dependency" not in done.stdout + done.stderr  # layers would be hidden
    assert not (project / "data").exists()  # it reads the project, it runs nothing
    return project / "build"


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@contextlib.contextmanager
def served(folder: Path):
    """``folder`` served on 127.0.0.1 from a thread; yields the base URL."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def shown_nodes(page, names: list[str]) -> set[str]:
    """Wait until every name in ``names`` is a node of the drawn graph; all nodes drawn."""
    page.wait_for_function(
        """names => {
            const shown = [...document.querySelectorAll('.pipeline-node')]
                .map(node => node.textContent.trim());
            return names.every(name => shown.includes(name));
        }""",
        arg=names,
        timeout=TIMEOUT_MS,
    )
    return {text.strip() for text in page.locator(".pipeline-node").all_text_contents()}


@needs_chromium
def test_kedro_viz_shows_every_pipeline_with_layers_and_tags(viz_site, page):
    main = json.loads((viz_site / "api" / "main").read_text())
    assert main["layers"] == LAYERS
    assert {"swappable", "source", "classifier"} <= {tag["id"] for tag in main["tags"]}
    every = {link: node_names(link) for link in LINKS}
    assert {"fetch_l1c", "compute_masks", "train", "predict"} <= {
        name for names in every.values() for name in names
    }
    with served(viz_site) as url:
        for link, names in every.items():
            page.goto(f"{url}/?pid={link}")
            shown = shown_nodes(page, names)
            others = {name for other, ns in every.items() if other != link for name in ns}
            assert not shown & others, f"{link}: nodes of other pipelines drawn"
        page.goto(f"{url}/?pid=__default__")  # the whole workflow (plain / shows the last one)
        shown_nodes(page, [name for names in every.values() for name in names])
        for layer in LAYERS:
            page.get_by_text(layer, exact=True).first.wait_for(timeout=TIMEOUT_MS)
        hint = page.locator(".feature-hints__close")  # the feature tour, over the graph
        if hint.count():
            hint.click()
        screenshot(page, "kedro_viz.png")


# --------------------------------------------------------------------------- MLflow UI


@pytest.fixture(scope="module")
def two_runs(small_run, tmp_path_factory) -> tuple[Path, list[str]]:
    """A copy of the small run's data folder, tracking store included, where `modelling` ran
    once more with another classifier; (data_root, the two MLflow run ids)."""
    source, _ = small_run
    data_root = tmp_path_factory.mktemp("mlflow") / "data"
    shutil.copytree(source, data_root)
    # The experiment keeps the artifact folder it was made with (the small run's); the new
    # run's artifacts go to the copy's own.
    with contextlib.closing(sqlite3.connect(data_root / "mlflow.db")) as db, db:
        db.execute("UPDATE experiments SET artifact_location = ?", [str(data_root / "mlartifacts")])
    before = set((data_root / "runs").glob("*.json"))
    run_kedro(data_root, ["modelling"], **{**SMALL_RUN, "classifier": {"n_estimators": 20}})
    (added,) = set((data_root / "runs").glob("*.json")) - before
    first = min(before)  # the small run's own record: the oldest
    ids = [json.loads(path.read_text())["mlflow"]["run_id"] for path in (first, added)]
    return data_root, ids


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_ui(two_runs, tmp_path_factory):
    """``mlflow server`` over the copy's store, in a process group of its own (it starts
    uvicorn as a child), stopped at the end; yields its base URL."""
    data_root, _ = two_runs
    port = free_port()
    log = tmp_path_factory.mktemp("mlflow-server") / "server.log"
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
               f"sqlite:///{data_root}/mlflow.db", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1"]  # fmt: skip
    # No job runner: it would start seven background consumers that nothing here uses.
    env = {**os.environ, **QUIET, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(log, "w") as out:
        server = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start:\n{log.read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


@needs_chromium
def test_mlflow_ui_compares_two_runs_and_their_parameter(two_runs, mlflow_ui, page):
    data_root, ids = two_runs
    client = mlflow.MlflowClient(f"sqlite:///{data_root}/mlflow.db")
    runs = [client.get_run(run_id) for run_id in ids]
    values = [run.data.params["classifier.n_estimators"] for run in runs]
    assert values == ["80", "20"]  # what the page must show
    query = urllib.parse.urlencode(
        {"runs": json.dumps(ids), "experiments": json.dumps([runs[0].info.experiment_id])}
    )
    page.goto(f"{mlflow_ui}/#/compare-runs?{query}")
    page.get_by_text("Comparing 2 Runs").wait_for(timeout=TIMEOUT_MS)
    for run_id in ids:
        page.get_by_text(run_id).first.wait_for(timeout=TIMEOUT_MS)
    row = page.locator("tr", has=page.get_by_text("classifier.n_estimators", exact=True))
    row.first.wait_for(timeout=TIMEOUT_MS)
    assert row.first.locator("td").all_text_contents() == values
    screenshot(page, "mlflow_compare.png")
