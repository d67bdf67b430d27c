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
import inspect
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import maggma
import pytest
from maggma.stores import MemoryStore

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


#: Store fixtures of test_mongolike.py; a test taking only these runs with either store.
STORE_FIXTURES = {"mongostore", "memorystore", "montystore"}
#: Not run with either store: two million documents to provoke a MongoDB server limit, and a test
#: that builds a real MongoStore (a 20 s server-selection timeout each time without a server).
NOT_RUN = {"test_mongostore_distinct", "test_mongostore_newer_in"}


@pytest.fixture(scope="session")
def maggma_sdist() -> Path:
    """The unpacked source distribution of the installed maggma version (its tests)."""
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
    return cache / f"maggma-{version}"


@pytest.fixture(scope="session")
def maggma_tests(maggma_sdist: Path):
    """``tests/stores/test_mongolike.py`` of the installed maggma version, as a module."""
    source = maggma_sdist / "tests" / "stores" / "test_mongolike.py"
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


def _outcomes(maggma_tests, make_store) -> dict[str, bool]:
    """Every store-only test of test_mongolike.py run with stores from ``make_store``."""
    outcomes = {}
    for name, test in inspect.getmembers(maggma_tests, inspect.isfunction):
        params = list(inspect.signature(test).parameters)
        if not name.startswith("test_") or not params or not set(params) <= STORE_FIXTURES:
            continue
        if name in NOT_RUN:
            continue
        stores = [make_store() for _ in params]
        for store in stores:
            store.connect()
        try:
            test(*stores)
            outcomes[name] = True
        except BaseException as exc:  # pytest.fail raises a BaseException
            if isinstance(exc, KeyboardInterrupt):
                raise
            outcomes[name] = False
    return outcomes


def test_maggma_store_suite_passes_where_memorystore_does(maggma_tests, tmp_path):
    """Pass counts of maggma's store tests, SQLiteStore next to MemoryStore (issue 13)."""
    files = iter(range(10_000))
    memory = _outcomes(maggma_tests, lambda: MemoryStore("test"))
    sqlite = _outcomes(maggma_tests, lambda: SQLiteStore(tmp_path / f"s{next(files)}.db", "test"))
    counts = (
        f"SQLiteStore {sum(sqlite.values())}/{len(sqlite)}, "
        f"MemoryStore {sum(memory.values())}/{len(memory)}"
    )
    print(counts)
    assert sum(sqlite.values()) >= 14, counts
    assert {n for n, ok in sqlite.items() if not ok} <= {n for n, ok in memory.items() if not ok}, (
        counts
    )


def _passed(maggma_sdist: Path, *plugin: str) -> int:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/builders", "-q", "-p", "no:cacheprovider", *plugin],
        cwd=maggma_sdist, capture_output=True, text=True, timeout=300, check=False,
    )
    found = re.search(r"(\d+) passed", result.stdout)
    return int(found.group(1)) if found else 0


def test_maggma_builders_run_on_sqlite_stores(maggma_sdist):
    """maggma's builder tests (``Builder.run()`` closes its stores, then the tests read them)."""
    memory = _passed(maggma_sdist)
    sqlite = _passed(maggma_sdist, "-p", "crystal_atomate.testing.maggma_stores")
    print(f"builders: SQLiteStore {sqlite} passed, MemoryStore {memory} passed")
    assert sqlite == memory >= 13
