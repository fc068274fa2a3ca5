"""Sweep what killed runs left behind: ``.partial-*`` files and folders of saves that never
finished, and the empty version folders around them.

A save writes to a ``.partial-`` sibling inside its version folder and renames it when whole,
so a kill -9 leaves the partial behind (never taken for a version, but taking disk). The next
run removes the partials of versions whose run is over: its record says it ended, or it says
"running" but its process is gone. A run still going on keeps its partials.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
from pathlib import Path

from perceptive.pruning import VERSION

log = logging.getLogger(__name__)


#: How deep under data_root version folders are looked for: saves sit at
#: <layer>/<dataset>/<version>/, the arms pipeline's at <layer>/arms/<arm>/<dataset>/<version>/
#: (catalog_arms.yml); one level more is spare.
MAX_DEPTH = 6


def sweep_partials(data_root: Path) -> list[Path]:
    """Remove the unfinished saves of runs that are over; returns what was removed."""
    data_root = Path(data_root)
    removed = []
    partials = (p for v in _version_dirs(data_root) for p in v.glob(".partial-*"))
    for partial in sorted(partials):
        version_dir = partial.parent
        if _still_running(data_root, version_dir.name):
            continue
        if partial.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
        else:
            partial.unlink(missing_ok=True)
        removed.append(partial)
        if not any(version_dir.iterdir()):  # nothing else was ever saved there
            version_dir.rmdir()
    if removed:
        log.info("Removed %d unfinished saves left by killed runs", len(removed))
    return removed


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
