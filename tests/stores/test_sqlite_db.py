"""Connections and write transactions: waiting for another program's lock, then a clear error."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from crystal_atomate.stores import CrystalMathJobStore
from crystal_atomate.stores.sqlite_db import DatabaseLockedError, SQLiteDatabase

HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


def _hold_lock(db: str, seconds: float) -> subprocess.Popen:
    """Another program (the ``sqlite3`` module in its own process) holding the write lock."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, db, str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def _doc(uuid: str) -> dict:
    return {
        "uuid": uuid,
        "index": 1,
        "name": "scf",
        "output": {"state": "successful", "energy": -2.0},
    }


def test_a_short_lock_is_waited_for(tmp_path):
    db = str(tmp_path / ".crystal_tui.db")
    store = CrystalMathJobStore(db, timeout=3.0)
    store.connect()
    holder = _hold_lock(db, 0.5)
    start = time.monotonic()
    store.update(_doc("u-short"))
    assert time.monotonic() - start >= 0.3
    holder.wait(10)
    assert store.query_one({"uuid": "u-short"})["output"]["energy"] == -2.0


def test_a_lock_past_the_deadline_is_a_typed_error_saying_what_was_lost(tmp_path):
    db = str(tmp_path / ".crystal_tui.db")
    store = CrystalMathJobStore(db, timeout=0.8)
    store.connect()
    holder = _hold_lock(db, 4.0)
    start = time.monotonic()
    with pytest.raises(DatabaseLockedError) as caught:
        store.update(_doc("u-lost"))
    waited = time.monotonic() - start
    message = str(caught.value)
    holder.wait(10)
    assert 0.8 <= waited < 3.0
    assert message.startswith(f"database is locked: {db}")
    assert "u-lost" in message and "python" in message  # what was not written, and who has it open
    assert caught.value.what.startswith("job document(s) u-lost")
    assert "CRYSTAL_ATOMATE_DB_LOCK_DEADLINE" in caught.value.hint
    assert store.query_one({"uuid": "u-lost"}) is None
    store.update(_doc("u-lost"))  # the lock is gone: the same write now succeeds
    assert store.tui_job_id("u-lost") is not None


def test_the_deadline_follows_the_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("CRYSTAL_ATOMATE_DB_LOCK_DEADLINE", "0.4")
    store = CrystalMathJobStore(tmp_path / "x.db")
    assert store.docs_store.timeout == store.additional_stores["data"].timeout == 0.4


def test_one_connection_per_file_and_process(tmp_path):
    first = SQLiteDatabase.shared(tmp_path / "a.db")
    assert SQLiteDatabase.shared(str(tmp_path / "a.db")) is first
    assert SQLiteDatabase.shared(tmp_path / "b.db") is not first
    with first.transaction(what="outer") as outer, first.transaction(what="inner") as inner:
        assert inner is outer and outer.in_transaction
        outer.execute("CREATE TABLE t (x)")
    assert not first.connection().in_transaction
