"""The land-cover legend: class ids, names and colours (eo-learn LULC legend by default)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LandCoverClass:
    id: int
    name: str
    colour: str  # "#rrggbb"


#: id 0 is "no data": never a training label, the nodata value of every map.
DEFAULT_LEGEND: tuple[LandCoverClass, ...] = (
    LandCoverClass(0, "no data", "#ffffff"),
    LandCoverClass(1, "cultivated land", "#ffff00"),
    LandCoverClass(2, "forest", "#054907"),
    LandCoverClass(3, "grassland", "#ffa500"),
    LandCoverClass(4, "shrubland", "#806000"),
    LandCoverClass(5, "water", "#069af3"),
    LandCoverClass(6, "wetlands", "#95d0fc"),
    LandCoverClass(7, "tundra", "#967bb6"),
    LandCoverClass(8, "artificial surface", "#dc143c"),
    LandCoverClass(9, "bareland", "#a6a6a6"),
    LandCoverClass(10, "snow and ice", "#000080"),
)

NO_DATA = 0


def legend_from_config(classes: list[dict] | None) -> tuple[LandCoverClass, ...]:
    """Build a legend from ``[{id, name, colour}, ...]`` (parameters); default when None."""
    if not classes:
        return DEFAULT_LEGEND
    legend = tuple(LandCoverClass(int(c["id"]), str(c["name"]), str(c["colour"])) for c in classes)
    ids = [c.id for c in legend]
    if len(set(ids)) != len(ids) or not all(0 <= i <= 255 for i in ids):
        raise ValueError(f"Legend class ids must be unique integers in 0..255, got {ids}.")
    if NO_DATA not in ids:
        legend = (LandCoverClass(NO_DATA, "no data", "#ffffff"), *legend)
    return legend


def legend_to_config(legend=DEFAULT_LEGEND) -> list[dict]:
    """The legend as ``[{id, name, colour}, ...]``: what artefacts carry downstream."""
    return [{"id": c.id, "name": c.name, "colour": c.colour} for c in legend]


def class_names(legend=DEFAULT_LEGEND) -> dict[int, str]:
    return {c.id: c.name for c in legend}


def map_attrs(legend=DEFAULT_LEGEND) -> dict:
    """Attributes that make a class map self-describing in GIS tools: nodata, colour table,
    class names (used by perceptive.datasets.GeoTiffDataset)."""
    return {
        "nodata": NO_DATA,
        "colormap": {c.id: c.colour for c in legend},
        "class_names": class_names(legend),
    }
