"""Where L1C data comes from: the ``source`` link, ``{method: <name>, <options>}``.

Every source has one signature::

    source(grid, time_interval, tile_size, **options) -> (l1c_cube, reference_labels or None)

The cube is lazy (dask) on ``grid``, chunked in ``tile_size`` px tiles; reference labels are
the source's own, if it has any. Adding a source is one function and one ``METHODS`` line.
"""

from __future__ import annotations

from typing import Annotated

import geopandas as gpd
import pandas as pd
import xarray as xr
from pydantic import Field

from perceptive.eo.grid import Grid
from perceptive.eo.links import Registry

SourceResult = tuple[xr.Dataset, gpd.GeoDataFrame | None]


def demo(
    grid: Grid,
    time_interval: tuple[pd.Timestamp, pd.Timestamp],
    tile_size: int,
    *,
    revisit_days: Annotated[int, Field(ge=1)] = 5,
    seed: Annotated[int, Field(ge=0)] = 42,
    mislabel_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.03,
) -> SourceResult:
    """The offline demo AOI: synthetic Sentinel-2 L1C with clouds, shadows, no-data strips
    and reference parcels, one acquisition every ``revisit_days``; ``seed`` picks the scene,
    ``mislabel_fraction`` of the reference parcels carry a wrong class (no account needed)."""
    from perceptive.sources.demo import demo_scene

    scene = demo_scene(
        grid, tuple(time_interval), revisit_days=revisit_days, seed=seed,
        mislabel_fraction=mislabel_fraction,
    )  # fmt: skip
    return scene.l1c_cube(tile_size=tile_size), scene.reference_labels()


#: The source link.
METHODS = Registry(
    "source", "source(grid, time_interval, tile_size, **options) -> (l1c_cube, labels | None)"
)
METHODS.register("demo", demo)
