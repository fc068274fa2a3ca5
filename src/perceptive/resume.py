"""``kedro run --resume``: run only the nodes whose outputs are missing or out of date.

Why: Kedro's ``--only-missing-outputs`` skips a node as soon as some version of its outputs
exists, even one made with other parameters, so after a parameter change it silently keeps
stale results. A run killed half-way (kill -9, a full disk) should instead be finished by
redoing what is unfinished or out of date, and end exactly where an uninterrupted run would.

How (one pass over the selected pipeline, in Kedro's topological order):

* A node is **up to date** when an earlier run (run records, newest first) finished it, its
  versioned outputs of that run are still on disk, and the lineage it recorded (run_record.py:
  the parameters the node read, including those inherited through in-memory inputs, and the
  versions of its versioned inputs) equals the lineage this run would give it. The expected
  lineage is built exactly as ``_Run.trace_lineage`` builds the recorded one, so "same
  parameters and input versions" is a plain equality of two JSON dicts, not a guess.
* Expected input versions: a dataset made by an up-to-date upstream node is read at the
  version that node is reused at; any other input at the user's ``--load-versions`` pin or
  the newest version on disk (what ``hooks.pin_versions`` would load).
* A node fed by a node that runs must run (its inputs get a new version, or new in-memory
  data). A node with in-memory outputs (``define_aoi`` -> ``aoi_grid``) must run whenever a
  consumer of those outputs runs, since memory does not outlive a run; that may in turn make
  its other consumers run, so the two rules are applied until nothing changes.
* A run killed with SIGKILL leaves a record that still says ``"running"``; it is rewritten
  after each save, so it may not show the last one yet (and records written before
  run_record.py waited for a node's saves call it finished without saved outputs). Its
  outputs are complete anyway (every dataset is written to a temporary name and renamed; on
  an object store, a version counts only once its manifest is written), and each carries its
  node and lineage in its provenance (provenance.py), so for a node whose saved outputs such a
  record does not show, the provenance stands in for the record.

The nodes to run are then run with Kedro's ``node_names``, and every input they read from a
reused node is pinned with ``load_versions`` to the reused version, so the result is the same
data an uninterrupted run would have made.

Limitation, accepted for simplicity: each node takes its newest matching run on its own, so a
consistent combination of older outputs spread over several runs may be redone rather than
reassembled (never reused wrongly).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kedro.io import MemoryDataset
from kedro.io.core import AbstractVersionedDataset, DatasetError
from kedro.pipeline import Pipeline
from kedro.pipeline.node import Node

from perceptive.datasets.manifest import manifest_path
from perceptive.datasets.remote import dataset_path, is_remote
from perceptive.provenance import KEY as PROVENANCE_KEY
from perceptive.provenance import jsonable
from perceptive.run_listing import flatten, read_records

log = logging.getLogger(__name__)

#: Node entries of a run record whose outputs may be reused.
FINISHED = "finished"
#: Kind of a dataset that lives only in memory during one run.
MEMORY = "memory"
#: A node finished in a run whose outputs were deleted since.
_GONE = object()
#: A parameter key one of two lineages does not have.
_UNSET = "<unset>"


@dataclass
class Step:
    """What resuming does with one node: ``run`` it, or ``reuse`` its outputs of ``version``."""

    node: str
    action: str  # "reuse", "run", or "skip" (in-memory outputs only, and none needed)
    reason: str = ""
    version: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)  # reused versioned outputs
    link: str = ""  # the workflow link (pipeline) of the node, for the summary


@dataclass
class ResumePlan:
    """The nodes of the selected pipeline, in run order, each reused or run."""

    steps: list[Step]
    #: ``load_versions`` pins of every dataset a node that runs reads from a reused node.
    pins: dict[str, str]

    @property
    def to_run(self) -> list[str]:
        return [s.node for s in self.steps if s.action == "run"]

    @property
    def reused(self) -> dict[str, str]:
        """Reused node -> the version (run) its outputs come from."""
        return {s.node: s.version for s in self.steps if s.action == "reuse"}

    def summary(self) -> str:
        """Which nodes are reused (and from which version) and which run, and why."""
        runs = len(self.to_run)
        head = f"Resume: {len(self.steps) - runs} of {len(self.steps)} nodes up to date, "
        head += f"{runs} to run."
        if not runs:
            head += " Nothing to run."
        names = [f"{s.link}/{s.node}" if s.link else s.node for s in self.steps]
        width = max(map(len, names), default=0)
        lines = [head]
        for s, name in zip(self.steps, names, strict=True):
            detail = f"version {s.version}" if s.action == "reuse" else s.reason
            lines.append(f"  {s.action:<5}  {name:<{width}}  {detail}")
        return "\n".join(lines)


def plan_resume(
    pipeline: Pipeline,
    catalog,
    data_root: Path,
    load_versions: Mapping[str, str] | None = None,
    records: list[dict] | None = None,
) -> ResumePlan:
    """Decide, for each node of ``pipeline``, whether to reuse an earlier run's outputs or run
    it (see the module docstring). ``catalog`` is the catalog this run would use (for
    parameter values and dataset versions); ``records`` default to those of ``data_root``."""
    records = read_records(data_root) if records is None else records
    pins = dict(load_versions or {})
    nodes = list(pipeline.nodes)  # topological order
    producer = {out: n for n in nodes for out in n.outputs}
    kinds = {name: _kind(catalog, name) for name in pipeline.datasets()}
    history = _History(records, catalog)
    # node -> why it runs, as first found: a pass only adds nodes to run, and the first reason
    # is the cause (a later pass would say "upstream X runs" once X is pulled in for memory)
    reasons: dict[str, str] = {}

    while True:
        steps: dict[str, Step] = {}
        lineages: dict[str, dict] = {}
        for node in nodes:
            lineage, why = _expected_lineage(node, catalog, kinds, producer, steps, lineages, pins)
            lineages[node.name] = lineage
            why = reasons.get(node.name) or why
            if why:
                steps[node.name] = Step(node.name, "run", why)
            else:
                steps[node.name] = history.match(node, lineage, kinds)
        newly = {}
        for node in nodes:
            if steps[node.name].action != "run":
                continue
            newly.setdefault(node.name, steps[node.name].reason)
            for name in node.inputs:
                up = producer.get(name)
                if kinds.get(name) == MEMORY and up and steps[up.name].action != "run":
                    newly.setdefault(up.name, f"in-memory output {name!r} needed by {node.name}")
        if newly.keys() <= reasons.keys():
            break
        reasons = {**newly, **reasons}

    ordered = [steps[n.name] for n in nodes]
    running = {n.name for n in nodes if steps[n.name].action == "run"}
    reuse_pins = {}
    for node in nodes:
        if node.name not in running:
            continue
        for name in node.inputs:
            up = producer.get(name)
            if up is not None and up.name not in running and name in steps[up.name].outputs:
                reuse_pins[name] = steps[up.name].outputs[name]
    return ResumePlan(ordered, reuse_pins)


def _kind(catalog, name: str):
    """``"versioned"``, ``"memory"``, ``"parameter"`` or ``"other"`` (unversioned on disk)."""
    if name == "parameters" or name.startswith("params:"):
        return "parameter"
    dataset = catalog.get(name) if name in catalog else None
    if dataset is None or isinstance(dataset, MemoryDataset):
        return MEMORY
    if isinstance(dataset, AbstractVersionedDataset):
        return "versioned"
    return "other"


def _expected_lineage(  # noqa: PLR0913
    node: Node,
    catalog,
    kinds: dict,
    producer: dict[str, Node],
    steps: dict[str, Step],
    lineages: dict[str, dict],
    pins: Mapping[str, str],
) -> tuple[dict, str]:
    """The lineage this run would record for ``node`` (as ``_Run.trace_lineage`` does), and
    a reason it must run regardless ("" when it may be reused)."""
    parameters: dict[str, Any] = {}
    versions: dict[str, str] = {}
    why = ""
    for name in node.inputs:
        up = producer.get(name)
        if name == "parameters":
            parameters.update(jsonable(catalog.get(name).load()))
        elif name.startswith("params:"):
            parameters[name.removeprefix("params:")] = jsonable(catalog.get(name).load())
        elif up is not None and kinds.get(name) == MEMORY:  # made earlier in this run
            parameters.update(lineages[up.name]["parameters"])
            versions.update(lineages[up.name]["inputs"])
            if steps[up.name].action == "run":
                why = why or f"upstream {up.name} runs"
        elif kinds.get(name) == "versioned":
            if up is None:
                version = pins.get(name) or _newest(catalog, name)
                if version is None:
                    why = why or f"input {name!r} has no saved version"
                else:
                    versions[name] = version
            elif steps[up.name].action == "run":
                why = why or f"upstream {up.name} runs"
            else:
                versions[name] = steps[up.name].outputs[name]
    lineage = {"parameters": parameters, "inputs": dict(sorted(versions.items()))}
    return _plain(lineage), why


def _newest(catalog, name: str) -> str | None:
    try:
        return catalog.get(name).resolve_load_version()
    except DatasetError:
        return None


def _plain(value: Any) -> Any:
    """As it reads back from a JSON record (tuples as lists, NaN as null, ...)."""
    return json.loads(json.dumps(jsonable(value)))


class _History:
    """Earlier runs' node lineages and outputs, from their records (or, for a run that never
    wrote its end, from its outputs' provenance)."""

    def __init__(self, records: list[dict], catalog) -> None:
        self.records = records
        self.catalog = catalog
        self._provenance: dict[tuple[str, str], dict | None] = {}

    def match(self, node: Node, lineage: dict, kinds: dict) -> Step:
        """Reuse the newest earlier run of ``node`` with this lineage and its outputs on
        disk; otherwise run, saying what differs from the newest earlier run of it."""
        outputs = [o for o in node.outputs if kinds.get(o) == "versioned"]
        if any(kinds.get(o) == "other" for o in node.outputs):
            return Step(node.name, "run", "some outputs are not versioned")
        if not outputs:  # nothing kept between runs: it runs only when a consumer runs
            return Step(node.name, "skip", "only in-memory outputs, not needed")
        closest, gone = None, False
        for record in self.records:
            found = self._finished(node, outputs, record)
            if found is _GONE:
                gone = True
            elif found is not None:
                recorded, saved = found
                if recorded == lineage:
                    version = record.get("save_version")
                    return Step(node.name, "reuse", version=version, outputs=saved)
                closest = closest or recorded
        if closest is not None:
            return Step(node.name, "run", _difference(closest, lineage))
        if gone:
            return Step(node.name, "run", "its outputs are no longer on disk")
        return Step(node.name, "run", "never finished")

    def _finished(self, node: Node, outputs: list[str], record: dict):
        """(lineage, {output: version}) of ``node`` in ``record`` when it finished there and
        its outputs are on disk; ``_GONE`` when they were deleted since; None otherwise."""
        version = record.get("save_version")
        entry = (record.get("nodes") or {}).get(node.name) or {}
        datasets = record.get("datasets") or {}
        saved = {o: (datasets.get(o) or {}).get("saved") for o in outputs}
        recorded = entry.get("outcome") == FINISHED and "lineage" in entry and all(saved.values())
        if recorded and all(self._on_disk(o, v) for o, v in saved.items()):
            return _plain(entry["lineage"]), saved
        if record.get("outcome") == "running" and version:
            # killed (or still going): the record is rewritten after each save, so it may not
            # show the last one yet; the outputs on disk and their provenance tell
            saved = dict.fromkeys(outputs, version)
            if (lineage := self._lineage_from_provenance(node, saved)) is not None:
                return _plain(lineage), saved
        return _GONE if recorded else None

    def _on_disk(self, name: str, version: str) -> bool:
        try:
            dataset = self.catalog.get(name)
            path = dataset_path(dataset, dataset._get_versioned_path(version))
        except (AttributeError, DatasetError):
            return False
        if is_remote(path):  # on a store a version is whole once its manifest is written
            return manifest_path(path).exists()
        return path.exists()

    def _lineage_from_provenance(self, node: Node, saved: dict[str, str]) -> dict | None:
        """The lineage every output of ``node`` carries in its provenance, if they all name
        this node and agree."""
        found = []
        for name, version in saved.items():
            if not self._on_disk(name, version):
                return None
            key = (name, version)
            if key not in self._provenance:
                self._provenance[key] = read_provenance(self.catalog.get(name), name, version)
            prov = self._provenance[key]
            if not prov or prov.get("node") != node.name:
                return None
            found.append({"parameters": prov.get("parameters"), "inputs": prov.get("inputs")})
        if not found or any(f != found[0] for f in found):
            return None
        return found[0]


