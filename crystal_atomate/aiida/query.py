"""The query side: CRYSTAL calculations in AiiDA seen as the terminal UI's job list, and the import
of the UI's SQLite jobs into AiiDA nodes.

Listing is two QueryBuilder projections (the calculations, then the energies of those listed), never
node loads, so a thousand calculations list in tens of milliseconds.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from aiida import orm
from aiida.common.links import LinkType
from aiida.manage import get_manager

from crystal_atomate.aiida.errors import AiidaUserError

__all__ = [
    "CRYSTAL_PROCESS_TYPES",
    "JOB_STATUSES",
    "AiidaJobRow",
    "UnknownStatus",
    "check_status",
    "import_tui_jobs",
    "list_crystal_jobs",
    "tui_status",
]

CRYSTAL_PROCESS_TYPES = (
    "aiida.calculations:crystal_atomate.crystal",
    "aiida.calculations:crystal_atomate.properties",
)
_TUI_EXTRA = "tui_job"
#: The terminal UI's job statuses, as :func:`tui_status` gives them.
JOB_STATUSES = ("PENDING", "QUEUED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED")


class UnknownStatus(AiidaUserError):
    """A job status filter that is none of :data:`JOB_STATUSES`."""

    exit_code = 2


def check_status(status: str | None) -> str | None:
    """``status`` in upper case, or None.

    Raises
    ------
    UnknownStatus
        It is not one of :data:`JOB_STATUSES` (any case); the message lists them.
    """
    if status is None:
        return None
    if status.upper() not in JOB_STATUSES:
        raise UnknownStatus(f"unknown status {status!r}; choose from {', '.join(s.lower() for s in JOB_STATUSES)}")
    return status.upper()


@dataclass(frozen=True)
class AiidaJobRow:
    """One line of ``crystal-atomate aiida jobs``."""

    pk: int
    label: str
    status: str
    energy_hartree: float | None
    ctime: datetime
    exit_status: int | None


def tui_status(process_state: str | None, exit_status: int | None, scheduler_state: str | None) -> str:
    """The terminal UI's status for an AiiDA process state (CalcJobs wait while their job runs)."""
    if process_state == "finished":
        return "COMPLETED" if exit_status == 0 else "FAILED"
    if process_state == "excepted":
        return "FAILED"
    if process_state == "killed":
        return "CANCELLED"
    if process_state == "running" or scheduler_state == "running":
        return "RUNNING"
    if scheduler_state == "queued":
        return "QUEUED"
    return "PENDING"


def list_crystal_jobs(status: str | None = None, limit: int | None = None) -> list[AiidaJobRow]:
    """CRYSTAL calculations, newest first, with the UI's status and the final energy (Ha).

    Without a status filter the limit goes into the SQL; with one, the rows stream until enough
    match. Energies are then fetched for the listed calculations only, so the CLI's 50 rows do not
    pay for the energies of every calculation in the profile."""
    status = check_status(status)
    if limit is not None and limit <= 0:
        return []
    calcs = _calculations()
    if status is None and limit is not None:
        calcs.limit(limit)
    listed: list[tuple[int, str, str, datetime, int | None]] = []
    for pk, label, ctime, state, exit_status, scheduler_state in calcs.iterall():
        row_status = tui_status(state, exit_status, scheduler_state)
        if status is None or row_status == status:
            listed.append((pk, label or "", row_status, ctime, exit_status))
            if limit is not None and len(listed) >= limit:
                break
    energies = _energies([pk for pk, *_ in listed])
    return [
        AiidaJobRow(pk, label, row_status, energies.get(pk), ctime, exit_status)
        for pk, label, row_status, ctime, exit_status in listed
    ]


def _calculations() -> orm.QueryBuilder:
    """The CRYSTAL CalcJobs, newest first, projected onto what a row needs (no node is loaded)."""
    return orm.QueryBuilder().append(
        orm.CalcJobNode,
        filters={"process_type": {"in": list(CRYSTAL_PROCESS_TYPES)}},
        project=[
            "id", "label", "ctime", "attributes.process_state", "attributes.exit_status",
            "attributes.scheduler_state",
        ],
    ).order_by({orm.CalcJobNode: {"ctime": "desc"}})


def _energies(pks: list[int]) -> dict[int, float | None]:
    """``output_parameters.energy_hartree`` of these calculations, in one query (aiida-core passes a
    long ``in`` list as one JSON parameter, so any number of pks is fine)."""
    if not pks:
        return {}
    return dict(
        orm.QueryBuilder()
        .append(orm.CalcJobNode, filters={"id": {"in": pks}}, project="id", tag="calc")
        .append(orm.Dict, with_incoming="calc", edge_filters={"label": "output_parameters"},
                project="attributes.energy_hartree")
        .all()
    )


_PROCESS_STATES = {
    "COMPLETED": ("finished", 0),
    "FAILED": ("finished", 300),
    "CANCELLED": ("killed", None),
    "RUNNING": ("running", None),
}


def import_tui_jobs(db_file: str | Path) -> tuple[int, int]:
    """Import the UI's jobs as CalcJobNodes (``crystal_atomate.crystal``) with their creation time,
    name, directory, status and final energy; jobs imported before are skipped. One transaction:
    all or nothing, and one commit instead of one per node. Returns (imported, skipped)."""
    db_file = Path(db_file).resolve()
    done = {
        extra["id"]
        for (extra,) in orm.QueryBuilder()
        .append(orm.CalcJobNode, filters={f"extras.{_TUI_EXTRA}.db": str(db_file)}, project=f"extras.{_TUI_EXTRA}")
        .all()
    }
    with sqlite3.connect(db_file) as conn:
        conn.row_factory = sqlite3.Row
        jobs = conn.execute(
            "SELECT id, name, work_dir, status, created_at, completed_at, final_energy FROM jobs ORDER BY id"
        ).fetchall()
    todo = [job for job in jobs if job["id"] not in done]
    with get_manager().get_profile_storage().transaction():
        for job in todo:
            _import_job(job, db_file)
    return len(todo), len(jobs) - len(todo)


def _import_job(job: sqlite3.Row, db_file: Path) -> None:
    state, exit_status = _PROCESS_STATES.get(job["status"], ("created", None))
    node = orm.CalcJobNode(process_type=CRYSTAL_PROCESS_TYPES[0])
    node.label = job["name"]
    node.description = f"imported from the CRYSTAL-TOOLS terminal UI: {job['work_dir']}"
    node.set_process_state(state)
    if exit_status is not None:
        node.set_exit_status(exit_status)
    node.backend_entity.model.ctime = _timestamp(job["created_at"])
    if job["final_energy"] is not None:
        energy = orm.Dict({"energy_hartree": job["final_energy"], "state": job["status"].lower()})
        energy.base.links.add_incoming(node, LinkType.CREATE, "output_parameters")
    node.base.extras.set(_TUI_EXTRA, {"db": str(db_file), "id": job["id"], "work_dir": job["work_dir"],
                                      "status": job["status"], "completed_at": job["completed_at"]})
    node.store()
    if job["final_energy"] is not None:
        energy.store()


def _timestamp(value: str | None) -> datetime:
    """SQLite's CURRENT_TIMESTAMP text is UTC without a zone."""
    if not value:
        return datetime.now(timezone.utc)
    stamp = datetime.fromisoformat(value)
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)
