"""Read-only queries of the shared database: ``crystal-atomate jobs``/``show``, the job browser.

Both look at the same rows the terminal UI lists, so the SQL lives here once. Everything works on
a file the original UI created and crystal_atomate never opened: our tables (``jobflow_*``) may be
missing, and so may columns of later UI versions (``workflow_id`` came with v9). Nothing here
writes: :func:`open_readonly` opens the file read-only, which in WAL mode never blocks an engine
writing to it, and never upgrades the schema of a file that only the UI should upgrade.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crystal_atomate.stores.query import decode_document, path_literal, split_field

__all__ = [
    "SORT_COLUMNS",
    "JobDetail",
    "JobRow",
    "age",
    "change_token",
    "has_document",
    "job_detail",
    "list_jobs",
    "open_readonly",
    "resolve_job_uuid",
    "task_documents",
]

#: Sort keys of :func:`list_jobs` and the SQL each orders by.
SORT_COLUMNS = {
    "id": "j.id",
    "name": "j.name",
    "status": "j.status",
    "energy": "j.final_energy",
    "workflow": "j.workflow_id",
    "created": "j.created_at",
}
_LINKS = "jobflow_job_links"
#: The collection table of jobflow's ``outputs`` (``sqlite_store.docs_table("outputs")``, which
#: imports maggma to name it).
_DOCS = "jobflow_docs_outputs"


@dataclass(frozen=True)
class JobRow:
    """A row of the UI's ``jobs`` table and its jobflow uuid if linked (a line of the job list)."""

    id: int
    name: str
    status: str
    final_energy: float | None
    workflow_id: str | None
    created_at: str | None
    job_uuid: str | None


@dataclass(frozen=True)
class JobDetail:
    """Everything the database knows about one job.

    Its UI row, ``job_results``, and every run's jobflow task document (several when an error
    handler restarted the job).
    """

    row: JobRow
    work_dir: str | None
    input_file: str | None
    started_at: str | None
    completed_at: str | None
    key_results: dict[str, Any]
    convergence_status: str | None = None
    scf_cycles: int | None = None
    cpu_time_seconds: float | None = None
    wall_time_seconds: float | None = None
    documents: list[dict[str, Any]] = field(default_factory=list)


def open_readonly(db_file: str | Path, timeout: float = 2.0) -> sqlite3.Connection:
    """Open a read-only connection; ``sqlite3.OperationalError`` if the file does not exist.

    Read-only, so looking at the database can neither block an engine's write nor create a file
    at a mistyped path; autocommit, so no read transaction stays open between queries.
    """
    uri = f"{Path(db_file).expanduser().absolute().as_uri()}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    return conn


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _column(conn: sqlite3.Connection, table: str, column: str, alias: str) -> str:
    """``alias.column``, or NULL when an older UI schema lacks the column."""
    present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
    return f"{alias}.{column}" if column in present else "NULL"


def _uuid_join(tables: set[str]) -> tuple[str, str]:
    """Return the uuid column and the join to our link table, which a UI-only file does not have."""
    if _LINKS in tables:
        return "l.job_uuid", f"LEFT JOIN {_LINKS} l ON l.tui_job_id = j.id"
    return "NULL", ""


def list_jobs(
    conn: sqlite3.Connection,
    *,
    statuses: Sequence[str] = (),
    name: str | None = None,
    uuids: Sequence[str] | None = None,
    sort: str = "created",
    descending: bool = True,
    limit: int | None = None,
) -> list[JobRow]:
    """List rows of the UI's ``jobs`` table, filtered by status and name text, sorted by a column.

    Jobs without a value for the column come last; newest first by default, as the UI lists them.

    The rows with a value and those without are two queries rather than one ``ORDER BY column
    IS NULL, ...``: that expression matches no index, so SQLite sorted every row of the table to
    return the first 50, where each query alone walks the column's index (``idx_jobs_created``
    for the default sort) and stops after ``limit`` rows.
    """
    tables = _tables(conn)
    if "jobs" not in tables:
        return []
    if sort not in SORT_COLUMNS:
        raise ValueError(f"sort must be one of {sorted(SORT_COLUMNS)}, got {sort!r}")
    uuid_column, join = _uuid_join(tables)
    clauses: list[str] = []
    params: list[Any] = []
    if uuids is not None:
        if not join:
            return []
        clauses.append(f"l.job_uuid IN ({', '.join('?' for _ in uuids)})")
        params.extend(uuids)
    if statuses:
        clauses.append(f"j.status IN ({', '.join('?' for _ in statuses)})")
        params.extend(status.upper() for status in statuses)
    if name:
        clauses.append("j.name LIKE ?")
        params.append(f"%{name}%")
    order = "DESC" if descending else "ASC"
    workflow = _column(conn, "jobs", "workflow_id", "j")
    sort_sql = workflow if sort == "workflow" else SORT_COLUMNS[sort]
    head = (
        f"SELECT j.id, j.name, j.status, j.final_energy, {workflow}, j.created_at, {uuid_column} "
        f"FROM jobs j {join} WHERE "
    )

    def page(present: str, order_by: str, count: int | None) -> list[Any]:
        query = f"{head}{' AND '.join([*clauses, present])} ORDER BY {order_by} LIMIT ?"
        return conn.execute(query, [*params, -1 if count is None else count]).fetchall()

    rows = page(f"{sort_sql} IS NOT NULL", f"{sort_sql} {order}, j.id {order}", limit)
    if limit is None or len(rows) < limit:
        rows += page(
            f"{sort_sql} IS NULL", f"j.id {order}", None if limit is None else limit - len(rows)
        )
    return [JobRow(*row) for row in rows]


