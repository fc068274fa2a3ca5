"""Cloud masking speed and memory: plain against compiled s2cloudless, chunked coarse path.

One run prints, side by side:

- the machine, and the time to compile s2cloudless' model (into a fresh temporary cache,
  unless ``--cache`` names one that may already hold it);
- plain and compiled s2cloudless on the real L1C crop (tests/data/s2_l1c_crop, 96 x 96 px,
  one frame) and on a demo cube (``--demo-side`` px, ``--demo-frames`` frames, in memory), at
  10 m (the exact path) and at the 160 m default: cube megapixels per second (time x y x at
  10 m over the whole ``cloud_masks`` computation, best of a few runs), and whether both
  give identical probabilities and masks; also the model alone (pixels per second of
  LightGBM against the compiled library on the crop's pixels);
- the peak memory of the coarse path (160 m, plain s2cloudless) before it was chunked (the
  module as of ``--before``, a commit, read with ``git show``) and now, on synthetic cubes
  of ``--memory-sides`` px and ``--memory-frames`` frames made chunk by chunk (256 px tiles),
  each run in its own process (its peak resident memory, VmHWM; the outputs are discarded
  chunk by chunk).

    .venv/bin/python benchmarks/cloud_masking.py [--demo-side 512] [--demo-frames 8]
        [--memory-sides 2048,4096] [--memory-frames 24] [--before e217849] [--cache DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import rasterio
import xarray as xr
from pyproj import CRS

from perceptive.eo.cube import S2_BANDS, make_l1c_cube
from perceptive.eo.grid import Grid

sys.path.insert(0, str(Path(__file__).resolve().parent))
from end_to_end import machine  # noqa: E402

PROJECT = Path(__file__).resolve().parents[1]
CROP = PROJECT / "tests" / "data" / "s2_l1c_crop"
MODULE = "src/perceptive/eo/cloud_masking.py"
#: The last commit whose coarse path computed the whole AOI at once.
BEFORE = "e217849"
TILE = 256


def crop_cube() -> xr.Dataset:
    """The real crop on its 10 m grid (20 and 60 m bands repeated), 32 px tiles."""
    bands = []
    for band in S2_BANDS:
        with rasterio.open(next(CROP.glob(f"*_{band}.jp2"))) as src:
            dn = src.read(1)
        k = 96 // dn.shape[0]
        bands.append(np.repeat(np.repeat(dn, k, axis=0), k, axis=1))
    grid = Grid(CRS.from_epsg(32633), 336000.0, 5819040.0, 10.0, 96, 96)
    times = pd.DatetimeIndex(["2017-02-16T10:21:01"])
    return make_l1c_cube(np.stack(bands)[np.newaxis], times, grid).chunk({"y": 32, "x": 32})


def demo_cube(side: int, frames: int) -> xr.Dataset:
    """``frames`` summer frames of the demo scene, ``side`` px square, read into memory."""
    from perceptive.sources.demo import demo_grid, demo_scene

    scene = demo_scene(demo_grid(side, side), time_interval=("2017-05-01", "2017-12-31"))
    cube = scene.l1c_cube(tile_size=TILE).isel(time=slice(0, frames))
    return cube.compute().chunk({"time": -1, "band": -1, "y": TILE, "x": TILE})


def synthetic_cube(side: int, frames: int) -> xr.Dataset:
    """A lazy L1C cube made chunk by chunk (so its size costs no memory): clear land with
    cloud blobs (smooth fields above a level) and a no-data corner in every frame."""
    clear = np.array([1200, 900, 800, 500, 900, 2500, 3000, 3200, 3300, 1000, 30, 1800, 900])
    cloud = np.array([5000, 5000, 5200, 5500, 5500, 5600, 5700, 5800, 5800, 2000, 700, 4500, 3500])

    def tile(block_info=None):
        (y0, y1), (x0, x1) = block_info[None]["array-location"][2:]
        yy, xx = np.meshgrid(np.arange(y0, y1), np.arange(x0, x1), indexing="ij")
        out = np.empty((frames, 13, y1 - y0, x1 - x0), np.uint16)
        for t in range(frames):
            field = np.sin(yy / (90 + 7 * t) + t) * np.cos(xx / (120 - 3 * t) - t)
            c = np.clip((field - 0.3) * 3, 0, 1).astype(np.float32)
            out[t] = clear[:, None, None] * (1 - c) + cloud[:, None, None] * c
            out[t][:, (yy + xx + 97 * t) % side < 40] = 0  # a no-data band
        return out

    chunks = ((frames,), (13,), *(((TILE,) * (side // TILE),) * 2))
    data = da.map_blocks(tile, chunks=chunks, dtype=np.uint16)
    grid = Grid(CRS.from_epsg(32633), 500000.0, 5100000.0, 10.0, side, side)
    return make_l1c_cube(data, pd.date_range("2017-01-01", periods=frames, freq="5D"), grid)


def best_of(run, min_total: float = 3.0, max_runs: int = 5):
    """(seconds of the fastest run, its result): one run, more while all take under
    ``min_total`` seconds together (short runs are noisy)."""
    times, start = [], time.perf_counter()
    while not times or (time.perf_counter() - start < min_total and len(times) < max_runs):
        t0 = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - t0)
    return min(times), result


def compare(name: str, cube: xr.Dataset, resolution: int) -> dict:
    """Plain and compiled ``cloud_masks`` on one cube: speed and identity of the answers."""
    from perceptive.eo.cloud_masking import cloud_masks

    settings = {"processing_resolution": resolution}
    if resolution == 10:
        settings.update(average_over=1, dilation_size=1)  # the exact path's usual settings
    outputs, seconds = {}, {}
    for compiled in (False, True):
        found = cloud_masks(cube, **settings, compiled=compiled)
        assert found.attrs["predictor"] == ("compiled" if compiled else "s2cloudless")
        seconds[compiled], outputs[compiled] = best_of(found.compute)
    mpx = cube.sizes["time"] * cube.sizes["y"] * cube.sizes["x"] / 1e6
    identical = all(
        np.array_equal(outputs[False][v].values, outputs[True][v].values)
        for v in ("cloud_prob", "cloud_mask")
    )
    return {"cube": name, "resolution": resolution, "mpx": mpx,
            "plain": mpx / seconds[False], "compiled": mpx / seconds[True],
            "identical": identical}  # fmt: skip


def model_alone(cube: xr.Dataset) -> dict:
    """LightGBM against the compiled library on the crop's pixels (repeated to 200 000)."""
    from perceptive.eo import cloud_masking as cm

    dn = cube["bands"].values
    pixels = np.moveaxis(dn, 1, -1).reshape(-1, 13).astype(np.float32) / np.float32(10000)
    pixels = np.tile(pixels, (200_000 // len(pixels) + 1, 1))[:200_000]
    library = cm.choose_library(True, len(pixels))
    plain_s, plain = best_of(lambda: cm._plain_probability(pixels))
    compiled_s, compiled = best_of(lambda: cm._pixel_probability(pixels, library))
    same = np.array_equal(plain, compiled)
    return {"plain": len(pixels) / plain_s / 1e6, "compiled": len(pixels) / compiled_s / 1e6,
            "identical": same}  # fmt: skip


def peak_mib() -> float:
    """This process's peak resident memory: VmHWM, which starts afresh at exec (ru_maxrss
    would start from the parent's, a benchmark process grown by the cubes above)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**10
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


def memory_run(implementation: str, side: int, frames: int, before: str) -> dict:
    """The 160 m coarse path (plain s2cloudless) on a synthetic cube in this process."""
    from perceptive.eo import cloud_masking as module  # both: the same libraries loaded

    if implementation == "before":
        source = subprocess.run(["git", "show", f"{before}:{MODULE}"], cwd=PROJECT, check=True,
                                capture_output=True, text=True).stdout  # fmt: skip
        path = Path(tempfile.mkdtemp()) / "cloud_masking_before.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location("cloud_masking_before", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        options = {}
    else:
        options = {"compiled": False}
    os.environ["TQDM_DISABLE"] = "1"
    baseline = peak_mib()
    start = time.perf_counter()
    found = module.cloud_masks(synthetic_cube(side, frames), **options)
    cloudy = np.zeros(1, np.int64)  # probability > 1/2 and mask pixels: the same before/after

    class Sink:  # a chunk is counted, then dropped: nothing accumulates
        def __setitem__(self, index, block):
            cloudy[0] += int(np.count_nonzero(block))

    da.store([found["cloud_prob"].data > 127, found["cloud_mask"].data], [Sink(), Sink()],
             lock=True)  # fmt: skip
    peak = peak_mib()
    return {"implementation": implementation, "side": side, "frames": frames,
            "seconds": time.perf_counter() - start, "peak_mib": peak,
            "baseline_mib": baseline, "cloudy_px": int(cloudy[0])}  # fmt: skip


def child(*args: str) -> dict:
    cmd = [sys.executable, __file__, *args]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def compile_once(cache: Path) -> str:
    """Compile (or find) the library in ``cache`` as the runs will; the time it took."""
    from perceptive.eo import cloud_masking as cm

    cached = (cm.library_folder(cm.default_cache()) / cm.LIBRARY).exists()
    start = time.perf_counter()
    library = cm.choose_library(True, 1)
    if library is None:
        sys.exit("s2cloudless did not compile here (see the log); nothing to compare.")
    took = "already in the cache" if cached else f"{time.perf_counter() - start:.0f} s"
    return f"compile: {took} ({library}, {os.cpu_count()} cores)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-side", type=int, default=512)
    parser.add_argument("--demo-frames", type=int, default=8)
    parser.add_argument("--memory-sides", default="2048,4096")
    parser.add_argument("--memory-frames", type=int, default=24)
    parser.add_argument("--before", default=BEFORE)
    parser.add_argument("--cache", help="compiled-model cache (default: a fresh temporary one)")
    parser.add_argument("--memory", nargs=2, metavar=("IMPL", "SIDE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory:
        result = memory_run(args.memory[0], int(args.memory[1]), args.memory_frames, args.before)
        print(json.dumps(result))
        return

    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XDG_CACHE_HOME"] = args.cache or tmp  # where cloud_masks looks
        print(compile_once(Path(os.environ["XDG_CACHE_HOME"])))
        crop = crop_cube()
        cubes = [("real L1C crop 96 px x 1", crop),
                 (f"demo {args.demo_side} px x {args.demo_frames}",
                  demo_cube(args.demo_side, args.demo_frames))]  # fmt: skip
        print(f"\n{'cube':<26} {'res':>5} {'Mpx':>7} {'plain Mpx/s':>12} "
              f"{'compiled Mpx/s':>15} {'speed-up':>9} identical")  # fmt: skip
        for name, cube in cubes:
            for resolution in (10, 160):
                r = compare(name, cube, resolution)
                print(f"{r['cube']:<26} {resolution:>3} m {r['mpx']:>7.3f} {r['plain']:>12.4f} "
                      f"{r['compiled']:>15.4f} {r['compiled'] / r['plain']:>8.2f}x "
                      f"{r['identical']}")  # fmt: skip
        m = model_alone(crop)
        print(
            f"{'model alone, crop pixels':<26} {'':>5} {0.2:>7.3f} {m['plain']:>12.4f} "
            f"{m['compiled']:>15.4f} {m['compiled'] / m['plain']:>8.2f}x {m['identical']}"
        )

    print(f"\ncoarse path (160 m, plain s2cloudless), synthetic {args.memory_frames} frames, "
          f"{TILE} px tiles; before = {args.before}")  # fmt: skip
    print(f"{'side':>6} {'implementation':>15} {'peak MiB':>9} {'over start':>11} {'s':>7} "
          "cloud count")  # fmt: skip
    for side in (int(s) for s in args.memory_sides.split(",")):
        for implementation in ("before", "after"):
            r = child("--memory", implementation, str(side), "--memory-frames",
                      str(args.memory_frames), "--before", args.before)  # fmt: skip
            print(f"{side:>6} {implementation:>15} {r['peak_mib']:>9.0f} "
                  f"{r['peak_mib'] - r['baseline_mib']:>11.0f} {r['seconds']:>7.1f} "
                  f"{r['cloudy_px']}")  # fmt: skip


if __name__ == "__main__":
    main()
