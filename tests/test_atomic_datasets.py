"""perceptive.datasets.atomic: kedro-datasets outputs appear whole or not at all."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest
from kedro.io.core import DatasetError, Version

from perceptive import provenance
from perceptive.datasets import (
    AtomicCSVDataset,
    AtomicJSONDataset,
    AtomicMatplotlibDataset,
    AtomicParquetDataset,
    AtomicPickleDataset,
)
from tests.conftest import kill_when

OLD = "2020-01-01T00.00.00.000Z"
NEW = "2020-01-02T00.00.00.000Z"
SRC = Path(__file__).resolve().parents[1] / "src"


class _Boom:
    """A value that fails when written as text (after earlier CSV chunks are on disk)."""

    def __str__(self) -> str:
        raise RuntimeError("cannot format")

    __repr__ = __str__

    def __format__(self, spec: str) -> str:
        raise RuntimeError("cannot format")


def _figure(value: float = 1.0):
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, value])
    return fig


def _frame(n: int = 50) -> pd.DataFrame:
    return pd.DataFrame({"x": range(n), "y": [f"s{i}" for i in range(n)]})


# (class, save_args, good data, bad data whose serialisation fails part way)
CASES = {
    "parquet": (
        AtomicParquetDataset,
        {},
        lambda: _frame(),
        lambda: pd.DataFrame({"x": range(1000), "bad": [object()] * 1000}),
    ),
    "csv": (
        AtomicCSVDataset,
        {"index": False, "chunksize": 1000},
        lambda: _frame(),
        lambda: pd.DataFrame({"x": range(20000), "y": ["a"] * 19999 + [_Boom()]}),
    ),
    "pickle": (
        AtomicPickleDataset,
        {},
        lambda: {"model": [1, 2, 3]},
        lambda: {"big": b"x" * (1 << 20), "bad": lambda: 0},
    ),
    "json": (
        AtomicJSONDataset,
        {},
        lambda: {"oa": 0.9, "classes": [1, 2]},
        lambda: {"a": list(range(20000)), "b": {1, 2}},
    ),
    "matplotlib": (
        AtomicMatplotlibDataset,
        {},
        lambda: _figure(),
        lambda: {"a.png": _figure(), "b.png": None},  # first PNG written, second fails
    ),
}
SUFFIX = {"parquet": "parquet", "csv": "csv", "pickle": "pkl", "json": "json", "matplotlib": "png"}


def _dataset(kind: str, path: Path, load=None, save=None, versioned=True):
    cls, save_args, _, _ = CASES[kind]
    kwargs = {"save_args": save_args} if save_args else {}
    version = Version(load, save) if versioned else None
    return cls(filepath=str(path), version=version, **kwargs)


def _equal(kind: str, loaded, expected) -> None:
    if isinstance(expected, pd.DataFrame):
        pd.testing.assert_frame_equal(loaded, expected, check_dtype=False)
    else:
        assert loaded == expected


def _partials(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".partial-" in p.name]


@pytest.mark.parametrize("kind", sorted(CASES))
def test_failed_save_leaves_nothing_and_keeps_previous_version(tmp_path, kind):
    path = tmp_path / f"out.{SUFFIX[kind]}"
    _, _, good, bad = CASES[kind]
    expected = good()
    _dataset(kind, path, save=OLD).save(expected)

    with pytest.raises(DatasetError):
        _dataset(kind, path, save=NEW).save(bad())

    assert not (path / NEW / path.name).exists()
    assert not _partials(tmp_path)
    latest = _dataset(kind, path)
    assert latest.resolve_load_version() == OLD
    assert latest.list_versions(full_path=False) == [OLD]
    assert latest.exists()
    assert not _dataset(kind, path, load=NEW).exists()
    if kind != "matplotlib":  # MatplotlibDataset cannot load
        _equal(kind, latest.load(), expected)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_round_trip_and_pinned_versions(tmp_path, kind):
    path = tmp_path / f"out.{SUFFIX[kind]}"
    _, _, good, _ = CASES[kind]
    first, second = good(), good()
    _dataset(kind, path, save=OLD).save(first)
    saving = _dataset(kind, path, save=NEW)
    saving.save(second)
    assert saving.resolve_save_version() == NEW  # what provenance records
    assert (path / NEW / path.name).is_file()
    assert not _partials(tmp_path)
    assert _dataset(kind, path).list_versions(full_path=False) == [NEW, OLD]
    if kind == "matplotlib":
        assert (path / NEW / path.name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        _equal(kind, _dataset(kind, path).load(), second)
        _equal(kind, _dataset(kind, path, load=OLD).load(), first)  # --load-versions


def test_unversioned_save_replaces_the_file(tmp_path):
    path = tmp_path / "metrics.json"
    _dataset("json", path, versioned=False).save({"a": 1})
    _dataset("json", path, versioned=False).save({"a": 2})
    assert _dataset("json", path, versioned=False).load() == {"a": 2}
    assert not _partials(tmp_path)


def test_matplotlib_list_and_dict_save_as_one_folder(tmp_path):
    path = tmp_path / "plots.png"
    AtomicMatplotlibDataset(filepath=str(path), version=Version(None, OLD)).save(
        [_figure(1), _figure(2)]
    )
    AtomicMatplotlibDataset(filepath=str(path), version=Version(None, NEW)).save(
        {"a.png": _figure(1), "b.png": _figure(2)}
    )
    assert sorted(p.name for p in (path / OLD / path.name).iterdir()) == ["0.png", "1.png"]
    assert sorted(p.name for p in (path / NEW / path.name).iterdir()) == ["a.png", "b.png"]
    assert not _partials(tmp_path)
    with pytest.raises(DatasetError, match="only when versioned"):
        AtomicMatplotlibDataset(filepath=str(tmp_path / "flat.png")).save([_figure()])


def test_other_protocols_save_in_place_and_count_once_their_manifest_is_written():
    """Any fsspec store (here fsspec's in-memory one; S3 in test_remote_datasets.py)."""
    import fsspec

    path = "memory:///perceptive-atomic/metrics.json"
    AtomicJSONDataset(filepath=path, version=Version(None, OLD)).save({"a": 1})
    fs = fsspec.filesystem("memory")
    fs.pipe_file(f"/perceptive-atomic/metrics.json/{NEW}/metrics.json", b'{"a": 2}')  # no manifest
    assert fs.exists(f"/perceptive-atomic/metrics.json/{OLD}/metrics.json.manifest.json")
    assert AtomicJSONDataset(filepath=path, version=Version(None, None)).load() == {"a": 1}


def test_provenance_sidecar_lands_next_to_the_saved_file(tmp_path):
    path = tmp_path / "samples.parquet"
    dataset = AtomicParquetDataset(filepath=str(path), version=Version(None, None))
    dataset.save(_frame())
    version = provenance.saved_version(dataset)
    sidecar = provenance.write_sidecar(dataset, "samples", {"run_id": "x"})
    assert sidecar == path / version / "samples.provenance.json"
    assert (path / version / path.name).is_file()


_KILLED_SAVE = """
import numpy as np, pandas as pd
from kedro.io.core import Version
from perceptive.datasets import AtomicParquetDataset
n = 20_000_000
frame = pd.DataFrame({"a": np.arange(n, dtype="float64"), "b": np.arange(n) % 977})
AtomicParquetDataset(filepath=PATH, version=Version(None, NEW)).save(frame)
print("finished")
"""


def test_kill_during_save_leaves_previous_version_newest(tmp_path):
    path = tmp_path / "samples.parquet"
    old = _frame()
    AtomicParquetDataset(filepath=str(path), version=Version(None, OLD)).save(old)
    script = f"PATH = {str(path)!r}\nNEW = {NEW!r}\n" + textwrap.dedent(_KILLED_SAVE)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    child = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE)

    def writing() -> bool:  # mid-write: bytes on disk, file incomplete
        return any(p.is_file() and p.stat().st_size > 0 for p in _partials(path))

    kill_when(child, writing, 120, "the save's first bytes")
    assert child.stdout.read() == b""  # killed before the save returned

    assert not (path / NEW / path.name).exists()  # no truncated file under a final name
    assert _partials(path)  # the dead writer's temporary is still there, ignored
    latest = AtomicParquetDataset(filepath=str(path), version=Version(None, None))
    assert latest.list_versions(full_path=False) == [OLD]
    pd.testing.assert_frame_equal(latest.load(), old)
