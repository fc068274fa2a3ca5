"""The Sentinel Hub source against a local fake service: pixels, catalog, faults, credentials.

Expected pixels come from the fake's formula (:func:`fake_sentinelhub.dn`) and the scene list
below, mosaicked here by hand, never from the code under test.
"""

from __future__ import annotations

import json
import logging
import math
import time
from datetime import datetime

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from pyproj import CRS
from sentinelhub import SentinelHubDownloadClient
from shapely.geometry import box

from perceptive.eo.cube import S2_BANDS
from perceptive.eo.grid import Grid
from perceptive.sources.sentinelhub import SentinelHubReader, sentinelhub, sentinelhub_config
from perceptive.sources.tiled import SourceError, SourceRequest
from tests.sources.fake_sentinelhub import FakeSentinelHub, Scene, dn

# A 40 x 30 px grid at 10 m in UTM 33N, tiles of 16 px: the last column of tiles is 8 px wide,
# the last row 14 px high.
LEFT, TOP, RES, WIDTH, HEIGHT, TILE = 500000.0, 5100000.0, 10.0, 40, 30, 16
GRID = Grid(CRS.from_epsg(32633), LEFT, TOP, RES, WIDTH, HEIGHT)
X = LEFT + 5 + 10 * np.arange(WIDTH)  # pixel centres, worked out by hand
Y = TOP - 5 - 10 * np.arange(HEIGHT)
INTERVAL = (pd.Timestamp("2023-05-01"), pd.Timestamp("2023-05-31"))

SCENES = [
    Scene("before", datetime(2023, 4, 30, 23, 59), 1.0),  # outside the interval
    Scene("may02", datetime(2023, 5, 2, 10, 5), 10.0),
    # one day, two strips: west (cloudier, earlier) and east, overlapping in columns 15..24
    Scene("may07-west", datetime(2023, 5, 7, 10, 2), 30.0, x_max=LEFT + 250),
    Scene("may07-east", datetime(2023, 5, 7, 10, 3), 5.0, x_min=LEFT + 150),
    Scene("may12-cloudy", datetime(2023, 5, 12, 10, 5), 95.0),
    Scene("may17-east", datetime(2023, 5, 17, 10, 5), 60.0, x_min=LEFT + 300),
    Scene("june", datetime(2023, 6, 1, 10, 5), 0.0),  # outside the interval
]


def expected_cube(max_cloud_cover: float = 80.0):
    """(times, bands, is_data) by hand: per UTC day, the earliest acquisition names the frame;
    per pixel the least cloudy scene of the day whose footprint holds it gives the values."""
    kept = [s for s in SCENES if INTERVAL[0] <= pd.Timestamp(s.when) < pd.Timestamp("2023-06-01")
            and s.cloud_cover <= max_cloud_cover]  # fmt: skip
    days = sorted({s.when.date() for s in kept})
    times = [min(s.when for s in kept if s.when.date() == d) for d in days]
    bands = np.zeros((len(days), 13, HEIGHT, WIDTH), np.uint16)
    is_data = np.zeros((len(days), HEIGHT, WIDTH), bool)
    for t, day in enumerate(days):
        for scene in sorted((s for s in kept if s.when.date() == day), key=lambda s: s.cloud_cover):
            for col, x in enumerate(X):
                if not scene.x_min <= x < scene.x_max:
                    continue
                for row, y in enumerate(Y):
                    if is_data[t, row, col]:
                        continue
                    is_data[t, row, col] = True
                    bands[t, :, row, col] = [dn(x, y, scene.when, b) for b in range(13)]
    return pd.DatetimeIndex(times), bands, is_data


def tiles_of(grid: Grid, size: int) -> gpd.GeoDataFrame:
    rows = []
    for row in range(0, grid.height, size):
        for col in range(0, grid.width, size):
            sub = grid.window(row, col, min(size, grid.height - row), min(size, grid.width - col))
            rows.append({"tile_id": f"r{row // size:03d}c{col // size:03d}", "row_off": row,
                         "col_off": col, "height": sub.height, "width": sub.width,
                         "geometry": box(*sub.bounds)})  # fmt: skip
    return gpd.GeoDataFrame(rows, crs=grid.crs)


