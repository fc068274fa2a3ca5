"""No usage data leaves the machine by default: Kedro's and MLflow's telemetry are off."""

import os
import subprocess
import sys

from kedro_telemetry.plugin import _check_for_telemetry_consent

from tests.conftest import PROJECT

_SWITCHES = ("DO_NOT_TRACK", "KEDRO_DISABLE_TELEMETRY", "MLFLOW_DISABLE_TELEMETRY")


def test_the_project_ships_kedro_telemetry_consent_off(monkeypatch):
    for name in _SWITCHES:
        monkeypatch.delenv(name, raising=False)
    assert _check_for_telemetry_consent(PROJECT) is False


def test_mlflow_telemetry_is_off_once_the_project_is_loaded():
    """In a fresh interpreter without any switch set, as `kedro run` starts on a new machine;
    MLflow is imported first, as Kedro's CLI does when it loads kedro-mlflow's commands."""
    # MLflow also stays quiet under pytest or CI: hide those markers, as on a user's machine
    markers = ("PYTEST_CURRENT_TEST", "CI", "GITHUB_ACTIONS", "GITLAB_CI", "JENKINS_URL")
    env = {k: v for k, v in os.environ.items() if k not in (*_SWITCHES, *markers)}
    code = (
        "import mlflow\n"
        "from mlflow.telemetry import get_telemetry_client\n"
        "from kedro.framework.startup import bootstrap_project\n"
        f"bootstrap_project({str(PROJECT)!r})\n"
        "from mlflow.telemetry.utils import is_telemetry_disabled\n"
        "print(is_telemetry_disabled(), get_telemetry_client() is None)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=PROJECT, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    assert out.stdout.split()[-2:] == ["True", "True"], out.stdout + out.stderr
