"""Sweep what killed runs left behind: ``.partial-*`` files and folders of saves that never
finished, sidecars renamed into place just before a main file that never came, half-written
run records, and the empty version folders around them.

A save writes to a ``.partial-`` sibling inside its version folder and renames it when whole,
so a kill -9 leaves the partial behind (never taken for a version, but taking disk). The next
run removes the partials of versions whose run is over: its record says it ended, or it says
"running" but its process is gone. A run still going on keeps its partials.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
from pathlib import Path

from perceptive.datasets import manifest
from perceptive.datasets.remote import as_path, is_remote
from perceptive.pruning import VERSION, stored_version_folders

log = logging.getLogger(__name__)


#: How deep under data_root version folders are looked for: saves sit at
#: <layer>/<dataset>/<version>/, the arms pipeline's at <layer>/arms/<arm>/<dataset>/<version>/
#: (catalog_arms.yml); one level more is spare.
MAX_DEPTH = 6


#: Files a save renames into place just before its main file (perceptive.datasets.versioned): a
#: kill between the two renames leaves one alone, ``<main file name><suffix>``.
SIDECAR_SUFFIXES = (manifest.SUFFIX, ".aux.xml")


def sweep_partials(data_root: Path) -> list[Path]:
    """Remove the unfinished saves of runs that are over (``.partial-`` files and folders,
    sidecars whose main file never arrived, half-written run records); returns what was
    removed.

    On an object store there are no ``.partial-`` names: saves write in place and a version
    counts once its manifest is written (perceptive.datasets.remote), so what a killed save
    leaves is a dataset entry without its manifest: never read, but taking space. Those of
    runs that are over are removed (:func:`_sweep_store`)."""
    if is_remote(data_root):
        return _sweep_store(as_path(data_root))
    data_root = Path(data_root)
    removed = []
    for version_dir in sorted(_version_dirs(data_root)):
        if _still_running(data_root, version_dir.name):
            continue
        leftovers = sorted(_unfinished(version_dir))
        for leftover in leftovers:
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
        removed += leftovers
        if leftovers and not any(version_dir.iterdir()):  # nothing else was ever saved there
            version_dir.rmdir()
    for record in sorted((data_root / "runs").glob(".partial-*")):
        version = RECORD_PARTIAL.match(record.name)
        if version and not _still_running(data_root, version["version"]):
            record.unlink(missing_ok=True)
            removed.append(record)
    if removed:
        log.info("Removed %d unfinished saves left by killed runs", len(removed))
    return removed


def _sweep_store(data_root: Path) -> list[Path]:
    """The object-store sweep: in each version folder of a run that is over, every entry
    (a file, or a Zarr store's prefix) that has no ``<entry>.manifest.json`` is removed, with
    its sidecars; finished entries and the run's provenance files stay."""
    removed = []
    for version_dir in stored_version_folders(data_root):
        if _still_running(data_root, version_dir.name):
            continue
        names = {item.name for item in version_dir.iterdir()}
        for name in sorted(names):
            if name.endswith(_NOT_AN_ENTRY) or name + manifest.SUFFIX in names:
                continue
            for leftover in (name, *(name + s for s in SIDECAR_SUFFIXES if name + s in names)):
                path = version_dir / leftover
                path.fs.rm(path.path, recursive=True)
                removed.append(path)
    if removed:
        log.info("Removed %d unfinished saves left by killed runs", len(removed))
    return removed


#: Files of a version folder that are not a dataset's entry: its sidecars and provenance.
_NOT_AN_ENTRY = (*SIDECAR_SUFFIXES, ".provenance.json")


#: A run record being written (perceptive.provenance.write_json_atomic): its version is in it.
RECORD_PARTIAL = re.compile(r"^\.partial-[0-9a-f]{8}-(?P<version>.+)\.json$")


def _unfinished(version_dir: Path) -> list[Path]:
    """The ``.partial-`` entries of a version folder, and its sidecars whose file is missing."""
    found = list(version_dir.glob(".partial-*"))
    for suffix in SIDECAR_SUFFIXES:
        for sidecar in version_dir.glob(f"*{suffix}"):
            main = version_dir / sidecar.name[: -len(suffix)]
            if not sidecar.name.startswith(".partial-") and not main.exists():
                found.append(sidecar)
    return found


def _version_dirs(data_root: Path):
    """The version folders under ``data_root``, down to MAX_DEPTH, without walking into them
    (a Zarr store is thousands of files) or into hidden folders."""
    top = len(data_root.parts)
    for folder, subdirs, _ in os.walk(data_root):
        here = Path(folder)
        yield from (here / d for d in subdirs if VERSION.match(d))
        if len(here.parts) - top + 1 >= MAX_DEPTH:  # its subfolders are as deep as it goes
            subdirs.clear()
        else:
            subdirs[:] = [d for d in subdirs if not VERSION.match(d) and not d.startswith(".")]


def _still_running(data_root: Path, version: str) -> bool:
    record_path = data_root / "runs" / f"{version}.json"
    try:
        record = json.loads(record_path.read_text())
    except (OSError, json.JSONDecodeError):
        return False  # no readable record: no run owns it any more
    if record.get("outcome") != "running":
        return False
    process = record.get("process") or {}
    if process.get("host") != socket.gethostname() or not process.get("pid"):
        return True  # another machine's run, or an old record: leave it alone
    return pid_alive(int(process["pid"]))


def pid_alive(pid: int) -> bool:
    """Whether a process of this machine is still there."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
