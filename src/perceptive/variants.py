"""Variants: named sets of parameter overrides, one file each in ``conf/base/variants/``.

Why: "what does swapping this link do?" is answered by running the workflow once per variant
and comparing (``kedro compare``, perceptive.compare). A variant is a plain YAML file::

    description: no cloud masking (every observation kept)
    parameters:
      cloud_masking: {method: none}

Its parameters are layered over the run's own (conf/base, conf/local, then ``--params``) as
one more layer, with the same rule as any layer (perceptive.config): setting a link's
``method`` replaces that link's options. ``base`` is the project's defaults, with no file.

A variant's result is recognised by its parameters, not by its name: two runs made with the
same resolved parameters (apart from where data and caches live, which do not change a
result) have the same :func:`parameters_hash`, recorded in the run record and as an MLflow
tag, whoever started them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from perceptive.config import merge_layers

#: The variant with no overrides: the project's own parameters.
BASE = "base"

#: Parameters that say where things are or how they are computed, not what is computed.
RESULT_NEUTRAL = (
    ("data_root",),
    ("dask",),
    ("compiled_model", "enabled"),
    ("compiled_model", "cache"),
    ("compiled_model", "auto_from_mpx"),
    ("compiled_model", "engine"),
    ("cloud_masking", "compiled"),  # same answers either way (checked when used)
)


class VariantError(ValueError):
    """A variant that cannot be found or read; the message names the file and the fix."""


@dataclass(frozen=True)
class Variant:
    name: str
    description: str = "the project's parameters"
    parameters: dict[str, Any] = field(default_factory=dict)

    def changes(self) -> str:
        """The overrides as short ``key=value`` text, for tables."""
        from perceptive.run_listing import flatten

        flat = flatten(self.parameters) if self.parameters else {}
        return ", ".join(f"{k}={json.dumps(v)}" for k, v in flat.items()) or "(none)"

    def runtime_params(self, common: dict[str, Any]) -> dict[str, Any]:
        """``common`` (the user's ``--params``) with this variant's overrides layered on top."""
        merged, _ = merge_layers([("--params", common), (f"variant {self.name}", self.parameters)])
        return merged


def variants_folder(conf_source: Path) -> Path:
    return Path(conf_source) / "base" / "variants"


def available(conf_source: Path) -> list[str]:
    return [BASE, *sorted(p.stem for p in variants_folder(conf_source).glob("*.yml"))]


def load_variant(name: str, conf_source: Path) -> Variant:
    """The variant ``name`` from ``<conf_source>/base/variants/<name>.yml`` (``base``: none)."""
    path = variants_folder(conf_source) / f"{name}.yml"
    if name == BASE and not path.exists():
        return Variant(BASE)
    if not path.is_file():
        from perceptive.eo.links import did_you_mean

        names = available(conf_source)
        raise VariantError(
            f"No variant {name!r}: {path} does not exist.{did_you_mean(name, names)} "
            f"Variants: {', '.join(names)}. A variant is a YAML file with `description` and "
            "`parameters` (overrides of conf/base/parameters_*.yml)."
        )
    content = yaml.safe_load(path.read_text()) or {}
    unknown = set(content) - {"description", "parameters"}
    parameters = content.get("parameters") or {}
    if unknown or not isinstance(parameters, dict):
        raise VariantError(
            f"{path}: a variant holds only `description` (text) and `parameters` (a mapping "
            f"of overrides); found {sorted(content)}."
        )
    return Variant(name, str(content.get("description") or name), parameters)


def parameters_hash(parameters: dict[str, Any]) -> str:
    """A short digest of the resolved parameters that change a result (see RESULT_NEUTRAL).
    Options left unset (None) are left out, so a new optional option does not make every
    earlier run look different."""
    kept = _without_unset(parameters)  # new dicts: the pops below leave ``parameters`` as is
    for path in RESULT_NEUTRAL:
        parent = kept
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict):
            parent.pop(path[-1], None)
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _without_unset(value: Any) -> Any:
    """``value`` with every None-valued key of its dicts left out (dicts rebuilt, not edited)."""
    if isinstance(value, dict):
        return {k: _without_unset(v) for k, v in value.items() if v is not None}
    return value
