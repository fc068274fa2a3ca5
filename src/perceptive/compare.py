"""``kedro compare base no_clouds rf``: swap a link, run again, and see what it changed.

Why: a change to one link is judged against the noise of the validation sample, on the same
pixels, with every figure traceable to the runs behind it, in one command.

For each variant (perceptive.variants), in the order given:

1. its parameters are resolved and checked, all variants before anything runs;
2. its result is looked up in the MLflow tracking store of the runs (kedro-mlflow's, where
   every run record is logged): the newest finished run whose ``perceptive.parameters_hash``
   tag equals the variant's, and whose outputs are still on disk;
3. a variant without a result is run with ``kedro run --resume``'s plan (perceptive.resume):
   only the links its overrides change, and what depends on them, are computed; the others
   are reused at their versions (a classifier variant does not recompute features).

Then one table (printed, and written as CSV and Markdown): what each variant changed,
overall accuracy, macro F1 and kappa with their 95 % intervals, McNemar's paired test against
the first variant on the validation pixels both runs assessed, and per-link time and peak
memory (taken from the run that made each link's outputs, marked when reused). A metric plot
and, per variant, a map of where its land-cover map disagrees with the first one's, coloured
by class pair, go to ``<data_root>/08_reporting/compare/<version>/``; every figure names its
runs. The comparison is logged to the tracking store as a run of its own (tag
``perceptive.kind = comparison``) with these files as artifacts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from kedro.framework.project import pipelines as registered_pipelines
from kedro.framework.project import settings
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.io.core import generate_timestamp
from matplotlib import colormaps
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from mlflow.tracking import MlflowClient

from perceptive.datasets import manifest
from perceptive.datasets.remote import as_path, is_remote
from perceptive.eo.accuracy import mcnemar
from perceptive.eo.sampling import VALIDATION
from perceptive.pipeline_registry import LINKS
from perceptive.provenance import jsonable
from perceptive.run_listing import read_records, text_table
from perceptive.run_record import data_root_of
from perceptive.variants import BASE, Variant, load_variant, parameters_hash

log = logging.getLogger(__name__)

#: Headline metrics of the table, as named in validation_metrics.
METRICS = {"overall_accuracy": "OA", "macro_f1": "macro F1", "kappa": "kappa"}
#: Datasets a variant's result needs (a version saved or loaded by its run).
RESULT = ("validation_metrics", "model", "samples", "lulc_map")


class CompareError(ValueError):
    """A comparison that cannot be made; the message says which variant and what to do."""


@dataclass
class VariantRun:
    """One variant and the run holding its result."""

    variant: Variant
    runtime_params: dict[str, Any]
    parameters_hash: str
    data_root: Path
    record: dict | None = None
    mlflow_run_id: str | None = None
    ran_nodes: list[str] = field(default_factory=list)  # nodes this comparison ran

    @property
    def name(self) -> str:
        return self.variant.name

    @property
    def version(self) -> str:
        return self.record["save_version"]

    def dataset_version(self, name: str) -> str | None:
        entry = (self.record.get("datasets") or {}).get(name) or {}
        return entry.get("saved") or entry.get("loaded")


@dataclass
class Comparison:
    runs: list[VariantRun]
    table: pd.DataFrame
    folder: Path
    mlflow_run_id: str | None

    def text(self) -> str:
        shown = self.table.drop(columns=[c for c in self.table if c.startswith("_")])
        rows = [list(shown.columns), *shown.astype(str).to_numpy().tolist()]
        return text_table(rows)


def compare(  # noqa: PLR0913
    names: Sequence[str],
    *,
    project_path: Path | None = None,
    env: str | None = None,
    params: dict[str, Any] | None = None,
    run_missing: bool = True,
) -> Comparison:
    """Compare the variants ``names`` (the first is the reference), running those without a
    result unless ``run_missing`` is false; ``params`` apply to every variant (a data_root,
    a smaller AOI)."""
    if len(set(names)) != len(names) or len(names) < 2:
        raise CompareError(f"Give two or more different variants to compare, not {names}.")
    project = _project(project_path)
    conf_source = project / settings.CONF_SOURCE
    runs = [_resolve(load_variant(n, conf_source), project, env, params or {}) for n in names]
    store = _TrackingStore(project, env, params or {})
    for run in runs:
        store.find(run)
        if run.record is None and run_missing:
            log.info("Variant %r has no result yet: running it (%s).", run.name,
                     run.variant.changes())  # fmt: skip
            run.ran_nodes = _run_variant(project, env, run.runtime_params)
            store.find(run)
        if run.record is None:
            raise CompareError(
                f"Variant {run.name!r} ({run.variant.changes()}) has no finished run with its "
                f"parameters (hash {run.parameters_hash}) in {store.uri}"
                + ("." if run_missing else "; run `kedro compare` without --no-run.")
            )
        log.info("Variant %r: run %s%s", run.name, run.version,
                 " (made now)" if run.ran_nodes else " (found)")  # fmt: skip
    catalogs = _Catalogs(project, env, params or {})
    table = comparison_table(runs, catalogs)
    folder = _write_outputs(runs, table, catalogs, data_root_of_record(runs[0].record))
    mlflow_run_id = store.log_comparison(runs, table, folder)
    return Comparison(runs, table, folder, mlflow_run_id)


def _project(project_path: Path | None) -> Path:
    from kedro.utils import find_kedro_project

    project = Path(project_path or find_kedro_project(Path.cwd()) or Path.cwd()).resolve()
    bootstrap_project(project)
    return project


def _resolve(variant: Variant, project: Path, env, common: dict) -> VariantRun:
    """The variant's runtime parameters, checked now (before any run) and hashed."""
    runtime = variant.runtime_params(common)
    with KedroSession.create(project_path=project, env=env, runtime_params=runtime) as session:
        try:
            context = session.load_context()
            parameters = jsonable(context.params)  # what a run records as its parameters
        except ValueError as error:
            raise CompareError(f"Variant {variant.name!r}: {error}") from None
        return VariantRun(variant, runtime, parameters_hash(parameters), data_root_of(context))


