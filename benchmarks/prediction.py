"""Prediction speed: plain LightGBM against the compiled models, on the same model and features.

One LightGBM model shaped like the default (200 rounds, 31 leaves, 10 classes, 9 features x 23
dates = 207 columns) is trained on synthetic pixels whose classes overlap as the demo's do, so
it keeps nearly all its trees (1920 of 2000; on clean classes LightGBM stops at a few hundred
and every predictor looks faster); the features cube is synthetic too, made
lazily chunk by chunk (256 px tiles), so its size costs no memory. Each (predictor, size) runs
in its own process classifying the whole cube chunk by chunk (``predict_map``, chunks
discarded as they come), so its peak resident memory is its own. The predictors: ``plain``
(LightGBM's ``predict_proba``), ``tl2cgen`` (the trees as C code) and ``quickscorer`` (bit
vectors compiled by numba, the default). Also: the time to build each, and raw
``booster.predict`` against both on one array of pixels, every predictor on all cores
(quickscorer scores one half of the pixels per thread, as dask's threads do with chunks).

    python benchmarks/prediction.py [--sizes 512,2048] [--rounds 200]
"""

from __future__ import annotations

import argparse
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
import xarray as xr
from pyproj import CRS

from perceptive.eo.cube import attach_grid
from perceptive.eo.grid import Grid

sys.path.insert(0, str(Path(__file__).resolve().parent))
from end_to_end import machine  # noqa: E402

N_DATES, FEATURES, CLASSES, TILE = 23, 9, 10, 256


