"""Several writer processes and a reader on one file; a writer killed mid-write."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sqlite3
import time
from pathlib import Path

from crystal_atomate.stores import CrystalMathJobStore

WRITERS = 4
WRITES_PER_WRITER = 750  # 3000 job documents, each mirrored into the UI tables


def _writer(db: str, wid: int, errors) -> None:
    try:
        store = CrystalMathJobStore(db)
        store.connect()
        for i in range(WRITES_PER_WRITER):
            store.update({"uuid": f"w{wid}-{i}", "index": 1, "name": f"job{i}",
                          "output": {"state": "successful", "energy": -float(i)}})
            # the same document rewritten by its writer: the last value must win
            store.docs_store.update({"uuid": f"counter-{wid}", "index": 1, "n": i},
                                    key=["uuid", "index"])
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the test
        errors.put(f"writer {wid}: {exc!r}")


def _reader(db: str, stop, errors, seen) -> None:
    try:
        store = CrystalMathJobStore(db)
        store.connect()
        conn = sqlite3.connect(db, timeout=10)
        conn.execute("PRAGMA busy_timeout=10000")
        last = 0
        while not stop.is_set():
            n = store.docs_store.count({"name": {"$regex": "^job"}})
            ui = conn.execute(
                "SELECT id, status FROM jobs ORDER BY created_at DESC LIMIT 50"
            ).fetchall()
            assert n >= last, "a committed document disappeared"
            assert all(status == "COMPLETED" for _, status in ui)
            last = n
        seen.value = last
    except Exception as exc:  # noqa: BLE001
        errors.put(f"reader: {exc!r}")


def test_writers_and_reader(tmp_path):
    db = str(tmp_path / ".crystal_tui.db")
    CrystalMathJobStore(db).connect()
    ctx = mp.get_context("fork")
    errors, stop, seen = ctx.Queue(), ctx.Event(), ctx.Value("i", 0)
    reader = ctx.Process(target=_reader, args=(db, stop, errors, seen))
    writers = [ctx.Process(target=_writer, args=(db, w, errors)) for w in range(WRITERS)]
    reader.start()
    for p in writers:
        p.start()
    for p in writers:
        p.join(120)
    stop.set()
    reader.join(30)
    messages = []
    while not errors.empty():
        messages.append(errors.get())
    assert messages == []
    assert all(p.exitcode == 0 for p in [*writers, reader])
    store = CrystalMathJobStore(db)
    store.connect()
    assert store.count({"name": {"$regex": "^job"}}) == WRITERS * WRITES_PER_WRITER
    for w in range(WRITERS):
        assert store.query_one({"uuid": f"counter-{w}"})["n"] == WRITES_PER_WRITER - 1
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == WRITERS * (
        WRITES_PER_WRITER + 1
    )
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def _crashing_writer(db: str, log: str) -> None:
    store = CrystalMathJobStore(db)
    store.connect()
    payload = "x" * 20000
    with open(log, "a", buffering=1) as out:
        for i in range(100000):
            uuid = f"c-{i}"
            store.update(
                [
                    {"uuid": uuid, "index": 1, "name": "crash", "output": {"blob": payload}},
                    {"uuid": f"{uuid}-b", "index": 1, "name": "crash", "output": {"blob": payload}},
                ]
            )
            out.write(uuid + "\n")  # written only after COMMIT returned


def test_sigkill_mid_write_leaves_consistent_db(tmp_path):
    db, log = str(tmp_path / "crash.db"), str(tmp_path / "committed.txt")
    Path(log).touch()
    ctx = mp.get_context("fork")
    proc = ctx.Process(target=_crashing_writer, args=(db, log))
    proc.start()
    deadline = time.time() + 30
    while len(Path(log).read_text().split()) < 200 and time.time() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    committed = Path(log).read_text().split()
    assert len(committed) >= 200
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    store = CrystalMathJobStore(db)
    store.connect()
    present = set(store.docs_store.distinct("uuid"))
    assert all(u in present and f"{u}-b" in present for u in committed)
    # each transaction wrote both documents and their UI rows, or nothing
    assert all(u.endswith("-b") or f"{u}-b" in present for u in present)
    assert conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == len(present)


def _blob_writer(db: str, round_: int) -> None:
    """Job documents with a ``data`` blob, as jobflow stores a DOS, until killed."""
    store = CrystalMathJobStore(db, save={"data": ["dos"]})
    store.connect()
    for i in range(100000):
        store.update({"uuid": f"r{round_}-{i}", "index": 1, "name": "dos",
                      "output": {"state": "successful", "energy": -1.0, "dos": list(range(2000))}})


def test_sigkill_never_leaves_a_completed_row_without_its_blob(tmp_path):
    """Kills at random points of a writer storing documents with blobs: every COMPLETED UI row's
    output loads whole (documents, blobs and UI rows commit in one transaction)."""
    db = str(tmp_path / "blobs.db")
    ctx = mp.get_context("fork")
    rng = __import__("random").Random(18)
    for round_ in range(6):
        proc = ctx.Process(target=_blob_writer, args=(db, round_))
        proc.start()
        time.sleep(rng.uniform(0.15, 0.5))
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
    store = CrystalMathJobStore(db)
    store.connect()
    conn = sqlite3.connect(db)
    completed = conn.execute(
        "SELECT l.job_uuid FROM jobs j JOIN jobflow_job_links l ON l.tui_job_id = j.id "
        "WHERE j.status = 'COMPLETED'"
    ).fetchall()
    assert len(completed) >= 6
    for (uuid,) in completed:
        assert store.get_output(uuid, load=True)["dos"][-1] == 1999
    assert store.additional_stores["data"].count() == len(completed)