def _run_variant(project: Path, env, runtime_params: dict) -> list[str]:
    """``kedro run --resume`` with these parameters: only what they change is computed."""
    from perceptive.resume import plan_for_run

    plan = plan_for_run(project, env=env, runtime_params=runtime_params)
    log.info("%s", plan.summary())
    if plan.to_run:
        with KedroSession.create(
            project_path=project, env=env, runtime_params=runtime_params
        ) as session:
            session.run(node_names=plan.to_run, load_versions=plan.pins)
    return list(plan.to_run)


def data_root_of_record(record: dict) -> Path:
    """The data_root a run recorded: a local ``Path``, or a ``UPath`` for a store URL."""
    return as_path(record["data_root"])


# --- where results are found: the MLflow tracking store -----------------------------------------
class _TrackingStore:
    """The project's MLflow tracking store and experiment, as kedro-mlflow configures them."""

    def __init__(self, project: Path, env, params: dict) -> None:
        with KedroSession.create(project_path=project, env=env, runtime_params=params) as session:
            context = session.load_context()  # kedro-mlflow's hook reads mlflow.yml here
            self.uri = context.mlflow.server.mlflow_tracking_uri
            self.experiment = context.mlflow.tracking.experiment.name
        self.client = MlflowClient(self.uri)

    def _experiment_id(self) -> str | None:
        experiment = self.client.get_experiment_by_name(self.experiment)
        return experiment.experiment_id if experiment else None

    def find(self, run: VariantRun) -> None:
        """The newest finished run with the variant's parameters whose outputs still exist;
        failing that, the newest such run record in the variant's data_root (runs made with
        tracking off, or before the store was moved)."""
        self._find_tracked(run)
        if run.record is None:
            for record in read_records(run.data_root):
                if (
                    record.get("outcome") == "finished"
                    and parameters_hash(record.get("parameters") or {}) == run.parameters_hash
                    and _has_result(record)
                ):
                    run.record = record
                    run.mlflow_run_id = (record.get("mlflow") or {}).get("run_id")
                    return

    def _find_tracked(self, run: VariantRun) -> None:
        experiment_id = self._experiment_id()
        if experiment_id is None:
            return
        found = self.client.search_runs(
            [experiment_id],
            filter_string=f"tags.`perceptive.parameters_hash` = '{run.parameters_hash}' "
            "and tags.`perceptive.outcome` = 'finished'",
            order_by=["attributes.start_time DESC"],
            max_results=100,
        )
        for candidate in found:
            record = _run_record(self.client, candidate.info.run_id)
            if record and _has_result(record):
                run.record, run.mlflow_run_id = record, candidate.info.run_id
                return

    def log_comparison(self, runs: list[VariantRun], table: pd.DataFrame, folder: Path) -> str:
        experiment_id = self._experiment_id() or self.client.create_experiment(self.experiment)
        names = [r.name for r in runs]
        tags = {
            "perceptive.kind": "comparison",
            "perceptive.variants": ",".join(names),
            "perceptive.compared_runs": ",".join(r.version for r in runs),
            "perceptive.compared_mlflow_runs": ",".join(r.mlflow_run_id or "" for r in runs),
            "mlflow.note.content": "Comparison of "
            + ", ".join(f"{r.name} (run {r.version})" for r in runs),
        }
        created = self.client.create_run(
            experiment_id, run_name="compare " + " vs ".join(names), tags=tags
        )
        run_id = created.info.run_id
        for r in runs:
            self.client.log_param(run_id, f"variant.{r.name}", r.variant.changes()[:500])
        for _, row in table.iterrows():
            for key in METRICS:
                value = row[f"_{key}"]
                if value is not None and np.isfinite(value):
                    self.client.log_metric(run_id, f"{key}.{row['variant']}", float(value))
        if is_remote(folder):  # MLflow logs artifacts from a local folder
            with tempfile.TemporaryDirectory() as local:
                folder.fs.get(f"{folder.path}/", local, recursive=True)
                self.client.log_artifacts(run_id, local)
        else:
            self.client.log_artifacts(run_id, str(folder))
        self.client.set_terminated(run_id)
        return run_id


