"""The run record: what each ``kedro run`` did, kept as ``<data_root>/runs/<save_version>.json``
and in the run's MLflow run, and the provenance written into every artefact it saved.

Why: a map on disk must lead back to the parameters, input versions and code that made it,
and two runs must be comparable from their records alone (``kedro runs``, run_listing.py),
without re-running anything or trusting whatever is newest on disk.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import logging
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from numbers import Real
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import mlflow
from kedro.config import MissingConfigException
from kedro.framework.hooks import hook_impl
from kedro.io import DataCatalog
from kedro.io.core import AbstractVersionedDataset
from kedro.pipeline import Pipeline
from kedro.pipeline.node import Node
from mlflow.entities import Metric, RunTag

from perceptive import provenance
from perceptive.datasets.remote import dataset_path, is_remote
from perceptive.datasets.storage import check_writable
from perceptive.leftovers import sweep_partials
from perceptive.provenance import jsonable, write_json_atomic
from perceptive.run_listing import rooted
from perceptive.sources import DEMO_MARK, is_demo
from perceptive.variants import parameters_hash

log = logging.getLogger(__name__)

#: Packages whose versions go into every record.
PACKAGES = (
    "kedro", "kedro-datasets", "kedro-mlflow", "mlflow", "numpy", "xarray", "dask", "zarr",
    "rasterio", "geopandas", "scikit-learn", "lightgbm", "s2cloudless", "pydantic",
)  # fmt: skip

#: Datasets whose numeric top-level fields are logged as MLflow metrics (any namespace).
METRICS_DATASET = "validation_metrics"


class RunRecordHooks:
    """Writes the run record and the artefacts' provenance, and logs the record to MLflow.

    Order with kedro-mlflow's ``MlflowHook`` (registered after this one in settings.py; pluggy
    calls later-registered hooks first): ``before_pipeline_run`` here wraps the others, so the
    MLflow run MlflowHook opens exists after its ``yield``; ``after_pipeline_run`` and
    ``on_pipeline_error`` are ``tryfirst``, so the record is logged before MlflowHook closes
    the run. Meant for the SequentialRunner: peak memory is per process, and ParallelRunner's
    workers have hook instances of their own.
    """

    def __init__(self) -> None:
        self._project_path: Path | None = None
        self._data_root: Path | None = None
        self._env: str | None = None
        self._run: _Run | None = None

    # --- context and tracking store ----------------------------------------------------------
    @hook_impl(tryfirst=True)
    def after_context_created(self, context) -> None:
        # tryfirst: before MlflowHook reads mlflow.yml and opens the tracking store
        self._project_path = Path(context.project_path)
        self._data_root = data_root_of(context)
        # before anything (the MLflow store too) writes there: an unwritable data_root is
        # one clear error, not a NotADirectoryError from deep inside MLflow. Low free space is
        # told once, by the run's own check of its output folders (InputCheckHooks).
        check_writable([self._data_root])
        self._env = context.env or getattr(context.config_loader, "default_run_env", None)
        _anchor_sqlite_store(context)

    # --- the run -----------------------------------------------------------------------------
    @hook_impl(wrapper=True)
    def before_pipeline_run(self, run_params: dict, pipeline: Pipeline, catalog: DataCatalog):
        # A wrapper around every hook's before_pipeline_run: MlflowHook opens the MLflow run
        # there, and a check that raises there (InputCheckHooks) is not an on_pipeline_error.
        already_active = mlflow.active_run()
        self._run = run = _Run(run_params, catalog, self._project_path, self._data_root, self._env)
        try:
            result = yield
        except Exception as error:
            started = mlflow.active_run()
            run.attach_mlflow(started)
            self._finish(error, catalog)
            if started and not already_active:  # nobody else will close it
                mlflow.end_run("FAILED")
            raise
        run.attach_mlflow(mlflow.active_run())
        run.write()
        return result

    @hook_impl(tryfirst=True)
    def after_pipeline_run(self, catalog: DataCatalog) -> None:
        self._finish(None, catalog)

    @hook_impl(tryfirst=True)
    def on_pipeline_error(self, error: Exception, catalog: DataCatalog) -> None:
        self._finish(error, catalog)

    def _finish(self, error: Exception | None, catalog: DataCatalog) -> None:
        run, self._run = self._run, None
        if run is None:
            return
        parameters = catalog.load("parameters") if "parameters" in catalog else {}
        run.finish(error, parameters)
        run.write()
        run.log_to_mlflow()

    # --- nodes: time, memory, parameters and inputs ------------------------------------------
    @hook_impl
    def before_dataset_loaded(self, node: Node) -> None:
        if self._run:
            self._run.start_node(node)

    @hook_impl
    def after_dataset_loaded(self, dataset_name: str, node: Node) -> None:
        if self._run:
            self._run.loaded(dataset_name)

    @hook_impl
    def before_node_run(self, node: Node, inputs: dict[str, Any]) -> None:
        if self._run:
            self._run.start_node(node)
            self._run.trace_lineage(node, inputs)

    @hook_impl
    def after_node_run(self, node: Node) -> None:
        if self._run:
            self._run.end_node(node)

    @hook_impl
    def on_node_error(self, error: Exception, node: Node) -> None:
        if self._run:
            self._run.end_node(node, error)

    # --- outputs: provenance, versions, metrics ----------------------------------------------
    @hook_impl
    def before_dataset_saved(self, dataset_name: str, data: Any, node: Node) -> None:
        if self._run:
            self._run.before_save(dataset_name, data, node)

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node: Node) -> None:
        if self._run:
            self._run.after_save(dataset_name, data, node)


class _Run:
    """State of one pipeline run and its record (a plain dict, written as JSON)."""

    def __init__(  # noqa: PLR0913
        self, run_params: dict, catalog: DataCatalog, project_path: Path, data_root: Path, env
    ) -> None:
        self.catalog = catalog
        self.data_root = data_root
        self.mlflow_run_id: str | None = None
        self._t0 = time.perf_counter()
        self._node_t0: dict[str, float] = {}
        self._unsaved: dict[str, set[str]] = {}  # node -> its outputs not saved yet
        self._per_node_peak = _reset_peak_memory()
        self._node_lineage: dict[str, dict] = {}  # node -> {"parameters", "inputs"}
        self._memory_lineage: dict[str, dict] = {}  # in-memory dataset -> its node's lineage
        self._sidecars: dict[str, dict] = {}  # dataset -> provenance to write after the save
        # Kedro saves every versioned dataset of a session under the session id
        save_version = run_params["run_id"]
        self.record: dict[str, Any] = {
            "run_id": run_params["run_id"],
            "save_version": save_version,
            "started": _now(),
            "finished": None,
            "wall_s": None,
            "outcome": "running",
            "error": None,
            "pipelines": list(run_params.get("pipeline_names") or ["__default__"]),
            "env": env,
            "runtime_params": jsonable(run_params.get("runtime_params") or {}),
            "load_versions": jsonable(run_params.get("load_versions") or {}),
            # a store's URL as given (a UPath's str; as_posix would be its key alone)
            "data_root": str(data_root) if is_remote(data_root) else data_root.as_posix(),
            "nodes": {},
            "datasets": {},
            "parameters": None,
            "metrics": {},
            "git": _git_state(project_path),
            "python": platform.python_version(),
            "packages": {name: _version(name) for name in PACKAGES},
            "peak_memory_scope": "node" if self._per_node_peak else "process",
            "mlflow": None,
            # true when any data of this run came from the synthetic demo source
            DEMO_MARK: _demo_source(catalog),
            # which process writes it: the next run can tell a killed run from a live one
            "process": {"host": socket.gethostname(), "pid": os.getpid()},
        }
        self._claim_version()
        sweep_partials(self.data_root)

    def _claim_version(self) -> None:
        """Take this run's version for good, so no two runs ever share one: Kedro stamps
        versions to the millisecond, and two runs started in the same one on one data_root
        would write into each other's version folders."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if is_remote(self.path):
                # fsspec's "create" is a conditional write where the store has one (S3's
                # If-None-Match: *, refused if the object exists); elsewhere fsspec checks,
                # then writes, and two runs within one round trip could both pass
                content = json.dumps(jsonable(self.record), indent=2).encode()
                self.path.fs.pipe_file(self.path.path, content, mode="create")
            else:
                with open(self.path, "x") as claim:  # exclusive: fails if the file exists
                    json.dump(jsonable(self.record), claim, indent=2)
        except FileExistsError:
            raise RunVersionTaken(
                f"Version {self.record['save_version']} is already taken by another run on "
                f"{self.data_root} (its record is {self.path}). Two runs started in the same "
                "millisecond; start this one again."
            ) from None

    @property
    def path(self) -> Path:
        return self.data_root / "runs" / f"{self.record['save_version']}.json"

    def write(self) -> None:
        write_json_atomic(self.path, self.record)

    def attach_mlflow(self, active_run) -> None:
        """Log to this MLflow run (None when tracking is off for these pipelines)."""
        if active_run is not None:
            self.mlflow_run_id = active_run.info.run_id
            uri = _without_credentials(mlflow.get_tracking_uri())
            self.record["mlflow"] = {"tracking_uri": uri, "run_id": self.mlflow_run_id}

    # nodes
    def start_node(self, node: Node) -> None:
        if node.name in self._node_t0:
            return
        if self._per_node_peak:
            _reset_peak_memory()
        self._node_t0[node.name] = time.perf_counter()
        self._unsaved[node.name] = set(node.outputs)
        self.record["nodes"][node.name] = {"wall_s": None, "peak_mib": None, "outcome": "running"}

    def end_node(self, node: Node, error: Exception | None = None) -> None:
        """Called after the node ran and again after each of its saves: wall time and peak
        memory cover loading, running and saving (lazy dask outputs are computed on save).
        Kedro saves the outputs after ``after_node_run``, so the node is "finished" only once
        all are saved: a killed run's record must not claim outputs it never wrote."""
        entry = self.record["nodes"][node.name]
        entry["wall_s"] = round(time.perf_counter() - self._node_t0[node.name], 3)
        entry["peak_mib"] = _peak_memory_mib()
        done = not self._unsaved.get(node.name)
        entry["outcome"] = "failed" if error else "finished" if done else "running"
        self.write()  # so a killed run's record says what it finished (resuming reads it)

    def trace_lineage(self, node: Node, inputs: dict[str, Any]) -> None:
        """The parameters and input versions behind this node's outputs. In-memory inputs pass
        on the lineage of the node that made them, so ``l1c_cube`` also names the AOI
        parameters that ``define_aoi`` turned into its in-memory grid."""
        parameters: dict[str, Any] = {}
        versions: dict[str, str] = {}
        for name, value in inputs.items():
            if name == "parameters":
                parameters.update(jsonable(value))
            elif name.startswith("params:"):
                parameters[name.removeprefix("params:")] = jsonable(value)
            elif name in self._memory_lineage:  # in memory, made earlier in this run
                parameters.update(self._memory_lineage[name]["parameters"])
                versions.update(self._memory_lineage[name]["inputs"])
            elif version := self._version_of(name):
                versions[name] = version
        lineage = {"parameters": parameters, "inputs": dict(sorted(versions.items()))}
        if any(is_demo(value) for value in inputs.values()):
            self.record[DEMO_MARK] = True
        self._node_lineage[node.name] = lineage
        # what the node's outputs were made from: resuming compares it with a new run's
        self.record["nodes"].setdefault(node.name, {})["lineage"] = lineage

    def _version_of(self, name: str) -> str | None:
        """The version of ``name`` used in this run: the one it saved, else the one it loaded."""
        entry = self.record["datasets"].get(name, {})
        return entry.get("saved") or entry.get("loaded")

    # datasets
    def loaded(self, name: str) -> None:
        dataset = self.catalog.get(name)
        if isinstance(dataset, AbstractVersionedDataset) and (v := dataset.resolve_load_version()):
            self._dataset(name)["loaded"] = v

    def before_save(self, name: str, data: Any, node: Node) -> None:
        lineage = self._node_lineage.get(node.name, {"parameters": {}, "inputs": {}})
        dataset = self.catalog.get(name)
        version = provenance.saved_version(dataset)
        if version is None:  # in memory: its consumers inherit the lineage
            self._memory_lineage[name] = lineage
            return
        record = {
            "run_id": self.record["run_id"],
            "save_version": version,
            "dataset": name,
            "node": node.name,
            "parameters": lineage["parameters"],
            "inputs": lineage["inputs"],
        }
        if self.record[DEMO_MARK]:
            record[DEMO_MARK] = True  # says "synthetic" wherever the artefact goes
        if not provenance.embed(data, dataset, record):
            self._sidecars[name] = record

    def after_save(self, name: str, data: Any, node: Node) -> None:
        dataset = self.catalog.get(name)
        version = provenance.saved_version(dataset)
        if version is not None:
            self._dataset(name)["saved"] = version
            if name in self._sidecars:
                provenance.write_sidecar(dataset, name, self._sidecars.pop(name))
        self._unsaved.get(node.name, set()).discard(name)
        if name.rsplit(".", 1)[-1] == METRICS_DATASET and isinstance(data, dict):
            self._log_metrics(name, data)
        self.end_node(node)

    def _dataset(self, name: str) -> dict:
        entry = self.record["datasets"].setdefault(name, {"loaded": None, "saved": None})
        dataset = self.catalog.get(name)
        if "path" not in entry and isinstance(dataset, AbstractVersionedDataset):
            # where its versions are, for pruning: a store's URL, a local absolute path
            where = dataset_path(dataset)
            entry["path"] = str(where) if is_remote(where) else str(where.resolve())
        return entry

    def _log_metrics(self, name: str, data: dict) -> None:
        prefix = name[: -len(METRICS_DATASET)]  # "" or "<namespace>."
        metrics = {
            f"{prefix}{key}": float(value)
            for key, value in data.items()
            if isinstance(value, Real) and not isinstance(value, bool)
        }
        self.record["metrics"].update(jsonable(metrics))
        if self.mlflow_run_id:
            mlflow.MlflowClient().log_batch(
                self.mlflow_run_id,
                metrics=[Metric(k, v, _ms(), 0) for k, v in metrics.items()],
            )

    # the end
    def finish(self, error: Exception | None, parameters: dict) -> None:
        self.record["finished"] = _now()
        self.record["wall_s"] = round(time.perf_counter() - self._t0, 3)
        self.record["outcome"] = "failed" if error else "finished"
        if error is not None:
            # the node that raised, or else the last one started (an error loading or saving)
            nodes = self.record["nodes"]
            failed = [n for n, e in nodes.items() if e["outcome"] == "failed"] or list(nodes)[-1:]
            for name in failed:
                nodes[name]["outcome"] = "failed"
            self.record["error"] = {
                "type": type(error).__name__,
                "message": str(error),
                "node": failed[0] if failed else None,
            }
        self.record["parameters"] = jsonable(parameters)
        # what the run computed, whatever started it: `kedro compare` finds variants by it
        self.record["parameters_hash"] = parameters_hash(self.record["parameters"])

    def log_to_mlflow(self) -> None:
        if not self.mlflow_run_id:
            return
        client = mlflow.MlflowClient()
        client.log_dict(self.mlflow_run_id, self.record, "run_record.json")
        git = self.record["git"] or {}
        tags = {
            "perceptive.pipelines": ",".join(self.record["pipelines"]),
            "perceptive.outcome": self.record["outcome"],
            "perceptive.git_commit": git.get("commit") or "none",
            "perceptive.git_dirty": str(git.get("dirty")).lower(),
            "perceptive.save_version": self.record["save_version"],
            "perceptive.parameters_hash": self.record.get("parameters_hash") or "none",
        }
        client.log_batch(self.mlflow_run_id, tags=[RunTag(k, v) for k, v in tags.items()])


