"""Project commands: ``kedro run`` that reports the project's own errors in a few lines and,
with ``--resume``, redoes only what is unfinished or out of date (perceptive.resume); and
``kedro runs`` that lists past runs with their key parameters and metrics.

Kedro lets an exception escape as a full rich traceback (150+ lines) even when the problem is a
typo in a parameter. Here an error raised by the project itself to explain a problem (a
``ValueError`` from perceptive code, a missing input) is shown as its message; the full
traceback goes to the log file (``info.log``). Anything else, a bug, keeps its traceback.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import click
from kedro.framework.cli.project import run as kedro_run
from kedro.framework.cli.utils import _split_params

from perceptive.hooks import MissingInputError
from perceptive.run_listing import runs

#: Logs only to the file handler (conf/logging.yml), so the console stays short.
traceback_log = logging.getLogger("perceptive.traceback")
resume_log = logging.getLogger("perceptive.resume")

_PACKAGE = Path(__file__).resolve().parent


@click.group(name="perceptive")
def cli() -> None:
    """Commands of the perceptive project."""


def explains_itself(error: BaseException) -> bool:
    """An error the project raised on purpose, with a message that names the fix."""
    if isinstance(error, MissingInputError):
        return True
    if not isinstance(error, ValueError) or error.__traceback__ is None:
        return False
    frame = error.__traceback__
    while frame.tb_next is not None:
        frame = frame.tb_next
    return Path(frame.tb_frame.f_code.co_filename).resolve().is_relative_to(_PACKAGE)


def _readable_errors(callback):
    @functools.wraps(callback)
    def wrapper(*args, **kwargs):
        try:
            return callback(*args, **kwargs)
        except Exception as error:
            if not explains_itself(error):
                raise
            traceback_log.error("kedro run stopped", exc_info=error)
            raise click.ClickException(f"{error}\n(The full traceback is in info.log.)") from None

    return wrapper


RESUME_HELP = (
    "Run only the nodes whose outputs are missing or were made from other parameters or "
    "input versions than this run would use; reuse the rest (see perceptive.resume)."
)


def _run(resume: bool = False, **options):
    """Kedro's ``run``; with ``--resume``, first plan which nodes must run (perceptive.resume),
    then run just those, their inputs from reused nodes pinned to the reused versions."""
    if not resume:
        return kedro_run.callback(**options)
    if options.get("only_missing_outputs"):
        raise click.UsageError("--resume and --only-missing-outputs cannot be used together.")
    from perceptive.resume import plan_for_run

    names = list(options.get("pipelines") or []) or [p for p in [options.get("pipeline")] if p]
    user_pins = dict(options.get("load_versions") or {})
    plan = plan_for_run(
        env=options.get("env"),
        conf_source=options.get("conf_source"),
        runtime_params=options.get("params") or {},
        pipeline_names=names,
        load_versions=user_pins,
        tags=options.get("tags"),
        from_nodes=options.get("from_nodes"),
        to_nodes=options.get("to_nodes"),
        node_names=options.get("node_names"),
        from_inputs=options.get("from_inputs"),
        to_outputs=options.get("to_outputs"),
        node_namespaces=options.get("namespaces"),
    )
    resume_log.info("%s", plan.summary())
    if not plan.to_run:
        return {}
    options["node_names"] = plan.to_run
    options["load_versions"] = {**user_pins, **plan.pins}
    return kedro_run.callback(**options)


cli.add_command(
    click.Command(
        name="run",
        params=[*kedro_run.params, click.Option(["--resume"], is_flag=True, help=RESUME_HELP)],
        callback=_readable_errors(_run),
        help=kedro_run.help,
        short_help=kedro_run.short_help,
    )
)
cli.add_command(runs)


@cli.command(name="compare")
@click.argument("variants", nargs=-1, required=True)
@click.option(
    "--params",
    type=click.UNPROCESSED,
    default="",
    callback=_split_params,
    help="Parameters for every variant, as for kedro run (e.g. data_root=..., an AOI).",
)
@click.option("--env", "-e", default=None, help="Kedro configuration environment.")
@click.option("--no-run", is_flag=True, help="Compare only variants that already have a result.")
@_readable_errors
def compare_command(variants: tuple[str, ...], params: dict, env: str | None, no_run: bool):
    """Compare VARIANTS (files in conf/base/variants/; `base` is the project's parameters):
    run those without a result, reusing what they do not change, then print one table and
    write it with plots to 08_reporting/compare/. The first variant is the reference."""
    from perceptive.compare import compare, default_variants

    result = compare(default_variants(variants), env=env, params=params, run_missing=not no_run)
    click.echo(result.text())
    click.echo(f"\nTable, plots and map differences: {result.folder}")
    if result.mlflow_run_id:
        click.echo(f"Logged to MLflow as run {result.mlflow_run_id} (see `kedro mlflow ui`).")
