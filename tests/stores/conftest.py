"""Fixtures of the store tests: the real CrystalMath UI's data layer, to open what we write."""

from __future__ import annotations

from pathlib import Path

import pytest

from crystal_atomate.testing.ui_client import UIClientMissing, ui_module
from crystal_atomate.testing.ui_client import ui_client_dir as find_ui_client


@pytest.fixture(scope="session")
def ui_client_dir() -> Path:
    """The UI's ``tui`` folder (``$CRYSTALMATH_CLIENT_DIR``, default beside the checkout)."""
    try:
        return find_ui_client()
    except UIClientMissing as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def ui_database(ui_client_dir: Path) -> type:
    """The UI's own ``Database`` class (``src.core.database``), imported from the client folder."""
    return ui_module("src.core.database").Database
