"""ingestion pipeline: parameters -> aoi_tiles, l1c_cube, reference_labels."""

from kedro.pipeline import Node, Pipeline

from perceptive.pipelines.ingestion import nodes


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                nodes.define_aoi,
                ["params:aoi", "params:resolution", "params:tile_size"],
                ["aoi_grid", "aoi_tiles"],
                name="define_aoi",
            ),
            Node(
                nodes.fetch_l1c,
                ["aoi_grid", "params:source", "params:time_interval", "params:tile_size"],
                ["l1c_cube", "source_reference_labels"],
                name="fetch_l1c",
            ),
            Node(
                nodes.import_reference_labels,
                ["source_reference_labels", "params:reference", "aoi_grid"],
                "reference_labels",
                name="import_reference_labels",
            ),
        ]
    )
