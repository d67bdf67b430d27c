"""A local MPContribs API for tests and tutorials: the real ``mpcontribs-client`` talks to it.

``mpcontribs.client.Client`` builds itself from the swagger spec the server publishes at
``/apispec.json`` (bravado), asks ``/projects/`` which projects the key may read, then queries
``/contributions/`` and ``/structures/{id}/``. This server answers those routes from the documents
in ``tests/data/mpcontribs`` (written in the shape of the public API, see its README), filters
contributions by ``project``/``identifier``/``formula``, projects ``_fields`` and paginates with
``per_page``/``page``. A wrong key is HTTP 401, an unknown structure 404; ``fail`` scripts a status
(e.g. 500) for every data route.

The client accepts only its own list of hosts and ports (``VALID_URLS``); :func:`start_server` adds
the server's loopback URL to that list, the one concession to running on a free port.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["DATA", "MPContribsServer", "start_server"]

#: The documents in the checkout this package runs from.
DATA = Path(__file__).resolve().parents[2] / "tests" / "data" / "mpcontribs"
#: 32 characters, as the client requires; the same test key as the Materials Project server's.
VALID_KEY = "ZqXw7KeyNeverLogged0123456789abc"
_FILTERS = ("project", "identifier", "formula")


@dataclass
class MPContribsServer:
    """The running server: its host (``127.0.0.1:port``, as the client wants it), what it saw."""

    host: str
    paths: list[str] = field(default_factory=list)
    status: int | None = None
    _httpd: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:port``."""
        return f"http://{self.host}"

    def fail(self, status: int | None) -> None:
        """Answer ``status`` on every data route from now on (None: answer normally)."""
        self.status = status

    def stop(self) -> None:
        """Shut the server down and free its port: from now on MPContribs is offline."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
            if self._thread is not None:
                self._thread.join(timeout=5)


def _load(data_dir: Path, name: str) -> Any:
    return json.loads((data_dir / name).read_text())


def _project(doc: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if fields is None or k in fields}


def _page(docs: list[dict[str, Any]], params: dict[str, str]) -> dict[str, Any]:
    """Return one page of ``docs`` in the API's envelope: data, total_count, total_pages, page."""
    fields = params["_fields"].split(",") if "_fields" in params else None
    per_page, page = int(params.get("per_page", 100)), int(params.get("page", 1))
    chunk = docs[(page - 1) * per_page : page * per_page]
    pages = max(1, -(-len(docs) // per_page))
    return {
        "data": [_project(d, fields) for d in chunk],
        "total_count": len(docs),
        "total_pages": pages,
        "page": page,
    }


def _handler(server: MPContribsServer, data_dir: Path) -> type[BaseHTTPRequestHandler]:
    spec = _load(data_dir, "apispec.json")
    projects = _load(data_dir, "projects.json")
    contributions = _load(data_dir, "contributions.json")
    structures = {s["id"]: s for s in _load(data_dir, "structures.json")}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the tests read ``server.paths`` instead."""

        def _send(self, status: int, body: Any) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            params = {k: v[-1] for k, v in parse_qs(url.query).items()}
            server.paths.append(url.path)
            if url.path == "/healthcheck":
                return self._send(200, {"status": "READY", "version": "recorded"})
            if url.path == "/apispec.json":
                return self._send(200, spec)
            if self.headers.get("x-api-key") != VALID_KEY:
                return self._send(401, {"error": "Invalid API key"})
            if server.status is not None:
                return self._send(server.status, {"error": f"scripted status {server.status}"})
            if url.path == "/projects/":
                return self._send(200, _page(projects, params))
            if url.path == "/contributions/":
                wanted = {k: params[k] for k in _FILTERS if k in params}
                found = [c for c in contributions if all(c.get(k) == v for k, v in wanted.items())]
                return self._send(200, _page(found, params))
            if url.path.startswith("/structures/") and url.path.count("/") == 3:
                sid = url.path.split("/")[2]
                if sid not in structures:
                    return self._send(404, {"error": f"structure {sid} not found"})
                fields = params["_fields"].split(",") if "_fields" in params else None
                return self._send(200, _project(structures[sid], fields))
            return self._send(404, {"error": "Not Found"})

    return Handler


def start_server(data_dir: Path = DATA) -> MPContribsServer:
    """Start a server on a free port of 127.0.0.1 serving ``data_dir``, which the client accepts."""
    from mpcontribs.client import VALID_URLS

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    server = MPContribsServer(host=f"127.0.0.1:{httpd.server_address[1]}", _httpd=httpd)
    httpd.RequestHandlerClass = _handler(server, data_dir)
    VALID_URLS.add(server.url)
    server._thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    server._thread.start()
    return server
