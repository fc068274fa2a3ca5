"""What is a perfect cloud mask worth on the demo AOI? No masking and s2cloudless against an
oracle that knows where the clouds are.

Why: on the default demo AOI, cloud masking ``none`` scores a little above the default
s2cloudless masking. Either the default over-masks (160 m processing, dilation, frames with
less than 80 % valid pixels dropped: it keeps far fewer observations than are truly clear),
or clouds simply do not hurt a LightGBM on 23 interpolated dates. An oracle tells the two
apart: the demo generator knows the true cloud, cirrus, shadow, haze and no-data flags of
every pixel and frame (``DemoScene.truth()``), so the feature engineering can be fed masks
with no error at all.

How, in a temporary data folder (``--data-root`` to keep it), one `kedro run` at a time:

1. one full `kedro run` of the project's defaults (s2cloudless, min_valid_fraction 0.8);
2. `cloud_masking: none` (the ``no_clouds`` variant) from ``compute_masks`` on;
3. two oracle masks_cube versions, saved through the project's catalog with the structure
   ``compute_masks`` writes (its variables, dtypes, chunks, coordinates, attrs and
   provenance): invalid where the truth says cloud, cirrus, shadow or no data (``truth``),
   and the same with haze (thin cloud, heavy haze) too (``truth+haze``);
4. for each masking at min_valid_fraction 0.8 and 0.0, a `kedro run --from-nodes
   compute_features` with its masks_cube (and the first run's l1c_cube and reference labels)
   pinned by ``--load-versions``: features, sampling, modelling and prediction follow from it.

Each run's record (``<data_root>/runs/``) is checked: finished, loaded the pinned versions,
saved its own features and metrics, with the intended min_valid_fraction, on masks whose
``cloud_masking`` attribute is the intended method. The oracle runs' recorded parameters are
the defaults' (the masks come from outside the run), which is why this is not a `kedro
compare` and everything stays in its own data folder.

Printed: the machine; per masking and min_valid_fraction, the frames kept, the share of all
observations (pixel x frame) the features rest on, the share of the truly clear observations
kept (clear: no cloud, cirrus, shadow or no data), the shares of the kept ones the truth
flags cloud, cirrus, shadow and haze (missed clouds); overall accuracy, macro F1 and kappa with their
95 % block-bootstrap intervals (the modelling pipeline's validation_metrics); McNemar's exact
test against ``none`` and against s2cloudless (0.8) on the validation pixels both runs
assessed (perceptive.compare's functions); then the validation sample's size.

    .venv/bin/python benchmarks/cloud_mask_value.py [--size 512] [--data-root DIR]

About 10 to 15 minutes on 2 cores for the default 512 x 512 px AOI.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr
import yaml

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
os.environ.setdefault("TQDM_DISABLE", "1")  # no progress bars between the table rows

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from benchmarks.end_to_end import machine  # noqa: E402

#: Truth flags an oracle mask calls invalid (besides no data), by masking name.
ORACLES = {
    "truth": ("cloud", "cirrus", "shadow"),
    "truth+haze": ("cloud", "cirrus", "shadow", "haze"),
}
#: Method name written into an oracle masks_cube's ``cloud_masking`` attribute.
ORACLE_METHOD = "demo_truth"
MIN_VALID_FRACTIONS = (0.8, 0.0)
#: Truth flags whose share among the kept observations is shown (mutually exclusive).
FLAGS = ("cloud", "cirrus", "shadow", "haze")
#: The references of the paired tests: (masking, min_valid_fraction).
NONE, S2CLOUDLESS = ("none", 0.8), ("s2cloudless", 0.8)


@dataclass
class Arm:
    """One masking at one min_valid_fraction, and the run that scored it."""

    masking: str  # "none", "s2cloudless", "truth", "truth+haze"
    min_valid_fraction: float
    pins: dict = field(default_factory=dict)  # --load-versions of its run
    record: dict | None = None
    error: str | None = None
    wall_s: float = 0.0
    stats: dict = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, float]:
        return self.masking, self.min_valid_fraction

    def version(self, name: str) -> str | None:
        entry = (self.record.get("datasets") or {}).get(name) or {}
        return entry.get("saved") or entry.get("loaded")


class Benchmark:
    """The runs of one data folder, and the project's catalog over it."""

    def __init__(self, work: Path, size: int) -> None:
        self.work = work
        self.data_root = work / "data"
        side = size * 10
        self.params = {
            "data_root": str(self.data_root),
            "aoi": {"bbox": [500000, 5100000 - side, 500000 + side, 5100000], "crs": "EPSG:32633"},
        }
        self.n_runs = 0

    def scrub(self, text: str) -> str:
        """Error text without this machine's folders in it."""
        return text.replace(str(self.work), "<data folder>").replace(str(PROJECT), "<project>")

    # --- kedro ---------------------------------------------------------------------------------
    def run_params(self, arm: Arm) -> dict:
        from perceptive.variants import BASE, load_variant

        params = {**self.params, "min_valid_fraction": arm.min_valid_fraction}
        name = "no_clouds" if arm.masking == "none" else BASE
        return load_variant(name, PROJECT / "conf").runtime_params(params)

    def kedro_run(self, arm: Arm, from_nodes: str | None = None, pins: dict | None = None):
        """One `kedro run` for ``arm``; its record (or its error) goes into the arm."""
        self.n_runs += 1
        arm.pins = dict(pins or {})
        config = self.work / f"run_{self.n_runs}.yml"  # lists cannot go through --params
        config.write_text(yaml.safe_dump({"run": {"params": self.run_params(arm)}}))
        cmd = [str(Path(sys.executable).with_name("kedro")), "run", "--config", str(config)]
        if from_nodes:
            cmd += ["--from-nodes", from_nodes]
        if pins:
            cmd += ["--load-versions", ",".join(f"{k}:{v}" for k, v in sorted(pins.items()))]
        runs = self.data_root / "runs"
        before = set(runs.glob("*.json"))
        start = time.perf_counter()
        done = subprocess.run(cmd, cwd=PROJECT, env=os.environ.copy(), capture_output=True,
                              text=True)  # fmt: skip
        arm.wall_s = time.perf_counter() - start
        new = sorted(set(runs.glob("*.json")) - before)
        arm.record = json.loads(new[-1].read_text()) if len(new) == 1 else None
        outcome = (arm.record or {}).get("outcome")
        if done.returncode != 0 or outcome != "finished":
            error = (arm.record or {}).get("error") or {}
            message = error.get("message") or (done.stderr.strip().splitlines() or ["?"])[-1]
            arm.error = self.scrub(f"{error.get('type', 'failed')}: {message}")[:300]
        print(f"  {label(arm):<46} {arm.wall_s:>5.0f} s  "
              f"{arm.error or 'run ' + arm.record['save_version']}", flush=True)  # fmt: skip

    def catalog(self):
        """A fresh catalog of the project over this data folder (a versioned dataset keeps
        the save version it was first asked for, so every oracle save takes a new one)."""
        from kedro.framework.session import KedroSession

        runtime = {"data_root": str(self.data_root)}
        with KedroSession.create(project_path=PROJECT, runtime_params=runtime) as session:
            return session.load_context().catalog


