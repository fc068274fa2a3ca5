"""feature_engineering pipeline: l1c_cube -> masks_cube, features_cube, quick-looks."""

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
                tags=["swappable", "cloud_masking", "cloud_shadows"],
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
                tags=["swappable", "interpolation"],
            ),
            Node(
                nodes.make_quicklooks,
                ["l1c_cube", "masks_cube", "features_cube", "params:quicklook_date"],
                ["valid_count_map", "valid_count_plot", "true_colour_plot"],
                name="make_quicklooks",
            ),
        ]
    )
