"""Mirror jobflow job documents into the terminal UI's ``jobs`` and ``job_results`` tables.

The ``on_update`` hook of :class:`~crystal_atomate.stores.jobstore.UIDocsStore`: it runs inside the
transaction that writes the documents, so the UI never sees a job document without its row or the
reverse. A job document is linked to its UI row through ``jobflow_job_links(job_uuid, tui_job_id)``;
engines report intermediate states (QUEUED, RUNNING) through :func:`mark_job_state`.

Every field of a task document the mirror reads is named in :data:`MIRROR_FIELDS`, the one place
the Makers' task documents have to agree with.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from crystal_atomate.io.units import HARTREE_TO_EV

__all__ = [
    "IMPORTED_FROM_UI",
    "MIRROR_FIELDS",
    "UI_STATUSES",
    "MirrorFields",
    "mark_job_state",
    "ui_time",
]

UI_STATUSES = ("PENDING", "QUEUED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED")
_HOST_PREFIX = re.compile(r"^[^/:\\]+:(/.*)$")


@dataclass(frozen=True)
class MirrorFields:
    """Dotted paths, in a jobflow job document, that fill the UI row; the first present wins."""

    state: tuple[str, ...] = ("output.state",)
    energy_hartree: tuple[str, ...] = (
        "output.output.energy_hartree",
        "output.final_energy_hartree",
    )
    energy_ev: tuple[str, ...] = ("output.output.energy", "output.energy")
    dir_name: tuple[str, ...] = ("output.dir_name",)
    input_deck: tuple[str, ...] = ("output.input.d12", "output.input.d3")
    formula: tuple[str, ...] = ("output.formula_pretty",)
    task_label: tuple[str, ...] = ("output.task_label",)
    converged: tuple[str, ...] = (
        "output.calcs_reversed.0.has_crystal_completed",
        "output.output.converged",
        "output.converged",
    )
    scf_cycles: tuple[str, ...] = ("output.output.scf_cycles", "output.scf_cycles")
    cpu_time: tuple[str, ...] = ("output.run_stats.cpu_time_seconds", "output.run_stats.cpu_time")
    wall_time: tuple[str, ...] = (
        "output.run_stats.wall_time_seconds",
        "output.run_stats.wall_time",
    )
    errors: tuple[str, ...] = ("output.error_messages", "output.errors")
    warnings: tuple[str, ...] = ("output.warnings",)
    started_at: tuple[str, ...] = ("output.calcs_reversed.0.run.started_at",)
    scheduler: tuple[str, ...] = ("output.calcs_reversed.0.run.scheduler",)
    workflow_id: tuple[str, ...] = ("metadata.flow_uuid",)
    tui_job_id: tuple[str, ...] = ("metadata.tui_job_id",)


MIRROR_FIELDS = MirrorFields()
#: ``output.state`` values of our task documents, and the UI status each maps to.
STATE_TO_STATUS = {"successful": "COMPLETED", "failed": "FAILED", "error": "FAILED"}
#: ``metadata.imported_from`` of documents made from rows the UI ran itself (never mirrored back).
IMPORTED_FROM_UI = "crystal_tui"


def _at(doc: Any, path: str) -> Any:
    """Look up a dotted path of a job document (a list item by its index); None if absent.

    Job documents reach the mirror as plain dicts and lists (the store sanitised anything
    else), so plain look-ups do what ``pydash.get`` did, several times faster.
    """
    value = doc
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, (list, tuple)) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _first(doc: Mapping[str, Any], paths: tuple[str, ...]) -> Any:
    for path in paths:
        value = _at(doc, path)
        if value is not None:
            return value
    return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def ui_time(value: Any) -> str | None:
    """Format a time as the UI does: UTC ``YYYY-MM-DD HH:MM:SS``, as SQLite's ``CURRENT_TIMESTAMP``.

    jobflow writes ``completed_at`` as local time without a zone (``datetime.now()``), our task
    documents as UTC with one; a time without a zone is read as this machine's local time, so
    under any ``TZ`` a job never completes before it was created.

    Parameters
    ----------
    value
        A ``datetime`` or ISO text.

    Returns
    -------
    str or None
        The UTC text; None when ``value`` is not a time.
    """
    if isinstance(value, datetime):
        stamp = value
    else:
        try:
            stamp = datetime.fromisoformat(str(value))
        except ValueError:
            return None
    return stamp.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _local_dir(dir_name: Any) -> str | None:
    """atomate2 writes ``host:/path``; the UI wants the path."""
    if not isinstance(dir_name, str) or not dir_name:
        return None
    match = _HOST_PREFIX.match(dir_name)
    return match.group(1) if match else dir_name


def _workflow_id(doc: Mapping[str, Any]) -> str | None:
    """``metadata.flow_uuid``, else the outermost flow in jobflow's ``hosts`` list."""
    explicit = _first(doc, MIRROR_FIELDS.workflow_id)
    if explicit:
        return str(explicit)
    hosts = doc.get("hosts") or []
    return str(hosts[-1]) if hosts else None


