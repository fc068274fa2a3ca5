"""Saving a cube with ZarrDataset: the project's Zarr settings against zarr's defaults.

The demo's L1C cube (73 frames x 13 bands, uint16) is made once and held in memory, then
saved by ``perceptive.datasets.ZarrDataset`` with each setting in turn, alternating, into a
fresh version each time, so only the writing is timed:

- ``zarr defaults``: zstd at level 3 and zarr's check of every chunk against its fill value
  before writing it (``write_empty_chunks: false``), which the project had before;
- ``zstd level 1``: the faster level alone;
- ``project``: zstd level 1 and ``write_empty_chunks: true``, the dataset's defaults now.

Every version is read back and compared with the cube; the size on disk is printed too.

    python benchmarks/zarr_write.py [--size 1024] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from kedro.io.core import Version
from zarr.codecs import ZstdCodec

from perceptive.datasets import ZarrDataset
from perceptive.sources.demo import demo_grid, demo_scene

sys.path.insert(0, str(Path(__file__).resolve().parent))
from end_to_end import machine  # noqa: E402

SETTINGS = {
    "zarr defaults": {"write_empty_chunks": False, "level": 3},
    "zstd level 1": {"write_empty_chunks": False, "level": 1},
    "project": {},
}


def _save_args(setting: dict, variables) -> dict:
    if not setting:
        return {}
    encoding = {name: {"compressors": (ZstdCodec(level=setting["level"]),)} for name in variables}
    return {"write_empty_chunks": setting["write_empty_chunks"], "encoding": encoding}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print(machine())  # noqa: T201
    cube = demo_scene(demo_grid(args.size, args.size)).l1c_cube().persist()
    print(f"L1C cube {args.size} x {args.size} px, {cube.nbytes / 1e9:.2f} GB in memory")  # noqa: T201
    arrays = [name for name, var in cube.data_vars.items() if var.ndim == 4]
    times: dict[str, list[float]] = {name: [] for name in SETTINGS}
    sizes: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            for name, setting in SETTINGS.items():
                version, store = f"v{repeat}", f"{folder}/{name.replace(' ', '_')}.zarr"
                dataset = ZarrDataset(
                    filepath=store,
                    save_args=_save_args(setting, arrays),
                    version=Version(None, version),
                )
                start = time.perf_counter()
                dataset.save(cube)
                times[name].append(time.perf_counter() - start)
                path = Path(store, version, Path(store).name)
                sizes[name] = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e9
                stored = Version(version, None)
                loaded = ZarrDataset(filepath=store, version=stored).load()
                for var in arrays:
                    assert np.array_equal(loaded[var].values, cube[var].values), name
    print(f"{'setting':<15} {'save s (each run)':>24} {'GB on disk':>11}")  # noqa: T201
    for name in SETTINGS:
        runs = ", ".join(f"{t:.1f}" for t in times[name])
        print(f"{name:<15} {runs:>24} {sizes[name]:11.2f}")  # noqa: T201


if __name__ == "__main__":
    os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
    main()
