"""sampling pipeline: features_cube, reference_labels -> label_raster, samples."""

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
                ["features_cube", "label_raster", "params:sampling", "params:legend"],
                "samples",
                name="sample_training_pixels",
            ),
        ]
    )
