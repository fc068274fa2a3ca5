"""Where the lazy (dask) work of a run is computed: the ``dask`` parameter block.

Kedro's runner stays sequential; the parallelism is inside the nodes, in dask arrays that
are computed when a Zarr or GeoTIFF dataset saves them. :class:`DaskHooks` chooses the dask
scheduler for the run (see ``conf/base/parameters_engine.yml``):

- ``threads``: dask's default threaded scheduler in this process; nothing is started.
- ``local_cluster``: a ``dask.distributed.LocalCluster`` of ``n_workers`` worker processes
  with ``threads_per_worker`` threads and ``memory_limit`` each, started for the run and
  closed after it (also when it fails).
- ``address``: a ``Client`` connected to a running scheduler (``dask scheduler`` or any
  deployed cluster); only the client is closed after the run, never the cluster.

The client is made dask's default scheduler for the run, so every ``compute``, ``to_zarr``
and ``da.store`` in the nodes and datasets runs on the cluster. With a cluster, progress is
on its dashboard (``dashboard: true`` for a local one; it needs ``bokeh``); the link is
logged. Dask's progress bar (Zarr saves) shows only on the threaded scheduler.
"""

from __future__ import annotations

import logging
import os
from contextlib import ExitStack
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.io import DataCatalog
from kedro.pipeline import Pipeline

log = logging.getLogger(__name__)


class EngineError(RuntimeError):
    """The dask scheduler of the run could not be started or reached."""


class DaskEngine:
    """The scheduler chosen by a ``dask`` parameter block, as a context manager: entering
    starts a LocalCluster or connects to a scheduler and makes its client dask's default;
    leaving closes what was opened here (never a cluster given by address)."""

    def __init__(self, settings: dict[str, Any] | None) -> None:
        from perceptive.params import Engine

        self.settings = Engine.model_validate(settings or {})
        self.client = None
        self.cluster = None
        self._stack = ExitStack()

    @property
    def description(self) -> str:
        s = self.settings
        if s.scheduler == "threads":
            import dask

            threads = dask.config.get("num_workers", None) or _cpu_count()
            return f"threads (dask's threaded scheduler, {threads} threads, in this process)"
        if s.scheduler == "local_cluster":
            memory = s.memory_limit or "no memory limit"
            return (
                f"local_cluster ({s.n_workers} worker processes x {s.threads_per_worker} "
                f"thread(s), {memory} each)"
            )
        return f"address ({s.address})"

    def __enter__(self) -> DaskEngine:
        s = self.settings
        if s.scheduler == "threads":
            log.info("Dask scheduler: %s.", self.description)
            return self
        try:
            from distributed import Client, LocalCluster
        except ImportError as err:
            raise EngineError(
                f"dask.scheduler {s.scheduler!r} needs dask.distributed, which is not "
                "installed: pip install 'dask[distributed]' (or set dask.scheduler: threads)."
            ) from err
        try:
            if s.scheduler == "local_cluster":
                # Nannies set OMP_NUM_THREADS=1 etc. for their workers in os.environ itself
                # ("distributed.nanny.pre-spawn-environ"); this process keeps its own.
                environ = dict(os.environ)
                self.cluster = self._stack.enter_context(
                    LocalCluster(
                        n_workers=s.n_workers,
                        threads_per_worker=s.threads_per_worker,
                        memory_limit=s.memory_limit or 0,
                        processes=True,
                        dashboard_address=":8787" if s.dashboard else None,
                    )
                )
                self.client = self._stack.enter_context(Client(self.cluster, set_as_default=True))
                _restore_environ(environ)
            else:
                try:
                    self.client = self._stack.enter_context(Client(s.address, set_as_default=True))
                except OSError as err:
                    raise EngineError(
                        f"Cannot reach the dask scheduler at {s.address!r} (dask.address): "
                        f"{err}. Start it (e.g. `dask scheduler`) or choose dask.scheduler "
                        "threads or local_cluster."
                    ) from err
        except BaseException:
            self._stack.close()
            raise
        log.info("Dask scheduler: %s; client %s.", self.description, self.client)
        link = self.dashboard_link
        if link:
            log.info("Dask dashboard (the progress of every computation): %s", link)
        elif s.scheduler == "local_cluster" and s.dashboard:
            log.warning("No dask dashboard: it needs bokeh (pip install 'bokeh>=3.1').")
        return self

    @property
    def dashboard_link(self) -> str | None:
        """The dashboard's address: a local cluster's if ``dashboard`` is on and bokeh is
        installed; a remote scheduler's if it serves one."""
        if self.client is None:
            return None
        if self.cluster is not None and not (self.settings.dashboard and _has_bokeh()):
            return None  # the scheduler's web server is up, but without the dashboard
        try:
            services = self.client.scheduler_info().get("services") or {}
        except Exception:  # noqa: BLE001  (a link is a nicety)
            return None
        return self.client.dashboard_link if "dashboard" in services else None

    def close(self) -> None:
        opened = self.client is not None
        self._stack.close()
        self.client = self.cluster = None
        if opened:
            log.info("Dask: closed the %s client.", self.settings.scheduler)

    def __exit__(self, *exc) -> None:
        self.close()


def _restore_environ(saved: dict[str, str]) -> None:
    for key in set(os.environ) - set(saved):
        del os.environ[key]
    os.environ.update(saved)


def _has_bokeh() -> bool:
    from importlib.util import find_spec

    return find_spec("bokeh") is not None


def _cpu_count() -> int:
    from dask.system import CPU_COUNT

    return CPU_COUNT


class DaskHooks:
    """Opens the run's dask scheduler (:class:`DaskEngine`) and closes it after the run.

    A wrapper around every hook's ``before_pipeline_run``: the scheduler is opened only after
    the other checks there passed (nothing to close if one of them fails), and closed if it
    or they fail. Registered before ``RunRecordHooks`` in settings.py, so that hook's wrapper
    wraps this one and records a scheduler that cannot start as the run's error.
    """

    def __init__(self) -> None:
        self.engine: DaskEngine | None = None

    @hook_impl(wrapper=True)
    def before_pipeline_run(self, run_params: dict, pipeline: Pipeline, catalog: DataCatalog):
        result = yield
        self._close()  # a previous run of this session that never finished
        parameters = catalog.load("parameters") if "parameters" in catalog else {}
        engine = DaskEngine(parameters.get("dask"))
        engine.__enter__()
        self.engine = engine
        return result

    @hook_impl
    def after_pipeline_run(self) -> None:
        self._close()

    @hook_impl
    def on_pipeline_error(self) -> None:
        self._close()

    def _close(self) -> None:
        engine, self.engine = self.engine, None
        if engine is not None:
            engine.close()
