"""Fixtures of the mp tests: the local MP server, a fresh shared database, no real network.

An autouse fixture points ``MP_API_ENDPOINT`` at a closed local port, so a test that forgets the
server fails to connect instead of reaching api.materialsproject.org.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from crystal_atomate.testing.mp_server import VALID_KEY, MPServer, start_server
from crystal_atomate.testing.mpcontribs_server import MPContribsServer
from crystal_atomate.testing.mpcontribs_server import start_server as start_mpcontribs_server
from crystal_atomate.testing.optimade_server import OptimadeServer, start_optimade_server


@pytest.fixture(autouse=True)
def _no_real_materials_project(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts pointed at a closed local port, with the valid test key."""
    monkeypatch.setenv("MP_API_ENDPOINT", "http://127.0.0.1:9/")
    monkeypatch.setenv("MP_API_KEY", VALID_KEY)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def mp_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[MPServer]:
    """A fresh server on a random free port of 127.0.0.1; ``MP_API_ENDPOINT`` points at it.

    A new port per test also gives mp-api a new endpoint, whose heartbeat it has not cached.
    """
    server, thread = start_server()
    monkeypatch.setenv("MP_API_ENDPOINT", server.url)
    yield server
    server.stop()
    thread.join(timeout=5)


@pytest.fixture
def db_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A new shared database file, also what ``CRYSTAL_TUI_DB`` names for the CLI."""
    path = tmp_path / "crystal_tui.db"
    monkeypatch.setenv("CRYSTAL_TUI_DB", str(path))
    return path


@pytest.fixture(scope="session")
def ui_materials() -> ModuleType:
    """The UI's own ``materials_api`` package (``MaterialsService``, ``CacheRepository``, keys).

    Read from ``CRYSTALMATH_CLIENT_DIR`` (default ``<repo>/../shared/crystalmath-client/tui``);
    the test skips, saying why, when that folder or the UI's ``aiosqlite`` is missing.
    """
    default = Path(__file__).resolve().parents[2].parent / "shared" / "crystalmath-client" / "tui"
    client_dir = Path(os.environ.get("CRYSTALMATH_CLIENT_DIR", default))
    if not (client_dir / "src" / "core" / "materials_api").is_dir():
        pytest.skip(
            f"the CrystalMath UI's code is not at {client_dir} (set CRYSTALMATH_CLIENT_DIR)"
        )
    pytest.importorskip("aiosqlite", reason="the UI's CacheRepository needs aiosqlite (dev extra)")
    sys.path.insert(0, str(client_dir))
    return importlib.import_module("src.core.materials_api")


@pytest.fixture(scope="session")
def _optimade_reference_server() -> Iterator[OptimadeServer]:
    pytest.importorskip("optimade.server", reason="needs optimade[server] (mp extra)")
    server = start_optimade_server()
    yield server
    server.stop()


@pytest.fixture
def optimade_server(_optimade_reference_server: OptimadeServer) -> Iterator[OptimadeServer]:
    """The ``optimade`` package's reference server (hematite, MgO, corundum) on loopback, shared by
    the session; each test starts with no fault scripted and no request seen, and leaves no fault.
    """
    _optimade_reference_server.fail(None)
    _optimade_reference_server.paths.clear()
    yield _optimade_reference_server
    _optimade_reference_server.fail(None)


@pytest.fixture
def mpcontribs_server() -> Iterator[MPContribsServer]:
    """The recorded MPContribs API on a free port of 127.0.0.1 (project ``crystal_oxides``)."""
    pytest.importorskip("mpcontribs.client", reason="needs mpcontribs-client (mp extra)")
    server = start_mpcontribs_server()
    yield server
    server.stop()
