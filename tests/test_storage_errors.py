"""A full disk or an unwritable output folder: a clear error naming the path and the fix, and
the store left as it was (perceptive.datasets.storage).

A full disk is made real with a file size limit (RLIMIT_FSIZE, SIGXFSZ ignored): a write past
it fails with EFBIG, as one on a full file system fails with ENOSPC, and needs no mount.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.io.core import Version

from perceptive.datasets import AtomicParquetDataset
from perceptive.datasets.storage import StorageError
from perceptive.datasets.zarr import ZarrDataset
from tests.conftest import PROJECT, SMALL_AOI
from tests.test_resume import kedro_command


def _limit_file_size(nbytes: int) -> tuple:
    previous = (signal.signal(signal.SIGXFSZ, signal.SIG_IGN),
                resource.getrlimit(resource.RLIMIT_FSIZE))  # fmt: skip
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, previous[1][1]))
    return previous


@contextmanager
def disk_full_after(nbytes: int):
    """Every file write past ``nbytes`` fails (EFBIG), in this process, within the block."""
    handler, limits = _limit_file_size(nbytes)
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_full_disk_during_a_parquet_save_is_named_and_leaves_nothing(tmp_path):
    folder = tmp_path / "samples.parquet"
    dataset = AtomicParquetDataset(filepath=str(folder), version=Version(None, None))
    table = pd.DataFrame(
        np.random.default_rng(0).normal(size=(200_000, 8)), columns=list("abcdefgh")
    )
    with disk_full_after(64 * 1024), pytest.raises(StorageError) as caught:
        dataset.save(table)
    message = str(caught.value)
    assert str(folder) in message and "no space left" in message
    assert "data_root" in message and "--resume" in message  # the fix
    assert files_under(tmp_path) == [] and list(folder.iterdir()) == []  # no empty version either
    dataset.save(table)  # with space again, the same dataset saves and loads whole
    pd.testing.assert_frame_equal(dataset.load(), table)


def test_full_disk_during_a_zarr_cube_save_is_named_and_leaves_nothing(tmp_path):
    folder = tmp_path / "features_cube.zarr"
    dataset = ZarrDataset(filepath=str(folder), version=Version(None, None))
    cube = xr.Dataset(
        {
            "features": (
                ("time", "y", "x"),
                np.random.default_rng(1).random((8, 256, 256), np.float32),
            )
        }
    ).chunk({"y": 64, "x": 64})
    with disk_full_after(16 * 1024), pytest.raises(StorageError) as caught:
        dataset.save(cube)
    assert str(folder) in str(caught.value) and "no space left" in str(caught.value)
    assert files_under(tmp_path) == []
    dataset.save(cube)
    np.testing.assert_array_equal(dataset.load()["features"].values, cube["features"].values)


def _data_root_error(data_root: Path) -> str:
    bootstrap_project(PROJECT)
    with pytest.raises(StorageError) as caught:
        with KedroSession.create(
            project_path=PROJECT, runtime_params={"data_root": str(data_root)}
        ) as session:
            session.load_context()
            session.run(pipeline_names=["ingestion"])
    return str(caught.value)


def test_data_root_below_a_file_is_refused_before_anything_runs(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where data_root's parent should be")
    message = _data_root_error(blocker / "data")
    assert str(blocker) in message and "Nothing was run" in message
    assert "--params data_root=PATH" in message
    assert files_under(tmp_path) == [blocker]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_data_root_is_refused_before_anything_runs(tmp_path):
    data_root = tmp_path / "data"
    data_root.mkdir()
    data_root.chmod(0o555)
    try:
        message = _data_root_error(data_root)
    finally:
        data_root.chmod(0o755)
    assert str(data_root) in message and "not writable" in message
    assert files_under(tmp_path) == []


def test_a_run_that_fills_the_disk_stops_with_the_path_and_resumes_when_there_is_space(tmp_path):
    """`kedro run --pipelines ingestion` with room for its small files but not for the L1C
    cube: it fails naming the cube's version folder, no partial or empty version is left, and
    once there is space `--resume` finishes it."""
    data_root = tmp_path / "data"
    command, env = kedro_command(tmp_path, {"data_root": str(data_root), "aoi": SMALL_AOI})
    command += ["--pipelines", "ingestion"]
    full = subprocess.run(command, cwd=PROJECT, env=env, capture_output=True, text=True,
                          preexec_fn=lambda: _limit_file_size(2 * 2**20), timeout=600)  # fmt: skip
    assert full.returncode != 0
    output = " ".join((full.stdout + full.stderr).split())  # rich wraps long lines
    assert "StorageError" in output and "no space left" in output, output[-3000:]
    assert str(data_root / "02_intermediate" / "l1c_cube.zarr") in output, output[-3000:]
    leftovers = [p for p in data_root.rglob("*") if ".partial-" in p.name]
    assert leftovers == []
    cube = data_root / "02_intermediate" / "l1c_cube.zarr"
    assert not cube.exists() or list(cube.iterdir()) == []  # no version, not even empty
    again = subprocess.run([*command, "--resume"], cwd=PROJECT, env=env, capture_output=True,
                           text=True, timeout=600)  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    (version,) = cube.iterdir()
    assert (version / "l1c_cube.zarr").is_dir()