def _run_record(client: MlflowClient, run_id: str) -> dict | None:
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, "run_record.json", tmp)
        except (OSError, mlflow.exceptions.MlflowException):
            return None
        return json.loads(Path(path).read_text())


def _has_result(record: dict) -> bool:
    datasets = record.get("datasets") or {}
    versions = [(datasets.get(n) or {}) for n in RESULT]
    if not all(v.get("saved") or v.get("loaded") for v in versions):
        return False
    root = data_root_of_record(record)
    lulc = datasets["lulc_map"].get("saved") or datasets["lulc_map"].get("loaded")
    found = f"*/lulc_map*/{lulc}"
    if is_remote(root):  # on a store a version counts once its manifest is written
        found += f"/*{manifest.SUFFIX}"
    return any(root.glob(found))  # pruned versions are no result


# --- loading a run's outputs ---------------------------------------------------------------------
class _Catalogs:
    """The project's catalog for each data_root that holds results (usually one)."""

    def __init__(self, project: Path, env, params: dict) -> None:
        self.project, self.env, self.params = project, env, params
        self._by_root: dict[Path, Any] = {}

    def of(self, run: VariantRun):
        root = data_root_of_record(run.record)
        if root not in self._by_root:
            runtime = {**self.params, "data_root": str(root)}
            with KedroSession.create(
                project_path=self.project, env=self.env, runtime_params=runtime
            ) as session:
                self._by_root[root] = session.load_context().catalog
        return self._by_root[root]

    def load(self, run: VariantRun, name: str):
        return self.of(run).load(name, version=run.dataset_version(name))


