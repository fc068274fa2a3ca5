"""Temporal interpolation side by side with eo-learn 1.5's LinearInterpolationTask, on the same
arrays: seconds, extra memory, and how far the results are apart.

The input is the demo AOI at --size px with about --frames acquisitions over 2017: the nine
LULC features of every frame, and the valid mask from s2cloudless at 160 m. Each contender
runs in a fresh process, which loads the arrays, resets its memory high-water mark and then
runs (extra memory = peak over that, from /proc). eo-learn runs in a virtual environment of
its own (made on first use under --venv), never in the project's.

    python benchmarks/feature_engineering.py [--size 500] [--frames 70] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from end_to_end import machine  # noqa: E402

START, END, STEP = "2017-01-01", "2017-12-31", 16
#: eo-learn with what its interpolation module imports (scikit-learn, numba).
EOLEARN = ("eo-learn==1.5.*", "scikit-learn", "numba")

#: Runs inside eo-learn's environment: reads the arrays, interpolates, writes the result.
EOLEARN_WORKER = """
import json, sys, time, datetime as dt
from pathlib import Path
import numpy as np
from eolearn.core import EOPatch, FeatureType
from eolearn.features.extra.interpolation import LinearInterpolationTask
from sentinelhub import CRS, BBox
folder, parallel = Path(sys.argv[1]), sys.argv[2] == "parallel"
features = np.load(folder / "features_tyxf.npy")
valid = np.load(folder / "valid_tyx1.npy")
times = [dt.datetime.fromisoformat(t) for t in json.loads((folder / "times.json").read_text())]
patch = EOPatch(bbox=BBox((500000, 5090000, 505000, 5095000), CRS(32633)), timestamps=times)
patch[FeatureType.DATA, "FEATURES"] = features
patch[FeatureType.MASK, "VALID"] = valid
task = LinearInterpolationTask(
    (FeatureType.DATA, "FEATURES"), mask_feature=(FeatureType.MASK, "VALID"),
    resample_range=RESAMPLE_RANGE, parallel=parallel,
)
small = EOPatch(bbox=patch.bbox, timestamps=times)  # numba compiles on the first call
small[FeatureType.DATA, "FEATURES"] = features[:, :4, :4]
small[FeatureType.MASK, "VALID"] = valid[:, :4, :4]
task.execute(small)
open("/proc/self/clear_refs", "w").write("5")
baseline = int([l for l in open("/proc/self/status") if l.startswith("VmRSS")][0].split()[1])
start = time.perf_counter()
out = task.execute(patch)
seconds = time.perf_counter() - start
np.save(folder / ("eolearn_" + sys.argv[2] + ".npy"), out[FeatureType.DATA, "FEATURES"])
hwm = int([l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1])
print(json.dumps({"seconds": seconds, "extra_mib": (hwm - baseline) / 1024}))
""".replace("RESAMPLE_RANGE", repr((START, END, STEP)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=500)
    parser.add_argument("--frames", type=int, default=70)
    parser.add_argument("--repeat", type=int, default=2, help="runs per contender; min is kept")
    parser.add_argument(
        "--venv", type=Path, default=Path.home() / ".cache" / "perceptive" / "eolearn-venv"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return _our_worker(args.data)

    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="perceptive-fe-bench-") as tmp:
        folder = Path(tmp)
        shape = _write_inputs(folder, args.size, args.frames)
        print(f"input: {shape[0]} frames x {shape[1]} x {shape[2]} px x {shape[3]} features "
              f"(float32, {np.prod(shape) * 4 / 2**20:.0f} MiB), 16-day grid {START} .. {END}")  # fmt: skip
        python = _eolearn_python(args.venv)
        contenders = {
            "perceptive linear (edges: nan, dask, 2 threads)": [
                sys.executable, __file__, "--worker", "ours", "--data", str(folder),
            ],
            "eo-learn LinearInterpolationTask (serial)": [
                str(python), "-c", EOLEARN_WORKER, str(folder), "serial",
            ],
            "eo-learn LinearInterpolationTask (parallel=True)": [
                str(python), "-c", EOLEARN_WORKER, str(folder), "parallel",
            ],
        }  # fmt: skip
        print(f"{'contender':<52}{'seconds':>9}{'extra MiB':>11}")
        seconds = {}
        for name, cmd in contenders.items():
            runs = [_run(cmd) for _ in range(args.repeat)]
            seconds[name] = min(r[0] for r in runs)
            print(f"{name:<52}{seconds[name]:>9.2f}{min(r[1] for r in runs):>11.0f}", flush=True)
        ours_s, *eo_s = seconds.values()
        print("speed-up: " + ", ".join(f"{s / ours_s:.1f}x vs {n}" for n, s in zip(
            list(seconds)[1:], eo_s, strict=True)))  # fmt: skip
        _compare(folder)
    return 0


def _write_inputs(folder: Path, size: int, frames: int) -> tuple[int, ...]:
    """The demo's features and valid mask as eo-learn wants them: (t, y, x, f) and (t, y, x, 1)."""
    from perceptive.eo.cloud_masking import cloud_masks
    from perceptive.eo.indices import DEFAULT_FEATURES, feature_stack
    from perceptive.eo.valid_data import data_mask
    from perceptive.sources.demo import demo_grid, demo_scene

    scene = demo_scene(demo_grid(size, size), (START, END), revisit_days=max(1, 365 // frames))
    cube = scene.l1c_cube(tile_size=250)
    valid = (data_mask(cube) & ~cloud_masks(cube)["cloud_mask"]).values
    features = feature_stack(cube, DEFAULT_FEATURES).values  # (t, f, y, x)
    np.save(folder / "features_tyxf.npy", np.ascontiguousarray(features.transpose(0, 2, 3, 1)))
    np.save(folder / "valid_tyx1.npy", valid[..., None])
    times = [str(t) for t in cube["time"].values.astype("datetime64[s]")]
    (folder / "times.json").write_text(json.dumps(times))
    return features.transpose(0, 2, 3, 1).shape


def _our_worker(folder: Path) -> int:
    import pandas as pd
    import xarray as xr

    from perceptive.eo.interpolation import date_grid, interpolate

    # each contender gets its own layout before the clock starts: ours is (t, f, y, x)
    features = np.ascontiguousarray(np.load(folder / "features_tyxf.npy").transpose(0, 3, 1, 2))
    valid = np.load(folder / "valid_tyx1.npy")[..., 0]
    times = pd.DatetimeIndex(json.loads((folder / "times.json").read_text()))
    data = xr.DataArray(features, dims=("time", "feature", "y", "x"), coords={"time": times})
    mask = xr.DataArray(valid, dims=("time", "y", "x"), coords={"time": times})
    chunks = {"y": 250, "x": 250}
    method = {"method": "linear", "edges": "nan"}
    dates = date_grid(START, END, STEP)
    interpolate(data[:, :, :4, :4], mask[:, :4, :4], dates, method).compute()  # warm up
    # Dask arrays over the loaded arrays, made before the clock like the other layouts: making
    # them hashes the whole input (dask's token, about 2 s here), which the pipeline never
    # does (its cubes come from Zarr, already chunked)
    data, mask = data.chunk(chunks), mask.chunk(chunks)
    Path("/proc/self/clear_refs").write_text("5")
    baseline = _status_kib("VmRSS")
    start = time.perf_counter()
    out = interpolate(data, mask, dates, method).compute()
    seconds = time.perf_counter() - start
    np.save(folder / "ours.npy", out.values.transpose(0, 2, 3, 1))
    print(json.dumps({"seconds": seconds, "extra_mib": (_status_kib("VmHWM") - baseline) / 1024}))
    return 0


def _status_kib(key: str) -> int:
    line = next(line for line in open("/proc/self/status") if line.startswith(key))
    return int(line.split()[1])


def _run(cmd: list[str]) -> tuple[float, float]:
    """(seconds, extra MiB) of one worker run, as the worker measured them: its peak resident
    memory over what it held once the input was loaded."""
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    return report["seconds"], report["extra_mib"]


def _compare(folder: Path) -> None:
    ours = np.load(folder / "ours.npy")
    for name in ("serial", "parallel"):
        theirs = np.load(folder / f"eolearn_{name}.npy")
        both = np.isfinite(ours) & np.isfinite(theirs)
        nan_mismatch = int((np.isfinite(ours) != np.isfinite(theirs)).sum())
        diff = float(np.abs(ours[both] - theirs[both]).max()) if both.any() else float("nan")
        print(f"vs eo-learn {name}: max |difference| {diff:.2e} over {int(both.sum())} values, "
              f"{nan_mismatch} NaN where the other has a value")  # fmt: skip


def _eolearn_python(folder: Path) -> Path:
    """eo-learn's own environment: made and filled on first use."""
    python = folder / "bin" / "python"
    if not python.exists():
        print(f"installing {', '.join(EOLEARN)} into {folder} (first use only) ...", flush=True)
        venv.create(folder, with_pip=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *EOLEARN], check=True)
    return python


if __name__ == "__main__":
    sys.exit(main())
