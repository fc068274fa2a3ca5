"""How realistic is the demo AOI? Its statistics beside a real Sentinel-2 year, and what
swapping the cloud-masking link costs on it.

Why: the demo is only a useful test bed if a weak link shows in the score. The real reference
is a Slovenian 2017 Sentinel-2 patch (eo-learn's LULC example area): per pixel, the NDVI
seasonal amplitude is the 95th minus the 5th percentile of NDVI (top-of-atmosphere B04/B08)
over the year's cloud-free observations; per class, the median over the class's pixels.

Printed per class of the demo's true land cover, on the default demo AOI (512 x 512 px at 10 m,
2017, one frame every 5 days, seed 42):

- NDVI amplitude with the demo's own truth for "clear" (no cloud, cirrus, shadow or no data:
  haze, thin cloud edges and snow are clear, as they are for a real cloud mask), and with the
  s2cloudless mask of the pipeline's defaults; the real value beside them;
- the share of valid observations (truth, s2cloudless);
- the share of June observations with data that are snow-covered (truth);

then, on the snow-and-ice parcels, the valid observations per pixel with s2cloudless alone and
with its NDSI snow test (``snow: ndsi``) against the truly clear ones, and the precision and
recall of the projected cloud shadows.

Then the overall accuracy (with its 95 % block-bootstrap interval) of two full `kedro run`s in
temporary data folders: the defaults (s2cloudless) and `cloud_masking: {method: none}`.

    .venv/bin/python benchmarks/demo_realism.py [--size 512] [--no-runs] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

os.environ.setdefault("TQDM_DISABLE", "1")  # no progress bars between the table rows

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from benchmarks.end_to_end import machine  # noqa: E402

#: Median per-pixel NDVI seasonal amplitude of the real Slovenian 2017 patch, by legend id.
REAL_AMPLITUDE = {1: 0.66, 2: 0.53, 3: 0.66, 4: 0.59}
#: A pixel needs this many clear observations for its percentiles to mean something.
MIN_OBSERVATIONS = 8


def ndvi_amplitude(red: np.ndarray, nir: np.ndarray, clear: np.ndarray) -> np.ndarray:
    """Per pixel p95 - p5 of NDVI over its clear observations; (time, y, x) in, (y, x) out,
    NaN where fewer than MIN_OBSERVATIONS are clear."""
    red, nir = red.astype(np.float32), nir.astype(np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        ndvi = np.where(clear, (nir - red) / (nir + red), np.nan)
        low, high = np.nanpercentile(ndvi, [5, 95], axis=0)
    return np.where(clear.sum(0) >= MIN_OBSERVATIONS, high - low, np.nan)


def scene_layers(size: int) -> dict[str, np.ndarray]:
    """Red, NIR, truth flags and the s2cloudless mask of the default demo scene."""
    from perceptive.eo.cloud_masking import cloud_masks
    from perceptive.sources.demo import demo_grid, demo_scene

    scene = demo_scene(demo_grid(size, size))
    cube = scene.l1c_cube(tile_size=256)
    bands = cube["bands"].sel(band=["B04", "B08"]).values
    truth = scene.truth(tile_size=256).compute()
    mask = cloud_masks(cube)["cloud_mask"].values
    no_data = truth["no_data"].values
    clear = ~(truth["cloud"] | truth["cirrus"] | truth["shadow"] | truth["no_data"]).values
    june = np.asarray(scene.times.month == 6)
    return {
        "red": bands[:, 0], "nir": bands[:, 1], "clear": clear,
        "valid": ~mask & ~no_data, "data": ~no_data, "snow": truth["snow"].values,
        "june": june, "land_cover": truth["land_cover"].values,
    }  # fmt: skip


def class_table(layers: dict[str, np.ndarray]) -> list[dict]:
    """One row of statistics per class present in the scene."""
    from perceptive.eo.legend import class_names

    truth_amp = ndvi_amplitude(layers["red"], layers["nir"], layers["clear"])
    s2c_amp = ndvi_amplitude(layers["red"], layers["nir"], layers["valid"])
    lc = layers["land_cover"]
    june = layers["june"]
    rows = []
    for cid, name in class_names().items():
        px = lc == cid
        if cid == 0 or not px.any():
            continue
        june_data = layers["data"][june][:, px]
        rows.append({
            "id": cid, "name": name, "share": px.mean(),
            "amp_truth": np.nanmedian(truth_amp[px]) if np.isfinite(truth_amp[px]).any() else np.nan,
            "amp_s2c": np.nanmedian(s2c_amp[px]) if np.isfinite(s2c_amp[px]).any() else np.nan,
            "real": REAL_AMPLITUDE.get(cid, np.nan),
            "valid_truth": layers["clear"][:, px].mean(),
            "valid_s2c": layers["valid"][:, px].mean(),
            "snow_june": layers["snow"][june][:, px][june_data].mean() if june.any() else np.nan,
        })  # fmt: skip
    return rows


def masking_on_snow_and_shadows(size: int) -> None:
    """Against the demo's truth: valid observations a snow parcel's pixel keeps with
    s2cloudless alone and with ``snow: ndsi``; precision and recall of projected shadows."""
    from perceptive.eo.cloud_masking import cloud_masks
    from perceptive.eo.shadows import METHODS as SHADOWS
    from perceptive.sources.demo import demo_grid, demo_scene

    scene = demo_scene(demo_grid(size, size))
    cube = scene.l1c_cube(tile_size=256)
    truth = scene.truth(tile_size=256).compute()
    snow_px = truth["land_cover"].values == 10
    veiled = (truth["cloud"] | truth["cirrus"] | truth["haze"] | truth["shadow"]).values
    clear = ~veiled & ~truth["no_data"].values
    counts = {"truly clear": clear}
    for snow in ("cloud", "ndsi"):
        mask = cloud_masks(cube, snow=snow)["cloud_mask"].values
        counts[f"s2cloudless, snow: {snow}"] = ~mask & ~truth["no_data"].values
    print(f"snow and ice parcels ({snow_px.sum()} px, {len(scene.times)} frames), valid "
          "observations per pixel: " + ", ".join(
              f"{name} {valid[:, snow_px].sum(0).mean():.1f}" for name, valid in counts.items()))  # fmt: skip
    clouds = cloud_masks(cube)["cloud_mask"]
    found = SHADOWS.run({"method": "projection"}, cube, clouds).values
    shadow, cloud = truth["shadow"].values, clouds.values
    seen = shadow & ~cloud & ~truth["no_data"].values
    near = np.stack([ndimage.binary_dilation(s, iterations=3) for s in shadow])
    far_clear = ~cloud & ~near & ~truth["no_data"].values
    print(f"cloud shadows (projection, against the truth): precision "
          f"{(found & shadow).sum() / max(found.sum(), 1):.2f}, recall "
          f"{(found & seen).sum() / max(seen.sum(), 1):.2f} of the shadows outside the cloud "
          f"mask ({seen.sum() / max(shadow.sum(), 1):.2f} of all shadows), false alarms "
          f"{(found & far_clear).sum() / far_clear.sum():.4f} of the clear pixels 3 px or "
          "more from a shadow\n")  # fmt: skip


def print_table(rows: list[dict]) -> None:
    print("| class | share of AOI | NDVI amplitude (truth clear) | NDVI amplitude (s2cloudless) "
          "| real (Slovenia 2017) | valid obs (truth) | valid obs (s2cloudless) "
          "| snow share in June |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        real = "" if np.isnan(r["real"]) else f"{r['real']:.2f}"
        print(
            f"| {r['id']} {r['name']} | {r['share']:.3f} | {r['amp_truth']:.2f} | "
            f"{r['amp_s2c']:.2f} | {real} | {r['valid_truth']:.2f} | {r['valid_s2c']:.2f} | "
            f"{r['snow_june']:.2f} |"
        )


def kedro_run(data_root: Path, extra: str = "") -> tuple[dict, float]:
    """One full `kedro run` into ``data_root``: its validation metrics and wall time."""
    kedro = Path(sys.executable).with_name("kedro")
    params = f"data_root={data_root}" + (f",{extra}" if extra else "")
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "TQDM_DISABLE": "1"}
    start = time.perf_counter()
    done = subprocess.run(
        [str(kedro), "run", "--params", params], cwd=PROJECT, env=env, capture_output=True,
        text=True,
    )  # fmt: skip
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-3000:])
        raise SystemExit(f"kedro run --params {params} failed (exit {done.returncode})")
    (path,) = (data_root / "08_reporting" / "validation_metrics.json").glob("*/*.json")
    return json.loads(path.read_text()), wall


def compare_masking(keep: bool) -> None:
    """OA of the default run (s2cloudless) against cloud_masking none, with intervals."""
    work = Path(tempfile.mkdtemp(prefix="perceptive-realism-"))
    runs = {"s2cloudless (default)": "", "none": "cloud_masking.method=none"}
    results = {}
    try:
        for label, extra in runs.items():
            metrics, wall = kedro_run(work / label.split()[0] / "data", extra)
            results[label] = metrics
            low, high = metrics["overall_accuracy_ci95"]
            print(f"| {label} | {metrics['overall_accuracy']:.3f} | [{low:.3f}, {high:.3f}] | "
                  f"{metrics['kappa']:.3f} | {metrics['majority_class_share']:.3f} | "
                  f"{wall:.0f} |", flush=True)  # fmt: skip
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    (a_low, a_high), (b_low, b_high) = (m["overall_accuracy_ci95"] for m in results.values())
    disjoint = a_low > b_high or b_low > a_high
    print(f"\nintervals {'disjoint' if disjoint else 'OVERLAP'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="AOI side in px (10 m)")
    parser.add_argument("--no-runs", action="store_true", help="skip the two kedro runs")
    parser.add_argument("--keep", action="store_true", help="keep the runs' data folders")
    args = parser.parse_args()
    from perceptive.sources.demo import GENERATOR_VERSION

    print(f"machine: {machine()}")
    print(f"demo generator version {GENERATOR_VERSION}, AOI {args.size} x {args.size} px, "
          f"2017 every 5 days, seed 42\n")  # fmt: skip
    start = time.perf_counter()
    print_table(class_table(scene_layers(args.size)))
    print(f"\n(statistics in {time.perf_counter() - start:.0f} s; amplitude = median over the "
          f"class's pixels of per-pixel p95 - p5 NDVI, pixels with >= {MIN_OBSERVATIONS} "
          "clear observations)\n")  # fmt: skip
    masking_on_snow_and_shadows(args.size)
    if args.no_runs:
        return 0
    print("| cloud masking | OA | OA 95 % interval | kappa | majority share | run s |")
    print("|---|---|---|---|---|---|")
    compare_masking(args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