# --- the table ---------------------------------------------------------------------------------
def comparison_table(runs: list[VariantRun], catalogs: _Catalogs) -> pd.DataFrame:
    """One row per variant; columns starting with ``_`` hold raw numbers for files and plots."""
    outcomes = [validation_outcomes(catalogs, run) for run in runs]
    rows = []
    for run, outcome in zip(runs, outcomes, strict=True):
        metrics = catalogs.load(run, "validation_metrics")
        row: dict[str, Any] = {"variant": run.name, "changes": run.variant.description}
        row["_overrides"] = run.variant.changes()
        for key, label in METRICS.items():
            row[label] = _with_interval(metrics.get(key), metrics.get(f"{key}_ci95"))
            row[f"_{key}"] = metrics.get(key)
            row[f"_{key}_ci95"] = metrics.get(f"{key}_ci95")
        test = paired_test(outcomes[0], outcome) if run is not runs[0] else None
        row["McNemar p vs " + runs[0].name] = (
            "-" if test is None else f"{test['p_value']:.3g} ({test['n_pixels']} px)"
        )
        row["_mcnemar"] = test
        costs = link_costs(run)
        row["time per link (s)"] = " / ".join(c["text"] for c in costs.values())
        row["peak MiB"] = f"{max((c['peak_mib'] or 0) for c in costs.values()):.0f}"
        row["_links"] = costs
        row["run"] = run.version
        row["_mlflow_run"] = run.mlflow_run_id
        rows.append(row)
    return pd.DataFrame(rows)


def _with_interval(value, interval) -> str:
    if value is None:
        return "n/a"
    if not interval or None in interval:
        return f"{value:.3f}"
    return f"{value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"


def validation_outcomes(catalogs: _Catalogs, run: VariantRun) -> pd.DataFrame:
    """Reference class and the run's prediction for each validation pixel it assessed (the
    eroded ones, as in validation_metrics), indexed by pixel (row, col)."""
    samples = catalogs.load(run, "samples")
    model = catalogs.load(run, "model")
    held = samples[samples["split"] == VALIDATION]
    if "edge" in held:
        held = held[~held["edge"].astype(bool)]
    predicted = model.predict(held[model.feature_names].to_numpy("float32"))
    index = pd.MultiIndex.from_arrays([held["row"], held["col"]], names=["row", "col"])
    return pd.DataFrame({"label": held["label"].to_numpy(), "predicted": predicted}, index=index)


def paired_test(first: pd.DataFrame, other: pd.DataFrame) -> dict:
    """McNemar's test on the pixels both runs assessed with the same reference class."""
    both = first.join(other, how="inner", lsuffix="_first", rsuffix="_other")
    both = both[both["label_first"] == both["label_other"]]
    test = mcnemar(
        both["predicted_first"].to_numpy() == both["label_first"].to_numpy(),
        both["predicted_other"].to_numpy() == both["label_other"].to_numpy(),
    )
    return test


def link_costs(run: VariantRun) -> dict[str, dict]:
    """Wall time and peak memory of each link, from the run that made its outputs: this run,
    or, for a reused link, the run whose version of its outputs this run (or the run that made
    a later link) loaded. Links are traced from the last one back, along the loaded versions."""
    records = {r["save_version"]: r for r in read_records(data_root_of_record(run.record))}
    makers = [run.record]  # this run, then the runs found to have made reused links
    costs = {}
    for link in reversed(LINKS):
        nodes = registered_pipelines[link].nodes
        maker = run.record if all(_finished(run.record, n.name) for n in nodes) else None
        for known in makers if maker is None else []:
            datasets = known.get("datasets") or {}
            versions = {
                (datasets.get(out) or {}).get(kind)
                for n in nodes for out in n.outputs for kind in ("saved", "loaded")
            }  # fmt: skip
            found = sorted(v for v in versions if v in records and v != run.version)
            if found:
                maker = records[found[-1]]
                makers.append(maker)
                break
        entries = [(maker or {}).get("nodes", {}).get(n.name) or {} for n in nodes]
        costs[link] = {
            "wall_s": sum(e.get("wall_s") or 0.0 for e in entries) if maker else None,
            "peak_mib": max((e.get("peak_mib") or 0.0 for e in entries), default=0.0)
            if maker
            else None,
            "made_by": maker["save_version"] if maker else None,
        }
        wall = costs[link]["wall_s"]
        mark = "*" if maker is not None and maker is not run.record else ""
        costs[link]["text"] = "?" if wall is None else f"{wall:.0f}{mark}"
    return {link: costs[link] for link in LINKS}