def label(arm: Arm) -> str:
    name = "s2cloudless (default)" if arm.masking == "s2cloudless" else arm.masking
    return f"{name}, min_valid_fraction {arm.min_valid_fraction:g}"


def upstream_inputs(from_node: str) -> list[str]:
    """Datasets a run from ``from_node`` on reads from earlier links (to pin them)."""
    from kedro.framework.project import pipelines

    inputs = pipelines["__default__"].from_nodes(from_node).inputs()
    return sorted(n for n in inputs if not n.startswith("params:") and n != "parameters")


# --- the oracle ---------------------------------------------------------------------------------
def scene_truth(l1c: xr.Dataset, tile_size: int) -> xr.Dataset:
    """The truth flags of the demo scene the cube was made from (its ``source`` attribute and
    time interval say which), computed, checked against the cube's grid and times."""
    from perceptive.eo.grid import grid_of
    from perceptive.sources.demo import demo_scene

    source = l1c.attrs.get("source")
    if not isinstance(source, dict) or source.get("method") != "demo":
        raise SystemExit("The oracle needs the demo source: only the demo knows its truth.")
    options = {k: source[k] for k in ("revisit_days", "seed", "mislabel_fraction") if k in source}
    scene = demo_scene(grid_of(l1c), tuple(l1c.attrs["time_interval"]), **options)
    truth = scene.truth(tile_size=tile_size).compute()
    same = (
        np.array_equal(truth["time"].values, l1c["time"].values)
        and np.allclose(truth["x"].values, l1c["x"].values)
        and np.allclose(truth["y"].values, l1c["y"].values)
    )
    if not same:
        raise SystemExit("The demo truth and the l1c_cube have different grids or times.")
    return truth


