"""prediction: features_cube + model -> prediction_cube (Zarr), lulc_map and confidence_map
(Cloud-Optimised GeoTIFF), class areas, map plot."""

from perceptive.pipelines.prediction.pipeline import create_pipeline

__all__ = ["create_pipeline"]
