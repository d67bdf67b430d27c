"""The ``optimade`` package's own reference server on loopback, for tests and tutorials.

Its FastAPI app (``optimade.server.create_app``) runs under uvicorn in a daemon thread on a free
port of 127.0.0.1, with the in-memory mongomock backend loaded from an OPTIMADE JSON-lines file
(``tests/data/optimade/structures.jsonl``: hematite Fe2O3, rocksalt MgO, corundum Al2O3). Nothing is
mocked on the client side: the real ``OptimadeClient`` queries it over HTTP. A middleware can make
the server answer HTTP 500 or stall (``fail``), as a broken or overloaded provider would.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DATA", "OptimadeServer", "start_optimade_server"]

#: The recorded entries in the checkout this package runs from.
DATA = Path(__file__).resolve().parents[2] / "tests" / "data" / "optimade" / "structures.jsonl"


@dataclass
class OptimadeServer:
    """The running server: its base URL, the requests it saw, and the fault it is to serve."""

    url: str
    paths: list[str] = field(default_factory=list)
    status: int | None = None
    delay: float = 0.0
    _uvicorn: object | None = None
    _thread: threading.Thread | None = None

    def fail(self, status: int | None = None, delay: float = 0.0) -> None:
        """Answer ``status`` (e.g. 500) and/or wait ``delay`` seconds on every request from now."""
        self.status, self.delay = status, delay

    def stop(self) -> None:
        """Shut the server down and free its port: from now on the provider is offline."""
        if self._uvicorn is not None and self._thread is not None:
            self._uvicorn.should_exit = True  # type: ignore[attr-defined]
            self._thread.join(timeout=10)
            self._uvicorn = None


def start_optimade_server(data: Path = DATA, timeout: float = 30.0) -> OptimadeServer:
    """Start a reference server on a free port of 127.0.0.1 serving ``data``; return it ready."""
    import uvicorn
    from fastapi import Request, Response
    from optimade.server.config import ServerConfig
    from optimade.server.create_app import create_app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = OptimadeServer(url=f"http://127.0.0.1:{sock.getsockname()[1]}")
    config = ServerConfig(
        base_url=server.url,
        database_backend="mongomock",
        mongo_database=f"optimade_{uuid.uuid4().hex}",
        insert_test_data=False,
        insert_from_jsonl=data.resolve(),
    )
    app = create_app(config)

    @app.middleware("http")
    async def faults(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        import asyncio

        server.paths.append(request.url.path)
        if server.delay:
            await asyncio.sleep(server.delay)
        if server.status is not None:
            body = f'{{"errors": [{{"status": "{server.status}", "title": "scripted"}}]}}'
            return Response(body, status_code=server.status, media_type="application/json")
        return await call_next(request)

    runner = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=runner.run, kwargs={"sockets": [sock]}, daemon=True)
    server._uvicorn, server._thread = runner, thread
    thread.start()
    deadline = time.monotonic() + timeout
    while not runner.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"The OPTIMADE reference server did not start on {server.url}")
        time.sleep(0.02)
    return server
