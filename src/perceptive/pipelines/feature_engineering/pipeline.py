"""feature_engineering pipeline: l1c_cube -> masks_cube, features_cube."""

from kedro.pipeline import Node, Pipeline

from perceptive.pipelines.feature_engineering import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.compute_masks,
                ["l1c_cube", "params:cloud_masking", "params:cloud_shadows"],
                "masks_cube",
                name="compute_masks",
            ),
            Node(
                nodes.compute_features,
                [
                    "l1c_cube",
                    "masks_cube",
                    "params:features",
                    "params:min_valid_fraction",
                    "params:date_grid",
                    "params:interpolation",
                ],
                "features_cube",
                name="compute_features",
            ),
        ]
    )
