"""Figures for the reports: data quick-looks (valid observations, true colour), confusion
matrix and land-cover map.

They build ``matplotlib.figure.Figure`` objects directly (no pyplot state, Agg rendering on
save), so pipelines can return them to a ``MatplotlibDataset`` and tests run headless.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import xarray as xr
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from perceptive.eo.legend import DEFAULT_LEGEND, LandCoverClass

#: Largest side, in pixels, drawn by plot_lulc_map (bigger maps are subsampled).
MAX_PLOT_PIXELS = 2000


def plot_confusion_matrix(report: dict, title: str = "Confusion matrix (row-normalised)") -> Figure:
    """Row-normalised confusion matrix (recall on the diagonal) of a classification report.

    Axes: the matrix and its colour bar. Cells show the share (and count when small).
    """
    cm = report["confusion_matrix"]
    counts = np.asarray(cm["matrix"], dtype=np.float64)
    names = list(cm["names"])
    row_sums = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, row_sums, out=np.zeros_like(counts), where=row_sums > 0)

    n = len(names)
    side = 2.5 + 0.6 * n
    fig = Figure(figsize=(side + 1.5, side), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), names, rotation=45, ha="right")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference")
    oa = report.get("overall_accuracy")
    kappa = report.get("kappa")
    subtitle = f"OA {oa:.3f}" if oa is not None else ""
    if kappa is not None:
        subtitle += f", kappa {kappa:.3f}"
    ax.set_title(f"{title}\n{subtitle}" if subtitle else title)
    for i in range(n):
        for j in range(n):
            if counts[i, j] == 0:
                continue
            colour = "white" if shares[i, j] > 0.5 else "black"
            ax.text(j, i, f"{shares[i, j]:.2f}", ha="center", va="center", color=colour, fontsize=8)
    fig.colorbar(image, ax=ax, label="share of reference class")
    return fig


def plot_lulc_map(
    lulc: xr.DataArray,
    legend: Iterable[LandCoverClass] = DEFAULT_LEGEND,
    title: str = "Land cover",
) -> Figure:
    """The land-cover map in legend colours, map coordinates on the axes, and a legend box
    with one patch per class present in the map (nodata included only when present).

    Maps larger than :data:`MAX_PLOT_PIXELS` per side are subsampled for drawing.
    """
    legend = tuple(legend)
    small, extent = _subsampled(lulc)
    values = np.asarray(small.values).astype(np.int64)

    colours = {c.id: c.colour for c in legend}
    top_id = max(max(colours), int(values.max()) if values.size else 0)
    table = ["#ff00ff"] * (top_id + 1)  # magenta: an id missing from the legend
    for class_id, colour in colours.items():
        table[class_id] = colour
    cmap = ListedColormap(table)
    norm = BoundaryNorm(np.arange(-0.5, top_id + 1.5), cmap.N)

    fig = Figure(figsize=(9, 7), layout="constrained")
    ax = _map_axes(fig, lulc, title)
    ax.imshow(values, cmap=cmap, norm=norm, extent=extent, interpolation="nearest")
    ax.set_aspect("equal")

    present = set(np.unique(values).tolist())
    names = {c.id: c.name for c in legend}
    handles = [
        Patch(
            facecolor=table[i], edgecolor="black", linewidth=0.5, label=names.get(i, f"class {i}")
        )
        for i in sorted(present)
    ]
    ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), title="class")
    _add_scale_bar(ax, extent[1] - extent[0])
    return fig


def _add_scale_bar(ax, width_m: float) -> None:
    """A scale bar of a round length near a fifth of the map's width (map units: metres)."""
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    target = width_m / 5
    length = max(
        (m * 10**e for e in range(0, 7) for m in (1, 2, 5) if m * 10**e <= target), default=1
    )
    label = f"{length / 1000:g} km" if length >= 1000 else f"{length:g} m"
    bar = AnchoredSizeBar(ax.transData, length, label, "lower left", pad=0.5, frameon=True,
                          size_vertical=width_m / 150, color="black")  # fmt: skip
    bar.set_label("scale bar")
    ax.add_artist(bar)


