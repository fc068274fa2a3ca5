"""Versioned vector files (GeoPackage, GeoJSON, …) read and written with pyogrio.

kedro-datasets' geopandas dataset switches geopandas to fiona globally on import, which
this project does not install.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
from kedro.io.core import DatasetError

from perceptive.datasets.versioned import VersionedFileDataset


class VectorDataset(VersionedFileDataset[gpd.GeoDataFrame]):
    """``GeoDataFrame`` <-> any OGR vector file; the driver follows the file extension."""

    def _read(self, path: Path) -> gpd.GeoDataFrame:
        return gpd.read_file(path, engine="pyogrio", **self._load_args)

    def _write(self, data: gpd.GeoDataFrame, path: Path) -> None:
        if not isinstance(data, gpd.GeoDataFrame):
            raise DatasetError(f"VectorDataset saves a GeoDataFrame, got {type(data).__name__}.")
        driver = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".json": "GeoJSON"}.get(
            Path(self._filepath).suffix.lower()
        )
        # the layer is named after the final file, not the temporary one
        args = {"layer": Path(self._filepath).stem, **self._save_args}
        data.to_file(path, driver=driver, engine="pyogrio", **args)
