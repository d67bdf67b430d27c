"""Fixtures of the store tests: the real CrystalMath UI's data layer, to open what we write."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

CLIENT_ENV = "CRYSTALMATH_CLIENT_DIR"
_DEFAULT_CLIENT = Path(__file__).resolve().parents[2].parent / "shared" / "crystalmath-client" / "tui"


@pytest.fixture(scope="session")
def ui_client_dir() -> Path:
    """The UI's ``tui`` folder (``$CRYSTALMATH_CLIENT_DIR``, default ``<repo>/../shared/...``)."""
    path = Path(os.environ.get(CLIENT_ENV, _DEFAULT_CLIENT))
    if not (path / "src" / "core" / "database.py").is_file():
        pytest.skip(f"the CrystalMath UI client is not at {path}: set {CLIENT_ENV} to its tui folder")
    return path


@pytest.fixture(scope="session")
def ui_database(ui_client_dir: Path) -> type:
    """The UI's own ``Database`` class (``src.core.database``), imported from the client folder."""
    sys.path.insert(0, str(ui_client_dir))
    from src.core.database import Database

    return Database