def oracle_masks(base: xr.Dataset, truth: xr.Dataset, flags: tuple[str, ...], aoi_mask):
    """A masks_cube like ``base`` (what compute_masks wrote), its masks from the truth:
    ``cloud_mask`` the truth's flags but shadow, ``shadow_mask`` the truth's shadow (if in
    ``flags``), both only where there is data; ``is_valid`` and ``valid_fraction`` by the
    project's own functions, as compute_masks makes them."""
    from perceptive.eo.valid_data import valid_fraction, valid_mask

    def like(name: str, values: np.ndarray) -> xr.DataArray:
        template = base[name]
        return template.copy(data=values).chunk(template.chunksizes)

    cloud_flags = [f for f in flags if f != "shadow"]
    cloud = np.logical_or.reduce([truth[f].values for f in cloud_flags])
    shadow = truth["shadow"].values if "shadow" in flags else np.zeros_like(cloud)
    is_data = base["is_data"]
    out = base.copy()
    out["cloud_mask"] = like("cloud_mask", cloud) & is_data
    out["shadow_mask"] = like("shadow_mask", shadow) & is_data
    out["cloud_prob"] = out["cloud_mask"].astype(np.uint8) * np.uint8(255)
    out["is_valid"] = valid_mask(is_data, out["cloud_mask"] | out["shadow_mask"])
    out["valid_fraction"] = valid_fraction(out["is_valid"], aoi_mask).astype(np.float32)
    what = " | ".join(cloud_flags)
    out["cloud_mask"].attrs = {"long_name": f"cloud (demo truth: {what})"}
    out["shadow_mask"].attrs = {"long_name": "cloud shadow (demo truth)"}
    out["cloud_prob"].attrs = {
        "long_name": "cloud probability x 255 (demo truth: 255 on the mask)",
        "scale_factor_to_probability": 1 / 255,
    }
    out["is_valid"].attrs = dict(base["is_valid"].attrs)
    out.attrs = {
        "cloud_masking": {"method": ORACLE_METHOD, "invalid": [*flags, "no_data"]},
        "cloud_shadows": {"method": ORACLE_METHOD if "shadow" in flags else "none"},
    }
    for name, var in base.variables.items():  # the structure compute_masks gives
        new = out[name]
        if new.dims != var.dims or new.dtype != var.dtype or new.chunks != var.chunks:
            raise SystemExit(f"Oracle masks_cube: {name} is {new.dims} {new.dtype} "
                             f"{new.chunks}, compute_masks wrote {var.dims} {var.dtype} {var.chunks}")  # fmt: skip
    return out


