"""Integrity manifests: a finished version lists its files, and every load checks them.

Why: a Zarr store reads a missing chunk as its fill value and a missing variable folder (with
consolidated metadata) as all fill value, so one deleted file of ``features_cube`` went
through sampling and prediction silently; and GDAL reads a GeoTIFF whose compressed tile
bytes were overwritten without complaint when deflate happens to decode them. Only a record
made when the version was complete can tell "this chunk was never written" (zarr skips
chunks that are all fill value) from "this chunk was lost".

What: on save, once the data is complete under its temporary name and before the rename that
publishes it, :func:`write` puts ``<name>.manifest.json`` in the version folder, next to the
store, not inside it (a foreign file inside a Zarr hierarchy makes zarr warn, and a store
copied out of the version folder stays a plain, clean Zarr/GeoTIFF). It lists every file of
the store: path relative to the version folder, size and CRC-32C (``google_crc32c``, which
zarr itself depends on for its ``crc32c`` codec; hardware accelerated). It is renamed as a
sidecar before the store itself, so a version whose store name exists always has it.
Other sidecars (GDAL's ``.aux.xml``) are not listed: GDAL and QGIS may rewrite them.

On load, :func:`verify` checks, before anything is read: every listed file exists with its
size (one ``stat`` per file, always), and the checksum of files up to ``checksum_below``
bytes (all files of a GeoTIFF map; Zarr metadata, coordinates and small chunks). Large Zarr
chunks are not re-read at load: they carry zarr v3's standard ``crc32c`` codec (written by
ZarrDataset), so zarr verifies each one when it decodes it, and :class:`ChunkContextPipeline`
turns that bare "checksum do not match" into a :class:`CorruptedDatasetError` naming the
file, dataset, version and the pipeline that rebuilds it. Re-reading a whole cube on every
lazy load would cost as much as the load it guards.

A version saved before manifests existed loads with a one-line warning.

On an object store (perceptive.datasets.remote) every dataset has a manifest, and it does
one more job: written last (:func:`write_in_place` for what was written in place), it is
what makes a version count, so there a version without one is an unfinished save and is
refused, not warned about. Sizes come from one listing of the store, not a request per file.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import google_crc32c
from kedro.io.core import DatasetError
from zarr.core.codec_pipeline import BatchedCodecPipeline

from perceptive.datasets.remote import fresh, is_remote

log = logging.getLogger(__name__)

SUFFIX = ".manifest.json"
FORMAT = "perceptive-manifest/1"
#: At most this many offending files are named in an error.
_SHOWN = 5


class CorruptedDatasetError(DatasetError):
    """A saved version no longer matches the manifest written when it was complete."""


def manifest_path(path: Path) -> Path:
    """``<store>.manifest.json`` next to the store ``path``."""
    return path.with_name(path.name + SUFFIX)


def crc32c(path: Path, block: int = 16 << 20) -> str:
    """CRC-32C of a file (local or on an object store) as 8 hex digits, read in 16 MiB
    blocks."""
    crc = 0
    with path.open("rb") as f:
        while piece := f.read(block):
            crc = google_crc32c.extend(crc, piece)
    return f"{crc:08x}"


def write(tmp: Path, final_name: str, about: dict[str, Any] | None = None) -> Path:
    """Write the manifest of the finished store ``tmp`` (a file or a folder) as the sidecar
    ``<tmp>.manifest.json``; paths are recorded under ``final_name``, the name ``tmp`` gets
    when renamed. ``about`` (e.g. the catalog name and node from the provenance) is kept for
    error messages. Returns the manifest's path."""
    if tmp.is_dir():
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        names = [f"{final_name}/{p.relative_to(tmp).as_posix()}" for p in files]
    else:
        files, names = [tmp], [final_name]
    entries = {
        name: {"size": p.stat().st_size, "crc32c": crc32c(p)}
        for name, p in zip(names, files, strict=True)
    }
    return _write_listing(manifest_path(tmp), about, entries)


def write_in_place(store: Path, about: dict[str, Any] | None, checksum_below: int | None) -> Path:
    """Write the manifest of ``store``, a finished version on an object store (a ``UPath``),
    where it was written in place: one listing gives every file's size; the checksum is
    read back only for files under ``checksum_below`` bytes (all when None), as
    :func:`verify` checks only those (larger Zarr chunks carry their own crc32c codec).
    Written last, it is what makes the version count (perceptive.datasets.remote)."""
    entries = {
        name: {
            "size": size,
            "crc32c": crc32c(store.parent / name)
            if checksum_below is None or size < checksum_below
            else None,
        }
        for name, size in sorted(_remote_sizes(store).items())
    }
    return _write_listing(manifest_path(store), about, entries)


def _write_listing(out: Path, about: dict[str, Any] | None, entries: dict[str, dict]) -> Path:
    """The manifest file itself: format, ``about``, and each file's size and checksum."""
    content = {"format": FORMAT, **(about or {}), "checksum": "crc32c", "files": entries}
    out.write_text(json.dumps(content, indent=1) + "\n")
    return out


def _remote_sizes(store: Path) -> dict[str, int]:
    """Size of every file of ``store`` (a file or a folder on an object store, a ``UPath``),
    by name relative to its version folder, from one listing instead of a request per file."""
    fs, path = store.fs, store.path
    fresh(fs)
    found = fs.find(path, detail=True)
    prefix = path.rsplit("/", 1)[0] + "/"
    return {name[len(prefix) :]: int(info["size"]) for name, info in found.items()}


