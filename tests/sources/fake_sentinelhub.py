"""A local stand-in for Sentinel Hub that speaks the protocol the ``sentinelhub`` client uses.

It serves the OAuth client-credentials token endpoint, Catalog 1.0.0 search (paged with
``context.next``) and the Process API (one multi-band UINT16 TIFF), over synthetic scenes whose
pixels follow :func:`dn`, so a test can work out every expected pixel by hand. Faults (429 with
Retry-After, 500, a dropped connection, a truncated TIFF, an expired token) are injected per
endpoint and request pattern, and every request is recorded so tests can count them.
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
import secrets
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import tifffile

CLIENT_ID = "fake-client"
CLIENT_SECRET = "fake-secret"
TOKEN_PATH = "/oauth/token"
CATALOG_PATH = "/api/v1/catalog/1.0.0/search"
PROCESS_PATH = "/api/v1/process"
ENDPOINTS = {TOKEN_PATH: "token", CATALOG_PATH: "catalog", PROCESS_PATH: "process"}
FAULTS = ("429", "500", "drop", "truncate", "expire_token")


@dataclass(frozen=True)
class Scene:
    """One acquisition (a datastrip): its time, cloud cover and footprint ``x_min <= x < x_max``
    in the CRS of the requests (pixel centres), so one day can hold two partial strips."""

    id: str
    when: datetime  # UTC, naive
    cloud_cover: float
    x_min: float = -math.inf
    x_max: float = math.inf


def dn(x, y, when: datetime, band: int):
    """The L1C digital number the fake serves for band index ``band`` (0-based, in the order the
    evalscript asks for the bands) at pixel centre ``x``, ``y`` of the acquisition at ``when``.
    Always in 100..9099, never 0 (no data)."""
    col = np.floor_divide(np.asarray(x, dtype=float), 10).astype(np.int64)
    row = np.floor_divide(np.asarray(y, dtype=float), 10).astype(np.int64)
    day = when.timetuple().tm_yday
    value = (col % 97) * 13 + (row % 89) * 17 + band * 211 + day * 5 + when.hour * 60 + when.minute
    return (value % 9000 + 100).astype(np.uint16)


@dataclass
class Fault:
    kind: str
    endpoint: str
    remaining: int | None  # None: every matching request
    where: Callable[[dict], bool] | None
    retry_after_ms: int


@dataclass
class Recorded:
    endpoint: str
    body: dict
    fault: str | None  # the fault that replaced the normal answer, if any


@dataclass
class FakeSentinelHub:
    """The fake service; ``url`` is its base URL once started."""

    scenes: list[Scene] = field(default_factory=list)
    client_secret: str = CLIENT_SECRET
    page_size: int = 100  # the most features a catalog page holds, whatever ``limit`` says
    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    tokens: dict[str, bool] = field(default_factory=dict)  # access token -> still valid
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def token_url(self) -> str:
        return self.url + TOKEN_PATH

    def credentials(self, **overrides) -> dict[str, str]:
        """The credentials.yml ``sentinelhub`` entry that points the client at this server."""
        creds = {"client_id": CLIENT_ID, "client_secret": self.client_secret,
                 "base_url": self.url, "token_url": self.token_url}  # fmt: skip
        return {**creds, **overrides}

    def add_fault(
        self,
        kind: str,
        endpoint: str = "process",
        times: int | None = 1,
        where: Callable[[dict], bool] | None = None,
        retry_after_ms: int = 100,
    ) -> None:
        """Answer the next ``times`` requests to ``endpoint`` whose JSON body satisfies
        ``where`` with fault ``kind`` (one of FAULTS) instead of the normal answer."""
        assert kind in FAULTS and endpoint in ENDPOINTS.values(), (kind, endpoint)
        self.faults.append(Fault(kind, endpoint, times, where, retry_after_ms))

    def count(self, endpoint: str, where: Callable[[dict], bool] | None = None) -> int:
        """How many requests reached ``endpoint`` (faulted ones included)."""
        with self.lock:
            return sum(
                r.endpoint == endpoint and (where is None or where(r.body)) for r in self.requests
            )

    def recorded(self, endpoint: str) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.endpoint == endpoint]

    def _take_fault(self, endpoint: str, body: dict) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.endpoint != endpoint or fault.remaining == 0:
                    continue
                if fault.where is not None and not fault.where(body):
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                return fault
        return None

    # --- the protocol -------------------------------------------------------------------

    def issue_token(self, form: dict[str, str]) -> tuple[int, dict]:
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != self.client_secret:
            return 401, {"error": "invalid_client",
                         "error_description": "Invalid client or Invalid client credentials"}  # fmt: skip
        claims = json.dumps({"azp": CLIENT_ID, "jti": secrets.token_hex(8)}).encode()
        payload = base64.urlsafe_b64encode(claims).decode().rstrip("=")
        token = f"eyJhbGciOiJub25lIn0.{payload}.fake"
        with self.lock:
            self.tokens[token] = True
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600}

    def token_valid(self, authorization: str | None) -> bool:
        token = (authorization or "").removeprefix("Bearer ")
        with self.lock:
            return self.tokens.get(token, False)

    def expire(self, authorization: str | None) -> None:
        with self.lock:
            self.tokens[(authorization or "").removeprefix("Bearer ")] = False

    def search(self, body: dict) -> tuple[int, dict]:
        if body.get("collections") != ["sentinel-2-l1c"]:
            return 400, _error(400, f"unknown collections {body.get('collections')}")
        start, end = (_parse_time(t) for t in body["datetime"].split("/"))
        max_cc = math.inf
        if body.get("filter"):
            match = re.fullmatch(r"\s*eo:cloud_cover\s*(<=|<)\s*([0-9.]+)\s*", body["filter"])
            if not match:
                return 400, _error(400, f"filter not understood: {body['filter']}")
            max_cc = float(match[2]) if match[1] == "<=" else math.nextafter(float(match[2]), 0)
        hits = [s for s in sorted(self.scenes, key=lambda s: s.when)
                if start <= s.when <= end and s.cloud_cover <= max_cc]  # fmt: skip
        offset = int(body.get("next") or 0)
        size = min(int(body.get("limit", 100)), self.page_size)
        page = hits[offset : offset + size]
        context = {"limit": size, "returned": len(page)}
        if offset + size < len(hits):
            context["next"] = offset + size
        features = [
            {"type": "Feature", "stac_version": "1.0.0", "id": s.id, "geometry": None,
             "properties": {"datetime": s.when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                            "eo:cloud_cover": s.cloud_cover}}
            for s in page
        ]  # fmt: skip
        return 200, {"type": "FeatureCollection", "features": features, "links": [],
                     "context": context}  # fmt: skip

    def process(self, body: dict) -> tuple[int, dict | np.ndarray]:
        """The (height, width, bands) uint16 image of a Process request, mosaicked over the
        scenes in its time range the way the real service does (per pixel, first scene in
        ``mosaickingOrder`` whose footprint holds the pixel)."""
        (data,) = body["input"]["data"]
        if data.get("type") != "sentinel-2-l1c":
            return 400, _error(400, f"unknown data type {data.get('type')}")
        script = body["evalscript"]
        names = re.search(r"bands:\s*\[([^\]]*)\]", script)
        if not names or 'units: "DN"' not in script or 'sampleType: "UINT16"' not in script:
            return 400, _error(400, "evalscript must ask for bands in DN as UINT16")
        bands = re.findall(r'"(\w+)"', names[1])
        minx, miny, maxx, maxy = body["input"]["bounds"]["bbox"]
        width, height = body["output"]["width"], body["output"]["height"]
        filters = data.get("dataFilter", {})
        start = _parse_time(filters["timeRange"]["from"])
        end = _parse_time(filters["timeRange"]["to"])
        max_cc = float(filters.get("maxCloudCoverage", 100))
        order = filters.get("mosaickingOrder", "mostRecent")
        scenes = [s for s in self.scenes if start <= s.when <= end and s.cloud_cover <= max_cc]
        if order == "leastCC":
            scenes.sort(key=lambda s: s.cloud_cover)
        else:
            scenes.sort(key=lambda s: s.when, reverse=order == "mostRecent")
        x = minx + (np.arange(width) + 0.5) * (maxx - minx) / width
        y = maxy - (np.arange(height) + 0.5) * (maxy - miny) / height
        xx, yy = np.meshgrid(x, y)
        image = np.zeros((height, width, len(bands)), dtype=np.uint16)
        filled = np.zeros((height, width), dtype=bool)
        for scene in scenes:
            take = ~filled & (xx >= scene.x_min) & (xx < scene.x_max)
            for i, name in enumerate(bands):
                value = (
                    np.ones_like(xx, np.uint16) if name == "dataMask" else dn(xx, yy, scene.when, i)
                )
                image[..., i][take] = value[take]
            filled |= take
        return 200, image

    # --- running ------------------------------------------------------------------------

    def start(self) -> FakeSentinelHub:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class _Handler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer
    truncate = False

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_POST(self) -> None:
        fake: FakeSentinelHub = self.server.fake
        endpoint = ENDPOINTS.get(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if endpoint == "token":
            body = dict(urllib.parse.parse_qsl(raw.decode()))
            body.pop("client_secret", None)  # never keep a secret in the record
        else:
            body = json.loads(raw or b"{}")
        fault = fake._take_fault(endpoint, body) if endpoint else None
        with fake.lock:
            fake.requests.append(Recorded(endpoint or self.path, body, fault and fault.kind))
        self.truncate = bool(fault and fault.kind == "truncate")
        if endpoint is None:
            return self._json(404, _error(404, f"no endpoint {self.path}"))
        if fault and fault.kind == "drop":
            self.close_connection = True
            return  # the socket closes without an answer
        if fault and fault.kind == "429":
            return self._json(429, _error(429, "Too many requests"),
                              {"Retry-After": str(fault.retry_after_ms)})  # fmt: skip
        if fault and fault.kind == "500":
            return self._json(500, _error(500, "Illegal state"))
        if endpoint == "token":
            form = dict(urllib.parse.parse_qsl(raw.decode()))
            return self._json(*fake.issue_token(form))
        if fault and fault.kind == "expire_token":
            fake.expire(self.headers.get("Authorization"))
        if not fake.token_valid(self.headers.get("Authorization")):
            return self._json(401, _error(401, "Unauthorized: token expired or invalid"))
        if endpoint == "catalog":
            return self._json(*fake.search(body))
        status, image = fake.process(body)
        if status != 200:
            return self._json(status, image)
        buffer = io.BytesIO()
        tifffile.imwrite(buffer, image, photometric="minisblack", planarconfig="contig")
        self._send(200, buffer.getvalue(), "image/tiff")

    def _json(self, status: int, payload: dict, headers: dict | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", headers)

    def _send(self, status: int, content: bytes, kind: str, headers: dict | None = None) -> None:
        if status == 200 and self.truncate:  # cut short, with a matching Content-Length
            content = content[: len(content) * 2 // 3]
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(content)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(content)


def _error(status: int, message: str) -> dict:
    return {"error": {"status": status, "reason": message, "message": message}}


def _parse_time(text: str) -> datetime:
    """An ISO time as UTC-naive (the client sends ``Z`` suffixes)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None)