def _features(side: int) -> xr.DataArray:
    """A lazy (time, feature, y, x) float32 cube; each tile a pure function of its position."""

    def tile(block_info=None):
        (y0, y1), (x0, x1) = block_info[None]["array-location"][2:]
        rng = np.random.default_rng(y0 * 100_003 + x0)
        classes = np.add.outer(np.arange(y0, y1) // 32, np.arange(x0, x1) // 32) % CLASSES
        base = np.sin(np.arange(N_DATES)[:, None, None, None] * (1 + classes) / 7.0)
        noise = rng.normal(scale=1.0, size=(N_DATES, FEATURES, y1 - y0, x1 - x0))
        return (base + noise).astype(np.float32)

    chunks = ((N_DATES,), (FEATURES,), (TILE,) * (side // TILE), (TILE,) * (side // TILE))
    data = da.map_blocks(tile, chunks=chunks, dtype=np.float32)
    times = pd.date_range("2017-01-01", periods=N_DATES, freq="16D")
    names = [f"F{i}" for i in range(FEATURES)]
    cube = xr.DataArray(data, dims=("time", "feature", "y", "x"),
                        coords={"time": times, "feature": names})  # fmt: skip
    return attach_grid(cube, Grid(CRS.from_epsg(32633), 500000.0, 5100000.0, 10.0, side, side))


def _model(rounds: int):
    from lightgbm import LGBMClassifier

    from perceptive.eo.classifier import LulcModel
    from perceptive.eo.legend import DEFAULT_LEGEND
    from perceptive.eo.sampling import feature_columns

    cube = _features(512)[:, :, :256, :256].values  # one tile of training pixels
    X = cube.reshape(N_DATES * FEATURES, -1).T[::3]
    yy, xx = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    y = ((yy // 32 + xx // 32) % CLASSES + 1).ravel()[::3]
    columns = feature_columns(_features(512))
    estimator = LGBMClassifier(n_estimators=rounds, num_leaves=31, subsample=0.8,
                               subsample_freq=1, colsample_bytree=0.5, n_jobs=2,
                               random_state=42, verbose=-1)  # fmt: skip
    estimator.fit(pd.DataFrame(X, columns=columns), y)
    return LulcModel(estimator, DEFAULT_LEGEND)


#: ``input`` only makes the synthetic features, chunk by chunk: the time every predictor's
#: figure includes before it classifies anything.
MODES = ("input", "plain", "tl2cgen", "quickscorer")


def one(mode: str, side: int, rounds: int, cache: str) -> dict:
    """Classify a ``side`` x ``side`` cube with ``mode`` (:data:`MODES`) in this process."""
    from perceptive.eo.compiled import compile_model, compiled_predict_proba
    from perceptive.eo.prediction import predict_map
    from perceptive.eo.quickscorer import QuickScorer

    model = _model(rounds)
    proba = None
    if mode == "tl2cgen":
        proba = compiled_predict_proba(compile_model(model, Path(cache)), CLASSES)
    elif mode == "quickscorer":
        proba = QuickScorer(model.estimator.booster_)
    predicted = predict_map(_features(side), model, predict_proba=proba)
    stacked = xr.concat([predicted["lulc"], predicted["confidence"]], "layer").data
    if mode == "input":
        stacked = _features(side).data
    counts = np.zeros(256, np.int64)

    class Sink:  # a chunk is counted, then dropped: nothing accumulates
        def __setitem__(self, index, block):
            if mode != "input":
                counts[:] += np.bincount(block[0].ravel(), minlength=256)

    start = time.perf_counter()
    da.store(stacked, Sink(), lock=True)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {"mode": mode, "side": side, "seconds": seconds, "mpx_s": side * side / seconds / 1e6,
            "peak_gib": peak, "classes": counts[1:11].tolist()}  # fmt: skip


def raw(rounds: int, cache: str, n: int = 200_000) -> dict:
    """booster.predict against the tl2cgen library and quickscorer on one (n, 207) array,
    every one on all cores, and the time to build each (quickscorer: its numba code cached)."""
    import shutil
    from concurrent.futures import ThreadPoolExecutor

    from perceptive.eo.compiled import compile_model, compiled_predict_proba
    from perceptive.eo.quickscorer import QuickScorer

    model = _model(rounds)
    X = _features(1024)[:, :, :512, :512].values.reshape(N_DATES * FEATURES, -1).T[:n]
    X = np.ascontiguousarray(X)
    shutil.rmtree(cache, ignore_errors=True)
    start = time.perf_counter()
    library = compile_model(model, Path(cache))
    compile_s = time.perf_counter() - start
    fast = compiled_predict_proba(library, CLASSES)
    start = time.perf_counter()
    scorer = QuickScorer(model.estimator.booster_)
    scorer(X[:1])  # numba loads its cached machine code (compiles it the first time)
    build_s = time.perf_counter() - start
    booster = model.estimator.booster_
    timings, answers = {}, {}
    cores = os.cpu_count() or 1
    with ThreadPoolExecutor(cores) as pool:
        runs = {
            "booster": lambda: booster.predict(X),
            "tl2cgen": lambda: fast(X),
            "quickscorer": lambda: np.concatenate(list(pool.map(scorer, np.array_split(X, cores)))),
        }
        for name, run in runs.items():
            start = time.perf_counter()
            answers[name] = run()
            timings[name] = time.perf_counter() - start
    plain = answers["booster"].astype(np.float32)  # what predict_proba gives the map
    return {"compile_s": compile_s, "build_s": build_s, "trees": booster.num_trees(),
            **{f"{k}_mpx_s": n / s / 1e6 for k, s in timings.items()},
            "identical": {k: bool(np.array_equal(plain, answers[k].astype(np.float32)))
                          for k in runs}}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="512,2048")
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--one", nargs=3, metavar=("MODE", "SIDE", "CACHE"), help=argparse.SUPPRESS)
    parser.add_argument("--raw", metavar="CACHE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), args.rounds, args.one[2])))  # noqa: T201
        return
    if args.raw:
        print(json.dumps(raw(args.rounds, args.raw)))  # noqa: T201
        return
    print(machine())  # noqa: T201
    with tempfile.TemporaryDirectory() as cache:

        def child(*extra: str) -> dict:
            cmd = [sys.executable, __file__, "--rounds", str(args.rounds), *extra]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            return json.loads(out.strip().splitlines()[-1])

        r = child("--raw", cache)
        print(f"{args.rounds} rounds x {CLASSES} classes ({r['trees']} trees), "  # noqa: T201
              f"{N_DATES * FEATURES} features; build: tl2cgen {r['compile_s']:.1f} s, "
              f"quickscorer {r['build_s']:.1f} s")  # fmt: skip
        for name in ("booster", "tl2cgen", "quickscorer"):
            mpx = r[f"{name}_mpx_s"]
            print(f"  {name:<12} {mpx:7.3f} Mpx/s  {mpx / r['booster_mpx_s']:5.2f}x  "  # noqa: T201
                  f"identical to booster.predict: {r['identical'][name]}")  # fmt: skip
        print(f"{'predictor':<12} {'size':>10} {'s':>8} {'Mpx/s':>8} {'peak GiB':>9}")  # noqa: T201
        for side in map(int, args.sizes.split(",")):
            results = {mode: child("--one", mode, str(side), cache) for mode in MODES}
            for mode, res in results.items():
                print(
                    f"{mode:<12} {f'{side}x{side}':>10} {res['seconds']:8.1f} "  # noqa: T201
                    f"{res['mpx_s']:8.3f} {res['peak_gib']:9.2f}"
                )
            predicted = [res for mode, res in results.items() if mode != "input"]
            same = all(res["classes"] == results["plain"]["classes"] for res in predicted)
            print(f"{'':<12} same class counts: {same}")  # noqa: T201


if __name__ == "__main__":
    os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
    main()
