"""modelling pipeline: samples -> model, validation_metrics, plots, feature_importance."""

from kedro.pipeline import Node, Pipeline

from perceptive.pipelines.modelling import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.train,
                ["samples", "params:classifier", "params:early_stopping"],
                "model",
                name="train",
                tags=["swappable", "classifier"],
            ),
            Node(
                nodes.evaluate,
                [
                    "model",
                    "samples",
                    "params:classifier",
                    "params:evaluation",
                    "params:early_stopping",
                ],
                ["validation_metrics", "confusion_matrix_plot"],
                name="evaluate",
            ),
            Node(
                nodes.explain,
                ["model", "samples"],
                ["feature_importance", "feature_importance_plot"],
                name="explain",
            ),
        ]
    )
