"""prediction pipeline: features_cube, model -> lulc_map, confidence_map, class_areas, lulc_map_plot."""

from kedro.pipeline import Node, Pipeline

from perceptive.pipelines.prediction import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.predict,
                ["features_cube", "model"],
                ["lulc_map", "confidence_map"],
                name="predict",
            ),
            Node(
                nodes.summarise,
                ["lulc_map", "model"],
                ["class_areas", "lulc_map_plot"],
                name="summarise",
            ),
        ]
    )
