"""Sentinel-2 L1C from Sentinel Hub: the Catalog API lists the acquisitions, the Process API
returns each tile's 13 bands as digital numbers, one request per acquisition day.

The ``sentinelhub`` client retries 5xx, dropped connections and 429 (after ``Retry-After``) by
itself once configured to stop; this module adds what it lacks: a bounded retry of responses
that arrive whole but cannot be decoded (a truncated TIFF or JSON), one fresh token after a
401, and errors that say what to fix. Secrets stay in the client's config: they are never
logged, put in a message, in the cube's attributes or in the staging fingerprint.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, TypeVar

import numpy as np
import pandas as pd
import requests
import xarray as xr
from oauthlib.oauth2.rfc6749.errors import OAuth2Error
from pydantic import Field

from perceptive.eo.cube import S2_BANDS
from perceptive.eo.grid import Grid
from perceptive.sources.tiled import SourceError, SourceRequest, read_tiled

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Where to put credentials, quoted by every credentials error.
CREDENTIALS_HELP = (
    "put client_id and client_secret of a Sentinel Hub OAuth client under 'sentinelhub:' in "
    "conf/local/credentials.yml (optional base_url and token_url for another deployment), or "
    "set the SH_CLIENT_ID and SH_CLIENT_SECRET environment variables"
)
CREDENTIAL_KEYS = ("client_id", "client_secret", "base_url", "token_url")

#: 429 answers in a row the client accepts before giving up on one request.
MAX_RATE_LIMITED = 20

#: How pixels of two scenes of one day that overlap are chosen (see ``acquisitions``).
MOSAICKING_ORDER = "leastCC"

#: One output, 13 bands then dataMask, as UINT16 digital numbers (reflectance x 10000).
_EVAL_BANDS = (*S2_BANDS, "dataMask")
EVALSCRIPT = f"""//VERSION=3
function setup() {{
  return {{
    input: [{{bands: [{", ".join(f'"{b}"' for b in _EVAL_BANDS)}], units: "DN"}}],
    output: {{id: "default", bands: {len(_EVAL_BANDS)}, sampleType: "UINT16"}},
  }};
}}
function evaluatePixel(s) {{
  return [{", ".join(f"s.{b}" for b in _EVAL_BANDS)}];
}}
"""


class SentinelHubReader:
    """Reads the AOI's L1C tiles from Sentinel Hub (a :class:`~perceptive.sources.tiled.TileReader`).

    ``config`` is a ready ``SHConfig`` (credentials, URLs, retry limits); ``area`` the AOI grid
    the catalog is searched over; ``time_interval`` whole UTC days, both ends included.
    """

    name = "sentinelhub"
    bands = S2_BANDS

    def __init__(
        self,
        config,
        area: Grid,
        time_interval: tuple[pd.Timestamp, pd.Timestamp],
        *,
        max_cloud_cover: float = 80.0,
        attempts: int = 4,
        threads: int = 4,
    ):
        from sentinelhub import CRS, DataCollection

        _hide_oauth_debug_logs()
        self.config = config
        self.area = area
        self.start, self.end = _day_bounds(*time_interval)
        self.max_cloud_cover = float(max_cloud_cover)
        self.attempts = int(attempts)
        self.threads = int(threads)
        epsg = area.crs.to_epsg()
        if epsg is None:
            raise SourceError(
                f"sentinelhub: the grid CRS {area.crs.name!r} has no EPSG code, which Sentinel Hub "
                "needs; set a UTM target_crs such as EPSG:32633 for the AOI grid."
            )
        self.crs = CRS(epsg)
        base_url = config.sh_base_url.rstrip("/")
        if base_url == DataCollection.SENTINEL2_L1C.service_url.rstrip("/"):
            self.collection = DataCollection.SENTINEL2_L1C
        else:  # the stock collection is pinned to the main deployment; follow base_url instead
            key = hashlib.sha256(base_url.encode()).hexdigest()[:12].upper()
            self.collection = DataCollection.SENTINEL2_L1C.define_from(
                f"PERCEPTIVE_SENTINEL2_L1C_{key}", service_url=base_url
            )

    def acquisitions(self) -> pd.DatetimeIndex:
        """One time per UTC day with an acquisition of at most ``max_cloud_cover`` % over the
        AOI: the earliest of that day.

        Several catalog items on one day over one AOI are pieces of the same look: adjacent
        datastrips of one pass, or at high latitudes two overlapping orbits 100 min apart. They
        become one frame, which :meth:`read_tile` asks for over the whole day and Sentinel Hub
        mosaics, the least cloudy scene first where they overlap.
        """
        from sentinelhub import BBox, SentinelHubCatalog

        fields = {"include": ["id", "properties.datetime", "properties.eo:cloud_cover"]}
        cloud_filter = f"eo:cloud_cover <= {_number(self.max_cloud_cover)}"
        interval = (self.start.to_pydatetime(), self.end.to_pydatetime())

        def search() -> list[dict]:
            catalog = SentinelHubCatalog(config=self.config)
            pages = catalog.search(
                self.collection, bbox=BBox(self.area.bounds, crs=self.crs), time=interval,
                filter=cloud_filter, fields=fields,
            )  # fmt: skip
            try:
                return list(pages)  # every page, following context.next
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise _CorruptResponse(f"catalog page is not JSON ({err})") from None

        features = self._retrying(search, "catalog search")
        times = pd.to_datetime([f["properties"]["datetime"] for f in features], utc=True)
        times = times.tz_localize(None)
        days = times.to_series().groupby(times.normalize()).min()
        log.info(
            "sentinelhub: %d catalog items on %d days between %s and %s (cloud cover <= %g %%)",
            len(features), len(days), self.start.date(), self.end.date(), self.max_cloud_cover,
        )  # fmt: skip
        return pd.DatetimeIndex(sorted(days))

    def read_tile(self, tile: Grid, times: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
        """The tile's bands and data mask, one Process request per acquisition day (in
        ``threads`` parallel requests)."""
        bands = np.zeros((len(times), len(S2_BANDS), tile.height, tile.width), dtype=np.uint16)
        is_data = np.zeros((len(times), tile.height, tile.width), dtype=bool)
        failed = threading.Event()  # once a day fails the tile fails: spend no more requests

        def read_day(when: pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
            if failed.is_set():
                raise _Skipped
            try:
                return self._read_day(tile, when)
            except BaseException:
                failed.set()
                raise

        with ThreadPoolExecutor(max_workers=self.threads) as pool:
            futures = [pool.submit(read_day, t) for t in times]
        errors = []
        for i, future in enumerate(futures):
            try:
                bands[i], is_data[i] = future.result()
            except _Skipped:
                continue
            except Exception as err:  # keep going: raise the earliest real failure
                errors.append(err)
        if errors:
            raise errors[0]
        return bands, is_data

    def fingerprint(self) -> dict[str, Any]:
        """Service, collection, filter and evalscript: what decides the pixels (no secrets)."""
        return {
            "base_url": self.config.sh_base_url.rstrip("/"),
            "collection": self.collection.api_id,
            "max_cloud_cover": self.max_cloud_cover,
            "mosaicking_order": MOSAICKING_ORDER,
            "evalscript": hashlib.sha256(EVALSCRIPT.encode()).hexdigest()[:16],
        }

    def _read_day(self, tile: Grid, when: pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
        from sentinelhub import BBox, MimeType, SentinelHubDownloadClient, SentinelHubRequest

        day = pd.Timestamp(when).normalize()
        request = SentinelHubRequest(
            evalscript=EVALSCRIPT,
            input_data=[
                SentinelHubRequest.input_data(
                    self.collection,
                    time_interval=(day.to_pydatetime(), _end_of_day(day).to_pydatetime()),
                    other_args={
                        "dataFilter": {
                            "maxCloudCoverage": self.max_cloud_cover,
                            "mosaickingOrder": MOSAICKING_ORDER,
                        }
                    },
                )
            ],
            responses=[SentinelHubRequest.output_response("default", MimeType.TIFF)],
            bbox=BBox(tile.bounds, crs=self.crs),
            size=(tile.width, tile.height),
            config=self.config,
        )

        def fetch() -> tuple[np.ndarray, np.ndarray]:
            client = SentinelHubDownloadClient(config=self.config)
            (response,) = client.download(request.download_list, max_threads=1, decode_data=False)
            return _decode_tile(response.content, tile)

        return self._retrying(fetch, f"tile request for {day.date()}")

    def _retrying(self, call: Callable[[], T], what: str) -> T:
        """``call()``, retried when a whole answer cannot be decoded (``attempts`` times) and
        once after a 401 with a fresh token; other failures become a ``SourceError``."""
        from sentinelhub import SentinelHubDownloadClient
        from sentinelhub.exceptions import DownloadFailedException, OutOfRequestsException

        corrupt, fresh_token = 0, False
        while True:
            try:
                return call()
            except _CorruptResponse as err:
                corrupt += 1
                if corrupt >= self.attempts:
                    raise SourceError(
                        f"sentinelhub: {what}: the answer could not be decoded in {corrupt} "
                        f"attempts ({err}); the service or the connection truncates responses, "
                        "run again later."
                    ) from None
                log.warning("sentinelhub: %s: %s; asking again", what, err)
                time.sleep(self.config.download_sleep_time * corrupt)
            except OutOfRequestsException:
                raise SourceError(
                    f"sentinelhub: {what}: still rate limited (429) after {MAX_RATE_LIMITED} "
                    "tries; the account's request quota is used up: lower the source option "
                    "'threads' or run again later."
                ) from None
            except DownloadFailedException as err:
                status = _status(err)
                if status == 401 and not fresh_token:
                    log.warning(
                        "sentinelhub: %s: token expired or revoked; getting a new one", what
                    )
                    SentinelHubDownloadClient.clear_cache()
                    fresh_token = True
                    continue
                raise _download_error(err, status, what, self.config) from None
            except OAuth2Error as err:
                raise SourceError(
                    f"sentinelhub: the token service at {self.config.sh_token_url} refused the "
                    f"credentials ({err.error}, HTTP {err.status_code}); check client_id and "
                    "client_secret (and token_url) under 'sentinelhub:' in "
                    "conf/local/credentials.yml or SH_CLIENT_ID / SH_CLIENT_SECRET."
                ) from None
            except requests.RequestException as err:
                raise SourceError(
                    f"sentinelhub: {what}: {type(err).__name__} talking to "
                    f"{self.config.sh_base_url}; check the network and base_url."
                ) from None


def sentinelhub(
    request: SourceRequest,
    *,
    max_cloud_cover: Annotated[float, Field(ge=0, le=100)] = 80.0,
    attempts: Annotated[int, Field(ge=1, le=10)] = 4,
    retry_wait: Annotated[float, Field(ge=0, le=300)] = 5.0,
    threads: Annotated[int, Field(ge=1, le=16)] = 4,
) -> tuple[xr.Dataset, None]:
    """Sentinel-2 L1C from Sentinel Hub (an account's OAuth client is needed): acquisitions of
    at most ``max_cloud_cover`` % cloud (scene-wide, from the catalog), one frame per UTC day;
    a failed request is tried ``attempts`` times, waiting ``retry_wait`` s then 3x longer each
    time; ``threads`` requests run at once (lower it if the account is rate limited)."""
    config = sentinelhub_config(request.credentials, attempts=attempts, retry_wait=retry_wait)
    reader = SentinelHubReader(
        config, request.grid, request.time_interval, max_cloud_cover=max_cloud_cover,
        attempts=attempts, threads=threads,
    )  # fmt: skip
    attrs = {
        "source_service": config.sh_base_url.rstrip("/"),
        "source_collection": reader.collection.api_id,
        "max_cloud_cover": float(max_cloud_cover),
        "frames": "one per UTC day, stamped with its earliest acquisition; scenes mosaicked "
        "least cloudy first",
    }
    return read_tiled(reader, request, attrs=attrs), None


def sentinelhub_config(credentials: Mapping[str, Any] | None, *, attempts: int, retry_wait: float):
    """The client's ``SHConfig``: credentials.yml's ``sentinelhub`` entry if it has a client,
    else sentinelhub's own configuration file and SH_CLIENT_ID / SH_CLIENT_SECRET; with retry
    limits so that no fault loops forever."""
    from sentinelhub import SHConfig

    creds = dict(credentials or {})
    unknown = sorted(set(creds) - set(CREDENTIAL_KEYS))
    if unknown:
        raise SourceError(
            f"sentinelhub: unknown keys {unknown} under 'sentinelhub:' in "
            f"conf/local/credentials.yml; the keys are {list(CREDENTIAL_KEYS)}."
        )
    if creds.get("client_id") or creds.get("client_secret"):
        config = SHConfig(use_defaults=True)
        config.sh_client_id = str(creds.get("client_id") or "")
        config.sh_client_secret = str(creds.get("client_secret") or "")
    else:
        try:
            config = SHConfig()
        except Exception as err:  # a broken config.toml: KeyError, TOMLDecodeError, OSError
            raise SourceError(
                f"sentinelhub: cannot read sentinelhub's own configuration "
                f"({type(err).__name__}); fix {SHConfig.get_config_location()} or "
                f"{CREDENTIALS_HELP}."
            ) from None
    if creds.get("base_url"):
        config.sh_base_url = str(creds["base_url"]).rstrip("/")
    if creds.get("token_url"):
        config.sh_token_url = str(creds["token_url"])
    missing = [k for k, v in (("client_id", config.sh_client_id),
                              ("client_secret", config.sh_client_secret)) if not v]  # fmt: skip
    if missing:
        raise SourceError(f"sentinelhub: no {' and no '.join(missing)} found; {CREDENTIALS_HELP}.")
    config.max_download_attempts = int(attempts)
    config.download_sleep_time = float(retry_wait)
    config.max_retries = MAX_RATE_LIMITED
    return config


class _Skipped(Exception):
    """A day not asked for because another day of the same tile already failed."""


class _CorruptResponse(ValueError):
    """A whole answer whose body cannot be decoded (e.g. a truncated TIFF); worth asking again."""


def _decode_tile(content: bytes, tile: Grid) -> tuple[np.ndarray, np.ndarray]:
    """(13, y, x) uint16 bands and (y, x) data mask from the Process API's TIFF."""
    import tifffile

    try:
        image = tifffile.imread(io.BytesIO(content))
    except Exception as err:  # the decoder raises many types on bad bytes; all mean "corrupt"
        raise _CorruptResponse(f"TIFF of {len(content)} bytes is corrupt ({err})") from None
    want = (tile.height, tile.width, len(S2_BANDS) + 1)
    if image.shape != want or image.dtype != np.uint16:
        raise SourceError(
            f"sentinelhub: the Process API returned a {image.dtype}{image.shape} image, "
            f"expected uint16{want}; the evalscript and the service disagree."
        )
    return np.moveaxis(image[..., :-1], -1, 0), image[..., -1] > 0


def _status(err) -> int | None:
    response = getattr(getattr(err, "request_exception", None), "response", None)
    return getattr(response, "status_code", None)


def _download_error(err, status: int | None, what: str, config) -> SourceError:
    """A ``SourceError`` saying what a failed download means and what to do about it."""
    server = _server_message(err)
    if status == 401:
        fix = ("the service rejects even a fresh token; check that the OAuth client is active "
               "and that base_url and token_url belong to the same deployment")  # fmt: skip
    elif status == 403:
        fix = "the account may lack access to Sentinel-2 L1C or be out of processing units"
    elif status is not None and status < 500:
        fix = "the request was refused; this is a bug in the source, please report it"
    else:
        fix = (f"gave up after {config.max_download_attempts} attempts; the service or the "
               "network is down, run again later (finished tiles are kept)")  # fmt: skip
    got = f"HTTP {status}" if status else "no answer"
    return SourceError(f"sentinelhub: {what} failed ({got}{server}); {fix}.")


def _server_message(err) -> str:
    response = getattr(getattr(err, "request_exception", None), "response", None)
    try:
        message = response.json()["error"]["message"]
    except Exception:  # no response, not JSON, or another error layout
        return ""
    return f": {str(message)[:200]}"


def _number(x: float) -> str:
    """A plain decimal for a CQL2 filter (no exponent)."""
    return f"{x:.4f}".rstrip("0").rstrip(".")


def _day_bounds(start, end) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The interval as UTC-naive times from ``start``'s midnight to ``end``'s last second."""
    start, end = (_utc_naive(t) for t in (start, end))
    return start.normalize(), _end_of_day(end)


def _end_of_day(t: pd.Timestamp) -> pd.Timestamp:
    return t.normalize() + pd.Timedelta(days=1) - pd.Timedelta(seconds=1)


def _utc_naive(t) -> pd.Timestamp:
    t = pd.Timestamp(t)
    return t.tz_convert("UTC").tz_localize(None) if t.tzinfo is not None else t


class _NoDebug(logging.Filter):
    """Drops DEBUG records: requests_oauthlib logs token request bodies (the client secret)
    and the tokens it receives at that level."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


def _hide_oauth_debug_logs() -> None:
    logger = logging.getLogger("requests_oauthlib.oauth2_session")
    if not any(isinstance(f, _NoDebug) for f in logger.filters):
        logger.addFilter(_NoDebug())
