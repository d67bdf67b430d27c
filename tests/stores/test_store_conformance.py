"""maggma's own generic Store tests, run against SQLiteStore.

The test functions are imported from maggma's source distribution (``tests/stores/
test_mongolike.py``), which a session fixture fetches with ``pip download --no-binary`` into a
cache directory; nothing is vendored. Their store fixtures (``mongostore``, ``montystore``,
``memorystore``) are replaced by a fresh SQLiteStore.

Not applicable, and why:

* ``test_mongostore_distinct``: inserts two million documents to provoke MongoDB's 16 MB
  ``DocumentTooLarge`` on ``distinct`` (a server limit SQLite does not have); its first half is
  ``test_monty_store_distinct``, which runs.
* ``test_mongostore_update``: its second half asserts ``DocumentTooLarge`` and ``safe_update``,
  MongoDB-only; its first half is ``test_monty_store_update``, which runs.
* ``test_mongostore_newer_in``, ``_name``, ``_from_db_file``, ``_from_launchpad_file``,
  ``_from_collection``, ``_connect_*``, ``test_mongo_uri*``: construct real ``MongoStore``\\ s or
  check Mongo URLs; ``newer_in`` is covered in test_sqlite_store.py between two SQLiteStores.
* the JSONStore/MontyStore file tests: about those stores' own file formats.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tarfile
from pathlib import Path

import maggma
import pytest

from crystal_atomate.stores import SQLiteStore

pytestmark = pytest.mark.network

APPLICABLE = [
    "test_mongostore_query",
    "test_mongostore_count",
    "test_mongostore_groupby",
    "test_mongostore_remove_docs",
    "test_mongostore_last_updated",
    "test_ensure_index",
    "test_groupby",
    "test_monty_store_groupby",
    "test_monty_store_query",
    "test_monty_store_count",
    "test_monty_store_distinct",
    "test_monty_store_update",
    "test_monty_store_remove_docs",
    "test_monty_store_last_updated",
]


@pytest.fixture(scope="session")
def maggma_tests():
    """``tests/stores/test_mongolike.py`` of the installed maggma version, as a module."""
    version = maggma.__version__
    cache = Path.home() / ".cache" / "crystal_atomate" / f"maggma-{version}-sdist"
    source = cache / f"maggma-{version}" / "tests" / "stores" / "test_mongolike.py"
    if not source.exists():
        cache.mkdir(parents=True, exist_ok=True)
        try:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                 f"maggma=={version}", "-d", str(cache)],
                check=True, capture_output=True, text=True, timeout=300,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            said = (exc.stderr or "").strip().splitlines()
            pytest.skip(
                f"offline? pip could not download the maggma {version} sdist (its tests are the "
                f"conformance suite) into {cache}: {said[-1] if said else type(exc).__name__}"
            )
        with tarfile.open(next(cache.glob("maggma-*.tar.gz"))) as tar:
            tar.extractall(cache, filter="data")
    if not source.exists():
        pytest.fail(f"maggma {version} sdist has no tests/stores/test_mongolike.py")
    spec = importlib.util.spec_from_file_location("maggma_sdist_test_mongolike", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", APPLICABLE)
def test_maggma_generic(maggma_tests, name, tmp_path):
    store = SQLiteStore(tmp_path / "maggma.db", "test")
    store.connect()
    getattr(maggma_tests, name)(store)
    store.close()
