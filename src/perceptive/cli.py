"""Project commands: ``kedro run`` that reports the project's own errors in a few lines, and
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

from perceptive.hooks import MissingInputError
from perceptive.run_listing import runs

#: Logs only to the file handler (conf/logging.yml), so the console stays short.
traceback_log = logging.getLogger("perceptive.traceback")

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


cli.add_command(
    click.Command(
        name="run",
        params=kedro_run.params,
        callback=_readable_errors(kedro_run.callback),
        help=kedro_run.help,
        short_help=kedro_run.short_help,
    )
)
cli.add_command(runs)
