"""Fixtures of the mp tests: no real network, and the UI's own Materials Project code.

Every test here starts pointed at a closed local port (``no_real_materials_project``), so a test that
forgets the local server fails to connect instead of reaching api.materialsproject.org. The servers
and ``db_file`` are in tests/conftest.py, shared with the CLI and high-throughput tests.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture(autouse=True)
def _no_real_materials_project(no_real_materials_project: None) -> None:
    """Every test starts pointed at a closed local port, with the valid test key."""


@pytest.fixture(scope="session")
def ui_materials() -> ModuleType:
    """The UI's own ``materials_api`` package (``MaterialsService``, ``CacheRepository``, keys).

    Read from ``CRYSTALMATH_CLIENT_DIR`` (default ``<repo>/../shared/crystalmath-client/tui``);
    the test skips, saying why, when that folder or the UI's ``aiosqlite`` is missing.
    """
    default = Path(__file__).resolve().parents[2].parent / "shared" / "crystalmath-client" / "tui"
    client_dir = Path(os.environ.get("CRYSTALMATH_CLIENT_DIR", default))
    if not (client_dir / "src" / "core" / "materials_api").is_dir():
        pytest.skip(f"the CrystalMath UI's code is not at {client_dir} (set CRYSTALMATH_CLIENT_DIR)")
    pytest.importorskip("aiosqlite", reason="the UI's CacheRepository needs aiosqlite (dev extra)")
    sys.path.insert(0, str(client_dir))
    return importlib.import_module("src.core.materials_api")
