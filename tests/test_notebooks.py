"""The notebooks run top to bottom on a small run, and are committed without outputs.

Each notebook is executed by nbclient in a kernel of this test's own Python (a kernel spec
written to a temporary folder, so no system kernel is used), from the notebooks folder as
Jupyter would, with ``PERCEPTIVE_DATA_ROOT`` pointing at a data folder holding two runs.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from perceptive.run_listing import read_records
from tests.conftest import PROJECT, SMALL_RUN, run_kedro

NOTEBOOKS = PROJECT / "notebooks"
KERNEL = "perceptive-tests"


def committed_notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


@pytest.fixture(scope="module")
def two_runs(small_run, tmp_path_factory) -> Path:
    """A data folder with the session's small run and a second run of modelling alone with
    another classifier setting. The small run is copied, not rerun: its outputs and its own
    run record only (other tests add runs to it), without its MLflow store."""
    source, _ = small_run
    data_root = tmp_path_factory.mktemp("notebooks") / "data"
    ignore = shutil.ignore_patterns("runs", "mlflow.db", "mlartifacts")
    shutil.copytree(source, data_root, ignore=ignore)
    first = min((source / "runs").glob("*.json"))  # the small run's record: the oldest
    (data_root / "runs").mkdir()
    shutil.copy2(first, data_root / "runs" / first.name)
    run_kedro(data_root, ["modelling"], **{**SMALL_RUN, "classifier": {"n_estimators": 20}})
    return data_root


@pytest.fixture(scope="module")
def kernel_dirs(tmp_path_factory) -> list[str]:
    """A kernel spec running this interpreter (the project's environment)."""
    folder = tmp_path_factory.mktemp("kernels")
    spec = folder / KERNEL
    spec.mkdir()
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "perceptive (tests)", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel))
    return [str(folder)]


def execute(path: Path, kernel_dirs: list[str]) -> nbformat.NotebookNode:
    """Run a notebook top to bottom; nbclient raises CellExecutionError on any cell error."""
    nb = nbformat.read(path, as_version=4)
    manager = KernelManager(
        kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=kernel_dirs)
    )
    client = NotebookClient(
        nb, km=manager, timeout=300, resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()
    return nb


def tagged(nb: nbformat.NotebookNode, tag: str) -> list[dict]:
    """The outputs of the one cell tagged ``tag``."""
    cells = [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"expected one cell tagged {tag!r}, found {len(cells)}"
    return cells[0]["outputs"]


def images(outputs: list[dict]) -> int:
    return sum("image/png" in o.get("data", {}) for o in outputs)


def text(outputs: list[dict]) -> str:
    """All text of the outputs: streams, and the plain and HTML forms of results."""
    parts = [o.get("text", "") for o in outputs]
    for o in outputs:
        data = o.get("data", {})
        parts += [data.get("text/plain", ""), data.get("text/html", "")]
    return "\n".join(parts)


def check_explore_run(nb, data_root: Path) -> None:
    for tag in ("quicklooks", "valid-count", "ndvi-profiles"):
        assert images(tagged(nb, tag)) == 1, tag
    profiles = text(tagged(nb, "ndvi-profiles"))
    assert "cultivated land" in profiles and "water" in profiles


def check_compare_runs(nb, data_root: Path) -> None:
    versions = [r["save_version"] for r in read_records(data_root)]
    assert len(versions) == 2
    for tag in ("runs-table", "accuracy-table"):
        table = text(tagged(nb, tag))
        assert all(v in table for v in versions), (tag, versions, table)
    assert "classifier.n_estimators" in text(tagged(nb, "runs-table"))
    assert images(tagged(nb, "accuracy-plot")) == 1


def check_map_errors(nb, data_root: Path) -> None:
    summary = text(tagged(nb, "summary"))
    assert "validation pixels" in summary and "overall accuracy" in summary
    assert images(tagged(nb, "confusion-matrix")) == 1
    assert images(tagged(nb, "error-map")) == 1


CHECKS = {
    "explore_run": check_explore_run,
    "compare_runs": check_compare_runs,
    "map_errors": check_map_errors,
}


@pytest.mark.parametrize("path", committed_notebooks(), ids=lambda p: p.stem)
def test_notebook_runs(path, two_runs, kernel_dirs, monkeypatch):
    assert path.stem in CHECKS, f"{path.name}: add what to check of its outputs to CHECKS"
    monkeypatch.setenv("PERCEPTIVE_DATA_ROOT", str(two_runs))
    nb = execute(path, kernel_dirs)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert not errors
    CHECKS[path.stem](nb, two_runs)


@pytest.mark.parametrize("path", committed_notebooks(), ids=lambda p: p.stem)
def test_notebook_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i} has outputs: clear them"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"


def test_every_notebook_is_checked():
    assert {p.stem for p in committed_notebooks()} == set(CHECKS)
