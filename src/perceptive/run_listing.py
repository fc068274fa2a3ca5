"""``kedro runs``: the runs of a data_root as a table, from their run records alone.

Why: "which of my runs used which classifier, and how did it score?" should take one command
and no MLflow UI; only the parameters that differ between the listed runs are shown, since
those are what tell the runs apart.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from perceptive.datasets.remote import as_path, fresh, is_remote

#: Headline metrics shown when a run recorded them.
METRICS = ("overall_accuracy", "kappa")


def list_runs(data_root: str | Path, limit: int | None = None) -> str:
    """A plain-text table of the run records in ``<data_root>/runs``, newest first: save
    version, pipelines, outcome, wall time, the parameters (dotted keys) that differ between
    the listed runs, and the headline metrics."""
    records = read_records(data_root)[:limit]
    if not records:
        return f"No run records in {as_path(data_root) / 'runs'}."
    flat = [flatten(r.get("parameters") or {}) for r in records]
    differing = differing_keys([flatten(r["parameters"]) for r in records if r.get("parameters")])
    header = ["save version", "pipelines", "outcome", "wall", *METRICS, "parameters that differ"]
    rows = [
        [
            str(r.get("save_version", "?")),
            ",".join(r.get("pipelines") or []),
            str(r.get("outcome", "?")),
            _duration(r.get("wall_s")),
            *(_number(r.get("metrics", {}).get(m)) for m in METRICS),
            " ".join(f"{k}={_value(params[k])}" for k in differing if k in params),
        ]
        for r, params in zip(records, flat, strict=True)
    ]
    return text_table([header, *rows])


def read_records(data_root: str | Path) -> list[dict]:
    """The run records under ``data_root`` (a folder or a store URL), newest first (save
    versions sort by time)."""
    folder = as_path(data_root) / "runs"
    if is_remote(folder):  # another process (a run, a killed run) may have written since
        fresh(folder.fs)
    records = []
    for path in sorted(folder.glob("*.json"), reverse=True):
        if path.name.startswith("."):  # a record being written
            continue
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    return records


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one dict with dotted keys: {"classifier.n_estimators": 200, ...}."""
    if not isinstance(value, dict) or (prefix and not value):
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, item in value.items():
        out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    return out


def differing_keys(flat_params: list[dict[str, Any]]) -> list[str]:
    """Dotted keys whose value is not the same in all runs (missing counts as a value)."""
    keys = sorted({k for params in flat_params for k in params})
    return [k for k in keys if len({_canonical(p, k) for p in flat_params}) > 1]


def _canonical(params: dict[str, Any], key: str) -> str | None:
    return json.dumps(params[key], sort_keys=True) if key in params else None


def _value(value: Any, width: int = 40) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= width else text[: width - 1] + "…"


def _number(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else ""


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return ""
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{seconds:.1f}s"


def text_table(rows: list[list[str]]) -> str:
    """Left-aligned columns; the first row is the header, underlined."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    rows = [rows[0], ["-" * w for w in widths], *rows[1:]]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def rooted(data_root: str | Path, project_path: str | Path) -> Path:
    """``data_root`` as a path: a store URL as it is (a ``UPath``), a local folder relative
    to the project folder, like Kedro's relative catalog paths."""
    if is_remote(data_root):
        return as_path(data_root)
    root = Path(data_root)
    return root if root.is_absolute() else Path(project_path) / root


def project_data_root(project_path: Path | None = None) -> Path:
    """data_root of the Kedro project at (or above) the working directory, from its config
    (globals.yml of base and the default run environment); see :func:`rooted`."""
    from kedro.framework.project import settings
    from kedro.framework.startup import bootstrap_project
    from kedro.utils import find_kedro_project

    project = project_path or find_kedro_project(Path.cwd())
    if project is None:
        raise click.UsageError("Not inside a Kedro project; give --data-root.")
    bootstrap_project(project)
    loader = settings.CONFIG_LOADER_CLASS(
        conf_source=str(Path(project) / settings.CONF_SOURCE), **settings.CONFIG_LOADER_ARGS
    )
    return rooted(loader["globals"]["data_root"], project)


class DataRoot(click.Path):
    """A data folder, or an object-store URL (``s3://bucket/data``) taken as it is."""

    name = "folder or URL"

    def convert(self, value, param, ctx):
        if isinstance(value, str) and is_remote(value):  # no local checks for a URL
            return as_path(value)
        return super().convert(value, param, ctx)


@click.group(name="runs", invoke_without_command=True)
@click.option(
    "--data-root",
    type=DataRoot(file_okay=False, path_type=Path),
    default=None,
    help="Folder or store URL whose runs/ to list [default: data_root of this project].",
)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.pass_context
def runs(ctx: click.Context, data_root: Path | None, limit: int) -> None:
    """List the runs of a data folder, newest first, from their run records."""
    ctx.obj = data_root
    if ctx.invoked_subcommand is None:
        click.echo(list_runs(data_root or project_data_root(), limit=limit))


@runs.command(name="prune")
@click.option("--keep", type=click.IntRange(min=1), required=True, help="Newest runs to keep.")
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
@click.pass_obj
def prune(data_root: Path | None, keep: int, dry_run: bool) -> None:
    """Remove the versions no kept run saved or loaded, and the other runs' records."""
    from perceptive.pruning import prune_runs

    root = data_root or project_data_root()
    pruned = prune_runs(root, keep, dry_run=dry_run)
    verb = "Would remove" if dry_run else "Removed"
    click.echo(
        f"{verb} {len(pruned.versions)} dataset versions ({pruned.bytes / 1e6:,.1f} MB) and "
        f"{len(pruned.records)} run records under {root}; kept the {keep} newest runs."
    )
