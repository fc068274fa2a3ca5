"""ingestion: AOI -> tiles and grid -> one year of L1C (``l1c_cube``) and reference labels."""

from perceptive.pipelines.ingestion.pipeline import create_pipeline

__all__ = ["create_pipeline"]