def plot_feature_importance(table, title: str = "Feature importance") -> Figure:
    """Heatmap of importance per feature (rows) and date (columns), from
    :func:`perceptive.eo.importance.feature_importance`; the margins give each feature's and
    each date's share."""
    grid = table.pivot(index="feature", columns="date", values="importance")
    grid = grid.loc[table["feature"].drop_duplicates(), sorted(grid.columns)]
    fig = Figure(figsize=(3 + 0.35 * grid.shape[1], 2 + 0.4 * grid.shape[0]), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(grid.to_numpy(), cmap="viridis", aspect="auto")
    per_feature = grid.sum(axis=1)
    ax.set_yticks(
        range(grid.shape[0]), [f"{f} ({per_feature[f]:.0%})" for f in grid.index], fontsize=8
    )
    ax.set_xticks(range(grid.shape[1]), list(grid.columns), rotation=90, fontsize=7)
    ax.set_xlabel("date")
    method = table["method"].iloc[0] if len(table) else ""
    ax.set_title(f"{title} ({method})")
    fig.colorbar(image, ax=ax, label="share of total importance")
    return fig


def _subsampled(data: xr.DataArray) -> tuple[xr.DataArray, tuple[float, float, float, float]]:
    """``data`` thinned to at most :data:`MAX_PLOT_PIXELS` per side, and its map extent."""
    step = max(1, int(np.ceil(max(data.sizes["y"], data.sizes["x"]) / MAX_PLOT_PIXELS)))
    x, y = np.asarray(data["x"].values), np.asarray(data["y"].values)
    dx = float(x[1] - x[0]) if x.size > 1 else 1.0
    dy = float(y[0] - y[1]) if y.size > 1 else dx
    extent = (x[0] - dx / 2, x[-1] + dx / 2, y[-1] - dy / 2, y[0] + dy / 2)
    return data.isel(y=slice(None, None, step), x=slice(None, None, step)), extent


def _map_axes(fig: Figure, data: xr.DataArray, title: str):
    ax = fig.add_subplot()
    crs = getattr(data.rio, "crs", None) if hasattr(data, "rio") else None
    unit = f" [{crs.to_string()}]" if crs is not None else ""
    ax.set_xlabel(f"x{unit}")
    ax.set_ylabel(f"y{unit}")
    ax.ticklabel_format(style="plain", useOffset=False)
    ax.set_title(title)
    return ax


def plot_valid_count(valid_count: xr.DataArray, title: str = "Valid observations") -> Figure:
    """How many valid (data, cloud-free) observations each pixel has over the year, with a
    colour bar: where it is low, the pixel's features rest on little and its class is a guess."""
    small, extent = _subsampled(valid_count)
    fig = Figure(figsize=(8, 7), layout="constrained")
    ax = _map_axes(fig, valid_count, title)
    image = ax.imshow(np.asarray(small.values), cmap="viridis", extent=extent,
                      interpolation="nearest", vmin=0)  # fmt: skip
    fig.colorbar(image, ax=ax, label="valid observations per pixel", shrink=0.8)
    _add_scale_bar(ax, extent[1] - extent[0])
    return fig


def plot_true_colour(l1c: xr.Dataset, time, title: str = "True colour") -> Figure:
    """B04/B03/B02 of one acquisition as a true-colour picture (TOA reflectance x 3.5, the
    usual stretch for Sentinel-2 quick-looks, clipped to 1); no data is white."""
    frame = l1c["bands"].sel(time=time, band=["B04", "B03", "B02"])
    small, extent = _subsampled(frame)
    dn = np.moveaxis(np.asarray(small.values), 0, -1).astype(np.float32)
    rgb = np.clip(dn / 10000 * 3.5, 0, 1)
    rgb[(dn == 0).any(axis=-1)] = 1.0
    fig = Figure(figsize=(8, 7), layout="constrained")
    ax = _map_axes(fig, frame, f"{title}, {str(np.datetime64(time, 'm')).replace('T', ' ')} UTC")
    ax.imshow(rgb, extent=extent, interpolation="nearest")
    _add_scale_bar(ax, extent[1] - extent[0])
    return fig


def plot_message(text: str) -> Figure:
    """A picture that says why the usual one could not be drawn (a report keeps its files)."""
    fig = Figure(figsize=(6, 2), layout="constrained")
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center")
    return fig
