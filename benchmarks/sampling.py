"""Rasterisation and sampling at 1x, 16x and 64x the default demo area (512, 2048 and 4096 px
a side at 10 m): seconds and peak Python-heap memory (tracemalloc, numpy arrays included) per
step. Memory should stay bounded by a few chunks, whatever the area.

The features cube is lazy (dask, 256 px chunks, 24 dates x 9 features of random values), and
so are the label and parcel rasters (burnt chunk by chunk in the same chunks); reference
polygons are the demo's parcels. "rasterize" computes the lazy raster chunk by chunk (a count
of labelled pixels, as a chunk-by-chunk save would); "sample" rasterises again inside, per
chunk, as the pipeline does.

    .venv/bin/python benchmarks/sampling.py [largest factor: 1, 16 or 64 (default)]
"""

from __future__ import annotations

import sys
import time
import tracemalloc
from collections.abc import Callable

import dask.array as da
import pandas as pd
import xarray as xr

from benchmarks.end_to_end import machine
from perceptive.eo.cube import attach_grid
from perceptive.eo.labels import rasterize_labels, rasterize_parcels
from perceptive.eo.sampling import sample_pixels
from perceptive.sources.demo import demo_grid, demo_scene

FEATURES = ["B02", "B03", "B04", "B08", "B11", "B12", "NDVI", "NDWI", "NORM"]
DATES = pd.date_range("2017-01-01", periods=24, freq="16D")
CHUNK = 256


def measure(step: Callable):
    tracemalloc.start()
    start = time.perf_counter()
    result = step()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return result, seconds, peak / 2**20


def features_cube(grid) -> xr.DataArray:
    shape = (len(DATES), len(FEATURES), grid.height, grid.width)
    data = da.random.default_rng(0).random(shape, chunks=(-1, -1, CHUNK, CHUNK), dtype="float32")
    arr = xr.DataArray(
        data, dims=("time", "feature", "y", "x"), coords={"time": DATES, "feature": FEATURES}
    )
    return attach_grid(arr, grid)


def main() -> None:
    print(machine())
    print(f"{'area':>5} {'pixels':>10} {'step':<34} {'seconds':>8} {'peak MiB':>9}")
    largest = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    for factor, side in ((1, 512), (16, 2048), (64, 4096)):
        if factor > largest:
            break
        grid = demo_grid(side, side)
        reference = demo_scene(grid, ("2017-01-01", "2017-01-10")).reference_labels()
        labels = rasterize_labels(reference, grid, chunks=CHUNK)
        parcels = rasterize_parcels(reference, grid, chunks=CHUNK)
        _, s1, m1 = measure(lambda: int((labels != 0).sum().compute()))  # noqa: B023
        _, s2, m2 = measure(lambda: int((parcels != 0).sum().compute()))  # noqa: B023
        features = features_cube(grid)
        table, s3, m3 = measure(
            lambda: sample_pixels(  # noqa: B023
                features, labels, parcels=parcels, n_samples=40000, block_size=64,  # noqa: B023
                validation_fraction=0.2, seed=42, erosion_radius=1,
            )
        )  # fmt: skip
        for step, seconds, peak in (
            (f"rasterize labels ({len(reference)} polygons)", s1, m1),
            ("rasterize parcels", s2, m2),
            (f"sample {len(table)} pixels", s3, m3),
        ):
            print(f"{factor:>4}x {side * side:>10} {step:<34} {seconds:>8.2f} {peak:>9.1f}")


if __name__ == "__main__":
    main()