def _energy_hartree(doc: Mapping[str, Any]) -> float | None:
    hartree = _number(_first(doc, MIRROR_FIELDS.energy_hartree))
    if hartree is not None:
        return hartree
    ev = _number(_first(doc, MIRROR_FIELDS.energy_ev))
    return None if ev is None else ev / HARTREE_TO_EV


def _convergence(doc: Mapping[str, Any]) -> str | None:
    """Return the UI runner's convergence words: CONVERGED or NOT_CONVERGED (None when unknown)."""
    converged = _first(doc, MIRROR_FIELDS.converged)
    if converged is None:
        return None
    return "CONVERGED" if converged is True or converged == "converged" else "NOT_CONVERGED"


def _texts(doc: Mapping[str, Any], paths: tuple[str, ...]) -> list[str]:
    value = _first(doc, paths)
    return [str(v) for v in value] if isinstance(value, list) else []


def _linked_row(conn: sqlite3.Connection, uuid: str) -> int | None:
    row = conn.execute(
        "SELECT l.tui_job_id FROM jobflow_job_links l JOIN jobs j ON j.id = l.tui_job_id "
        "WHERE l.job_uuid = ?",
        (uuid,),
    ).fetchone()
    return row[0] if row else None


def _row_for(
    conn: sqlite3.Connection, uuid: str, doc: Mapping[str, Any] | None = None
) -> int | None:
    """Find the UI row of a job: its link, else the row an imported document names, else none."""
    linked = _linked_row(conn, uuid)
    if linked is not None or doc is None:
        return linked
    tui_id = _first(doc, MIRROR_FIELDS.tui_job_id)
    if (
        isinstance(tui_id, int)
        and conn.execute("SELECT 1 FROM jobs WHERE id = ?", (tui_id,)).fetchone()
    ):
        _link(conn, uuid, tui_id)
        return tui_id
    return None


def _link(conn: sqlite3.Connection, uuid: str, job_id: int) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO jobflow_job_links(job_uuid, tui_job_id) VALUES (?, ?)",
        (uuid, job_id),
    )


def _free_work_dir(
    conn: sqlite3.Connection, wanted: str | None, row_id: int | None, uuid: str
) -> str:
    """Choose the ``work_dir`` of a row, which is UNIQUE NOT NULL in the UI.

    Use the run directory unless another row owns it (two jobs run in one directory), else keep the
    row's own, else a ``jobflow://`` name.
    """
    if wanted:
        owner = conn.execute("SELECT id FROM jobs WHERE work_dir = ?", (wanted,)).fetchone()
        if owner is None or owner[0] == row_id:
            return wanted
    if row_id is not None:
        return conn.execute("SELECT work_dir FROM jobs WHERE id = ?", (row_id,)).fetchone()[0]
    return f"jobflow://{uuid}"


