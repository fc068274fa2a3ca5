"""Where L1C data comes from. Every source has one signature, chosen by the ``source``
parameter:

    source(grid, time_interval, tile_size, options) -> (l1c_cube, reference_labels or None)

The cube is lazy (dask) on ``grid``; reference labels are the source's own, if it has any.
"""

from __future__ import annotations

from collections.abc import Callable

import geopandas as gpd
import xarray as xr

from perceptive.eo.grid import Grid

SourceResult = tuple[xr.Dataset, gpd.GeoDataFrame | None]
Source = Callable[[Grid, tuple, int, dict], SourceResult]


def _demo(grid: Grid, time_interval: tuple, tile_size: int, options: dict) -> SourceResult:
    from perceptive.sources.demo import demo_scene

    scene = demo_scene(grid, tuple(time_interval), **options)
    return scene.l1c_cube(tile_size=tile_size), scene.reference_labels()


#: name -> (source, one-line description for error messages and docs)
SOURCES: dict[str, tuple[Source, str]] = {
    "demo": (_demo, "offline synthetic Sentinel-2 L1C over the demo AOI (no account needed)"),
}


class UnknownSourceError(ValueError):
    """The ``source`` parameter names no registered source."""


def get_source(name: str) -> Source:
    """The source registered as ``name``; a clear error listing the known ones otherwise."""
    if name not in SOURCES:
        known = "; ".join(f"{key}: {desc}" for key, (_, desc) in SOURCES.items())
        raise UnknownSourceError(
            f"Unknown source {name!r}. Set parameter 'source' to one of: {known} "
            "(e.g. `kedro run --params source=demo`)."
        )
    return SOURCES[name][0]
