"""ingestion pipeline: parameters -> aoi_tiles, l1c_cube, reference_labels."""

from kedro.pipeline import Node, Pipeline

from perceptive.pipelines.ingestion import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.define_aoi,
                [
                    "params:aoi",
                    "params:resolution",
                    "params:tile_size",
                    "params:time_interval",
                    "params:max_cube_gb",
                ],
                ["aoi_grid", "aoi_shape", "aoi_tiles"],
                name="define_aoi",
            ),
            Node(
                nodes.fetch_l1c,
                [
                    "aoi_grid",
                    "aoi_shape",
                    "aoi_tiles",
                    "params:source",
                    "params:time_interval",
                    "params:tile_size",
                    "l1c_staging",
                    "source_credentials",
                ],
                ["l1c_cube", "source_reference_labels"],
                name="fetch_l1c",
                tags=["swappable", "source"],
            ),
            Node(
                nodes.import_reference_labels,
                ["source_reference_labels", "params:reference", "l1c_cube"],
                "reference_labels",
                name="import_reference_labels",
            ),
        ]
    )