def _upsert_row(
    conn: sqlite3.Connection, uuid: str, row_id: int | None, values: dict[str, Any]
) -> int:
    """Update the linked row or insert and link a new one; column names are ours, not input."""
    values = {k: v for k, v in values.items() if v is not None}
    if row_id is not None:
        assignments = ", ".join(f"{col} = ?" for col in values)
        conn.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*values.values(), row_id))
        return row_id
    values.setdefault("name", f"jobflow-{uuid[:8]}")
    values.setdefault("status", "PENDING")
    columns = ", ".join(values)
    cursor = conn.execute(
        f"INSERT INTO jobs ({columns}, dft_code) VALUES ({', '.join('?' * len(values))}, "
        "'crystal')",
        tuple(values.values()),
    )
    _link(conn, uuid, cursor.lastrowid)
    return cursor.lastrowid


def _key_results(doc: Mapping[str, Any], energy_ha: float | None, dir_name: str | None) -> dict:
    """``key_results`` in the UI's shape; our own keys live under ``metadata``."""
    metadata = {
        "jobflow_uuid": doc.get("uuid"),
        "jobflow_index": doc.get("index"),
        "energy_hartree": energy_ha,
        "energy_ev": _number(_first(doc, MIRROR_FIELDS.energy_ev)),
        "formula_pretty": _first(doc, MIRROR_FIELDS.formula),
        "task_label": _first(doc, MIRROR_FIELDS.task_label),
        "dir_name": dir_name,
    }
    return {
        "convergence": _convergence(doc) or "UNKNOWN",
        "errors": _texts(doc, MIRROR_FIELDS.errors),
        "warnings": _texts(doc, MIRROR_FIELDS.warnings),
        "metadata": {k: v for k, v in metadata.items() if v is not None},
    }


def _is_imported(doc: Mapping[str, Any]) -> bool:
    return _at(doc, "metadata.imported_from") == IMPORTED_FROM_UI


def mirror_document(conn: sqlite3.Connection, doc: Mapping[str, Any]) -> int | None:
    """Write one finished job's row and ``job_results``; documents without a uuid are skipped.

    A document imported from a row the UI ran itself is only linked to that row: the UI's row
    is never rewritten.

    Parameters
    ----------
    conn
        A connection inside the write transaction of the document.
    doc
        A jobflow job document.

    Returns
    -------
    int or None
        The UI job id.
    """
    uuid = doc.get("uuid")
    if not isinstance(uuid, str):
        return None
    if _is_imported(doc):
        return _row_for(conn, uuid, doc)
    state = _first(doc, MIRROR_FIELDS.state)
    status = STATE_TO_STATUS.get(str(state).lower(), "FAILED") if state is not None else "COMPLETED"
    energy = _energy_hartree(doc)
    dir_name = _local_dir(_first(doc, MIRROR_FIELDS.dir_name))
    row_id = _row_for(conn, uuid, doc)
    key_results = json.dumps(_key_results(doc, energy, dir_name))
    deck = _first(doc, MIRROR_FIELDS.input_deck)
    finished = ui_time(doc.get("completed_at")) or _now(conn)
    started = ui_time(_first(doc, MIRROR_FIELDS.started_at))
    values = {
        "name": doc.get("name") or None,
        "work_dir": _free_work_dir(conn, dir_name, row_id, uuid),
        "status": status,
        "input_file": deck if isinstance(deck, str) else None,
        "final_energy": energy,
        "key_results": key_results,
        "workflow_id": _workflow_id(doc),
        "started_at": started,
        "start_time": started,
        "completed_at": finished,
        "end_time": finished,
    }
    if row_id is None:
        values["created_at"] = started or finished
    row_id = _upsert_row(conn, uuid, row_id, values)
    conn.execute(
        "INSERT INTO job_results(job_id, key_results, convergence_status, scf_cycles, "
        "cpu_time_seconds, wall_time_seconds) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(job_id) DO UPDATE SET key_results = excluded.key_results, "
        "convergence_status = excluded.convergence_status, scf_cycles = excluded.scf_cycles, "
        "cpu_time_seconds = excluded.cpu_time_seconds, wall_time_seconds = "
        "excluded.wall_time_seconds",
        (
            row_id,
            key_results,
            _convergence(doc),
            _first(doc, MIRROR_FIELDS.scf_cycles),
            _number(_first(doc, MIRROR_FIELDS.cpu_time)),
            _number(_first(doc, MIRROR_FIELDS.wall_time)),
        ),
    )
    _record_remote_job(conn, row_id, _first(doc, MIRROR_FIELDS.scheduler), status)
    return row_id