def _finished(record: dict, node: str) -> bool:
    return ((record.get("nodes") or {}).get(node) or {}).get("outcome") == "finished"


# --- files and figures ---------------------------------------------------------------------------
def _write_outputs(
    runs: list[VariantRun], table: pd.DataFrame, catalogs: _Catalogs, data_root: Path
) -> Path:
    """Table, plots and map differences into a new version folder, all or nothing: written
    in a ``.partial-`` sibling and renamed; on an object store, which has no rename, written
    in place and removed again when any of it fails."""
    final = data_root / "08_reporting" / "compare" / generate_timestamp()
    remote = is_remote(final)
    staging = final if remote else final.with_name(f".partial-{final.name}")
    staging.mkdir(parents=True)
    try:
        _write_table(table, runs, staging)
        _save_png(plot_metrics(table), staging / "metrics.png")
        maps = [catalogs.load(run, "lulc_map") for run in runs]
        for run, lulc in zip(runs[1:], maps[1:], strict=True):
            figure = plot_map_difference(maps[0], lulc, runs[0], run, _class_names(catalogs, run))
            _save_png(figure, staging / f"map_difference_{run.name}_vs_{runs[0].name}.png")
        if not remote:
            staging.rename(final)
    except BaseException:
        if remote:
            with contextlib.suppress(OSError):  # nothing written yet: nothing to remove
                staging.fs.rm(staging.path, recursive=True)
        else:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("Comparison written to %s", final)
    return final


def _save_png(figure: Figure, path: Path) -> None:
    """Through ``path.open``: matplotlib takes local paths only, a ``UPath`` opens on a store."""
    with path.open("wb") as file:
        figure.savefig(file, format="png", dpi=120)


def _write_table(table: pd.DataFrame, runs: list[VariantRun], folder: Path) -> None:
    shown = table[[c for c in table if not c.startswith("_")]]
    files = table[["variant", "changes", "_overrides", "run", "_mlflow_run"]].rename(
        columns={"_overrides": "overrides", "_mlflow_run": "mlflow_run"}
    )
    for key in METRICS:
        files[key] = table[f"_{key}"]
        files[f"{key}_ci95_low"] = [(ci or [None, None])[0] for ci in table[f"_{key}_ci95"]]
        files[f"{key}_ci95_high"] = [(ci or [None, None])[1] for ci in table[f"_{key}_ci95"]]
    files["mcnemar_p"] = [t["p_value"] if t else None for t in table["_mcnemar"]]
    files["mcnemar_pixels"] = [t["n_pixels"] if t else None for t in table["_mcnemar"]]
    for link in LINKS:
        files[f"{link}_s"] = [c[link]["wall_s"] for c in table["_links"]]
        files[f"{link}_peak_mib"] = [c[link]["peak_mib"] for c in table["_links"]]
        files[f"{link}_made_by"] = [c[link]["made_by"] for c in table["_links"]]
    with (folder / "comparison.csv").open("w", newline="") as file:  # a UPath on a store
        files.to_csv(file, index=False)
    lines = [
        "| " + " | ".join(shown.columns) + " |",
        "|" + "|".join("---" for _ in shown.columns) + "|",
        *("| " + " | ".join(map(str, row)) + " |" for row in shown.to_numpy().tolist()),
        "",
        f"Time per link: {' / '.join(LINKS)}; * = reused from the run that made it. "
        f"McNemar: exact test on the validation pixels both runs assessed.",
        "Runs: " + ", ".join(f"{r.name} = {r.version}" for r in runs) + ".",
    ]
    (folder / "comparison.md").write_text("\n".join(lines) + "\n")