def read_provenance(dataset: AbstractVersionedDataset, name: str, version: str) -> dict | None:
    """The provenance of ``version`` of a dataset (provenance.py): the sidecar
    ``<name>.provenance.json``, else what the format embeds (Zarr attrs, the GeoTIFF tag
    ``PROVENANCE``, a JSON file's ``provenance`` field). None when there is none."""
    path = dataset_path(dataset, dataset._get_versioned_path(version))
    try:
        sidecar = path.parent / f"{name}.provenance.json"
        if sidecar.exists():
            return json.loads(sidecar.read_text())
        if (path / "zarr.json").exists():  # Zarr v3 store: root attributes
            value = json.loads((path / "zarr.json").read_text()).get("attributes", {})
        elif (path / ".zattrs").exists():  # Zarr v2
            value = json.loads((path / ".zattrs").read_text())
        elif path.suffix.lower() in (".tif", ".tiff"):
            import rasterio

            # GDAL opens local files by name; a stored one is read through fsspec
            source = path.open("rb") if is_remote(path) else contextlib.nullcontext(path)
            with source as opened, rasterio.open(opened) as src:
                value = {PROVENANCE_KEY: src.tags().get("PROVENANCE")}
        elif path.suffix.lower() == ".json":
            value = json.loads(path.read_text())
        else:
            return None
        found = value.get(PROVENANCE_KEY) if isinstance(value, dict) else None
        return json.loads(found) if isinstance(found, str) else found
    except (OSError, ValueError, ImportError):
        return None