def save_oracle(bench: Benchmark, base_version: str, masking: str, truth: xr.Dataset) -> str:
    """Save the oracle masks_cube as a new version of the project's masks_cube dataset."""
    from perceptive import provenance
    from perceptive.sources import DEMO_MARK

    catalog = bench.catalog()
    base = catalog.load("masks_cube", version=base_version)
    l1c = catalog.load("l1c_cube", version=base_version)
    masks = oracle_masks(base, truth, ORACLES[masking], l1c.get("aoi_mask"))
    dataset = catalog.get("masks_cube")
    version = dataset.resolve_save_version()
    record = {
        "run_id": None,
        "save_version": version,
        "dataset": "masks_cube",
        "node": "oracle masks from the demo truth (benchmarks/cloud_mask_value.py)",
        "parameters": {"cloud_masking": masks.attrs["cloud_masking"]},
        "inputs": {"l1c_cube": base_version},
        DEMO_MARK: True,
    }
    provenance.embed(masks, dataset, record)
    catalog.save("masks_cube", masks)
    return version


# --- checks and statistics ------------------------------------------------------------------
def check_record(bench: Benchmark, arm: Arm, masks_method: str) -> None:
    """The run did what the table says: else stop, naming what differs."""
    record, version = arm.record, arm.record["save_version"]
    datasets = record.get("datasets") or {}
    problems = [
        f"{name} loaded {(datasets.get(name) or {}).get('loaded')}, not {pin}"
        for name, pin in arm.pins.items()
        if (datasets.get(name) or {}).get("loaded") != pin
    ]
    problems += [
        f"{name} not saved by the run"
        for name in ("features_cube", "samples", "model", "validation_metrics")
        if (datasets.get(name) or {}).get("saved") != version
    ]
    parameters = record.get("parameters") or {}
    if parameters.get("min_valid_fraction") != arm.min_valid_fraction:
        problems.append(f"min_valid_fraction {parameters.get('min_valid_fraction')}")
    catalog = bench.catalog()
    masks = catalog.load("masks_cube", version=arm.version("masks_cube"))
    method = masks.attrs.get("cloud_masking", {}).get("method")
    if method != masks_method:
        problems.append(f"masks_cube made by {method!r}, not {masks_method!r}")
    features = catalog.load("features_cube", version=arm.version("features_cube"))
    if features.attrs.get("min_valid_fraction") != arm.min_valid_fraction:
        problems.append(f"features made at {features.attrs.get('min_valid_fraction')}")
    if problems:
        raise SystemExit(f"Run {version} ({label(arm)}): " + "; ".join(problems))


def observation_stats(bench: Benchmark, arm: Arm, truth: xr.Dataset) -> dict:
    """Frames kept, and the observations the run's features rest on against the truth."""
    catalog = bench.catalog()
    masks = catalog.load("masks_cube", version=arm.version("masks_cube"))
    features = catalog.load("features_cube", version=arm.version("features_cube"))
    l1c = catalog.load("l1c_cube", version=arm.version("l1c_cube"))
    inside = l1c["aoi_mask"].values.astype(bool) if "aoi_mask" in l1c else True
    inside = np.broadcast_to(inside, (l1c.sizes["y"], l1c.sizes["x"]))
    days = np.datetime_as_string(masks["time"].values, unit="D")
    frame_kept = np.isin(days, features.attrs["frames_used"])
    kept = masks["is_valid"].values & frame_kept[:, None, None] & inside
    count = features["valid_count"].values.astype(np.int64)[inside]
    dirty = (truth["cloud"] | truth["cirrus"] | truth["shadow"]).values
    clear = ~dirty & ~truth["no_data"].values & inside
    return {
        "frames": f"{int(frame_kept.sum())}/{frame_kept.size}",
        "kept": count.sum() / (frame_kept.size * count.size),
        "clear_kept": (kept & clear).sum() / clear.sum(),
        "in_kept": [(kept & truth[f].values).sum() / max(kept.sum(), 1) for f in FLAGS],
        "count_matches": int(count.sum()) == int(kept.sum()),
    }


