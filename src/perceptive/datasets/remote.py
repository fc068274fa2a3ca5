"""data_root on an object store (``s3://``, ``gs://``, ``az://``, any fsspec URL).

Why a rule of its own: locally, a save writes a ``.partial-`` sibling and renames it when
whole. An object store has no rename (a "move" is a copy, object by object), so there a
version is written in place and **counts once its manifest is written**, which every save
does last (see perceptive.datasets.manifest): version listings look for manifests, loads
verify against them, and a save killed half-way leaves objects that no load ever sees. A
single object is whole or absent anyway (a PUT, or a multipart upload completed on close).

Credentials and endpoints are fsspec's and the store's own (for S3: ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, ``~/.aws``), never the project's config.

Paths under a remote data_root are :class:`upath.UPath` (universal_pathlib, fsspec's own
pathlib), so code that reads run records or provenance works on both; a local data_root is a
plain local path (``UPath`` of a local path is a ``pathlib.Path``).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import fsspec
from upath import UPath

#: Local folder for what a remote store cannot do in place: GeoTIFF and vector versions are
#: written here before upload and downloaded here to be read (GDAL reads local files), the
#: MLflow tracking store and the sources' staging (see perceptive.config).
CACHE_ENV = "PERCEPTIVE_CACHE"


def is_remote(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an fsspec URL of a store other than the local disk."""
    protocol = str(path).split("://", 1)[0] if "://" in str(path) else "file"
    return protocol not in ("file", "local")


def as_path(path: str | os.PathLike) -> Path:
    """A local path as ``pathlib.Path``, a remote URL as ``UPath`` (both ``/``-joinable)."""
    if isinstance(path, UPath) or is_remote(path):
        return UPath(path)
    return Path(str(path).removeprefix("file://"))


def url(protocol: str, path: str | PurePosixPath) -> str:
    """The URL of a dataset path as Kedro keeps it (protocol stripped)."""
    return f"{protocol}://{PurePosixPath(path).as_posix()}"


def dataset_path(dataset, path: str | PurePosixPath | None = None) -> Path:
    """``path`` of a Kedro dataset (its ``filepath`` by default), which Kedro keeps without
    its protocol, as a local ``Path`` or, on an object store, a ``UPath``."""
    where = dataset._filepath if path is None else path
    return as_path(url(getattr(dataset, "_protocol", "file"), where))


def filesystem(protocol: str) -> fsspec.AbstractFileSystem:
    """fsspec's file system for ``protocol`` (configured by its own environment)."""
    return fsspec.filesystem(protocol)


def fresh(fs: fsspec.AbstractFileSystem) -> fsspec.AbstractFileSystem:
    """``fs`` after forgetting every listing it cached: versions may have been written by
    another process (a dask worker, another run) since it last looked, and s3fs forgets
    only a path and its parents, not the folders below it, when asked about one path."""
    fs.invalidate_cache()
    return fs


def cache_folder(*parts: str) -> Path:
    """A local folder under ``$PERCEPTIVE_CACHE`` (default ``~/.cache/perceptive``)."""
    root = os.environ.get(CACHE_ENV) or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "perceptive"
    )
    folder = Path(root, *parts)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def local_mirror(remote_url: str) -> Path:
    """The local cache folder that stands for ``remote_url`` (``s3://bucket/x`` ->
    ``<cache>/remote/s3/bucket/x``): versions are immutable, so a copy stays right."""
    protocol, path = remote_url.split("://", 1)
    return cache_folder("remote", protocol, *PurePosixPath(path).parts)


def local_folder(data_root: str) -> str:
    """Config resolver ``${local_folder:<data_root>}``: ``data_root`` itself when it is local,
    else its local mirror, for what must stay on this machine whatever the data_root: the
    MLflow tracking store (SQLite needs a local file) and the sources' staging of tiles in
    progress (mlflow.yml, catalog.yml)."""
    return str(local_mirror(data_root)) if is_remote(data_root) else data_root
