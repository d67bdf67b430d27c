"""The job list's SQL: the newest jobs of a large database come from the index, not a full sort."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from crystal_atomate.stores.ui_queries import list_jobs, open_readonly
from crystal_atomate.testing.ui_database import fill_ui_database


class _Recorder:
    """The SQL :func:`list_jobs` sends, through SQLite's trace callback."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.statements: list[str] = []
        conn.set_trace_callback(self.statements.append)


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    path = fill_ui_database(tmp_path_factory.mktemp("ui") / "ui.db", 3000, documents=0)
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("UPDATE jobs SET created_at = NULL WHERE id IN (7, 8)")
        conn.commit()
    return path


def _plans(conn: sqlite3.Connection, statements: list[str]) -> list[str]:
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT J.ID")]
    return [" | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {s}")) for s in selects]


def test_latest_jobs_walk_the_created_index(db):
    with closing(open_readonly(db)) as conn:
        recorder = _Recorder(conn)
        rows = list_jobs(conn, limit=50)
        conn.set_trace_callback(None)
        plans = _plans(conn, recorder.statements)
    assert [row.id for row in rows] == list(range(3000, 2950, -1))
    assert len(plans) == 1  # 50 rows with a date: the second query (no date) is not needed
    assert (
        "USING COVERING INDEX idx_jobs_created" in plans[0]
        or "USING INDEX idx_jobs_created" in plans[0]
    )
    assert "USE TEMP B-TREE FOR ORDER BY" not in plans[0]


def test_jobs_without_a_date_come_last(db):
    with closing(open_readonly(db)) as conn:
        rows = list_jobs(conn)
        oldest_first = list_jobs(conn, descending=False, limit=3000)
    assert len(rows) == 3000
    assert [row.id for row in rows[-2:]] == [8, 7]
    assert [row.id for row in oldest_first[:2]] == [1, 2]
    assert [row.id for row in oldest_first[-2:]] == [7, 8]


def test_limit_spans_dated_and_undated_rows(db):
    with closing(open_readonly(db)) as conn:
        # "static 8" names jobs 8, 80-89 and 800-899: 110 with a date, then job 8 without one
        dated = list_jobs(conn, name="static 8", limit=110)
        spanning = list_jobs(conn, name="static 8", limit=111)
    assert [row.id for row in dated][:2] == [899, 898] and 8 not in [row.id for row in dated]
    assert [row.id for row in spanning] == [row.id for row in dated] + [8]