class _Outputs:
    """perceptive.compare's view of a run's outputs (``load(run, name)``), for runs given by
    their arm: each dataset at the version the run saved or loaded."""

    def __init__(self, bench: Benchmark) -> None:
        self.catalog = bench.catalog()

    def load(self, arm: Arm, name: str):
        return self.catalog.load(name, version=arm.version(name))


def with_interval(metrics: dict, key: str) -> str:
    value, interval = metrics.get(key), metrics.get(f"{key}_ci95")
    if value is None:
        return "n/a"
    if not interval or None in interval:
        return f"{value:.3f}"
    return f"{value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"


def paired(test: dict | None) -> str:
    """McNemar p, with the pixels only this run got right (+) and only the reference (-)."""
    if test is None:
        return "-"
    p = f"{test['p_value']:.2g}" if test["p_value"] > 0 else "<1e-300"  # binomtest underflow
    return f"{p} (+{test['only_second_correct']}/-{test['only_first_correct']})"


# --- the benchmark ------------------------------------------------------------------------------
def run_all(bench: Benchmark) -> tuple[dict[tuple[str, float], Arm], int]:
    """Every arm's run, checked, with its observation statistics, metrics and paired tests;
    and how many observations the truth's no-data and the cube's data mask disagree on."""
    from perceptive.compare import paired_test, validation_outcomes

    arms = {
        (m, f): Arm(m, f) for m in ("none", "s2cloudless", *ORACLES) for f in MIN_VALID_FRACTIONS
    }
    base, none = arms[S2CLOUDLESS], arms[NONE]
    bench.kedro_run(base)
    if base.error:
        raise SystemExit(f"The default run failed: {base.error}")
    first = base.record["save_version"]
    bench.kedro_run(none, "compute_masks", dict.fromkeys(upstream_inputs("compute_masks"), first))
    if none.error:
        raise SystemExit(f"The cloud_masking none run failed: {none.error}")
    masks = {"s2cloudless": first, "none": none.version("masks_cube")}

    catalog = bench.catalog()
    l1c = catalog.load("l1c_cube", version=first)
    base_masks = catalog.load("masks_cube", version=first)
    truth = scene_truth(l1c, tile_size=base_masks.chunksizes["y"][0])
    differ = int(np.count_nonzero(base_masks["is_data"].values != ~truth["no_data"].values))
    for masking in ORACLES:
        masks[masking] = save_oracle(bench, first, masking, truth)
        print(f"  {masking + ' masks_cube saved':<46} {'':>7}  version {masks[masking]}")

    pins = dict.fromkeys(upstream_inputs("compute_features"), first)
    for arm in arms.values():
        if arm.record is None:
            bench.kedro_run(arm, "compute_features", {**pins, "masks_cube": masks[arm.masking]})
    outputs = _Outputs(bench)
    outcomes = {}
    for arm in arms.values():
        if not arm.error:
            check_record(bench, arm, arm.masking if arm.masking in ("none", "s2cloudless")
                         else ORACLE_METHOD)  # fmt: skip
            arm.stats = observation_stats(bench, arm, truth)
            arm.stats["metrics"] = outputs.load(arm, "validation_metrics")
            outcomes[arm.key] = validation_outcomes(outputs, arm)
    for arm in arms.values():
        arm.stats["tests"] = {
            ref: paired_test(outcomes[ref], outcomes[arm.key])
            for ref in (NONE, S2CLOUDLESS)
            if ref != arm.key and ref in outcomes and arm.key in outcomes
        }
    return arms, differ


