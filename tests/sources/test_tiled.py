"""Tiled reading: every tile kept as it arrives, failed tiles named, a killed run resumed."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyproj import CRS
from shapely.geometry import Polygon, box

from perceptive.eo.aoi import split_tiles
from perceptive.eo.grid import Grid
from perceptive.sources.tiled import SourceError, SourceRequest, read_tiled
from tests.conftest import kill_when

PROJECT = Path(__file__).resolve().parents[2]
GRID = Grid(CRS.from_epsg(32633), 500000.0, 5100000.0, 10.0, 50, 40)  # 4 x 3 tiles of 16 px
TIMES = pd.DatetimeIndex(["2017-03-01 10:00", "2017-03-06 10:00", "2017-03-11 10:00"])
BANDS = ("B02", "B03", "B04")


def expected_dn(x: np.ndarray, y: np.ndarray, t: int, b: int) -> np.ndarray:
    """The DN the formula source serves at pixel centres (x, y): worked out on its own."""
    return ((x - 500000) / 10 + (5100000 - y) * 3 + 1000 * t + 100 * b).astype(np.uint16) + 1


class FormulaReader:
    """A data source whose every pixel is known from a formula (the test's ground truth);
    it counts its reads, can fail on chosen tiles, and can pause after each tile."""

    name = "formula"
    bands = BANDS

    def __init__(self, fail_at=(), pause_s: float = 0.0, log: Path | None = None):
        self.fail_at, self.pause_s, self.log = set(fail_at), pause_s, log
        self.read: list[tuple[float, float]] = []

    def acquisitions(self) -> pd.DatetimeIndex:
        return TIMES

    def read_tile(self, tile: Grid, times: pd.DatetimeIndex):
        self.read.append((tile.left, tile.top))
        if (tile.left, tile.top) in self.fail_at:
            raise ConnectionError("server went away")
        x, y = np.meshgrid(tile.x, tile.y)
        bands = np.stack(
            [np.stack([expected_dn(x, y, t, b) for b in range(len(BANDS))]) for t in range(3)]
        )
        if self.pause_s:
            time.sleep(self.pause_s)
        return bands, np.ones((len(times), tile.height, tile.width), bool)

    def fingerprint(self) -> dict:
        return {"formula": 1}


def request(staging: Path, aoi=None) -> SourceRequest:
    aoi = aoi if aoi is not None else box(*GRID.bounds)
    return SourceRequest(
        grid=GRID, aoi=aoi, tiles=split_tiles(GRID, aoi, 16),
        time_interval=(pd.Timestamp("2017-03-01"), pd.Timestamp("2017-03-31")),
        tile_size=16, staging=staging,
    )  # fmt: skip


def check_cube_is_the_formula(cube) -> None:
    x, y = np.meshgrid(GRID.x, GRID.y)
    values = cube["bands"].values
    for t in range(len(TIMES)):
        for b in range(len(BANDS)):
            np.testing.assert_array_equal(values[t, b], expected_dn(x, y, t, b))
    assert cube["bands"].dtype == np.uint16 and cube["is_data"].dtype == bool
    assert list(cube["band"].values) == list(BANDS)
    np.testing.assert_array_equal(cube["time"].values, TIMES.values)
    assert cube["bands"].chunks[2:] == ((16, 16, 8), (16, 16, 16, 2))


def test_the_cube_is_what_the_source_served(tmp_path):
    check_cube_is_the_formula(read_tiled(FormulaReader(), request(tmp_path)))


def test_a_failed_tile_is_named_the_others_kept_and_a_rerun_reads_only_it(tmp_path):
    bad = (500160.0, 5099840.0)  # tile r001c001
    with pytest.raises(SourceError, match=r"1 of 12 tiles.*r001c001: ConnectionError"):
        read_tiled(FormulaReader(fail_at=[bad]), request(tmp_path))
    again = FormulaReader()
    cube = read_tiled(again, request(tmp_path))
    assert again.read == [bad]
    check_cube_is_the_formula(cube)


def test_tiles_outside_a_polygon_aoi_are_never_read(tmp_path):
    # the left-hand third only: tiles of columns 2 and 3 (x >= 500320) miss it
    left = Polygon([(500000, 5099600), (500150, 5099600), (500150, 5100000), (500000, 5100000)])
    reader = FormulaReader()
    cube = read_tiled(reader, request(tmp_path, left))
    assert sorted({x for x, _ in reader.read}) == [500000.0]
    assert not cube["is_data"].values[:, :, 16:].any()  # never read: no data
    assert (cube["bands"].values[:, :, :, 16:] == 0).all()


def test_no_acquisition_is_a_clear_error(tmp_path):
    class Empty(FormulaReader):
        def acquisitions(self):
            return pd.DatetimeIndex([])

    with pytest.raises(SourceError, match="no acquisitions between 2017-03-01 and 2017-03-31"):
        read_tiled(Empty(), request(tmp_path))


KILLED_RUN = """
import sys
sys.path.insert(0, {project!r})
from pathlib import Path
from tests.sources.test_tiled import FormulaReader, read_tiled, request
read_tiled(FormulaReader(pause_s=0.4), request(Path({staging!r})))
"""


def test_a_run_killed_mid_download_resumes_with_the_missing_tiles_only(tmp_path):
    script = KILLED_RUN.format(project=str(PROJECT), staging=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=PROJECT)
    kill_when(proc, lambda: len(list(tmp_path.glob("formula-*.zarr.done/*"))) >= 3, 120,
              "three finished tiles")  # fmt: skip
    finished = len(list(tmp_path.glob("formula-*.zarr.done/*")))
    assert 3 <= finished < 12
    reader = FormulaReader()
    cube = read_tiled(reader, request(tmp_path))
    assert len(reader.read) == 12 - finished  # only what the killed run had not finished
    check_cube_is_the_formula(cube)


def test_a_store_left_half_made_by_a_dead_process_is_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    leftover = tmp_path / f".partial-{dead.stdout.strip()}-formula-0123.zarr"
    leftover.mkdir()
    (leftover / "zarr.json").write_text("{}")
    check_cube_is_the_formula(read_tiled(FormulaReader(), request(tmp_path)))
    assert not leftover.exists()
