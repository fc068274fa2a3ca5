"""Provenance inside each saved artefact: which run, node, parameters and input versions made it.

A file copied out of ``data_root`` still says where it came from, and a downstream link can read
upstream choices from its inputs. It goes inside the data where the format keeps it (xarray
attrs, so Zarr attrs and the GeoTIFF tag ``PROVENANCE``; a ``"provenance"`` field of a JSON
dict) and otherwise into a sidecar ``<dataset name>.provenance.json`` in the version folder.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import uuid
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

import xarray as xr
from kedro.io.core import AbstractDataset, AbstractVersionedDataset
from kedro_datasets.json import JSONDataset

from perceptive.datasets.remote import dataset_path, is_remote

#: Key of the provenance in xarray attrs (a JSON string: Zarr attrs must be JSON, GeoTIFF
#: tags strings) and in JSON dicts (a nested object).
KEY = "provenance"


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types (pydantic models dumped, tuples as lists, NaN as null,
    anything else unknown as its string), so records never fail to serialise."""
    if hasattr(value, "model_dump"):  # pydantic models
        return jsonable(value.model_dump(mode="json"))
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy
        return jsonable(value.tolist())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, PurePath):
        return value.as_posix()
    return str(value)


def saved_version(dataset: AbstractDataset | None) -> str | None:
    """The version this run saves ``dataset`` under; None when it is not versioned."""
    if isinstance(dataset, AbstractVersionedDataset):
        return dataset.resolve_save_version()
    return None


def embed(data: Any, dataset: AbstractDataset, provenance: dict) -> bool:
    """Put ``provenance`` into ``data`` before it is saved, if the format keeps it there.
    Returns False when it needs a sidecar instead."""
    if isinstance(data, (xr.Dataset, xr.DataArray)):
        data.attrs[KEY] = json.dumps(provenance)
        return True
    if isinstance(data, dict) and isinstance(dataset, JSONDataset):
        data[KEY] = provenance
        return True
    return False


def write_sidecar(dataset: AbstractVersionedDataset, name: str, provenance: dict) -> Path:
    """Write ``<version folder>/<name>.provenance.json`` next to the file just saved."""
    saved = dataset._get_versioned_path(dataset.resolve_save_version())
    folder = dataset_path(dataset, saved).parent
    return write_json_atomic(folder / f"{name}.provenance.json", provenance)


def write_json_atomic(path: Path, content: Any) -> Path:
    """Write JSON to a temporary sibling and rename it, so a reader never sees half a file.
    On an object store (a ``UPath``), written in place: one PUT is whole or absent, and a
    store has no rename."""
    text = json.dumps(content, indent=2) + "\n"
    if is_remote(path):
        path.write_text(text)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".partial-{uuid.uuid4().hex[:8]}-{path.name}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
