"""modelling pipeline: samples -> model, validation_metrics, confusion_matrix_plot."""

from kedro.pipeline import Node, Pipeline

from perceptive.pipelines.modelling import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(nodes.train, ["samples", "params:classifier"], "model", name="train"),
            Node(
                nodes.evaluate,
                ["model", "samples"],
                ["validation_metrics", "confusion_matrix_plot"],
                name="evaluate",
            ),
        ]
    )
