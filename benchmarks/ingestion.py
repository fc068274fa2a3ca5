"""Ingestion per source at 1x, 4x and 16x the default demo area: wall time and peak memory.

The areas are 512 x 512, 1024 x 1024 and 2048 x 2048 px at 10 m (EPSG:32633, the demo AOI's
top-left corner), in 256 px tiles. Each (source, scale) runs in its own process: it builds the
``SourceRequest`` the ingestion pipeline builds (grid, AOI box, ``split_tiles``, interval, a
fresh staging folder), calls the source through ``METHODS.run`` and writes the returned lazy
cube to a new Zarr store, so every pixel is really read and written. Peak resident memory is
that process's own (VmHWM, which starts afresh at exec); "base" is the same after imports.

- ``demo``: the synthetic scene, made tile by tile as the cube is written.
- ``local_files``: one 13-band GeoTIFF per date (DEFLATE, 256 px blocks, date in the name),
  written once over the largest area; every scale reads its window of the same files.
- ``sentinelhub``: the local fake Sentinel Hub of ``tests/sources/fake_sentinelhub.py``, run
  in this (parent) process on the same cores: one Process request per tile and date.
- ``eopatch``: one EOPatch folder per scale in eo-learn's layout (``data/BANDS.npy`` float32
  reflectance, ``mask/IS_DATA.npy``, ``bbox.geojson``, ``timestamps.json``; uncompressed, as
  eo-learn saves by default). This source loads the whole patch: its peak memory grows with
  the area (about 15x the uncompressed cube), so a scale whose estimate would not fit in the
  available memory is skipped.

Writing the input files and starting the fake service is not timed (its time is printed apart).

    .venv/bin/python benchmarks/ingestion.py [--sources demo local_files sentinelhub eopatch]
        [--scales 1 4 16] [--frames 8] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))  # benchmarks.end_to_end and tests.sources.fake_sentinelhub

from benchmarks.end_to_end import machine  # noqa: E402

SOURCES = ("demo", "local_files", "sentinelhub", "eopatch")
BASE_SIDE = 512  # the default demo AOI, 512 x 512 px at 10 m
LEFT, TOP, RES = 500000.0, 5100000.0, 10.0
START = "2017-01-01"
REVISIT_DAYS = 5
N_BANDS = 13


def side_of(scale: int) -> int:
    side = BASE_SIDE * int(round(scale**0.5))
    if side * side != BASE_SIDE * BASE_SIDE * scale:
        raise SystemExit(f"scale {scale} is not a square number (1, 4, 16, ...)")
    return side


def dates(frames: int):
    import pandas as pd

    # one acquisition every REVISIT_DAYS days (the demo's revisit), at 10:05 UTC
    days = pd.date_range(START, periods=frames, freq=f"{REVISIT_DAYS}D")
    return days + pd.Timedelta(hours=10, minutes=5)


def interval(frames: int) -> tuple[str, str]:
    last = dates(frames)[-1]
    return START, str(last.date())


def pattern(row0: int, rows: int, cols: int, band: int, frame: int):
    """(rows, cols) uint16 DN in 100..9354, never 0 (no data): a band/date dependent pattern
    plus 8 bits of noise, so that the files compress about as badly as real L1C does."""
    import numpy as np

    r = np.arange(row0, row0 + rows)[:, None]
    c = np.arange(cols)[None, :]
    value = (c % 97) * 13 + (r % 89) * 17 + band * 211 + frame * 37
    noise = np.random.default_rng([row0, band, frame]).integers(0, 256, (rows, cols))
    return (value % 9000 + 100 + noise).astype(np.uint16)


# --------------------------------------------------------------------------- inputs (untimed)


def write_geotiffs(folder: Path, side: int, frames: int) -> None:
    """One 13-band uint16 GeoTIFF per date over ``side`` x ``side`` px, named by its date."""
    import rasterio
    from rasterio.transform import from_origin

    folder.mkdir(parents=True)
    profile = {
        "driver": "GTiff", "width": side, "height": side, "count": N_BANDS, "dtype": "uint16",
        "crs": "EPSG:32633", "transform": from_origin(LEFT, TOP, RES, RES), "nodata": 0,
        "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate",
        "interleave": "band",
    }  # fmt: skip
    for f, when in enumerate(dates(frames)):
        path = folder / f"S2_L1C_{when:%Y%m%dT%H%M%S}.tif"
        with rasterio.open(path, "w", **profile) as dst:
            for b in range(N_BANDS):
                dst.write(pattern(0, side, side, b, f), b + 1)


def write_eopatch(root: Path, side: int, frames: int) -> None:
    """An EOPatch folder as eo-learn 1.x saves it (uncompressed): float32 reflectance BANDS,
    uint8 IS_DATA, bbox.geojson, timestamps.json."""
    import numpy as np
    from numpy.lib.format import open_memmap

    for kind in ("data", "mask"):
        (root / kind).mkdir(parents=True)
    minx, maxy = LEFT, TOP
    maxx, miny = LEFT + side * RES, TOP - side * RES
    ring = [[minx, miny], [minx, maxy], [maxx, maxy], [maxx, miny], [minx, miny]]
    bbox = {"crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32633"}},
            "type": "Polygon", "coordinates": [ring]}  # fmt: skip
    (root / "bbox.geojson").write_text(json.dumps(bbox, indent=2))
    stamps = [t.isoformat() for t in dates(frames).to_pydatetime()]
    (root / "timestamps.json").write_text(json.dumps(stamps))
    bands = open_memmap(root / "data" / "BANDS.npy", "w+", np.float32,
                        (frames, side, side, N_BANDS))  # fmt: skip
    step = 256
    for f in range(frames):
        for row in range(0, side, step):
            rows = min(step, side - row)
            for b in range(N_BANDS):
                bands[f, row : row + rows, :, b] = pattern(row, rows, side, b, f) / 10000.0
    bands.flush()
    del bands
    is_data = open_memmap(root / "mask" / "IS_DATA.npy", "w+", np.uint8, (frames, side, side, 1))
    is_data[:] = 1
    is_data.flush()
    del is_data


def start_fake(frames: int, work: Path):
    """The fake Sentinel Hub with one full-coverage scene per date; its credentials file."""
    from tests.sources.fake_sentinelhub import FakeSentinelHub, Scene

    scenes = [Scene(f"S2_{t:%Y%m%d}", t, 10.0) for t in dates(frames).to_pydatetime()]
    fake = FakeSentinelHub(scenes=scenes).start()
    creds = work / "sentinelhub-credentials.json"
    creds.write_text(json.dumps(fake.credentials()))
    return fake, creds


# --------------------------------------------------------------------------- one measurement


def measure_one(args: argparse.Namespace) -> None:
    """In the child: run one source on one area and write the cube; results as JSON."""
    import dask.array  # noqa: F401  (imported before "base": not the run's memory)
    import geopandas  # noqa: F401
    import pandas as pd
    import xarray as xr
    import zarr  # noqa: F401
    from shapely.geometry import box

    from perceptive.eo.aoi import split_tiles
    from perceptive.sources import METHODS, SourceRequest
    from perceptive.sources.demo import demo_grid

    source, scale = args.child[0], int(args.child[1])
    run_dir = Path(args.child[2])
    inputs = Path(args.inputs)
    side = side_of(scale)
    base = peak_rss_mib()
    credentials = {}
    spec: dict = {"method": source}
    if source == "local_files":
        spec["folder"] = str(inputs / "geotiffs")
    elif source == "sentinelhub":
        credentials = json.loads((inputs / "sentinelhub-credentials.json").read_text())
        spec["retry_wait"] = 0.5
    elif source == "eopatch":
        spec["path"] = str(inputs / f"eopatch-{side}")

    start, cpu0 = time.perf_counter(), cpu_seconds()
    grid = demo_grid(side, side)
    aoi = box(*grid.bounds)
    tiles = split_tiles(grid, aoi, args.tile_size)
    request = SourceRequest(
        grid=grid, aoi=aoi, tiles=tiles,
        time_interval=tuple(pd.Timestamp(t) for t in interval(args.frames)),
        tile_size=args.tile_size, staging=run_dir / "staging", credentials=credentials,
    )  # fmt: skip
    cube, _labels = METHODS.run(spec, request)
    read_s = time.perf_counter() - start
    cube = cube.copy(deep=False)
    for var in cube.variables.values():  # as ZarrDataset does: chunks are the cube's own
        for key in ("chunks", "preferred_chunks", "shards"):
            var.encoding.pop(key, None)
    out = run_dir / "cube.zarr"
    cube.to_zarr(out, mode="w-", consolidated=True)
    wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu0
    written = xr.open_zarr(out)
    result = {
        "source": source, "scale": scale, "side": side, "frames": int(written.sizes["time"]),
        "tiles": int(tiles["in_aoi"].sum()), "wall": wall, "cpu": cpu, "read": read_s, "base_mib": base,
        "raw_mb": cube.nbytes / 1e6, "disk_mb": du(out) / 1e6,
        "staging_mb": du(run_dir / "staging") / 1e6, "peak_mib": peak_rss_mib(),
    }  # fmt: skip
    Path(args.result).write_text(json.dumps(result))


def cpu_seconds() -> float:
    """User + system CPU time of this process, all its threads (dask's included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load() -> str:
    return "load average " + ", ".join(f"{v:.1f}" for v in os.getloadavg())


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB. VmHWM starts afresh at exec; ru_maxrss
    (the fallback) keeps the parent's peak when a big parent forks a small child."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def du(path: Path) -> int:
    if not path.exists():
        return 0
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def eopatch_estimate_mib(side: int, frames: int) -> float:
    """Peak memory of the eopatch source: it holds the float32 patch, a copy and float64
    temporaries of it, about 15x the uint16 cube (measured), over ~300 MiB of imports."""
    return 15 * frames * N_BANDS * side * side * 2 / 2**20 + 300


def available_mib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("inf")


def run_child(source: str, scale: int, args, inputs: Path, env: dict) -> dict:
    """One measurement in its own process: its results and its own peak RSS."""
    run_dir = inputs / f"run-{source}-{scale}"
    run_dir.mkdir()
    result = run_dir / "result.json"
    cmd = [sys.executable, __file__, "--child", source, str(scale), str(run_dir),
           "--inputs", str(inputs), "--result", str(result), "--frames", str(args.frames),
           "--tile-size", str(args.tile_size)]  # fmt: skip
    started = time.perf_counter()
    with open(run_dir / "stderr.txt", "w") as err, open(os.devnull, "w") as quiet:
        proc = subprocess.Popen(cmd, cwd=PROJECT, env=env, stdout=quiet, stderr=err)
        code = proc.wait()
    process_s = time.perf_counter() - started
    if code != 0 or not result.exists():
        sys.stderr.write((run_dir / "stderr.txt").read_text()[-3000:])
        out = {"source": source, "scale": scale, "side": side_of(scale),
               "failed": f"FAILED (exit {code})"}  # fmt: skip
    else:
        out = json.loads(result.read_text())
    out["process_s"] = process_s
    if not args.keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    return out


# --------------------------------------------------------------------------- the table


def row(r: dict, base_peak: dict) -> str:
    px = f"{r['side']} x {r['side']}"
    if "failed" in r:
        return f"| {r['source']} | {r['scale']}x | {px} | {r['failed']} ||||||||||"
    ratio = r["peak_mib"] / base_peak[r["source"]] if base_peak.get(r["source"]) else float("nan")
    per_tile = r["raw_mb"] / r["tiles"]
    return (
        f"| {r['source']} | {r['scale']}x | {px} | {r['frames']} | {r['tiles']} | "
        f"{r['wall']:.1f} | {r['cpu']:.1f} | {r['wall'] / r['tiles']:.2f} | {r['peak_mib']:.0f} | "
        f"{r['peak_mib'] - r['base_mib']:.0f} | {ratio:.2f} | {per_tile:.1f} | "
        f"{r['raw_mb']:.0f} | {r['disk_mb']:.0f} |"
    )


HEADER = (
    "| source | scale | px | frames | tiles | wall s | CPU s | wall s/tile | peak MiB "
    "| peak - base MiB | peak vs 1x | raw MB/tile | cube MB raw | cube MB on disk |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:]),
    )  # fmt: skip
    parser.add_argument("--sources", nargs="+", choices=SOURCES, default=list(SOURCES))
    parser.add_argument("--scales", nargs="+", type=int, default=[1, 4, 16],
                        help="area factors over the 512 x 512 px demo AOI (square numbers)")  # fmt: skip
    parser.add_argument("--frames", type=int, default=8, help="acquisition dates (default 8)")
    parser.add_argument("--tile-size", type=int, default=256)
    parser.add_argument("--keep", action="store_true", help="keep the inputs and the cubes")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--inputs", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        measure_one(args)
        return 0

    sides = {scale: side_of(scale) for scale in args.scales}
    inputs = Path(tempfile.mkdtemp(prefix="perceptive-bench-ingestion-"))
    print(f"machine: {machine()}")
    print(f"at start: {load()} ({os.cpu_count()} cores)")
    first, last = interval(args.frames)
    print(
        f"{args.frames} frames ({first} .. {last}, every {REVISIT_DAYS} days), 13 bands, "
        f"tile {args.tile_size} px, areas {', '.join(f'{s} x {s}' for s in sides.values())} px "
        f"at 10 m; work folder {inputs}"
    )
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "OAUTHLIB_INSECURE_TRANSPORT": "1",
           "XDG_CONFIG_HOME": str(inputs / "xdg"), "TQDM_DISABLE": "1"}  # fmt: skip
    for var in ("SH_CLIENT_ID", "SH_CLIENT_SECRET", "SH_PROFILE"):
        env.pop(var, None)

    prep = time.perf_counter()
    fake = None
    if "local_files" in args.sources:
        write_geotiffs(inputs / "geotiffs", max(sides.values()), args.frames)
    skip = {}
    if "eopatch" in args.sources:
        for scale, side in sides.items():
            need, have = eopatch_estimate_mib(side, args.frames), 0.8 * available_mib()
            if need > have:
                skip[("eopatch", scale)] = f"skipped: needs ~{need:.0f} MiB, {have:.0f} to spare"
                continue
            write_eopatch(inputs / f"eopatch-{side}", side, args.frames)
    if "sentinelhub" in args.sources:
        fake, _ = start_fake(args.frames, inputs)
    print(f"inputs written in {time.perf_counter() - prep:.0f} s (not timed below): "
          f"{du(inputs) / 1e6:.0f} MB")  # fmt: skip

    results, base_peak, failed = [], {}, False
    try:
        for source in args.sources:
            for scale in args.scales:
                if (source, scale) in skip:
                    results.append({"source": source, "scale": scale, "side": sides[scale],
                                    "failed": skip[(source, scale)]})  # fmt: skip
                    print(f"  {source} {scale}x: {skip[(source, scale)]}", flush=True)
                    continue
                r = run_child(source, scale, args, inputs, env)
                results.append(r)
                failed |= "FAILED" in r.get("failed", "")
                if "failed" not in r:
                    base_peak.setdefault(source, r["peak_mib"])
                    print(
                        f"  {source} {scale}x: {r['wall']:.1f} s ({r['process_s']:.1f} s with "
                        f"start-up), CPU {r['cpu']:.1f} s, peak {r['peak_mib']:.0f} MiB, "
                        f"base {r['base_mib']:.0f} MiB",
                        flush=True,
                    )
    finally:
        if fake is not None:
            fake.stop()
        if not args.keep:
            shutil.rmtree(inputs, ignore_errors=True)

    print(f"at end: {load()}")
    print()
    print(HEADER)
    for r in results:
        print(row(r, base_peak))
    print()
    print(
        "wall s: SourceRequest + METHODS.run + to_zarr of the returned cube, in the child "
        "(imports excluded); CPU s: the child's user + system time over the same span, all "
        "threads (other load on the machine stretches wall s, hardly CPU s). peak MiB: the child's max RSS (imports included); base: its RSS "
        "after imports. peak vs 1x: against the same source's first scale. raw MB/tile: the "
        "uncompressed cube (all frames, 13 bands) of one 256 px tile. The fake Sentinel Hub "
        "serves from the parent process on the same cores; its memory is not counted."
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
