r"""A pytest plugin running maggma's tests with ``SQLiteStore`` where they build a ``MemoryStore``.

``pytest -p crystal_atomate.testing.maggma_stores <maggma's tests>`` swaps the ``MemoryStore`` name
of every test module for a factory of ``SQLiteStore``\ s (each in a file of its own, as each
``MemoryStore`` is a database of its own), so the same tests measure both stores.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest

from crystal_atomate.stores.sqlite_store import SQLiteStore


def sqlite_memory_store(collection_name: str = "memory_db", **kwargs: Any) -> SQLiteStore:
    """Make a ``SQLiteStore`` in a new temporary file, called as maggma's ``MemoryStore`` is.

    Parameters
    ----------
    collection_name
        The collection.
    **kwargs
        ``key``, ``last_updated_field``... as for any maggma Store.

    Returns
    -------
    SQLiteStore
        Not yet connected.
    """
    folder = Path(tempfile.mkdtemp(prefix="maggma-sqlite-"))
    return SQLiteStore(folder / "store.db", collection_name, **kwargs)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Point the test module's ``MemoryStore`` at :func:`sqlite_memory_store`."""
    module = getattr(item, "module", None)
    if module is not None and hasattr(module, "MemoryStore"):
        module.MemoryStore = sqlite_memory_store
