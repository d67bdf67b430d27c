"""Fixtures of the mp tests: no real network, and the UI's own Materials Project code.

Every test here starts pointed at a closed local port (``no_real_materials_project``), so a test
that forgets the local server fails to connect instead of reaching api.materialsproject.org. The
servers and ``db_file`` are in tests/conftest.py, shared with the CLI and high-throughput tests."""

from __future__ import annotations

from types import ModuleType

import pytest

from crystal_atomate.testing.ui_client import UIClientMissing, ui_client_dir, ui_module


@pytest.fixture(autouse=True)
def _no_real_materials_project(no_real_materials_project: None) -> None:
    """Every test starts pointed at a closed local port, with the valid test key."""


@pytest.fixture(scope="session")
def ui_materials() -> ModuleType:
    """The UI's own ``materials_api`` package (``MaterialsService``, ``CacheRepository``, keys).

    Read from ``CRYSTALMATH_CLIENT_DIR`` (default ``<repo>/../shared/crystalmath-client/tui``);
    the test skips, saying why, when that folder or the UI's ``aiosqlite`` is missing.
    """
    try:
        ui_client_dir()
    except UIClientMissing as exc:
        pytest.skip(str(exc))
    pytest.importorskip("aiosqlite", reason="the UI's CacheRepository needs aiosqlite (dev extra)")
    return ui_module("src.core.materials_api")
