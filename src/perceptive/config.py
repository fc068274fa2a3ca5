"""How parameters are layered and checked: conf/base, then the run environment (conf/local),
then ``--params``, then validated against :class:`perceptive.params.ProjectParameters`.

Layers merge key by key (a variant changes one setting of a block), with one exception that
makes swapping a link safe: a layer that sets a link's ``method`` to another method replaces
the whole block, so the new method never inherits the old one's options
(``--params classifier.method=random_forest`` drops LightGBM's ``learning_rate``).

Each value remembers the layer that set it, so an error says where to fix it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from kedro.config import OmegaConfigLoader
from omegaconf import OmegaConf
from pydantic import BaseModel, ValidationError

from perceptive.datasets.remote import local_folder
from perceptive.eo.links import LinkError, did_you_mean
from perceptive.params import Aoi, ProjectParameters

KeyPath = tuple[str, ...]


class ParameterError(ValueError):
    """Parameters that cannot give a run; the message lists every problem, where it was set,
    and the fix."""


class ProjectConfigLoader(OmegaConfigLoader):
    """Kedro's loader, with parameters merged link-aware and validated before any node runs,
    and the project's resolver ``${local_folder:<data_root>}`` (perceptive.datasets.remote)
    known to every loader of the project, not only the one settings.py makes."""

    def __init__(self, *args: Any, custom_resolvers: dict | None = None, **kwargs: Any) -> None:
        resolvers = {"local_folder": local_folder, **(custom_resolvers or {})}
        super().__init__(*args, custom_resolvers=resolvers, **kwargs)

    def __getitem__(self, key: str) -> dict[str, Any]:
        if key != "parameters" or key in self:
            return super().__getitem__(key)
        self._register_runtime_params_resolver()
        base, env, *_ = self._read_raw_config(key)
        files = [*base.items(), *env.items()]  # base first: a run environment overrides it
        layers = [(_origin(path, self.conf_source), _resolved(cfg)) for path, cfg in files]
        layers.append(("--params", dict(self.runtime_params or {})))
        merged, origins = merge_layers(layers)
        return validate_parameters(merged, origins)


def _resolved(cfg) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True) or {}


def _origin(path: Path, conf_source: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(conf_source).resolve().parent))
    except ValueError:
        return str(path)


def merge_layers(layers: list[tuple[str, dict]]) -> tuple[dict, dict[KeyPath, str]]:
    """Merge ``(origin, parameters)`` layers in order; returns the result and, per key path,
    the origin of the layer that last set it."""
    merged: dict[str, Any] = {}
    origins: dict[KeyPath, str] = {}
    for origin, layer in layers:
        _merge_into(merged, layer, origin, (), origins)
    return merged, origins


def _merge_into(target: dict, layer: dict, origin: str, path: KeyPath, origins: dict) -> None:
    for key, value in layer.items():
        here = (*path, str(key))
        old = target.get(key)
        switches_method = (
            isinstance(value, dict)
            and isinstance(old, dict)
            and "method" in value
            and value["method"] != old.get("method")
        )
        if isinstance(value, dict) and isinstance(old, dict) and not switches_method:
            if here == ("aoi",):
                _drop_other_kinds(old, value, origins)
            _merge_into(old, value, origin, here, origins)
            continue
        target[key] = copy.deepcopy(value)
        for stale in [p for p in origins if p[: len(here)] == here]:
            del origins[stale]
        origins[here] = origin


def _drop_other_kinds(old: dict, new: dict, origins: dict[KeyPath, str]) -> None:
    """An AOI given one way (say a ``file``) replaces one given another way (a ``bbox``)."""
    if any(new.get(kind) is not None for kind in Aoi.KINDS):
        for kind in Aoi.KINDS:
            if kind not in new and old.pop(kind, None) is not None:
                origins.pop(("aoi", kind), None)


def validate_parameters(merged: dict, origins: dict[KeyPath, str]) -> dict[str, Any]:
    """The merged parameters checked against the schema, with every default filled in, as
    plain data (nodes get models built from it by Kedro)."""
    try:
        checked = ProjectParameters.model_validate(merged)
    except ValidationError as err:
        raise ParameterError(_message(_field_problems(err, merged, origins))) from None
    resolved = checked.model_dump(mode="json")
    conflicts = checked.conflicts()
    if conflicts:
        problems = [
            f"{key} = {_lookup(resolved, key)!r} ({_where(tuple(key.split('.')), origins, merged)})"
            f": {problem}"
            for key, problem in conflicts
        ]
        raise ParameterError(_message(problems))
    return resolved


def _message(problems: list[str]) -> str:
    count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
    return f"Invalid parameters ({count}; nothing was run):\n" + "\n".join(
        f"  - {line}" for line in problems
    )


def _lookup(merged: dict, key: str) -> Any:
    value: Any = merged
    for part in key.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _field_problems(err: ValidationError, merged: dict, origins: dict[KeyPath, str]) -> list[str]:
    lines = []
    for e in err.errors():
        loc = tuple(str(part) for part in e["loc"])
        cause = (e.get("ctx") or {}).get("error")
        if isinstance(cause, LinkError) and cause.option:
            loc = (*loc, cause.option)  # name the option, not only the link
        while loc and loc[-1].isdigit():  # an item of a list: speak of the list
            loc = loc[:-1]
        key = ".".join(loc) or "(parameters)"
        where = _where(loc, origins, merged)
        if e["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc[:-1])
            lines.append(
                f"{key} ({where}): unknown key.{did_you_mean(loc[-1], allowed)} "
                f"Allowed here: {', '.join(allowed)}."
            )
        elif e["type"] == "missing" and len(loc) == len(e["loc"]):
            lines.append(f"{key}: missing; every run needs it (conf/base/parameters_*.yml).")
        else:
            value = _lookup(merged, key)
            shown = "" if isinstance(value, dict) else f" = {value!r}"
            message = e["msg"].removeprefix("Value error, ")
            if e["type"] == "missing":  # an item missing from a list such as [start, end]
                message = "too few items."
            lines.append(f"{key}{shown} ({where}): {message}")
    return lines


def _where(loc: KeyPath, origins: dict[KeyPath, str], merged: dict) -> str:
    """Where the value at ``loc`` (or anything inside it) was set: the layer(s), or the
    method's default when no layer gave it."""
    found = [o for p, o in origins.items() if p[: len(loc)] == loc]
    for end in range(len(loc) - 1, 0, -1):
        if found or _lookup(merged, ".".join(loc)) is None:
            break
        if loc[:end] in origins:  # given inside a block that a layer set whole
            found.append(origins[loc[:end]])
    if not found:
        return "a default"
    return "set in " + ", ".join(dict.fromkeys(found))


def _allowed_keys(loc: KeyPath) -> list[str]:
    model: Any = ProjectParameters
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = field.annotation
        for inner in getattr(model, "__args__", ()):  # X | None
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                model = inner
    return list(getattr(model, "model_fields", {}))
