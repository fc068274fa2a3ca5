"""A folder where sources keep work in progress between runs (not a versioned output).

Tiled sources write each finished tile there (see :mod:`perceptive.sources.tiled`), so a rerun
after a crash reads only what is missing. Loading gives the folder's path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io.core import AbstractDataset, DatasetError


class StagingFolder(AbstractDataset[None, Path]):
    """``load()`` -> the folder (created if missing); nothing is ever saved through it."""

    def __init__(self, *, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self.metadata = metadata

    def load(self) -> Path:
        self._path.mkdir(parents=True, exist_ok=True)
        return self._path

    def save(self, data: None) -> None:
        raise DatasetError(f"{self._path} is a staging folder; sources write into it directly.")

    def _exists(self) -> bool:
        return True  # made on first load

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}
