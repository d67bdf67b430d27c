"""A local Materials Project API for tests and tutorials: the real MPRester talks to it over HTTP.

The server answers ``/heartbeat``, ``/materials/core/`` and ``/materials/summary/`` from the
fixture documents in ``tests/data/mp`` with maggma's response envelope (``{"data", "meta"}``),
filters them by the query parameters mp-api sends, and refuses any parameter it does not know
(HTTP 400), so a client sending the wrong filter fails here as it would against MP. Error statuses
(401, 404, 429, ...) are scripted per route; ``stop()`` takes the server away (offline).

It lives in the package, not under ``tests/``, so the tutorials can start it without importing the
test suite; the documents stay in the checkout's ``tests/data/mp`` (``data_dir`` to use others).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

#: The recorded documents in the checkout this package runs from.
DATA = Path(__file__).resolve().parents[2] / "tests" / "data" / "mp"
#: 32 characters, as mp-api requires; distinctive so a leak is easy to grep for.
VALID_KEY = "ZqXw7KeyNeverLogged0123456789abc"
CORE = "/materials/core/"
SUMMARY = "/materials/summary/"
_ROUTE_FIELDS = {
    CORE: {"material_ids", "formula", "chemsys", "deprecated", "nsites_min", "nsites_max"},
    SUMMARY: {
        "material_ids", "formula", "chemsys", "deprecated", "nsites_min", "nsites_max",
        "band_gap_min", "band_gap_max", "energy_above_hull_min", "energy_above_hull_max",
        "is_stable", "batch_id_not_eq",
    },
}
_DOC_FIELD = {"material_ids": "material_id", "formula": "formula_pretty"}


def _load(data_dir: Path, name: str) -> Any:
    path = data_dir / name
    if not path.is_file():
        raise FileNotFoundError(f"No recorded Materials Project response {path}: pass data_dir")
    return json.loads(path.read_text())


def _matches(doc: dict[str, Any], key: str, value: str) -> bool:
    """Tell whether ``doc`` satisfies one query parameter, in the API's meaning of it."""
    if key == "batch_id_not_eq":
        return doc.get("batch_id") != value
    if key.endswith("_min") or key.endswith("_max"):
        actual = doc[key[:-4]]
        return actual >= float(value) if key.endswith("_min") else actual <= float(value)
    if key in ("deprecated", "is_stable"):
        return doc[key] == (value.lower() == "true")
    return doc[_DOC_FIELD.get(key, key)] in value.split(",")


@dataclass
class Recorded:
    """One request as the server saw it."""

    path: str
    params: dict[str, str]
    api_key: str | None


@dataclass
class MPServer:
    """The running server: its URL, what it received, and the faults still to serve."""

    url: str
    requests: list[Recorded] = field(default_factory=list)
    faults: dict[str, list[int]] = field(default_factory=dict)
    fault_forever: dict[str, int] = field(default_factory=dict)
    _httpd: ThreadingHTTPServer | None = None

    def fail(self, route: str, status: int, times: int | None = None) -> None:
        """Answer ``status`` on ``route`` the next ``times`` requests (None: from now on)."""
        if times is None:
            self.fault_forever[route] = status
        else:
            self.faults.setdefault(route, []).extend([status] * times)

    def hits(self, route: str) -> int:
        """How many requests reached ``route``."""
        return sum(1 for r in self.requests if r.path == route)

    def stop(self) -> None:
        """Shut the server down and free its port: from now on the endpoint is offline."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def next_fault(self, route: str) -> int | None:
        """Return the status to fail the next request to ``route`` with, or None to answer it.

        Scripted faults are used up one per request; a fault set "from now on" never is.
        """
        if route in self.fault_forever:
            return self.fault_forever[route]
        queue = self.faults.get(route)
        return queue.pop(0) if queue else None


def _handler(server: MPServer, data_dir: Path) -> type[BaseHTTPRequestHandler]:
    documents = {
        CORE: _load(data_dir, "materials_core.json"),
        SUMMARY: _load(data_dir, "materials_summary.json"),
    }
    heartbeat = _load(data_dir, "heartbeat.json")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            """Quiet: the tests read ``server.requests`` instead."""

        def _send(self, status: int, body: Any) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            url = urlsplit(self.path)
            params = {k: v[-1] for k, v in parse_qs(url.query).items()}
            server.requests.append(Recorded(url.path, params, self.headers.get("x-api-key")))
            if url.path == "/heartbeat":
                return self._send(200, heartbeat)
            if url.path not in documents:
                return self._send(404, {"detail": "Not Found"})
            if self.headers.get("x-api-key") != VALID_KEY:
                return self._send(401, {"detail": "Invalid API key"})
            if (status := server.next_fault(url.path)) is not None:
                return self._send(status, {"detail": f"scripted status {status}"})
            unknown = set(k for k in params if not k.startswith("_")) - _ROUTE_FIELDS[url.path]
            if unknown:
                return self._send(400, {"detail": f"unknown query parameters {sorted(unknown)}"})
            return self._send(200, _resource(documents[url.path], params))

    return Handler


def _resource(docs: list[dict[str, Any]], params: dict[str, str]) -> dict[str, Any]:
    """Maggma's ``Response``: matching documents, paginated and projected, and ``meta``."""
    found = [
        d for d in docs
        if all(_matches(d, k, v) for k, v in params.items() if not k.startswith("_"))
    ]
    skip, limit = int(params.get("_skip", 0)), int(params.get("_limit", 1000))
    page = found[skip : skip + limit]
    if params.get("_all_fields", "").lower() != "true" and "_fields" in params:
        wanted = params["_fields"].split(",")
        page = [{k: d[k] for k in wanted if k in d} for d in page]
    meta = {
        "api_version": "0.86.3",
        "time_stamp": datetime.now(UTC).isoformat(),
        "total_doc": len(found),
        "max_limit": 1000,
        "default_fields": ["material_id", "formula_pretty", "last_updated"],
        "facet": {},
    }
    return {"data": page, "meta": meta}


def start_server(data_dir: Path = DATA) -> tuple[MPServer, threading.Thread]:
    """Start a server on a free port of 127.0.0.1, serving ``data_dir``'s documents.

    It runs in a daemon thread, so a test that forgets to stop it does not hang the session.
    """
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    server = MPServer(url=f"http://127.0.0.1:{httpd.server_address[1]}/", _httpd=httpd)
    httpd.RequestHandlerClass = _handler(server, data_dir)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    return server, thread