TILES = tiles_of(GRID, TILE)


def tile_bbox(tile_id: str) -> list[float]:
    t = TILES.set_index("tile_id").loc[tile_id]
    left, top = LEFT + t.col_off * RES, TOP - t.row_off * RES
    return [left, top - t.height * RES, left + t.width * RES, top]


def on_tile(tile_id: str, day: str | None = None):
    """A request pattern: Process requests for one tile (and one day)."""
    want = tile_bbox(tile_id)

    def match(body: dict) -> bool:
        bbox = body["input"]["bounds"]["bbox"]
        same_day = day is None or body["input"]["data"][0]["dataFilter"]["timeRange"][
            "from"
        ].startswith(day)
        return same_day and all(math.isclose(a, b) for a, b in zip(bbox, want, strict=True))

    return match


@pytest.fixture(autouse=True)
def isolated_client(monkeypatch, tmp_path):
    """Plain-HTTP OAuth for the fake, no user config or SH_* variables, no cached sessions."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for var in ("SH_CLIENT_ID", "SH_CLIENT_SECRET", "SH_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    SentinelHubDownloadClient.clear_cache()
    yield
    SentinelHubDownloadClient.clear_cache()


@pytest.fixture
def fake():
    server = FakeSentinelHub(scenes=list(SCENES), page_size=2).start()
    yield server
    server.stop()


def make_request(tmp_path, credentials) -> SourceRequest:
    return SourceRequest(
        grid=GRID, aoi=box(*GRID.bounds), tiles=TILES, time_interval=INTERVAL,
        tile_size=TILE, staging=tmp_path / "staging", credentials=credentials,
    )  # fmt: skip


def read(tmp_path, fake, **options):
    options = {"retry_wait": 0.01, **options}
    cube, labels = sentinelhub(make_request(tmp_path, fake.credentials()), **options)
    assert labels is None
    return cube.compute()


def assert_cube(cube, max_cloud_cover: float = 80.0) -> None:
    times, bands, is_data = expected_cube(max_cloud_cover)
    assert list(cube.indexes["time"]) == list(times)
    assert list(cube["band"].values) == list(S2_BANDS)
    np.testing.assert_array_equal(cube["bands"].values, bands)
    np.testing.assert_array_equal(cube["is_data"].values, is_data)


@pytest.mark.parametrize("max_cloud_cover", [80.0, 20.0])
def test_cube_equals_served_pixels(tmp_path, fake, max_cloud_cover):
    cube = read(tmp_path, fake, max_cloud_cover=max_cloud_cover)
    assert_cube(cube, max_cloud_cover)
    assert cube["bands"].dtype == np.uint16 and cube["is_data"].dtype == bool
    # the 8 x 14 px corner tile holds data and no data where the served scenes say
    times, bands, is_data = expected_cube(max_cloud_cover)
    corner = cube.isel(y=slice(16, 30), x=slice(32, 40))
    np.testing.assert_array_equal(corner["bands"].values, bands[:, :, 16:, 32:])
    assert corner["is_data"].values.any() and is_data[:, 16:, 32:].any()
    # one request per tile and acquisition day, each at the tile's exact bbox and pixel size
    process = fake.recorded("process")
    assert len(process) == len(TILES) * len(times)
    for tile in TILES.itertuples():
        mine = [r.body for r in process if on_tile(tile.tile_id)(r.body)]
        assert len(mine) == len(times)
        assert {(b["output"]["width"], b["output"]["height"]) for b in mine} == {
            (tile.width, tile.height)
        }
        assert all(b["input"]["bounds"]["properties"]["crs"].endswith("32633") for b in mine)


def test_same_day_strips_merge_into_one_frame(tmp_path, fake):
    cube = read(tmp_path, fake)
    may07 = cube.sel(time="2023-05-07T10:02")
    # west strip only (cols < 15), overlap from the least cloudy east strip, east only beyond
    west, east = SCENES[2].when, SCENES[3].when
    assert may07["is_data"].values.all()
    np.testing.assert_array_equal(may07["bands"].values[0, :, 0], dn(X[0], Y, west, 0))
    np.testing.assert_array_equal(may07["bands"].values[0, :, 20], dn(X[20], Y, east, 0))
    assert (dn(X[20], Y, west, 0) != dn(X[20], Y, east, 0)).all()
    # the partial acquisition of 05-17 leaves the west of the AOI without data
    may17 = cube.sel(time="2023-05-17")["is_data"].values[0]
    assert not may17[:, :30].any() and may17[:, 30:].all()
    assert (cube.sel(time="2023-05-17")["bands"].values[0][:, :, :30] == 0).all()


def test_catalog_pages_and_cloud_filter(tmp_path, fake):
    fake.page_size = 1
    config = sentinelhub_config(fake.credentials(), attempts=2, retry_wait=0.01)
    times = SentinelHubReader(config, GRID, INTERVAL, max_cloud_cover=80).acquisitions()
    assert list(times) == [pd.Timestamp("2023-05-02 10:05"), pd.Timestamp("2023-05-07 10:02"),
                           pd.Timestamp("2023-05-17 10:05")]  # fmt: skip
    assert times.tz is None and times.is_monotonic_increasing
    searches = fake.recorded("catalog")
    assert len(searches) == 4  # 4 items in range and under the cloud limit, one per page
    assert [s.body.get("next") for s in searches] == [None, 1, 2, 3]
    assert {s.body["filter"] for s in searches} == {"eo:cloud_cover <= 80"}
    assert searches[0].body["datetime"] == "2023-05-01T00:00:00Z/2023-05-31T23:59:59Z"
    west, south, east, north = searches[0].body["bbox"]
    assert 14.9 < west < east < 15.1 and 46.0 < south < north < 46.1  # the AOI, in WGS84

    fake.page_size = 100
    strict = SentinelHubReader(config, GRID, INTERVAL, max_cloud_cover=12.5).acquisitions()
    assert fake.recorded("catalog")[-1].body["filter"] == "eo:cloud_cover <= 12.5"
    assert list(strict) == [pd.Timestamp("2023-05-02 10:05"), pd.Timestamp("2023-05-07 10:03")]


@pytest.mark.parametrize("kind", ["429", "500", "drop", "truncate"])
def test_transient_fault_is_retried(tmp_path, fake, kind):
    pattern = on_tile("r001c002", "2023-05-07")
    fake.add_fault(kind, "process", times=2, where=pattern, retry_after_ms=150)
    started = time.monotonic()
    cube = read(tmp_path, fake)
    assert_cube(cube)
    assert fake.count("process", pattern) == 3  # two faults, then the answer
    assert fake.count("process") == len(TILES) * 3 + 2
    if kind == "429":
        assert time.monotonic() - started >= 0.3  # Retry-After (ms) was honoured twice


def test_expired_token_is_renewed_once(tmp_path, fake):
    pattern = on_tile("r000c001", "2023-05-17")
    fake.add_fault("expire_token", "process", times=1, where=pattern)
    cube = read(tmp_path, fake, threads=1)
    assert_cube(cube)
    assert fake.count("process", pattern) == 2
    assert fake.count("token") == 2  # the first token, and one after the 401


@pytest.mark.parametrize("kind", ["500", "drop", "expire_token"])
def test_catalog_faults_are_retried(tmp_path, fake, kind):
    fake.add_fault(kind, "catalog", times=1)
    config = sentinelhub_config(fake.credentials(), attempts=3, retry_wait=0.01)
    times = SentinelHubReader(config, GRID, INTERVAL).acquisitions()
    assert len(times) == 3
    assert fake.count("catalog") == 2 + 1  # two pages, one of them asked twice


def test_truncated_catalog_json_is_retried(tmp_path, fake):
    fake.add_fault("truncate", "catalog", times=1)
    config = sentinelhub_config(fake.credentials(), attempts=3, retry_wait=0.01)
    assert len(SentinelHubReader(config, GRID, INTERVAL).acquisitions()) == 3
    assert fake.count("catalog") == 3  # the whole search again from the first page


def test_failing_tile_is_named_others_kept_and_rerun_reads_only_it(tmp_path, fake):
    bad = on_tile("r001c002")
    fake.add_fault("500", "process", times=None, where=bad)
    request = make_request(tmp_path, fake.credentials())
    with pytest.raises(SourceError) as failed:
        sentinelhub(request, attempts=2, retry_wait=0.01, threads=1)
    message = str(failed.value)
    assert "1 of 6 tiles" in message and "r001c002" in message and "HTTP 500" in message
    assert "run again" in message
    done = sorted(p.name for p in (tmp_path / "staging").glob("*.done/*"))
    assert done == sorted(set(TILES.tile_id) - {"r001c002"})
    assert fake.count("process", bad) == 2  # first day: two attempts, then the tile gave up

    fake.faults.clear()
    before = len(fake.recorded("process"))
    cube, _ = sentinelhub(request, attempts=2, retry_wait=0.01, threads=1)
    assert_cube(cube.compute())
    again = fake.recorded("process")[before:]
    assert len(again) == 3 and all(bad(r.body) for r in again)


@pytest.mark.parametrize(
    ("kind", "says"),
    [("429", "rate limited"), ("truncate", "could not be decoded in 3 attempts"),
     ("drop", "no answer"), ("expire_token", "rejects even a fresh token")],
)  # fmt: skip
def test_persistent_fault_is_reported(tmp_path, fake, kind, says):
    fake.add_fault(kind, "process", times=None, where=on_tile("r000c000"), retry_after_ms=1)
    with pytest.raises(SourceError, match="r000c000") as failed:
        read(tmp_path, fake, attempts=3, threads=1)
    assert says in str(failed.value)
    assert "1 of 6 tiles" in str(failed.value)


def test_missing_credentials_say_where_to_put_them(tmp_path):
    with pytest.raises(SourceError, match="conf/local/credentials.yml") as failed:
        sentinelhub(make_request(tmp_path, {}))
    assert "client_id" in str(failed.value) and "SH_CLIENT_ID" in str(failed.value)
    with pytest.raises(SourceError, match="no client_secret"):
        sentinelhub(make_request(tmp_path, {"client_id": "someone"}))
    with pytest.raises(SourceError, match="unknown keys \\['secret'\\]"):
        sentinelhub(make_request(tmp_path, {"client_id": "someone", "secret": "x"}))


def test_environment_credentials_are_used(tmp_path, fake, monkeypatch):
    creds = fake.credentials()
    monkeypatch.setenv("SH_CLIENT_ID", creds.pop("client_id"))
    monkeypatch.setenv("SH_CLIENT_SECRET", creds.pop("client_secret"))
    assert_cube(read_with(tmp_path, creds))


def read_with(tmp_path, credentials):
    cube, _ = sentinelhub(make_request(tmp_path, credentials), retry_wait=0.01)
    return cube.compute()


def test_rejected_credentials_are_a_clear_error(tmp_path, fake):
    wrong = "planted-wrong-secret-8d2e"
    with pytest.raises(SourceError, match="refused the credentials") as failed:
        read_with(tmp_path, fake.credentials(client_secret=wrong))
    assert "invalid_client" in str(failed.value) and "credentials.yml" in str(failed.value)
    assert wrong not in str(failed.value)
    assert fake.count("process") == 0


def test_secret_never_leaks(tmp_path, caplog):
    secret = "planted-Secret-3b9f71"
    server = FakeSentinelHub(scenes=list(SCENES), client_secret=secret).start()
    try:
        server.add_fault("expire_token", "process", times=1, where=on_tile("r000c000"))
        server.add_fault("500", "process", times=None, where=on_tile("r001c001"))
        caplog.set_level(logging.DEBUG)
        request = make_request(tmp_path, server.credentials())
        with pytest.raises(SourceError) as failed:
            sentinelhub(request, attempts=2, retry_wait=0.01)
        server.faults.clear()
        cube, _ = sentinelhub(request, retry_wait=0.01)
        SentinelHubDownloadClient.clear_cache()  # else the good token is reused
        with pytest.raises(SourceError) as rejected:
            read_with(tmp_path, server.credentials(client_secret=secret + "-wrong"))
    finally:
        server.stop()
    assert server.count("token") >= 2 and "/oauth/token" in caplog.text  # the exchange was logged
    staged = json.dumps([p.name for p in (tmp_path / "staging").iterdir()])
    for text in (caplog.text, str(failed.value), str(rejected.value), json.dumps(cube.attrs),
                 repr(request), staged):  # fmt: skip
        assert secret not in text
