"""Where L1C data comes from: the ``source`` link, ``{method: <name>, <options>}``.

Every source has one signature::

    source(request: SourceRequest, **options) -> (l1c_cube, reference_labels or None)

``request`` (:mod:`perceptive.sources.tiled`) holds the AOI grid and polygon, its tiles, the
time interval, a staging folder and the credentials. The cube is lazy (dask), chunked in
``tile_size`` px tiles; remote and file sources read it tile by tile through
:func:`~perceptive.sources.tiled.read_tiled`, so a rerun resumes. Reference labels are the
source's own, if it has any. Adding a source is one function and one ``METHODS`` line.
"""

from __future__ import annotations

import logging
from typing import Annotated

import geopandas as gpd
import xarray as xr
from pydantic import Field
from shapely.geometry import box

from perceptive.eo.grid import reproject_geometry
from perceptive.eo.links import Registry
from perceptive.sources.tiled import SourceError, SourceRequest

log = logging.getLogger(__name__)

SourceResult = tuple[xr.Dataset, gpd.GeoDataFrame | None]

#: The AOI the demo was made for (the default AOI): 512 x 512 px of UTM 33N at 10 m.
DEMO_AOI = (box(500000, 5094880, 505120, 5100000), "EPSG:32633")

#: Attribute (in cubes, artefact provenance and the run record) that marks synthetic data.
DEMO_MARK = "synthetic_demo"


def demo(
    request: SourceRequest,
    *,
    revisit_days: Annotated[int, Field(ge=1)] = 5,
    seed: Annotated[int, Field(ge=0)] = 42,
    mislabel_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.03,
) -> SourceResult:
    """The offline demo AOI: synthetic Sentinel-2 L1C with clouds, shadows, no-data strips
    and reference parcels, one acquisition every ``revisit_days``; ``seed`` picks the scene,
    ``mislabel_fraction`` of the reference parcels carry a wrong class (no account needed).

    It makes a plausible scene for any AOI, so it says what it is: the cube carries
    ``synthetic_demo``, and the log warns when the AOI is not the demo's own."""
    from perceptive.sources.demo import demo_scene

    own, own_crs = DEMO_AOI
    aoi = reproject_geometry(box(*request.grid.bounds), request.grid.crs, own_crs)
    if not own.buffer(1.0).contains(aoi):
        log.warning(
            "The demo source makes SYNTHETIC data: this AOI is not the demo's own (%s in %s), "
            "so the map shows an invented landscape. Set `source` to sentinelhub, local_files "
            "or eopatch for real data.",
            [int(v) for v in own.bounds], own_crs,
        )  # fmt: skip
    scene = demo_scene(
        request.grid, tuple(request.time_interval), revisit_days=revisit_days, seed=seed,
        mislabel_fraction=mislabel_fraction,
    )  # fmt: skip
    cube = scene.l1c_cube(tile_size=request.tile_size)
    cube.attrs[DEMO_MARK] = True
    return cube, scene.reference_labels()


def is_demo(data) -> bool:
    """Whether an xarray object (a cube, a map) was made from the demo's synthetic data."""
    attrs = getattr(data, "attrs", {}) or {}
    source = attrs.get("source")
    return bool(attrs.get(DEMO_MARK)) or (
        isinstance(source, dict) and source.get("method") == "demo"
    )


#: The source link.
METHODS = Registry("source", "source(request, **options) -> (l1c_cube, labels | None)")
METHODS.register("demo", demo)

__all__ = ["DEMO_MARK", "METHODS", "SourceError", "SourceRequest", "is_demo"]

# The other sources live in their own modules, which use SourceRequest from tiled.py.
from perceptive.sources.eopatch import eopatch  # noqa: E402
from perceptive.sources.local_files import local_files  # noqa: E402
from perceptive.sources.sentinelhub import sentinelhub  # noqa: E402

METHODS.register("sentinelhub", sentinelhub)
METHODS.register("local_files", local_files)
METHODS.register("eopatch", eopatch)
