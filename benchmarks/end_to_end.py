"""Time `kedro run` on the demo AOI, pipeline by pipeline: wall time and peak memory.

Each pipeline runs as its own `kedro run --pipelines NAME` process (reading the versions the
previous one wrote) in a temporary data folder, so its peak resident memory is its own.

    python benchmarks/end_to_end.py [--size 512] [--height PX] [--tile-size 256]
        [--pipelines a,b] [--keep]
        [--variant NAME] [--compiled] [--one-process]

``--one-process`` runs the whole workflow as one `kedro run` (what a user types): the links'
times are then their nodes' times from the run record, and the process start-up (imports,
MLflow) is paid once instead of five times, on a line of its own.

``--variant`` layers a variant of conf/base/variants/ over the defaults (as ``kedro compare``
does); ``--compiled`` predicts with the compiled model (``compiled_model.enabled``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parents[1]
LINKS = ("ingestion", "feature_engineering", "sampling", "modelling", "prediction")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except OSError:
        mem_kb = 0
    return (
        f"{platform.node()} | {cpu} | {os.cpu_count()} cores | {mem_kb / 2**20:.1f} GiB | "
        f"Python {platform.python_version()} | {platform.platform()}"
    )


def run(pipeline: str | None, config: Path) -> tuple[float, float, int]:
    """(wall seconds, peak RSS GiB, exit code) of one `kedro run` process (the whole workflow
    when ``pipeline`` is None)."""
    kedro = Path(sys.executable).with_name("kedro")
    cmd = [str(kedro), "run", "--config", str(config)]
    if pipeline:
        cmd += ["--pipelines", pipeline]
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"}
    start = time.perf_counter()
    with open(os.devnull, "w") as quiet:
        proc = subprocess.Popen(cmd, cwd=PROJECT, env=env, stdout=quiet, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.stderr.write(proc.stderr.read().decode()[-3000:])
    return wall, usage.ru_maxrss / 2**20, code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="AOI width (and height) in px")
    parser.add_argument("--height", type=int, help="AOI height in px [default: --size]")
    parser.add_argument("--tile-size", type=int, default=256)
    parser.add_argument("--keep", action="store_true", help="keep the data folder")
    parser.add_argument(
        "--pipelines", default=",".join(LINKS), help="comma-separated links to run, in order"
    )
    parser.add_argument("--variant", help="a variant of conf/base/variants/ to run")
    parser.add_argument("--compiled", action="store_true", help="compiled_model.enabled: true")
    parser.add_argument(
        "--one-process", action="store_true", help="the whole workflow as one `kedro run`"
    )
    args = parser.parse_args()

    data_root = Path(tempfile.mkdtemp(prefix="perceptive-bench-"))
    width, height = args.size * 10, (args.height or args.size) * 10
    params = {
        "data_root": str(data_root),
        "tile_size": args.tile_size,
        "aoi": {"bbox": [500000, 5100000 - height, 500000 + width, 5100000], "crs": "EPSG:32633"},
    }
    if args.compiled:
        params["compiled_model"] = {"enabled": True}
    if args.variant:
        from perceptive.variants import load_variant

        params = load_variant(args.variant, PROJECT / "conf").runtime_params(params)
    config = data_root / "run.yml"  # `kedro run --config`: lists cannot go through --params
    config.write_text(yaml.safe_dump({"run": {"params": params}}))
    print(f"machine: {machine()}")
    print(f"demo AOI {args.size} x {args.height or args.size} px, tile {args.tile_size} px, data in {data_root}"
          f", variant {args.variant or 'base'}{', compiled model' if args.compiled else ''}")  # fmt: skip
    print(f"{'pipeline':<22}{'wall s':>9}{'peak RSS GiB':>15}")
    if args.one_process:
        failed = one_process(data_root, config)
    else:
        failed = link_by_link(config, args.pipelines.split(","))
    print(f"data folder: {disk_gb(data_root):.1f} GB")
    if not args.keep:
        shutil.rmtree(data_root, ignore_errors=True)
    return 1 if failed else 0


def link_by_link(config: Path, links: list[str]) -> bool:
    """Run each link as its own `kedro run`, in order, until one fails; True if one did."""
    total, peak = 0.0, 0.0
    for link in links:
        wall, rss, code = run(link, config)
        total, peak = total + wall, max(peak, rss)
        print(f"{link:<22}{wall:>9.1f}{rss:>15.2f}" + ("  FAILED" if code else ""), flush=True)
        if code:
            return True
    print(f"{'total':<22}{total:>9.1f}{peak:>15.2f}   (target: < 300 s, < 4 GiB)")
    return False


def disk_gb(folder: Path) -> float:
    """What the run left in its data folder, in GB."""
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 1e9


def one_process(data_root: Path, config: Path) -> bool:
    """Run every link in one `kedro run`; each link's time is the sum of its nodes' times in
    the run record (its peak is the process's: one process, one peak). True if it failed."""
    wall, rss, code = run(None, config)
    if code == 0:
        from kedro.framework.project import pipelines
        from kedro.framework.startup import bootstrap_project

        bootstrap_project(PROJECT)
        (record,) = (json.loads(p.read_text()) for p in (data_root / "runs").glob("*.json"))
        node_times = {name: node["wall_s"] for name, node in record["nodes"].items()}
        for link in LINKS:
            seconds = sum(node_times.get(n.name, 0.0) for n in pipelines[link].nodes)
            print(f"{link:<22}{seconds:>9.1f}")
        print(f"{'start-up and hooks':<22}{wall - sum(node_times.values()):>9.1f}")
    print(f"{'total':<22}{wall:>9.1f}{rss:>15.2f}" + ("  FAILED" if code else ""))
    return code != 0


if __name__ == "__main__":
    sys.exit(main())