def task_documents(conn: sqlite3.Connection, uuid: str) -> list[dict[str, Any]]:
    """Every run (``index``) of a jobflow job's document, first run first."""
    if _DOCS not in _tables(conn):
        return []
    rows = conn.execute(
        f"SELECT doc FROM {_DOCS} WHERE json_extract(doc, '$.\"uuid\"') = ? "
        "ORDER BY json_extract(doc, '$.\"index\"')",
        (uuid,),
    ).fetchall()
    return [decode_document(text) for (text,) in rows]


def has_document(conn: sqlite3.Connection, field: str, value: Any | None = None) -> bool:
    """Whether some task document has the dotted ``field`` (equal to ``value`` when given).

    Read-only, so a command can refuse a name that matches nothing (an unknown batch) without
    opening the store for writing.
    """
    if _DOCS not in _tables(conn):
        return False
    path = path_literal(split_field(field))
    test = "= ?" if value is not None else "IS NOT NULL"
    query = f"SELECT 1 FROM {_DOCS} WHERE json_extract(doc, {path}) {test} LIMIT 1"
    return conn.execute(query, () if value is None else (value,)).fetchone() is not None


def _json_dict(text: str | None) -> dict[str, Any]:
    """Parse ``key_results`` as a dict; the UI writes JSON, but a hand-edited row must not crash."""
    try:
        value = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {"key_results": text}
    return value if isinstance(value, dict) else {"key_results": value}


def _job_results(conn: sqlite3.Connection, tables: set[str], job_id: int) -> tuple[Any, ...]:
    if "job_results" not in tables:
        return (None, None, None, None, None)
    row = conn.execute(
        "SELECT key_results, convergence_status, scf_cycles, cpu_time_seconds, wall_time_seconds "
        "FROM job_results WHERE job_id = ?",
        (job_id,),
    ).fetchone()
    return row or (None, None, None, None, None)


def job_detail(conn: sqlite3.Connection, job_id: int) -> JobDetail | None:
    """Return one job's row, ``job_results`` line and task documents; None if there is none."""
    tables = _tables(conn)
    if "jobs" not in tables:
        return None
    uuid_column, join = _uuid_join(tables)
    row = conn.execute(
        "SELECT j.id, j.name, j.status, j.final_energy, "
        f"{_column(conn, 'jobs', 'workflow_id', 'j')}, "
        f"j.created_at, {uuid_column}, j.work_dir, j.input_file, j.started_at, j.completed_at, "
        f"j.key_results FROM jobs j {join} WHERE j.id = ?",
        (job_id,),
    ).fetchone()
    if row is None:
        return None
    job = JobRow(*row[:7])
    results_json, convergence, cycles, cpu, wall = _job_results(conn, tables, job_id)
    return JobDetail(
        row=job,
        work_dir=row[7],
        input_file=row[8],
        started_at=row[9],
        completed_at=row[10],
        key_results=_json_dict(row[11] or results_json),
        convergence_status=convergence,
        scf_cycles=cycles,
        cpu_time_seconds=cpu,
        wall_time_seconds=wall,
        documents=task_documents(conn, job.job_uuid) if job.job_uuid else [],
    )


def resolve_job_uuid(conn: sqlite3.Connection, job: str) -> str | None:
    """Resolve a job as typed: a UI job number is looked up, anything else is taken as a uuid."""
    if not job.isdigit():
        return job
    if _LINKS not in _tables(conn):
        return None
    row = conn.execute(
        f"SELECT job_uuid FROM {_LINKS} WHERE tui_job_id = ?", (int(job),)
    ).fetchone()
    return row[0] if row else None


def change_token(conn: sqlite3.Connection) -> tuple[Any, ...]:
    """Return a cheap fingerprint of the job list, compared between polls to skip reloads.

    ``PRAGMA data_version`` changes whenever another connection commits; the row count and
    ``MAX(id)`` catch a file replaced under us (a new connection restarts ``data_version``).
    """
    version = conn.execute("PRAGMA data_version").fetchone()[0]
    if "jobs" not in _tables(conn):
        return (version,)
    return (version, *conn.execute("SELECT COUNT(*), MAX(id) FROM jobs").fetchone())


def age(created: str | None, now: datetime | None = None) -> str:
    """Say how long ago a UI timestamp (UTC, SQLite's ``CURRENT_TIMESTAMP``) was: ``3m``, ``2d``."""
    if not created:
        return "-"
    moment = datetime.fromisoformat(created.replace(" ", "T"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = int(((now or datetime.now(UTC)) - moment).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"
