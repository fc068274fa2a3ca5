"""Base for perceptive's own versioned datasets: local files or directories, written atomically.

Subclasses say how to read and write one path; this class does Kedro versioning
(``<filepath>/<version>/<name>``) and writes to a temporary sibling that is renamed when
complete, so a crash never leaves a half-written version that a later load takes as newest.

Subclasses that set ``with_manifest = True`` (Zarr cubes, GeoTIFF maps) also get an integrity
manifest: written after the data is complete and before the rename, verified on every load
(see perceptive.datasets.manifest), so a file lost or changed after saving is an error
naming the version and the pipeline that rebuilds it, not silently read fill values.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path, PurePosixPath
from typing import Any, Generic, TypeVar

from kedro.io.core import AbstractVersionedDataset, DatasetError, Version, get_protocol_and_path

from perceptive.datasets import manifest, storage

T = TypeVar("T")


class LocalVersionedDataset(AbstractVersionedDataset[T, T], Generic[T]):
    """Versioned dataset on the local file system; subclasses implement ``_read``/``_write``."""

    #: Write ``<name>.manifest.json`` on save and verify the version against it on load.
    with_manifest: bool = False
    #: On load, files smaller than this (bytes) have their checksum verified too, every file
    #: when None; larger ones only exist with their size (see perceptive.datasets.manifest).
    checksum_below: int | None = None

    def __init__(
        self,
        *,
        filepath: str,
        version: Version | None = None,
        load_args: dict[str, Any] | None = None,
        save_args: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        protocol, path = get_protocol_and_path(filepath, version)
        if protocol != "file":
            raise DatasetError(
                f"{type(self).__name__} writes atomically to local disk only; got {filepath!r}."
            )
        self._load_args = dict(load_args or {})
        self._save_args = dict(save_args or {})
        self.metadata = metadata
        super().__init__(
            filepath=PurePosixPath(path),
            version=version,
            exists_function=os.path.exists,
            glob_function=_glob,
        )

    def _read(self, path: Path) -> T:
        raise NotImplementedError

    def _write(self, data: T, path: Path) -> None:
        raise NotImplementedError

    def _sidecars(self, path: Path) -> list[Path]:
        """Files ``_write`` made next to ``path`` (named ``<path name>.<suffix>``, e.g. GDAL's
        ``.aux.xml``), renamed with it; none by default."""
        return []

    def load(self) -> T:
        path = Path(self._get_load_path())
        if self.with_manifest:
            version = path.parent.name if self._version else None
            manifest.verify(path, version=version, checksum_below=self.checksum_below)
        return self._read(path)

    def save(self, data: T) -> None:
        final = Path(self._get_save_path())
        tmp = final.with_name(f".partial-{uuid.uuid4().hex[:8]}-{final.name}")
        with storage.saving(final):
            try:
                final.parent.mkdir(parents=True, exist_ok=True)
                self._write(data, tmp)
                if final.exists():
                    raise DatasetError(
                        f"{final} already exists; a saved version is never overwritten."
                    )
                sidecars = self._sidecars(tmp)
                if self.with_manifest:  # the data is complete: record it before it becomes visible
                    sidecars.append(manifest.write(tmp, final.name, _about(data)))
                for sidecar in sidecars:  # first: the main file's name marks completion
                    os.replace(sidecar, final.with_name(final.name + sidecar.name[len(tmp.name) :]))
                os.replace(tmp, final)
            finally:
                if tmp.is_dir():
                    shutil.rmtree(tmp)
                elif tmp.exists():
                    tmp.unlink()
                for sidecar in self._sidecars(tmp):
                    sidecar.unlink()
                manifest.manifest_path(tmp).unlink(missing_ok=True)

    def _exists(self) -> bool:
        try:
            return Path(self._get_load_path()).exists()
        except DatasetError:
            return False

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "version": self._version}


def _about(data: Any) -> dict[str, Any]:
    """Catalog name and node from the embedded provenance (perceptive.provenance), kept in
    the manifest so an integrity error can name the dataset and the pipeline to re-run."""
    try:
        record = json.loads(data.attrs["provenance"])
        return {"dataset": record.get("dataset"), "node": record.get("node")}
    except (AttributeError, KeyError, TypeError, ValueError):
        return {}


def _glob(pattern: str) -> list[str]:
    """Glob that skips the temporary ``.partial-`` siblings of unfinished writes."""
    import glob

    return [p for p in glob.glob(pattern) if ".partial-" not in p]