def verify(path: Path, *, version: str | None, checksum_below: int | None = None) -> bool:
    """Check the store ``path`` against its manifest; raise :class:`CorruptedDatasetError`
    on a missing file, a changed size or (files smaller than ``checksum_below`` bytes, every
    file when None) a changed checksum. Returns False, with a warning, when the version has
    no manifest (saved before manifests existed)."""
    listing = manifest_path(path)
    remote = is_remote(path)
    if not listing.exists():
        if remote:  # on an object store the manifest marks completion
            raise CorruptedDatasetError(
                _message(path, version, None, ["it has no manifest: its save never finished"])
            )
        log.warning(
            "%s (version %s) has no integrity manifest (saved before manifests existed); "
            "loading it unverified.",
            path,
            version or "unversioned",
        )
        return False
    try:
        manifest = json.loads(listing.read_text())
        files: dict[str, dict] = manifest["files"]
    except (ValueError, KeyError, TypeError) as err:
        raise CorruptedDatasetError(
            _message(path, version, None, [f"{listing.name} is unreadable ({err})"])
        ) from err
    root = path.parent
    on_store = _remote_sizes(path) if remote else None  # one listing, not a request per file
    missing, resized, changed = [], [], []
    for name, entry in files.items():
        try:
            size = on_store[name] if on_store is not None else os.stat(root / name).st_size
        except (FileNotFoundError, KeyError):
            missing.append(name)
            continue
        if size != entry["size"]:
            resized.append(f"{name} ({size} bytes, {entry['size']} when saved)")
        elif (checksum_below is None or size < checksum_below) and entry.get("crc32c"):
            if crc32c(root / name) != entry["crc32c"]:
                changed.append(name)
    problems = []
    if missing:
        problems.append(_few(f"{len(missing)} file(s) missing", missing, path))
    if resized:
        problems.append(_few(f"{len(resized)} file(s) changed size", resized, path))
    if changed:
        problems.append(_few(f"{len(changed)} file(s) changed content", changed, path))
    if problems:
        raise CorruptedDatasetError(_message(path, version, manifest.get("dataset"), problems))
    return True


def _few(what: str, names: list[str], path: Path) -> str:
    shown = [n[len(path.name) + 1 :] if n.startswith(path.name + "/") else n for n in names]
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return f"{what}: {', '.join(shown[:_SHOWN])}{more}"


def _message(path: Path, version: str | None, dataset: str | None, problems: list[str]) -> str:
    name = dataset or path.name.split(".")[0]
    return (
        f"Dataset {name!r}, version {version or '(unversioned)'}, at {path} is damaged: "
        f"{'; '.join(problems)}. It no longer matches the manifest written when it was saved, "
        f"so it is not used. {_remedy(name)}"
    )


def _remedy(name: str) -> str:
    pipeline = _producing_pipeline(name)
    run = (
        f"`kedro run --pipelines {pipeline}`" if pipeline else f"the pipeline that writes {name!r}"
    )
    return (
        f"Re-run {run} to write a new version, or pin an intact older one with "
        f"`--load-versions {name}:VERSION`."
    )


def _producing_pipeline(name: str) -> str | None:
    """The project pipeline (link) whose outputs include ``name``; None when unknown. Only on
    the error path, so building the pipelines does not slow loads."""
    try:
        from perceptive.hooks import _producing_pipeline as producer

        return producer(name)
    except Exception:  # noqa: BLE001 - a hint must never hide the real error
        return None


def describe_chunk(file: Path) -> str:
    """Error text for a Zarr chunk that failed its checksum: dataset, version, file, remedy.
    A versioned store sits at ``<filepath>/<version>/<name>`` with ``filepath`` ending in
    ``name``, which is how dataset and version are found from the chunk's path alone."""
    parts = file.parts
    for i in range(len(parts) - 1, 1, -1):
        if parts[i] == parts[i - 2] and "." in parts[i]:
            store, version = Path(*parts[: i + 1]), parts[i - 1]
            break
    else:
        return f"Zarr chunk {file} failed its crc32c checksum: its bytes changed after saving."
    try:
        dataset = json.loads(manifest_path(store).read_text()).get("dataset")
    except (OSError, ValueError):
        dataset = None
    inner = file.relative_to(store).as_posix()
    return _message(
        store, version, dataset, [f"chunk {inner} failed its crc32c checksum (bytes changed)"]
    )


class ChunkContextPipeline(BatchedCodecPipeline):
    """zarr's default codec pipeline, plus the chunk's file in checksum errors.

    zarr's ``crc32c`` codec raises a bare ``ValueError("Stored and computed checksum do not
    match ...")`` that does not say which array, chunk or store; it surfaces deep in a node's
    dask compute. The pipeline is the one place that knows both the chunk's key and the
    decode failure, so this subclass re-raises it as :class:`CorruptedDatasetError` with the
    dataset, version and remedy. Installed through zarr's documented ``codec_pipeline.path``
    setting (see perceptive.datasets.zarr), which changes nothing else: the data on disk is
    standard Zarr v3.
    """

    async def read_batch(self, batch_info, out, drop_axes=()) -> None:
        batch_info = list(batch_info)
        try:
            await super().read_batch(batch_info, out, drop_axes)
        except ValueError as err:
            if "checksum" not in str(err):
                raise
            keys = [_chunk_file(getter) for getter, *_ in batch_info]
            raise CorruptedDatasetError(
                describe_chunk(keys[0]) if len(keys) == 1 else f"{err} (one of {keys})"
            ) from err


def _chunk_file(getter: Any) -> Path:
    root = getattr(getattr(getter, "store", None), "root", None)
    return Path(root, getter.path) if root is not None else Path(str(getter))
