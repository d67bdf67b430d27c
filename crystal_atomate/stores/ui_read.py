"""The UI's job rows as plain records, read through a read-only connection.

The one reader of UI rows for every importer (job documents in
:mod:`crystal_atomate.stores.jobstore`, AiiDA nodes in :mod:`crystal_atomate.aiida.query`).

An importer must neither write to the UI's file nor create one at a mistyped path, so this reads
through :func:`~crystal_atomate.stores.ui_queries.open_readonly`; it imports neither maggma nor
jobflow.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass, fields
from pathlib import Path

from crystal_atomate.stores.ui_queries import open_readonly

__all__ = ["UIJob", "read_ui_jobs"]


@dataclass(frozen=True)
class UIJob:
    """One row of the UI's ``jobs`` table and the jobflow job it mirrors (None if not ours).

    Columns that an older UI schema lacks are None.
    """

    id: int
    name: str
    work_dir: str
    status: str
    input_file: str | None
    final_energy: float | None
    key_results: str | None
    workflow_id: str | None
    created_at: str | None
    started_at: str | None
    completed_at: str | None
    jobflow_uuid: str | None


def read_ui_jobs(
    db_file: str | Path, statuses: tuple[str, ...] | None = None, unlinked: bool = False
) -> list[UIJob]:
    """Read the UI's jobs; the file is never written, upgraded or created.

    Parameters
    ----------
    db_file
        The shared database.
    statuses
        Only rows with these statuses; all when None.
    unlinked
        Skip rows linked to a jobflow document (run by us, or imported before).

    Returns
    -------
    list of UIJob
        In ``id`` order.

    Raises
    ------
    sqlite3.OperationalError
        The file does not exist or has no ``jobs`` table.
    """
    with closing(open_readonly(db_file)) as conn:
        conn.row_factory = sqlite3.Row
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        linked = "jobflow_job_links" in tables
        where, params = [], []
        if statuses:
            where.append(f"j.status IN ({', '.join('?' * len(statuses))})")
            params.extend(statuses)
        if unlinked and linked:
            where.append("j.id NOT IN (SELECT tui_job_id FROM jobflow_job_links)")
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        uuid = (
            "(SELECT l.job_uuid FROM jobflow_job_links l WHERE l.tui_job_id = j.id LIMIT 1)"
            if linked else "NULL"
        )
        rows = conn.execute(
            f"SELECT j.*, {uuid} AS jobflow_uuid FROM jobs j {clause} ORDER BY j.id", params
        ).fetchall()
    present = set(rows[0].keys()) if rows else set()
    names = [f.name for f in fields(UIJob)]
    return [UIJob(**{n: row[n] if n in present else None for n in names}) for row in rows]
