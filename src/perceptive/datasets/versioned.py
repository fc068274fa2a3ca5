"""Base for perceptive's own versioned datasets: files or directories, written atomically.

Subclasses say how to read and write one path; this class does Kedro versioning
(``<filepath>/<version>/<name>``) and writes to a temporary sibling that is renamed when
complete, so a crash never leaves a half-written version that a later load takes as newest.

Subclasses that set ``with_manifest = True`` (Zarr cubes, GeoTIFF maps) also get an integrity
manifest: written after the data is complete and before the rename, verified on every load
(see perceptive.datasets.manifest), so a file lost or changed after saving is an error
naming the version and the pipeline that rebuilds it, not silently read fill values.

On an object store (a ``filepath`` URL such as ``s3://...``; see perceptive.datasets.remote)
there is no rename: every dataset gets a manifest, written last, and only versions with one
are listed or loaded. Subclasses whose format writes to any fsspec URL (Zarr) set
``writes_in_place`` and are written straight into their version; the others (GDAL's
GeoTIFF and vector files) are written to a local temporary folder, uploaded, then the
manifest; to be read they are downloaded once into a local cache (versions never change).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path, PurePosixPath
from typing import Any, Generic, TypeVar

from kedro.io.core import AbstractVersionedDataset, DatasetError, Version, get_protocol_and_path

from perceptive.datasets import manifest, remote, storage

T = TypeVar("T")


class VersionedFileDataset(AbstractVersionedDataset[T, T], Generic[T]):
    """Versioned dataset on local disk or an object store; subclasses implement
    ``_read``/``_write``."""

    #: Write ``<name>.manifest.json`` on save and verify the version against it on load
    #: (always on an object store, where the manifest marks completion).
    with_manifest: bool = False
    #: On load, files smaller than this (bytes) have their checksum verified too, every file
    #: when None; larger ones only exist with their size (see perceptive.datasets.manifest).
    checksum_below: int | None = None
    #: ``_write`` and ``_read`` take an fsspec URL (a ``UPath``) as well as a local path, so
    #: on an object store the version is written and read where it is, with no local copy.
    writes_in_place: bool = False

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
        self._protocol = "file" if protocol in ("file", "local") else protocol
        self._load_args = dict(load_args or {})
        self._save_args = dict(save_args or {})
        self.metadata = metadata
        if self._protocol == "file":
            exists, glob = os.path.exists, _glob
        else:
            self._fs = remote.filesystem(self._protocol)
            exists, glob = self._finished_remotely, self._glob_remote
        super().__init__(
            filepath=PurePosixPath(path), version=version, exists_function=exists,
            glob_function=glob,
        )  # fmt: skip

    @property
    def _remote(self) -> bool:
        return self._protocol != "file"

    def _finished_remotely(self, path: str) -> bool:
        """On an object store a version exists once its manifest does (see module doc)."""
        return self._fs.exists(str(path) + manifest.SUFFIX)

    def _glob_remote(self, pattern: str) -> list[str]:
        remote.fresh(self._fs)
        found = self._fs.glob(pattern + manifest.SUFFIX)
        return [p[: -len(manifest.SUFFIX)] for p in found]

    def _read(self, path: Path) -> T:
        raise NotImplementedError

    def _write(self, data: T, path: Path) -> None:
        raise NotImplementedError

    def _sidecars(self, path: Path) -> list[Path]:
        """Files ``_write`` made next to ``path`` (named ``<path name>.<suffix>``, e.g. GDAL's
        ``.aux.xml``), renamed with it; none by default."""
        return []

    def load(self) -> T:
        if self._remote:
            return self._load_remote()
        path = Path(self._get_load_path())
        if self.with_manifest:
            version = path.parent.name if self._version else None
            manifest.verify(path, version=version, checksum_below=self.checksum_below)
        return self._read(path)

    def _load_remote(self) -> T:
        path = remote.dataset_path(self, self._get_load_path())
        version = path.parent.name if self._version else None
        manifest.verify(path, version=version, checksum_below=self.checksum_below)
        if self.writes_in_place:
            return self._read(path)
        return self._read(_cached_copy(path, version))

    def _save_remote(self, data: T) -> None:
        """Write in place or upload, then the manifest last (see module doc)."""
        final = remote.dataset_path(self, self._get_save_path())
        if final.exists() or manifest.manifest_path(final).exists():
            raise DatasetError(f"{final} already exists; a saved version is never overwritten.")
        if self.writes_in_place:
            try:
                self._write(data, final)
            except BaseException:  # without a manifest it would never be read; tidy anyway
                if final.exists():
                    final.fs.rm(final.path, recursive=True)
                raise
            manifest.write_in_place(final, _about(data), self.checksum_below)
            return
        with tempfile.TemporaryDirectory(prefix="perceptive-upload-") as folder:
            tmp = Path(folder) / final.name
            self._write(data, tmp)
            listing = manifest.write(tmp, final.name, _about(data))
            for item in [*self._sidecars(tmp), tmp]:
                final.fs.put(str(item), f"{final.path}{item.name[len(tmp.name) :]}",
                             recursive=item.is_dir())  # fmt: skip
            final.fs.put(str(listing), manifest.manifest_path(final).path)  # last: it counts

    def save(self, data: T) -> None:
        if self._remote:
            return self._save_remote(data)
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
            path = self._get_load_path()
        except DatasetError:
            return False
        return self._exists_function(str(path))

    def _describe(self) -> dict[str, Any]:
        return {"filepath": self._filepath, "version": self._version}


def _cached_copy(path: Path, version: str | None) -> Path:
    """A verified local copy of the stored file ``path`` (a ``UPath``) and its sidecars, for
    formats GDAL reads from local files; downloaded once, as a version never changes."""
    local = remote.local_mirror(str(path.parent)) / path.name
    if local.exists():
        try:
            manifest.verify(local, version=version, checksum_below=None)
            return local
        except manifest.CorruptedDatasetError:  # a download cut short: fetch it again
            pass
    for item in path.parent.iterdir():  # the file, its manifest and sidecars
        item.fs.get(item.path, str(local.parent / item.name), recursive=True)
    manifest.verify(local, version=version, checksum_below=None)
    return local


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
