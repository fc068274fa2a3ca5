"""Custom Kedro datasets, only where kedro-datasets has none (xarray cubes, GeoTIFF maps with
colour tables, vector files without fiona)."""

from perceptive.datasets.atomic import (
    AtomicCSVDataset,
    AtomicJSONDataset,
    AtomicMatplotlibDataset,
    AtomicParquetDataset,
    AtomicPickleDataset,
)
from perceptive.datasets.geotiff import GeoTiffDataset
from perceptive.datasets.staging import StagingFolder
from perceptive.datasets.vector import VectorDataset
from perceptive.datasets.zarr import ZarrDataset

__all__ = ["GeoTiffDataset", "StagingFolder", "VectorDataset", "ZarrDataset"]
__all__ += [
    "AtomicCSVDataset",
    "AtomicJSONDataset",
    "AtomicMatplotlibDataset",
    "AtomicParquetDataset",
    "AtomicPickleDataset",
]
