"""Project pipelines, one per link of the land-cover workflow; `__default__` runs them all."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

#: The links in workflow order.
LINKS = ("ingestion", "feature_engineering", "sampling", "modelling", "prediction")


def register_pipelines() -> dict[str, Pipeline]:
    pipelines = find_pipelines(raise_errors=True)  # only the requested ones with --pipelines
    if all(name in pipelines for name in LINKS):
        pipelines["__default__"] = sum((pipelines[name] for name in LINKS), Pipeline([]))
    return pipelines
