"""The whole workflow at 1x, 4x and 16x the default area, on threads and on a LocalCluster.

For each scale (an AOI of 512 * sqrt(scale) px square at 10 m, the demo AOI's top-left corner,
256 px tiles, parameters set as ``benchmarks/end_to_end.py`` sets them) and each dask
scheduler (the ``dask`` parameter block, ``conf/base/parameters_engine.yml``):

- ``threads``: dask's threaded scheduler inside the ``kedro run`` process;
- ``local_cluster``: a LocalCluster of 2 worker processes x 1 thread, 4 GiB each,

the five pipelines run in order, each as its own ``kedro run --pipelines X`` process
(``end_to_end.run``; the parameters go in a ``--config`` file, as lists cannot go through
``--params``), in a fresh data folder.

Memory counts every process of the run: a thread samples the resident memory (RSS) of this
process's whole tree of children (``kedro run`` and, with the LocalCluster, its nannies and
worker processes) with psutil every 0.2 s and keeps the largest sum; a peak shorter than the
interval can be missed. RSS counts shared pages (libraries) once per process, so the sum
slightly overstates. The ``kedro run`` process's own ru_maxrss (what ``end_to_end.py``
reports) is printed beside it but is not the run's peak: the run record resets the peak
(``/proc/self/clear_refs``) before every node, so it is the last nodes' peak only.

``--json FILE`` keeps the results there (merged by scale and scheduler), so that a later
invocation (e.g. ``--scales 16``) prints its rows in the same table, with ratios to the 1x
rows of an earlier one; ``--report`` only prints that file's table. ``--budget`` stops (kills
the runs of) an invocation after that many seconds; what did not finish is reported.

    .venv/bin/python benchmarks/scale.py [--scales 1 4 16] [--schedulers threads local_cluster]
        [--json results.json] [--budget SECONDS] [--keep] [--report]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))  # benchmarks.end_to_end, benchmarks.ingestion

from benchmarks.end_to_end import LINKS, machine, run  # noqa: E402
from benchmarks.ingestion import LEFT, RES, TOP, load, side_of  # noqa: E402

SCHEDULERS = {
    "threads": {"scheduler": "threads"},
    "local_cluster": {
        "scheduler": "local_cluster",
        "n_workers": 2,
        "threads_per_worker": 1,
        "memory_limit": "4GiB",
    },
}
GiB = 2**30


class TreeMemory:
    """Samples the summed RSS of all descendants of this process every ``interval`` seconds
    (while ``end_to_end.run`` waits for its ``kedro run``) and keeps the largest sum and the
    most processes seen at once; past ``deadline`` (time.monotonic) it kills them."""

    def __init__(self, interval: float = 0.2, deadline: float | None = None) -> None:
        import psutil

        self._me = psutil.Process()
        self._psutil = psutil
        self.interval, self.deadline = interval, deadline
        self.peak, self.processes, self.killed = 0, 0, False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while True:
            self.sample()
            if self.deadline is not None and time.monotonic() > self.deadline:
                self._kill()
            if self._stop.wait(self.interval):
                return

    def sample(self) -> None:
        total, count = 0, 0
        for child in self._me.children(recursive=True):
            try:
                total += child.memory_info().rss
                count += 1
            except (self._psutil.NoSuchProcess, self._psutil.AccessDenied):
                pass  # exited between the listing and the reading
        self.peak = max(self.peak, total)
        self.processes = max(self.processes, count)

    def _kill(self) -> None:
        children = self._me.children(recursive=True)
        for child in children:
            try:
                child.kill()
                self.killed = True
            except self._psutil.NoSuchProcess:
                pass


def params_for(scale: int, scheduler: str, data_root: Path, tile_size: int) -> dict:
    side = side_of(scale) * RES  # metres; as end_to_end.py: bbox from the demo corner
    return {
        "data_root": str(data_root),
        "tile_size": tile_size,
        "aoi": {
            "bbox": [LEFT, TOP - side, LEFT + side, TOP],
            "crs": "EPSG:32633",
        },
        "dask": SCHEDULERS[scheduler],
    }


def run_workflow(scale: int, scheduler: str, args, deadline: float | None) -> dict:
    data_root = Path(tempfile.mkdtemp(prefix=f"perceptive-scale-{scale}x-{scheduler}-"))
    config = data_root / "run.yml"  # `kedro run --config`: lists cannot go through --params
    params = params_for(scale, scheduler, data_root, args.tile_size)
    config.write_text(yaml.safe_dump({"run": {"params": params}}))
    side = side_of(scale)
    print(
        f"\n## {scale}x ({side} x {side} px), {scheduler}: data in {data_root}; {load()}",
        flush=True,
    )
    result = {"scale": scale, "scheduler": scheduler, "side": side, "pipelines": {}}
    result["load_start"] = os.getloadavg()
    for link in LINKS:
        with TreeMemory(args.interval, deadline) as tree:
            wall, own_gib, code = run(link, config)
        peak = max(tree.peak / GiB, own_gib)
        status = "ok" if code == 0 else ("killed (budget)" if tree.killed else f"exit {code}")
        result["pipelines"][link] = {
            "wall": wall, "peak_gib": peak, "own_peak_gib": own_gib,
            "processes": tree.processes, "status": status,
        }  # fmt: skip
        print(
            f"  {link:<20}{wall:>8.1f} s{peak:>7.2f} GiB (kedro ru_maxrss {own_gib:.2f}, "
            f"{tree.processes} processes)  {status}",
            flush=True,
        )
        if code:
            break
    result["load_end"] = os.getloadavg()
    result["du_gib"] = du(data_root) / GiB
    if not args.keep:
        shutil.rmtree(data_root, ignore_errors=True)
    return result


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def complete(r: dict) -> bool:
    return len(r["pipelines"]) == len(LINKS) and all(
        p["status"] == "ok" for p in r["pipelines"].values()
    )


def table(results: list[dict]) -> str:
    head = ["scale", "px", "scheduler"]
    head += [f"{link} s / GiB" for link in LINKS]
    head += ["total s", "peak GiB", "time / 1x", "memory / 1x"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    base = {r["scheduler"]: r for r in results if r["scale"] == 1 and complete(r)}
    for r in sorted(results, key=lambda r: (r["scale"], list(SCHEDULERS).index(r["scheduler"]))):
        cells = [f"{r['scale']}x", f"{r['side']}", r["scheduler"]]
        for link in LINKS:
            p = r["pipelines"].get(link)
            if p is None:
                cells.append("not run")
            elif p["status"] != "ok":
                cells.append(f"{p['status']} after {p['wall']:.1f} s")
            else:
                cells.append(f"{p['wall']:.1f} / {p['peak_gib']:.2f}")
        total = sum(p["wall"] for p in r["pipelines"].values())
        peak = max((p["peak_gib"] for p in r["pipelines"].values()), default=0.0)
        b = base.get(r["scheduler"])
        if complete(r) and b is not None:
            b_total = sum(p["wall"] for p in b["pipelines"].values())
            b_peak = max(p["peak_gib"] for p in b["pipelines"].values())
            ratios = [f"{total / b_total:.2f} (area {r['scale']})", f"{peak / b_peak:.2f}"]
        else:
            ratios = ["-", "-"]
        mark = "" if complete(r) else " (incomplete)"
        cells += [f"{total:.1f}{mark}", f"{peak:.2f}"] + ratios
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict(results: list[dict]) -> list[str]:
    """Per scheduler: time and memory against the 1x run, and whether the total time is
    affine in the area (a fixed cost + a cost per 1x area), from 1x and the largest scale,
    checked at the scales in between."""
    out = []
    for scheduler in SCHEDULERS:
        rows = sorted(
            (r for r in results if r["scheduler"] == scheduler and complete(r)),
            key=lambda r: r["scale"],
        )
        if len(rows) < 2 or rows[0]["scale"] != 1:
            continue
        total = {r["scale"]: sum(p["wall"] for p in r["pipelines"].values()) for r in rows}
        peak = {r["scale"]: max(p["peak_gib"] for p in r["pipelines"].values()) for r in rows}
        for s in list(total)[1:]:
            bounded = "within" if peak[s] <= 1.5 * peak[1] else "NOT within"
            out.append(
                f"- {scheduler} {s}x: time x{total[s] / total[1]:.2f} for area x{s}; peak "
                f"memory x{peak[s] / peak[1]:.2f} ({peak[s]:.2f} GiB), {bounded} 1.5x of 1x"
            )
        top = max(total)
        per_area = (total[top] - total[1]) / (top - 1)
        fixed = total[1] - per_area
        line = (
            f"- {scheduler}: total ~ {fixed:.0f} s fixed + {per_area:.0f} s per 1x area "
            f"(from 1x and {top}x)"
        )
        middle = [s for s in total if 1 < s < top]
        if middle:
            errors = [total[s] / (fixed + per_area * s) - 1 for s in middle]
            worst = max(errors, key=abs)
            linear = "about linear" if abs(worst) <= 0.15 else "NOT linear"
            line += f"; {linear} in the area: in-between scales off the line by {worst:+.0%}"
        else:
            line += "; two scales only: linearity not checked beyond that"
        out.append(line)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument(
        "--schedulers", nargs="+", default=list(SCHEDULERS), choices=list(SCHEDULERS)
    )
    parser.add_argument("--tile-size", type=int, default=256)
    parser.add_argument("--interval", type=float, default=0.2, help="memory sampling, s")
    parser.add_argument("--json", type=Path, help="keep (and merge) the results in this file")
    parser.add_argument("--budget", type=float, help="kill the runs after this many seconds")
    parser.add_argument("--keep", action="store_true", help="keep the data folders")
    parser.add_argument(
        "--report", action="store_true", help="only print the table of the --json file"
    )
    args = parser.parse_args()
    for scale in args.scales:
        side_of(scale)  # square numbers only

    deadline = time.monotonic() + args.budget if args.budget else None
    if args.report:
        args.scales = []
    print(f"machine: {machine()}")
    print(f"start: {time.strftime('%Y-%m-%d %H:%M:%S')}, {load()}")
    print(
        "memory: the summed RSS of every process of the run (kedro run and, for the "
        f"LocalCluster, its nanny and worker processes), sampled every {args.interval} s "
        "with psutil, largest sum kept"
    )
    previous = []
    if args.json and args.json.exists():
        previous = json.loads(args.json.read_text())
    results, skipped = [], []
    for scale in args.scales:
        for scheduler in args.schedulers:
            if deadline is not None and time.monotonic() > deadline:
                skipped.append(f"{scale}x {scheduler}")
                continue
            results.append(run_workflow(scale, scheduler, args, deadline))
            if args.json:
                keys = {(r["scale"], r["scheduler"]) for r in results}
                kept = [r for r in previous if (r["scale"], r["scheduler"]) not in keys]
                args.json.write_text(json.dumps(kept + results, indent=1))
    keys = {(r["scale"], r["scheduler"]) for r in results}
    everything = [r for r in previous if (r["scale"], r["scheduler"]) not in keys] + results

    print(f"\nend: {time.strftime('%Y-%m-%d %H:%M:%S')}, {load()}")
    print(f"machine: {machine()}")
    print(f"children's CPU time: {cpu_children():.0f} s\n")
    print(table(everything))
    if previous:
        print("\n(rows not run by this invocation come from", args.json, ")")
    print()
    for line in verdict(everything):
        print(line)
    if skipped:
        print(f"\nnot run (budget): {', '.join(skipped)}")
    return 0 if all(complete(r) for r in results) and not skipped else 1


def cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    sys.exit(main())
