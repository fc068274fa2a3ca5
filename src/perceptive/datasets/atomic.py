"""kedro-datasets file datasets whose saves appear whole or not at all.

The stock ``ParquetDataset``, ``CSVDataset``, ``PickleDataset``, ``JSONDataset`` and
``MatplotlibDataset`` open ``<filepath>/<version>/<name>`` and stream into it, so a kill
mid-save leaves a truncated file under the final name, and the next load takes it as the
newest version. The subclasses here change only *where* the stock ``save`` writes: it writes
a temporary sibling ``.partial-<uuid>-<name>`` in the same version folder, which is fsynced
and then ``os.replace``-d onto the final name (atomic on one POSIX file system). On any error
the temporary is removed and nothing exists under the final name. This is the same scheme as
:mod:`perceptive.datasets.versioned`, reusing the upstream readers and writers instead of copying
them.

Everything else is upstream behaviour: version layout, load of the newest version,
``exists()``, ``list_versions()``, ``--load-versions``, ``resolve_save_version()`` and
``_get_versioned_path()`` (which the provenance sidecars use), and ``isinstance`` checks
against the upstream classes.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

from kedro.io.core import DatasetError
from kedro_datasets.json import JSONDataset
from kedro_datasets.matplotlib import MatplotlibDataset
from kedro_datasets.pandas import CSVDataset, ParquetDataset
from kedro_datasets.pickle import PickleDataset

from perceptive.datasets import manifest, remote
from perceptive.datasets.storage import saving

PARTIAL = ".partial-"

__all__ = [
    "AtomicCSVDataset",
    "AtomicJSONDataset",
    "AtomicMatplotlibDataset",
    "AtomicParquetDataset",
    "AtomicPickleDataset",
]


class AtomicSaveMixin:
    """Makes a kedro-datasets file dataset save through a temporary sibling and a rename.

    Put it first in the bases (``class X(AtomicSaveMixin, UpstreamDataset)``). How it works:
    while :meth:`save` runs, :meth:`_get_save_path` answers the temporary path, so the
    unchanged upstream ``save`` (its undecorated function: Kedro's save wrapper, which clears
    and re-resolves the save version, runs once, around this ``save``) writes there; then the
    file is fsynced and renamed. No ``__init__`` is added, so the datasets take exactly the
    upstream arguments and Kedro's recorded init arguments stay right.

    On an object store (``filepath`` an ``s3://``... URL) there is no rename: the upstream
    ``save`` writes the version in place (one object, whole or absent), then a manifest is
    written, and only versions with a manifest are listed or loaded, as for the project's own
    datasets (perceptive.datasets.remote); a load verifies the file against it.
    """

    _atomic_tmp: PurePosixPath | None = None

    def _get_save_path(self) -> PurePosixPath:
        if self._atomic_tmp is not None:
            return self._atomic_tmp
        return super()._get_save_path()  # type: ignore[misc]

    def _get_versions(self) -> list[str]:
        """Upstream version glob, skipping ``.partial-`` names like versioned.py's ``_glob``.
        The glob ``<filepath>/*/<name>`` cannot match our temporaries anyway; this only makes
        sure an unfinished write can never count as a version. On an object store, only
        versions whose manifest is written count."""
        if self._remote:
            remote.fresh(self._fs)  # type: ignore[attr-defined]
        versions = [p for p in super()._get_versions() if PARTIAL not in p]  # type: ignore[misc]
        if self._remote:
            versions = [p for p in versions if self._fs.exists(p + manifest.SUFFIX)]  # type: ignore[attr-defined]
        return versions

    @property
    def _remote(self) -> bool:
        return self._protocol != "file"  # type: ignore[attr-defined]

    def load(self) -> Any:
        bound = super().load  # type: ignore[misc]
        if self._remote:
            path = remote.dataset_path(self, self._get_load_path())  # type: ignore[attr-defined]
            version = path.parent.name if self._version else None  # type: ignore[attr-defined]
            manifest.verify(path, version=version, checksum_below=None)
        undecorated = getattr(bound, "__wrapped__", None)  # Kedro's wrapper is around this load
        return bound() if undecorated is None else undecorated(self)

    def save(self, data: Any) -> None:
        bound = super().save  # type: ignore[misc]
        undecorated = getattr(bound, "__wrapped__", None)  # upstream save without Kedro's wrapper
        if self._remote:
            final = remote.dataset_path(self, super()._get_save_path())  # type: ignore[misc]
            bound(data) if undecorated is None else undecorated(self, data)
            manifest.write_in_place(final, {}, checksum_below=None)  # last: the version counts
            self._invalidate_cache()  # type: ignore[attr-defined]
            return
        final = Path(super()._get_save_path())  # type: ignore[misc]  # raises if it exists
        tmp = final.with_name(f"{PARTIAL}{uuid.uuid4().hex[:8]}-{final.name}")
        self._atomic_tmp = PurePosixPath(tmp.as_posix())
        with saving(final):
            try:
                if undecorated is None:
                    bound(data)
                else:
                    undecorated(self, data)
                _fsync_tree(tmp)
                if self._version and final.exists():  # type: ignore[attr-defined]
                    raise DatasetError(
                        f"{final} already exists; a saved version is never overwritten."
                    )
                os.replace(tmp, final)
                _fsync(final.parent)  # make the rename itself durable
            finally:
                self._atomic_tmp = None
                if tmp.is_dir():
                    shutil.rmtree(tmp, ignore_errors=True)
                elif tmp.exists():
                    tmp.unlink()
        self._invalidate_cache()  # type: ignore[attr-defined]


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    """fsync a file, or every file of a folder (MatplotlibDataset's list/dict saves)."""
    if path.is_dir():
        for child in path.rglob("*"):
            if child.is_file():
                _fsync(child)
    _fsync(path)


class AtomicParquetDataset(AtomicSaveMixin, ParquetDataset):
    """``pandas.ParquetDataset`` whose save appears whole or not at all (see module doc)."""


class AtomicCSVDataset(AtomicSaveMixin, CSVDataset):
    """``pandas.CSVDataset`` whose save appears whole or not at all (see module doc)."""


class AtomicPickleDataset(AtomicSaveMixin, PickleDataset):
    """``pickle.PickleDataset`` whose save appears whole or not at all (see module doc)."""


class AtomicJSONDataset(AtomicSaveMixin, JSONDataset):
    """``json.JSONDataset`` whose save appears whole or not at all (see module doc)."""


class AtomicMatplotlibDataset(AtomicSaveMixin, MatplotlibDataset):
    """``matplotlib.MatplotlibDataset`` whose save appears whole or not at all.

    A single figure is one file, as above. A list or dict of figures is saved upstream as a
    folder of PNGs under the final name; here that whole folder is written as the temporary
    sibling and renamed at once, so a version holds all the figures or none. Without
    versioning that rename would have to replace an existing folder, which is not atomic, so
    list/dict saves are refused unless the dataset is versioned.
    """

    def save(self, data: Any) -> None:
        if isinstance(data, list | dict) and not self._version:
            raise DatasetError(
                f"{type(self).__name__} saves a list/dict of figures atomically only when "
                f"versioned (a folder cannot be replaced atomically); {self._filepath} is not."
            )
        super().save(data)
