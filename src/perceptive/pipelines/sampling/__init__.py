"""sampling: features_cube + reference_labels -> label_raster -> samples (train / validation)."""

from perceptive.pipelines.sampling.pipeline import create_pipeline

__all__ = ["create_pipeline"]
