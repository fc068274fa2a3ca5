"""One contract for every swappable link of the workflow: choose an implementation by name.

A link (where L1C comes from, cloud masking, temporal interpolation, the classifier, ...) is
set in parameters the same way, ``{method: <name>, <that method's own options>}``. Each link
kind has one :class:`Registry`, next to its functions, with one call signature: the link's
inputs are the function's positional parameters, its options are the keyword-only ones, with
their type hints and defaults. So adding an implementation is one function and one line::

    def whittaker(values, valid, obs_days, target_days, *, lmbda: float = 10.0): ...
    METHODS.register("whittaker", whittaker)

Options are checked against the keyword-only parameters before any work starts (unknown keys
refused, values coerced to the hints, pydantic ``Field`` constraints honoured), and each
default lives in one place: the function's signature.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model


class LinkError(ValueError):
    """A link's method or options are not usable; the message names the key and the fix.

    ``option`` is the option the problem is about, if one is (for messages that name the
    full key, e.g. ``cloud_masking.threshold``)."""

    def __init__(self, message: str, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


def did_you_mean(word: str, choices) -> str:
    """' Did you mean 'x'?' when a choice is close to ``word``, else ''."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


class Registry:
    """The implementations of one link kind, by name (see the module docstring)."""

    def __init__(self, link: str, signature: str) -> None:
        self.link = link
        self.signature = signature
        self._methods: dict[str, Callable] = {}
        self._options: dict[str, type[BaseModel]] = {}

    def register(self, name: str, function: Callable) -> Callable:
        """Make ``function`` available as ``{method: name}``; returns it unchanged."""
        self._methods[name] = function
        self._options.pop(name, None)
        return function

    def names(self) -> list[str]:
        return sorted(self._methods)

    def __contains__(self, name: object) -> bool:
        return name in self._methods

    def get(self, name: str) -> Callable:
        """The implementation registered as ``name``; a clear error listing the others."""
        if name not in self._methods:
            raise LinkError(
                f"unknown {self.link} method {name!r}.{did_you_mean(name, self._methods)} "
                f"Choose one of: {', '.join(self.names())}."
            )
        return self._methods[name]

    def options_model(self, name: str) -> type[BaseModel]:
        """A pydantic model of the method's options, built from its keyword-only parameters."""
        if name not in self._options:
            self._options[name] = _options_model(f"{self.link}.{name}", self.get(name))
        return self._options[name]

    def validate(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """``{method, **options}`` checked, with every option's default filled in."""
        name, options = _split(spec, self.link)
        model = self.options_model(name)
        try:
            checked = model.model_validate(options)
        except ValidationError as err:
            option = str(err.errors()[0]["loc"][0]) if err.error_count() == 1 else None
            raise LinkError(_options_message(err, self.link, name, model), option) from None
        return {"method": name, **checked.model_dump()}

    def run(self, spec: Mapping[str, Any], *inputs: Any) -> Any:
        """Call the chosen method on the link's inputs with its options."""
        checked = self.validate(spec)
        name = checked.pop("method")
        return self.get(name)(*inputs, **checked)


class EstimatorRegistry(Registry):
    """The classifier link: scikit-learn already defines its contract, so a method is any
    scikit-learn classifier class, by a registered short name or by dotted path, and its
    options are the estimator's own parameters (``get_params``), checked by the estimator."""

    def __init__(self, link: str, signature: str) -> None:
        super().__init__(link, signature)
        self._pass_through: dict[type, Callable[[], set[str]]] = {}

    def accept_pass_through(self, cls: type, names: Callable[[], set[str]]) -> None:
        """Also accept ``names()`` as options of ``cls``: parameters an estimator passes on
        through ``**kwargs`` to its library (e.g. LightGBM's), absent from ``get_params``."""
        self._pass_through[cls] = names

    def get(self, name: str) -> type:
        if name in self._methods:
            return self._methods[name]
        module_name, _, class_name = str(name).rpartition(".")
        if not module_name:
            raise LinkError(
                f"unknown {self.link} {name!r}.{did_you_mean(name, self._methods)} Choose one "
                f"of {', '.join(self.names())} or give a dotted class path such as "
                "'sklearn.ensemble.ExtraTreesClassifier'."
            )
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as err:
            raise LinkError(
                f"cannot import {self.link} {name!r} ({err}); install its package into the "
                "project environment or fix the dotted path."
            ) from None
        return cls

    def validate(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        self.build(spec)
        name, options = _split(spec, self.link)
        return {"method": name, **options}

    def build(self, spec: Mapping[str, Any]) -> Any:
        """An unfitted estimator, its options checked against ``get_params`` and, for
        scikit-learn estimators, against their declared parameter constraints."""
        from sklearn.base import is_classifier

        name, options = _split(spec, self.link)
        cls = self.get(name)
        own = sorted(cls().get_params(deep=False))
        passed_on = self._pass_through[cls]() if cls in self._pass_through else set()
        unknown = [key for key in options if key not in own and key not in passed_on]
        if unknown:
            hints = "".join(
                did_you_mean(key, own) or did_you_mean(key, passed_on) for key in unknown
            )
            more = " and its library's own parameters" if passed_on else ""
            raise LinkError(
                f"{name} has no option(s) {unknown}.{hints} Its options: {', '.join(own)}{more}.",
                unknown[0] if len(unknown) == 1 else None,
            )
        try:
            estimator = cls(**options)
            if hasattr(estimator, "_parameter_constraints"):  # scikit-learn declares them
                estimator._validate_params()
        except (TypeError, ValueError) as err:
            raise LinkError(f"{name} refuses options {options}: {err}") from None
        if not (is_classifier(estimator) and hasattr(estimator, "predict_proba")):
            raise LinkError(
                f"{name} is not a scikit-learn classifier with predict_proba; choose a "
                f"classifier such as {', '.join(self.names())}."
            )
        return estimator


def _split(spec: Mapping[str, Any], link: str) -> tuple[str, dict[str, Any]]:
    if not isinstance(spec, Mapping) or not isinstance(spec.get("method"), str):
        raise LinkError(
            f"{link} must be a mapping with a 'method' name and that method's options, "
            f"e.g. {{method: <name>, ...}}; got {spec!r}."
        )
    options = {key: value for key, value in spec.items() if key != "method"}
    return spec["method"], options


def _options_model(title: str, function: Callable) -> type[BaseModel]:
    hints = typing.get_type_hints(function, include_extras=True)
    fields = {
        p.name: (hints.get(p.name, Any), ... if p.default is p.empty else p.default)
        for p in inspect.signature(function).parameters.values()
        if p.kind is p.KEYWORD_ONLY
    }
    config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, title=title)
    return create_model(title, __config__=config, **fields)


def _options_message(err: ValidationError, link: str, name: str, model: type[BaseModel]) -> str:
    allowed = list(model.model_fields)
    problems = []
    for e in err.errors():
        key = ".".join(str(part) for part in e["loc"])
        if e["type"] == "extra_forbidden":
            options = ", ".join(allowed) if allowed else "none"
            problems.append(
                f"{name} has no option {key!r}.{did_you_mean(key, allowed)} Its options: {options}."
            )
        else:
            problems.append(f"option {key!r} = {e.get('input')!r}: {e['msg']}.")
    return f"{link} method {name!r}: " + " ".join(problems)