def _record_remote_job(
    conn: sqlite3.Connection, job_id: int, scheduler: Mapping[str, Any] | None, status: str
) -> None:
    """Record the ``remote_jobs`` row of a job that ran in a batch job on a cluster the UI knows.

    Only a cluster the UI defined (its ``clusters`` row, looked up by name) gets a row, as the
    UI's own runners write them: the job row points at the cluster and says it ran under SLURM,
    and the scheduler's job id becomes the row's handle. One row per (job, scheduler job); the
    UI's clusters rows are only read.
    """
    if (
        not isinstance(scheduler, Mapping)
        or not scheduler.get("cluster")
        or not scheduler.get("job_id")
    ):
        return
    found = conn.execute(
        "SELECT id FROM clusters WHERE name = ?", (scheduler["cluster"],)
    ).fetchone()
    if found is None:
        return
    cluster_id, handle = found[0], str(scheduler["job_id"])
    conn.execute(
        "UPDATE jobs SET cluster_id = ?, runner_type = 'slurm' WHERE id = ?", (cluster_id, job_id)
    )
    exists = conn.execute(
        "SELECT 1 FROM remote_jobs WHERE job_id = ? AND remote_handle = ?", (job_id, handle)
    ).fetchone()
    if exists is None:
        conn.execute(
            "INSERT INTO remote_jobs (job_id, cluster_id, remote_handle, working_directory, "
            "queue_name, node_list, metadata, submission_time) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, CURRENT_TIMESTAMP)",
            (
                job_id, cluster_id, handle, scheduler.get("work_dir") or "", scheduler.get("queue"),
                scheduler.get("nodes"), json.dumps({"scheduler": "slurm", "state": status}),
            ),
        )


def _now(conn: sqlite3.Connection) -> str:
    """SQLite's ``CURRENT_TIMESTAMP`` (UTC), the UI's own clock format."""
    return conn.execute("SELECT CURRENT_TIMESTAMP").fetchone()[0]


_STATE_TIMES = {
    "QUEUED": ("queue_time",),
    "RUNNING": ("started_at", "start_time"),
    "COMPLETED": ("completed_at", "end_time"),
    "FAILED": ("completed_at", "end_time"),
    "CANCELLED": ("completed_at", "end_time"),
}


def mark_job_state(
    conn: sqlite3.Connection,
    uuid: str,
    state: str,
    work_dir: str | None = None,
    name: str | None = None,
    workflow_id: str | None = None,
) -> int:
    """Upsert the UI row of job ``uuid`` with a new status and its timestamp; returns its id."""
    status = str(state).upper()
    if status not in UI_STATUSES:
        raise ValueError(f"state must be one of {UI_STATUSES}, got {state!r}")
    row_id = _row_for(conn, uuid)
    now = _now(conn)
    values: dict[str, Any] = {
        "status": status,
        "name": name,
        "workflow_id": workflow_id,
        "work_dir": _free_work_dir(conn, _local_dir(work_dir), row_id, uuid),
    }
    values.update({col: now for col in _STATE_TIMES.get(status, ())})
    return _upsert_row(conn, uuid, row_id, values)
