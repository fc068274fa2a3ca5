"""A full disk or an unwritable folder, said plainly: the path, the cause and the fix.

Without this, a save that runs out of space surfaces as a bare ``[Errno 28]`` deep inside
a Zarr or Parquet writer, and an unwritable ``data_root`` is found only by the first node
that saves, after minutes of work. Here the datasets turn those ``OSError``\\ s into a
:class:`StorageError` naming the version that could not be written (their atomic writes
have already removed what they started, so the store is as it was), and
:func:`check_writable` probes every output folder of a run before its first node.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from kedro.io.core import DatasetError

from perceptive.datasets.remote import as_path, is_remote

#: errno values that mean "the file system takes no more data" (EFBIG: a file size limit).
NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
#: errno values that mean "this path cannot be written here".
NOT_WRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR}

#: Below this much free space under an output folder, a run starts with a warning (a default
#: run adds about 530 MB).
LOW_SPACE_BYTES = 1 << 30


class StorageError(DatasetError):
    """An output could not be written because of where it goes, not because of the data."""


def storage_error(exc: BaseException, target: Path) -> StorageError | None:
    """The :class:`StorageError` for ``exc`` raised while writing ``target``, or None when
    ``exc`` is not a full or unwritable store (then the caller re-raises it as it is)."""
    cause = _os_error(exc)
    if cause is None or cause.errno not in NO_SPACE | NOT_WRITABLE:
        return None
    return StorageError(
        f"Could not write {target}: {_problem(cause, cause.filename or target)}. Nothing of this version was "
        f"kept. {_fix(cause)}, then rerun with `kedro run --resume`."
    )


@contextmanager
def saving(final: Path) -> Iterator[None]:
    """Around a save to ``final`` (which removes its own temporaries): a full or unwritable
    store becomes a :class:`StorageError` naming ``final``, and a version folder the save
    created is removed again when the save left it empty."""
    new_folder = not final.parent.exists()
    try:
        yield
    except Exception as exc:
        error = storage_error(exc, final)
        if error is None:
            raise
        raise error from exc
    finally:
        if new_folder and not final.exists():
            try:
                final.parent.rmdir()
            except OSError:  # not empty, or already gone
                pass


def check_writable(folders: Iterable[Path]) -> list[str]:
    """Probe each folder (or its nearest existing ancestor, where it would be created) by
    writing and removing a small file; raise :class:`StorageError` naming the first that
    cannot be written, before anything runs. Returns a warning per file system low on space."""
    folders = list(folders)
    local = [Path(f) for f in folders if not is_remote(f)]
    for store in sorted({_store_root(f) for f in folders if is_remote(f)}, key=str):
        _probe_remote(store)
    warnings, file_systems = [], set()
    for folder in sorted({_nearest_existing(f) for f in local}):
        probe = folder / f".perceptive-write-test-{uuid.uuid4().hex[:8]}"
        try:
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as exc:
            if exc.errno not in NO_SPACE | NOT_WRITABLE:
                raise
            raise StorageError(
                f"Outputs cannot be written under {folder}: {_problem(exc, folder)}. Nothing "
                f"was run. {_fix(exc)}."
            ) from exc
        device = os.stat(folder).st_dev
        if device in file_systems:
            continue
        file_systems.add(device)
        free = _free_bytes(folder)
        if free is not None and free < LOW_SPACE_BYTES:
            warnings.append(
                f"Only {free / 2**20:.0f} MB free under {folder}; a default run adds about "
                "530 MB. `kedro runs prune --keep N` removes old versions."
            )
    return warnings


def _store_root(path) -> Path:
    """The bucket (or container) of a remote path: one probe per store is enough."""
    path = as_path(path)
    return as_path(f"{path.protocol}://{path.path.split('/', 1)[0]}")


def _probe_remote(store: Path) -> None:
    """Write and remove a small object in ``store``; a missing bucket or a refusal becomes
    a :class:`StorageError` naming it. (Free space is not a question an object store answers.)"""
    probe = store / f".perceptive-write-test-{uuid.uuid4().hex[:8]}"
    try:
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:  # s3fs says FileNotFoundError for a missing bucket, PermissionError
        raise StorageError(
            f"Outputs cannot be written to {store}: {type(exc).__name__}: {exc}. Nothing was "
            "run. Create the bucket, check the store's credentials (for S3: AWS_ACCESS_KEY_ID, "
            "AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL or ~/.aws) or set another data_root "
            "(--params data_root=...)."
        ) from exc


def _problem(cause: OSError, where) -> str:
    if cause.errno in NO_SPACE:
        free = _free_bytes(Path(where))
        free_text = "free space unknown" if free is None else f"{free / 2**20:.0f} MB free"
        return f"no space left ({cause.strerror} at {where}; {free_text} there)"
    return f"{where} is not writable ({cause.strerror})"


def _fix(cause: OSError) -> str:
    if cause.errno in NO_SPACE:
        return (
            "Free some space (`kedro runs prune --keep N` removes old versions) or set "
            "data_root to a larger disk (--params data_root=PATH)"
        )
    return (
        "Make the folder writable, or set data_root to one you can write (--params data_root=PATH)"
    )


def _os_error(exc: BaseException | None) -> OSError | None:
    """The first ``OSError`` in ``exc``'s chain (writers wrap them in their own errors)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno is not None:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _nearest_existing(path: Path) -> Path:
    """``path`` or its nearest ancestor that exists (a file there makes the probe fail)."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _free_bytes(path: Path) -> int | None:
    try:
        return shutil.disk_usage(_nearest_existing(path)).free
    except OSError:
        return None