def _difference(recorded: dict, expected: dict) -> str:
    """Why a recorded lineage is not this run's: the parameter keys or input versions that
    changed (as dotted keys, old -> new)."""
    old, new = flatten(recorded.get("parameters") or {}), flatten(expected["parameters"])
    keys = sorted(k for k in old.keys() | new.keys() if old.get(k, _UNSET) != new.get(k, _UNSET))
    if keys:
        shown = ", ".join(f"{k} ({_short(old.get(k, _UNSET))} -> {_short(new.get(k, _UNSET))})"
                          for k in keys[:3])  # fmt: skip
        more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
        return f"parameters changed: {shown}{more}"
    old_in, new_in = recorded.get("inputs") or {}, expected["inputs"]
    names = sorted(k for k in old_in.keys() | new_in.keys() if old_in.get(k) != new_in.get(k))
    changes = ", ".join(f"{k} ({old_in.get(k)} -> {new_in.get(k)})" for k in names)
    return f"input version changed: {changes}"


def _short(value: Any, width: int = 30) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def plan_for_run(  # noqa: PLR0913
    project_path: Path | None = None,
    *,
    env: str | None = None,
    conf_source: str | None = None,
    runtime_params: dict | None = None,
    pipeline_names: Iterable[str] | None = None,
    load_versions: Mapping[str, str] | None = None,
    **filters: Any,
) -> ResumePlan:
    """The resume plan of the ``kedro run`` with these options: its pipelines filtered as
    Kedro does (``filters``: tags, from_nodes, to_nodes, node_names, from_inputs, to_outputs,
    node_namespaces), its parameters and catalog, and the run records of its data_root."""
    from kedro.framework.project import pipelines
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project
    from kedro.utils import find_kedro_project

    from perceptive.run_record import data_root_of

    project = Path(project_path or find_kedro_project(Path.cwd()) or Path.cwd())
    bootstrap_project(project)
    names = list(pipeline_names or []) or ["__default__"]
    with KedroSession.create(
        project_path=project, env=env, conf_source=conf_source, runtime_params=runtime_params
    ) as session:
        pipelines.set_requested(list(pipeline_names) if pipeline_names else None)
        context = session.load_context()
        pipeline = sum((pipelines[name] for name in names), Pipeline([]))
        pipeline = pipeline.filter(**{k: v for k, v in filters.items() if v})
        catalog = context.catalog
        plan = plan_resume(pipeline, catalog, data_root_of(context), load_versions)
    links = _links()
    for step in plan.steps:
        step.link = links.get(step.node, "")
    return plan


def _links() -> dict[str, str]:
    """Node name -> the workflow link (pipeline_registry.LINKS) it belongs to."""
    import importlib

    from perceptive.pipeline_registry import LINKS

    return {
        node.name: link
        for link in LINKS
        for node in importlib.import_module(f"perceptive.pipelines.{link}").create_pipeline().nodes
    }
