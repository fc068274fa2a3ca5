"""sampling pipeline: features_cube, reference_labels -> label_raster, samples, samples_summary."""

from kedro.pipeline import Node, Pipeline

from perceptive.pipelines.sampling import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.rasterize_reference,
                ["features_cube", "reference_labels", "params:legend"],
                "label_raster",
                name="rasterize_reference",
            ),
            Node(
                nodes.sample_training_pixels,
                [
                    "features_cube",
                    "label_raster",
                    "reference_labels",
                    "params:sampling",
                    "params:legend",
                ],
                ["samples", "samples_summary"],
                name="sample_training_pixels",
                tags=["swappable", "sampling"],
            ),
        ]
    )