class RunVersionTaken(RuntimeError):
    """Another run already holds this run's version id."""


def _demo_source(catalog: DataCatalog) -> bool:
    """Whether this run's source parameter is the demo (its inputs may also say so)."""
    if "params:source" not in catalog:  # a trimmed catalog: the inputs will tell
        return False
    source = catalog.load("params:source")
    return isinstance(source, Mapping) and source.get("method") == "demo"


def data_root_of(context) -> Path:
    """``data_root`` as the catalog resolves it (``--params data_root=...`` or globals.yml);
    a local one relative to the project folder, like Kedro's relative catalog paths, a store
    URL as it is (a ``UPath``)."""
    loader = context.config_loader
    root = (loader.runtime_params or {}).get("data_root") or loader["globals"]["data_root"]
    return rooted(root, context.project_path)


def _anchor_sqlite_store(context) -> None:
    """Make a relative ``sqlite:///`` tracking URI in mlflow.yml absolute from the project folder.

    SQLite takes a relative path from the working directory, while Kedro takes catalog paths
    from the project folder; without this, ``kedro run`` in a subfolder would start a second,
    empty tracking store there. Setting the resolved ``mlflow`` config on the loader is Kedro's
    way to override a config key; MlflowHook reads it next.
    """
    loader = context.config_loader
    loader.config_patterns.setdefault("mlflow", ["mlflow*", "mlflow*/**", "**/mlflow*"])
    try:
        conf = loader["mlflow"]
    except MissingConfigException:
        return
    server = conf.get("server") or {}
    uri, prefix = server.get("mlflow_tracking_uri") or "", "sqlite:///"
    if uri.startswith(prefix) and not Path(uri.removeprefix(prefix)).is_absolute():
        server["mlflow_tracking_uri"] = prefix + str(
            Path(context.project_path) / uri.removeprefix(prefix)
        )
        loader["mlflow"] = conf


def _without_credentials(uri: str) -> str:
    """A tracking URI fit for a record: any ``user:password@`` removed."""
    parts = urlsplit(uri)
    if not (parts.username or parts.password):
        return uri
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=host))


def _reset_peak_memory() -> bool:
    """Reset the process's peak resident memory (Linux); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _peak_memory_mib() -> float | None:
    """Peak resident memory since the last reset (VmHWM), else since the process started."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        status = ""
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB; bytes on macOS
    return round(peak / (1024**2 if sys.platform == "darwin" else 1024), 1)


def _git_state(project_path: Path | None) -> dict | None:
    """Commit and dirtiness of the project's working tree; None when it is not a git repo."""
    if project_path is None:
        return None
    try:
        commit = _git(project_path, "rev-parse", "HEAD")
        status = _git(project_path, "status", "--porcelain")
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit.strip(), "dirty": bool(status.strip())}


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=30
    ).stdout


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ms() -> int:
    return int(time.time() * 1000)