def print_results(arms: dict[tuple[str, float], Arm], differ: int) -> None:
    from perceptive.run_listing import text_table

    header = ["masking", "min valid", "frames", "obs kept", "clear kept",
              "in kept: " + " / ".join(FLAGS), "OA [95 %]", "macro F1 [95 %]", "kappa [95 %]",
              "McNemar p vs none", "McNemar p vs s2cloudless"]  # fmt: skip
    rows, sizes, paired_px = [header], set(), set()
    for arm in arms.values():
        if arm.error:
            rows.append([arm.masking, f"{arm.min_valid_fraction:g}", "failed: " + arm.error,
                         *[""] * (len(header) - 3)])  # fmt: skip
            continue
        s, metrics, tests = arm.stats, arm.stats["metrics"], arm.stats["tests"]
        sizes.add((metrics["n_samples"], metrics.get("n_groups"),
                   metrics["all_pixels"].get("n_samples")))  # fmt: skip
        paired_px |= {t["n_pixels"] for t in tests.values()}
        rows.append([
            arm.masking, f"{arm.min_valid_fraction:g}", s["frames"], f"{s['kept']:.3f}",
            f"{s['clear_kept']:.3f}", " / ".join(f"{v:.3f}" for v in s["in_kept"]),
            with_interval(metrics, "overall_accuracy"), with_interval(metrics, "macro_f1"),
            with_interval(metrics, "kappa"), paired(tests.get(NONE)),
            paired(tests.get(S2CLOUDLESS)),
        ])  # fmt: skip
    print()
    print(text_table(rows))
    print()
    for n, blocks, all_px in sorted(sizes):
        print(f"validation: {n} pixels (class edges eroded) in {blocks} spatial blocks, "
              f"{all_px} with the edges")  # fmt: skip
    print(f"paired tests on {', '.join(map(str, sorted(paired_px)))} pixels both runs assessed; "
          "(+k/-j): pixels only this run / only the reference got right")  # fmt: skip
    print("obs kept: share of all observations (pixel x frame) the features rest on; clear kept: "
          "share of the truly clear ones (no cloud, cirrus, shadow or no data) kept valid; "
          "in kept: share of the kept ones the truth flags cloud (opaque), cirrus, shadow, haze "
          "(thin cloud or heavy haze); "
          "s2cloudless is the default (160 m); min valid = min_valid_fraction")  # fmt: skip
    if differ:
        print(f"note: the truth's no-data and the cube's data mask differ on {differ} observations")
    if not all(a.stats.get("count_matches", True) for a in arms.values()):
        print("note: valid_count differs from the kept valid observations (NaN features)")
    verdicts = []
    for (masking, fraction), arm in arms.items():
        if masking not in ORACLES or arm.error:
            continue
        low, high = arm.stats["metrics"]["overall_accuracy_ci95"]
        for ref in (NONE, S2CLOUDLESS):
            if arms[ref].error:
                continue
            r_low, r_high = arms[ref].stats["metrics"]["overall_accuracy_ci95"]
            apart = "disjoint" if low > r_high or r_low > high else "overlap"
            verdicts.append(f"{masking} {fraction:g} vs {ref[0]} {ref[1]:g} {apart}")
    print("OA 95 % intervals: " + "; ".join(verdicts))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="AOI width = height in px")
    parser.add_argument(
        "--data-root", type=Path, help="folder for the runs, kept (default: a temporary one)"
    )
    args = parser.parse_args()
    from kedro.framework.startup import bootstrap_project

    from perceptive.sources.demo import GENERATOR_VERSION

    bootstrap_project(PROJECT)
    logging.disable(logging.INFO)  # no INFO lines from the catalog loads and saves here
    work = args.data_root or Path(tempfile.mkdtemp(prefix="perceptive-oracle-"))
    work.mkdir(parents=True, exist_ok=True)
    bench = Benchmark(work.resolve(), args.size)
    print(f"machine: {machine()}")
    print(f"demo AOI {args.size} x {args.size} px at 10 m, 2017 every 5 days, seed 42, "
          f"generator version {GENERATOR_VERSION}; one kedro run at a time:")  # fmt: skip
    start = time.perf_counter()
    try:
        arms, differ = run_all(bench)
    finally:
        if args.data_root is None:
            shutil.rmtree(work, ignore_errors=True)
    print_results(arms, differ)
    minutes = (time.perf_counter() - start) / 60
    print(f"total {minutes:.0f} min for {bench.n_runs} kedro runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
