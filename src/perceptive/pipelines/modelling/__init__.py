"""modelling: samples -> model (LightGBM by default) -> validation_metrics and plots."""

from perceptive.pipelines.modelling.pipeline import create_pipeline

__all__ = ["create_pipeline"]