def plot_metrics(table: pd.DataFrame) -> Figure:
    """Each headline metric with its 95 % interval, one row per variant (named with its run)."""
    figure = Figure(figsize=(11, 1.6 + 0.6 * len(table)), layout="constrained")
    axes = figure.subplots(1, len(METRICS), sharey=True)
    labels = [f"{v}\nrun {r}" for v, r in zip(table["variant"], table["run"], strict=True)]
    positions = np.arange(len(table))
    for ax, (key, title) in zip(axes, METRICS.items(), strict=True):
        values = np.array([np.nan if v is None else v for v in table[f"_{key}"]], dtype=float)
        intervals = [ci or [np.nan, np.nan] for ci in table[f"_{key}_ci95"]]
        low = values - np.array([i[0] for i in intervals], dtype=float)
        high = np.array([i[1] for i in intervals], dtype=float) - values
        ax.errorbar(values, positions, xerr=[low, high], fmt="o", capsize=4)
        ax.set_title(title)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(positions, labels)
    axes[0].set_ylim(len(table) - 0.5, -0.5)
    figure.suptitle("Validation metrics with 95 % intervals (bootstrap over spatial blocks)")
    return figure


def plot_map_difference(
    first, other, first_run: VariantRun, other_run: VariantRun, names: dict[int, str]
) -> Figure:
    """Where two maps disagree, coloured by (first class, other class) pair; agreement grey."""
    a, b = np.asarray(first.values), np.asarray(other.values)
    figure = Figure(figsize=(10, 6.5), layout="constrained")
    title = (
        f"{other_run.name} (run {other_run.version}) against "
        f"{first_run.name} (run {first_run.version})"
    )
    if a.shape != b.shape:
        figure.text(0.5, 0.5, f"{title}:\nthe maps have different shapes {a.shape}, {b.shape}",
                    ha="center", va="center")  # fmt: skip
        return figure
    mapped = (a != 0) & (b != 0)
    differ = mapped & (a != b)
    pairs, counts = np.unique(np.stack([a[differ], b[differ]]), axis=1, return_counts=True)
    order = np.argsort(counts)[::-1]
    shown = order[:12]  # the most frequent pairs get their own colour
    codes = np.zeros(a.shape, dtype=np.uint8)  # 0 no data / agreement, then pair colours
    codes[mapped] = 1
    for colour, k in enumerate(shown, start=2):
        codes[differ & (a == pairs[0, k]) & (b == pairs[1, k])] = colour
    rest = differ & (codes == 1)
    codes[rest] = len(shown) + 2
    palette = ["white", "#d9d9d9", *colormaps["tab20"].colors[: len(shown)], "black"]
    ax = figure.add_subplot(1, 1, 1)
    ax.imshow(codes, cmap=ListedColormap(palette), vmin=0, vmax=len(palette) - 1,
              interpolation="nearest")  # fmt: skip
    ax.set_axis_off()
    share = differ.sum() / max(mapped.sum(), 1)
    ax.set_title(f"{title}\n{share:.1%} of mapped pixels differ")
    handles = [Patch(color=palette[1], label="same class")]
    for colour, k in enumerate(shown, start=2):
        first_name = names.get(int(pairs[0, k]), str(pairs[0, k]))
        other_name = names.get(int(pairs[1, k]), str(pairs[1, k]))
        handles.append(
            Patch(color=palette[colour], label=f"{first_name} -> {other_name} ({counts[k]} px)")
        )
    if rest.any():
        handles.append(Patch(color="black", label=f"other pairs ({int(rest.sum())} px)"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8,
              title=f"{first_run.name} -> {other_run.name}")  # fmt: skip
    return figure


def _class_names(catalogs: _Catalogs, run: VariantRun) -> dict[int, str]:
    matrix = catalogs.load(run, "validation_metrics").get("confusion_matrix") or {}
    return dict(zip(matrix.get("labels", []), matrix.get("names", []), strict=False))


def default_variants(names: Iterable[str]) -> list[str]:
    """``base`` first when the user names only other variants (``kedro compare rf``)."""
    names = list(names)
    return names if len(names) != 1 or names[0] == BASE else [BASE, *names]
