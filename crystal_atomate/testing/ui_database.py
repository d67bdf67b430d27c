"""A large shared database in seconds, for the start-up benchmark and the query-plan tests.

Filling 100,000 jobs through the store takes minutes; these rows go in with plain SQL in one
transaction, shaped as the store writes them: a UI ``jobs`` row, its link to a jobflow uuid and,
for the first jobs, a task document in ``jobflow_docs_outputs``.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

from crystal_atomate.stores.tui_schema import render_schema_sql

__all__ = ["fill_ui_database", "job_uuid"]

_STATUSES = ("COMPLETED", "COMPLETED", "COMPLETED", "FAILED", "RUNNING")


def job_uuid(number: int) -> str:
    """Return the jobflow uuid of job ``number`` (1-based) of :func:`fill_ui_database`."""
    return f"00000000-0000-4000-8000-{number:012d}"


def _document(number: int) -> str:
    return json.dumps({
        "uuid": job_uuid(number),
        "index": 1,
        "name": f"static {number}",
        "output": {
            "state": "successful",
            "task_type": "static",
            "formula_pretty": "MgO",
            "output": {"energy_hartree": -275.0 - number * 1e-6, "scf_cycles": 9},
            "errors": [],
        },
    })


def fill_ui_database(path: Path, jobs: int, documents: int = 100) -> Path:
    """Create a shared database at ``path`` holding ``jobs`` jobs, one a minute, newest last.

    Parameters
    ----------
    path
        The file to create; it must not exist.
    jobs
        How many UI jobs (each linked to a jobflow uuid, :func:`job_uuid`).
    documents
        How many of the first jobs also get a task document.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    FileExistsError
        If ``path`` exists: a benchmark must not add to a database it did not create.
    """
    if path.exists():
        raise FileExistsError(f"{path} exists")
    start = datetime(2025, 1, 1)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.executescript(render_schema_sql())
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO jobs (id, name, work_dir, status, created_at, final_energy) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                (n, f"static {n}", f"/runs/job_{n}", _STATUSES[n % len(_STATUSES)],
                 (start + timedelta(minutes=n)).strftime("%Y-%m-%d %H:%M:%S"), -275.0 - n * 1e-6)
                for n in range(1, jobs + 1)
            ),
        )
        conn.executemany(
            "INSERT INTO jobflow_job_links (job_uuid, tui_job_id) VALUES (?, ?)",
            ((job_uuid(n), n) for n in range(1, jobs + 1)),
        )
        conn.executemany(
            "INSERT INTO jobflow_docs_outputs (doc) VALUES (?)",
            ((_document(n),) for n in range(1, min(documents, jobs) + 1)),
        )
        conn.execute("COMMIT")
    finally:
        conn.close()
    return path
