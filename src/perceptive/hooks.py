"""Project hooks: fail early, with the fix, when a pipeline's input was never produced or its
outputs cannot be written."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from kedro.framework.hooks import hook_impl
from kedro.io import DataCatalog
from kedro.io.core import AbstractVersionedDataset, Version
from kedro.pipeline import Pipeline

from perceptive.datasets.remote import dataset_path
from perceptive.datasets.storage import check_writable

log = logging.getLogger(__name__)


class MissingInputError(RuntimeError):
    """A pipeline needs a dataset that has no saved version (or not the pinned one)."""


class InputCheckHooks:
    """Checks, before any node runs, that every input read from disk exists.

    Without it, ``kedro run --pipelines sampling`` on a fresh project fails deep inside a
    load with a bare "no versions found"; here the message names the pipelines to run first.
    """

    @hook_impl
    def before_pipeline_run(self, run_params: dict, pipeline: Pipeline, catalog: DataCatalog):
        for warning in check_writable(_output_folders(pipeline, catalog)):
            log.warning(warning)
        pinned = run_params.get("load_versions") or {}
        missing = [
            name
            for name in sorted(pipeline.inputs())
            if not name.startswith("params:") and name != "parameters" and name in catalog
            and not catalog.exists(name)
        ]  # fmt: skip
        for name in missing:
            if name in pinned:
                versions = _versions(catalog.get(name))
                raise MissingInputError(
                    f"Input {name!r} has no version {pinned[name]!r}. Saved versions: "
                    f"{', '.join(versions[:5]) or 'none'}. Pin one of them with "
                    f"--load-versions {name}:VERSION, or drop the pin to use the newest."
                )
        if missing:
            chain = _pipelines_to_run_first(missing, catalog)
            where = "; ".join(f"{name!r} under {_where(catalog.get(name))}" for name in missing)
            raise MissingInputError(
                f"No saved version of {where}. Run `kedro run --pipelines {','.join(chain)}` "
                "first to produce them, or plain `kedro run` for the whole workflow."
            )
        pin_versions(pipeline, catalog, run_params["run_id"])


def pin_versions(pipeline: Pipeline, catalog: DataCatalog, save_version: str) -> dict[str, str]:
    """Make every load of this run read a version fixed now, so runs sharing a data_root
    never mix: a dataset this run makes is read back at this run's own version (Kedro would
    take the newest, which may be another run's), and any other input at the newest version
    that exists when the run starts (or the one pinned with --load-versions). Returns the
    pins, by dataset name."""
    made_here = pipeline.all_outputs()
    pins = {}
    for name in sorted(pipeline.datasets()):
        if name.startswith("params:") or name == "parameters" or name not in catalog:
            continue
        dataset = catalog.get(name)
        if not isinstance(dataset, AbstractVersionedDataset):
            continue
        if name in made_here:
            version = save_version
        elif dataset._version and dataset._version.load:  # pinned by the user
            version = dataset._version.load
        else:
            version = dataset.resolve_load_version()  # the newest, now
        dataset._version = Version(version, save_version)
        pins[name] = version
    return pins


def _producing_pipeline(name: str) -> str | None:
    """The link whose outputs include ``name`` (``kedro run --pipelines X`` loads only X)."""
    from perceptive.pipeline_registry import LINKS

    for link in LINKS:
        if name in _link_pipeline(link).all_outputs():
            return link
    return None


def _pipelines_to_run_first(names: list[str], catalog: DataCatalog) -> list[str]:
    """Every link, in workflow order, needed to produce ``names`` from what is saved: their
    producers and, recursively, the producers of those links' own missing inputs."""
    from perceptive.pipeline_registry import LINKS

    needed: set[str] = set()
    todo = list(names)
    while todo:
        link = _producing_pipeline(todo.pop())
        if link is None or link in needed:
            continue
        needed.add(link)
        todo += [
            upstream
            for upstream in _link_pipeline(link).inputs()
            if not upstream.startswith("params:") and upstream in catalog
            and not catalog.exists(upstream)
        ]  # fmt: skip
    return [link for link in LINKS if link in needed] or ["__default__"]


def _link_pipeline(link: str) -> Pipeline:
    return importlib.import_module(f"perceptive.pipelines.{link}").create_pipeline()


def _output_folders(pipeline: Pipeline, catalog: DataCatalog) -> list[Path]:
    """Where the pipeline's outputs on disk go (each dataset's own folder)."""
    folders = []
    for name in pipeline.all_outputs():
        dataset = catalog.get(name) if name in catalog else None
        if getattr(dataset, "_filepath", None) is not None:
            folders.append(dataset_path(dataset))
    return folders


def _where(dataset) -> str:
    describe = getattr(dataset, "_describe", dict)()
    return str(describe.get("filepath", dataset))


def _versions(dataset) -> list[str]:
    try:
        return dataset.list_versions(full_path=False)
    except (AttributeError, NotImplementedError):
        return []


class SourceCredentialsHooks:
    """Hands the credentials (``conf/local/credentials.yml`` merged over ``conf/base``) to the
    ingestion pipeline as the in-memory dataset ``source_credentials``, so a source can log
    in. Only the ``fetch_l1c`` node reads it, and it is never saved, logged or recorded."""

    @hook_impl
    def after_catalog_created(self, catalog: DataCatalog, conf_creds: dict) -> None:
        from kedro.io import MemoryDataset

        catalog["source_credentials"] = MemoryDataset(dict(conf_creds or {}), copy_mode="assign")
