"""feature_engineering: l1c_cube -> masks_cube (clouds, valid data) -> features_cube on a date grid."""

from perceptive.pipelines.feature_engineering.pipeline import create_pipeline

__all__ = ["create_pipeline"]
