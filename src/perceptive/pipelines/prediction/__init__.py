"""prediction: features_cube + model -> lulc_map, confidence_map (GeoTIFF), class areas, map plot."""

from perceptive.pipelines.prediction.pipeline import create_pipeline

__all__ = ["create_pipeline"]
