"""prediction pipeline: features_cube, model -> prediction_cube -> lulc_map, confidence_map ->
class_areas (with area estimates from validation_metrics), lulc_map_plot."""

from kedro.pipeline import Node, Pipeline

from perceptive.pipelines.prediction import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.predict,
                [
                    "features_cube",
                    "model",
                    "params:probabilities",
                    "params:compiled_model",
                ],
                "prediction_cube",
                name="predict",
            ),
            Node(
                nodes.make_maps,
                ["prediction_cube", "model", "params:postprocessing"],
                ["lulc_map", "confidence_map"],
                name="make_maps",
                tags=["swappable", "postprocessing"],
            ),
            Node(
                nodes.summarise,
                ["lulc_map", "model", "validation_metrics"],
                ["class_areas", "lulc_map_plot"],
                name="summarise",
            ),
        ]
    )
