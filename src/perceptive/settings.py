"""Project settings: hooks, configuration loading, telemetry."""

import os
import warnings

# Library notices a user can do nothing about, printed on every run: omegaconf's deprecation
# of the resolver API Kedro calls, and MLflow's advice on model type hints (no model is logged).
warnings.filterwarnings("ignore", message=r"register_new_resolver\(\) is deprecated")
warnings.filterwarnings("ignore", message=r".*Add type hints to the `predict` method")
# zarr's notes that string coordinates and consolidated metadata are not in the Zarr v3 spec
# (xarray reads both back; other Zarr readers may not, which DESIGN.md accepts).
warnings.filterwarnings("ignore", message=r"The data type \(FixedLengthUTF32")
warnings.filterwarnings("ignore", message=r"Consolidated metadata is currently not part")
# rioxarray's own call when a GeoTIFF is opened lazily with the file's blocks (chunks: true).
warnings.filterwarnings("ignore", message=r"Supplying chunks as dimension-order tuples")

# No usage data leaves the machine: MLflow's own telemetry is off unless the user turns it on.
# MLflow decides when it is first imported, and `kedro` imports it (kedro-mlflow's commands)
# before reading this file, so set_telemetry_client() makes it decide again, with the variable.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from kedro_mlflow.framework.hooks import MlflowHook  # noqa: E402  (after the filters)
from mlflow.telemetry import set_telemetry_client  # noqa: E402

set_telemetry_client()

from perceptive.config import ProjectConfigLoader  # noqa: E402
from perceptive.engine import DaskHooks  # noqa: E402
from perceptive.hooks import InputCheckHooks, SourceCredentialsHooks  # noqa: E402
from perceptive.run_record import RunRecordHooks  # noqa: E402

# kedro-mlflow's hook is registered here, not through its entry point, so that there is one
# and its place is known: RunRecordHooks logs the run record into the MLflow run it opens
# (see RunRecordHooks for the order of calls). Kedro matches the distribution name as in its
# metadata, "kedro_mlflow"; with "kedro-mlflow" the entry-point hook stayed registered too and
# every run was logged twice (a parent and a nested run).
HOOKS = (InputCheckHooks(), SourceCredentialsHooks(), DaskHooks(), RunRecordHooks(), MlflowHook())
# kedro-viz's own hooks (run statistics for its Workflow view) would write .viz/ into the
# project folder on every run, wherever data_root is; `kedro viz` works without them.
DISABLE_HOOKS_FOR_PLUGINS = ("kedro_mlflow", "kedro-viz")

# Parameters: conf/base, then the run environment (conf/local), then --params, merged key by
# key except that choosing another link method replaces that link's options; then validated
# against perceptive.params before any node runs (see perceptive.config).
CONFIG_LOADER_CLASS = ProjectConfigLoader
CONFIG_LOADER_ARGS = {"base_env": "base", "default_run_env": "local"}
