"""modelling: samples -> model (LightGBM by default) -> validation_metrics and plots."""
