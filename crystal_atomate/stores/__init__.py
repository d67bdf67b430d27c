"""Stores for jobflow results: a maggma Store over SQLite, and the JobStore the UI shares.

The names below load on first use, so the light read-only queries of
:mod:`crystal_atomate.stores.ui_queries` (``crystal-atomate jobs``/``show``) do not import maggma
and jobflow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crystal_atomate.stores.jobstore import CrystalMathJobStore
    from crystal_atomate.stores.sqlite_db import DatabaseLockedError
    from crystal_atomate.stores.sqlite_store import SQLiteStore

__all__ = ["CrystalMathJobStore", "DatabaseLockedError", "SQLiteStore"]

_HOMES = {
    "CrystalMathJobStore": "crystal_atomate.stores.jobstore",
    "DatabaseLockedError": "crystal_atomate.stores.sqlite_db",
    "SQLiteStore": "crystal_atomate.stores.sqlite_store",
}


def __getattr__(name: str) -> Any:
    """Import a store class when it is first asked for (PEP 562)."""
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
