"""arms: the modelling and prediction links once per arm (Kedro namespaces), on shared inputs."""

from perceptive.pipelines.arms.pipeline import create_pipeline

__all__ = ["create_pipeline"]
