"""The UI's job rows as plain records, read through a read-only connection (for imports elsewhere).

An importer must neither write to the UI's file nor create one at a mistyped path, so this reads
through :func:`~crystal_atomate.stores.ui_queries.open_readonly` and returns every field an import
needs, with the jobflow job a row mirrors (``jobflow_job_links``) when there is one.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from crystal_atomate.stores.ui_queries import open_readonly

__all__ = ["UiJobRecord", "read_ui_jobs"]


@dataclass(frozen=True)
class UiJobRecord:
    """One row of the UI's ``jobs`` table and the jobflow job it mirrors (None if not ours)."""

    id: int
    name: str
    work_dir: str
    status: str
    created_at: str | None
    completed_at: str | None
    input_file: str | None
    final_energy: float | None
    key_results: str | None
    jobflow_uuid: str | None


def read_ui_jobs(db_file: str | Path) -> list[UiJobRecord]:
    """Every job of the UI's database ``db_file``, oldest id first, read-only.

    Raises
    ------
    sqlite3.OperationalError
        The file does not exist or has no ``jobs`` table.
    """
    with closing(open_readonly(db_file)) as conn:
        linked = _has_table(conn, "jobflow_job_links")
        uuid = "(SELECT l.job_uuid FROM jobflow_job_links l WHERE l.tui_job_id = j.id LIMIT 1)" if linked else "NULL"
        rows = conn.execute(
            "SELECT j.id, j.name, j.work_dir, j.status, j.created_at, j.completed_at, j.input_file, "
            f"j.final_energy, j.key_results, {uuid} FROM jobs j ORDER BY j.id"
        ).fetchall()
    return [UiJobRecord(*row) for row in rows]


def _has_table(conn: sqlite3.Connection, table: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone() is not None
