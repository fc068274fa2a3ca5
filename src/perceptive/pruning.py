"""``kedro runs prune --keep N``: free the disk of old versions without breaking a kept run.

Every run adds a version of each output (a default run about 530 MB). A version is removed
only when no kept run saved or loaded it, so each kept run can still be traced and re-run
from exactly the data it used; runs still going on are always kept.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from perceptive.datasets.manifest import SUFFIX as MANIFEST_SUFFIX
from perceptive.datasets.remote import as_path, fresh, is_remote, url
from perceptive.run_listing import read_records

#: Kedro's version ids: save timestamps to the millisecond, e.g. 2026-11-25T16.03.45.123Z.
VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}\.\d{2}\.\d{2}\.\d{3}Z$")


@dataclass
class Pruned:
    """What a prune removed (or would remove, on a dry run)."""

    versions: list[Path] = field(default_factory=list)
    records: list[Path] = field(default_factory=list)
    bytes: int = 0


def prune_runs(data_root: str | Path, keep: int, dry_run: bool = False) -> Pruned:
    """Keep the ``keep`` newest runs (and any still running) and every version they saved or
    loaded; remove the other versions of every versioned dataset under ``data_root`` (a
    folder or a store URL) and the records of the removed runs."""
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}.")
    data_root = as_path(data_root)
    records = read_records(data_root)
    kept = records[:keep] + [r for r in records[keep:] if r.get("outcome") == "running"]
    used: set[tuple[str | None, str]] = set()  # (dataset folder or None: any, version)
    for record in kept:
        used.add((None, record.get("save_version")))  # its own outputs, whatever they are
        for entry in (record.get("datasets") or {}).values():
            where = entry.get("path")  # older records do not say: then keep the version
            where = _folder_key(where) if where else None
            used.update((where, v) for v in (entry.get("saved"), entry.get("loaded")) if v)
    pruned = Pruned()
    for version_dir in _version_folders(data_root):
        folder = _folder_key(version_dir.parent)
        if (folder, version_dir.name) not in used and (None, version_dir.name) not in used:
            pruned.versions.append(version_dir)
            pruned.bytes += _size(version_dir)
    keep_ids = {r.get("save_version") for r in kept}
    pruned.records = [
        data_root / "runs" / f"{r['save_version']}.json"
        for r in records
        if "save_version" in r and r["save_version"] not in keep_ids
    ]
    if not dry_run:
        for path in pruned.versions:
            _remove(path)
        for path in pruned.records:
            path.unlink(missing_ok=True)
    return pruned


def _folder_key(folder: str | Path) -> str:
    """A dataset folder as run records name it (run_record.py): a store's URL (with its
    path normalised, as Kedro keeps dataset paths), a local path resolved."""
    if is_remote(folder):
        folder = as_path(folder)
        return url(folder.protocol, folder.path)
    return str(Path(folder).resolve())


def _version_folders(data_root: Path) -> list[Path]:
    """``<dataset path>/<version>/`` folders of every versioned dataset under ``data_root``."""
    if is_remote(data_root):
        return sorted(stored_version_folders(data_root))
    return sorted(
        path
        for path in data_root.rglob("*")
        if path.is_dir() and VERSION.match(path.name) and path.parent.name != "runs"
    )


def stored_version_folders(data_root: Path):
    """The version folders on a store, by a walk that does not enter them: a listing per
    folder, where an rglob would list (and ask about) every Zarr chunk object."""
    fresh(data_root.fs)  # other processes may have saved since
    for folder, subdirs, _ in data_root.walk():
        versions = [name for name in subdirs if VERSION.match(name)]
        if folder.name != "runs":
            yield from (folder / name for name in versions)
        subdirs[:] = [name for name in subdirs if name not in versions]


def _size(path: Path) -> int:
    if is_remote(path):
        return path.fs.du(path.path)  # one listing of the folder's objects
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _remove(version_dir: Path) -> None:
    if not is_remote(version_dir):
        shutil.rmtree(version_dir)
        return
    # A store removes object by object: the manifests go first, so a prune cut short leaves
    # objects no listing or load takes for a version (perceptive.datasets.remote)
    fs = version_dir.fs
    manifests = [p.path for p in version_dir.glob(f"*{MANIFEST_SUFFIX}")]
    if manifests:
        fs.rm(manifests)
    fs.rm(version_dir.path, recursive=True)
