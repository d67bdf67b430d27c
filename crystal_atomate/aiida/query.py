"""The query side.

CRYSTAL calculations in AiiDA seen as the terminal UI's job list, and the import of the UI's SQLite
jobs (read-only) into AiiDA nodes.

Listing is two QueryBuilder projections (the calculations, then the energies of those listed), never
node loads, so a thousand calculations list in tens of milliseconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiida import orm
from aiida.common.links import LinkType
from aiida.manage import get_manager

from crystal_atomate.aiida.errors import AiidaUserError
from crystal_atomate.aiida.lineage import deck_structure
from crystal_atomate.aiida.structures import structure_to_node
from crystal_atomate.io.d12 import CrystalInput
from crystal_atomate.io.fort34 import Fort34
from crystal_atomate.io.geometry import ExternalGeometry

if TYPE_CHECKING:
    from pymatgen.core import Molecule, Structure

    from crystal_atomate.stores.ui_read import UIJob

__all__ = [
    "CRYSTAL_PROCESS_TYPES",
    "JOB_STATUSES",
    "UI_ACTIVE_STATES",
    "UI_FINISHED_STATES",
    "AiidaJobRow",
    "ImportSummary",
    "UnknownStatus",
    "calculation_energies",
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


#: How a node that no AiiDA process owns (a UI job imported, or made through the UI's data layer)
#: records a UI status; :func:`tui_status` reads both back.
#:
#: Finished UI statuses -> (process state, exit status) of the sealed node that records them.
UI_FINISHED_STATES: dict[str, tuple[str, int | None]] = {
    "COMPLETED": ("finished", 0),
    "FAILED": ("finished", 300),
    "CANCELLED": ("killed", None),
}
#: Active UI statuses -> the scheduler state the node shows (no process state: no daemon owns it).
UI_ACTIVE_STATES: dict[str, str | None] = {
    "PENDING": None,
    "QUEUED": "queued",
    "RUNNING": "running",
}


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
        raise UnknownStatus(
            f"unknown status {status!r}; choose from {', '.join(s.lower() for s in JOB_STATUSES)}"
        )
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


def tui_status(
    process_state: str | None, exit_status: int | None, scheduler_state: str | None
) -> str:
    """Return the terminal UI's status for an AiiDA process state.

    CalcJobs wait while their job runs.
    """
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
    pay for the energies of every calculation in the profile.
    """
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
    energies = calculation_energies([pk for pk, *_ in listed])
    return [
        AiidaJobRow(pk, label, row_status, energies.get(pk), ctime, exit_status)
        for pk, label, row_status, ctime, exit_status in listed
    ]


def _calculations() -> orm.QueryBuilder:
    """Return the CRYSTAL CalcJobs, newest first, projected onto what a row needs.

    No node is loaded.
    """
    return orm.QueryBuilder().append(
        orm.CalcJobNode,
        filters={"process_type": {"in": list(CRYSTAL_PROCESS_TYPES)}},
        project=[
            "id", "label", "ctime", "attributes.process_state", "attributes.exit_status",
            "attributes.scheduler_state",
        ],
    ).order_by({orm.CalcJobNode: {"ctime": "desc"}})


def calculation_energies(pks: list[int]) -> dict[int, float | None]:
    """``output_parameters.energy_hartree`` of these calculations, in one query.

    Aiida-core passes a long ``in`` list as one JSON parameter, so any number of pks is fine.
    """
    if not pks:
        return {}
    return dict(
        orm.QueryBuilder()
        .append(orm.CalcJobNode, filters={"id": {"in": pks}}, project="id", tag="calc")
        .append(orm.Dict, with_incoming="calc", edge_filters={"label": "output_parameters"},
                project="attributes.energy_hartree")
        .all()
    )


@dataclass(frozen=True)
class ImportSummary:
    """What :func:`import_tui_jobs` did, per UI row."""

    imported: int
    updated: int
    unchanged: int
    ours: int


def import_tui_jobs(db_file: str | Path) -> ImportSummary:
    """Import the UI's jobs into AiiDA, read-only on the UI's file, idempotently per row.

    A row becomes a ``crystal_atomate.crystal`` CalcJobNode with the row's name, creation time and
    directory, its deck (``input.d12``: the row's ``input_file``, else the file in its directory) as
    a ``deck`` input, the structure parsed from it as ``structure``, and the row's energy and
    key results as ``output_parameters``. A finished row is a sealed node (finished or killed); a
    PENDING, QUEUED or RUNNING row is a node without process state, so no daemon owns it and
    ``verdi process`` leaves it alone, showing the UI's status as its scheduler state, and it stays
    open until a later import finds the row finished and completes it. A row that mirrors a job we
    ran through AiiDA (its jobflow uuid or directory is a CalcJob's) is not imported again.
    """
    from crystal_atomate.stores.ui_read import read_ui_jobs

    db_file = Path(db_file).resolve()
    rows = read_ui_jobs(db_file)
    imported = _imported_nodes(db_file)
    uuids, directories = _our_runs()
    counts = {"imported": 0, "updated": 0, "unchanged": 0, "ours": 0}
    with get_manager().get_profile_storage().transaction():
        for row in rows:
            node = imported.get(row.id)
            if node is None and (row.jobflow_uuid in uuids or row.work_dir in directories):
                counts["ours"] += 1
            elif node is None:
                _import_row(row, db_file)
                counts["imported"] += 1
            elif not node.is_sealed and _update_row(node, row):
                counts["updated"] += 1
            else:
                counts["unchanged"] += 1
    return ImportSummary(**counts)


def _imported_nodes(db_file: Path) -> dict[int, orm.CalcJobNode]:
    """Return the nodes earlier imports made from this database, by UI row id."""
    query = orm.QueryBuilder().append(
        orm.CalcJobNode,
        filters={f"extras.{_TUI_EXTRA}.db": str(db_file)},
        project=["*", f"extras.{_TUI_EXTRA}.id"],
    )
    return {row_id: node for node, row_id in query.iterall()}


def _our_runs() -> tuple[set[str], set[str]]:
    """Return the jobflow uuids and directories of the CRYSTAL CalcJobs run through AiiDA."""
    query = orm.QueryBuilder().append(
        orm.CalcJobNode,
        filters={
            "process_type": {"in": list(CRYSTAL_PROCESS_TYPES)},
            "extras": {"has_key": "jobflow_directory"},
        },
        project=["extras.jobflow_uuid", "extras.jobflow_directory"],
    )
    uuids, directories = set(), set()
    for uuid, directory in query.iterall():
        uuids.add(uuid)
        directories.add(directory)
    return uuids - {None}, directories


def _import_row(row: UIJob, db_file: Path) -> None:
    node = orm.CalcJobNode(process_type=CRYSTAL_PROCESS_TYPES[0])
    node.label = row.name
    node.description = f"imported from the CrystalMath terminal UI: {row.work_dir}"
    node.backend_entity.model.ctime = _timestamp(row.created_at)
    for label, data in _row_inputs(row).items():
        node.base.links.add_incoming(data.store(), LinkType.INPUT_CALC, label)
    node.base.extras.set(_TUI_EXTRA, {"db": str(db_file), "id": row.id, "work_dir": row.work_dir,
                                      "status": row.status, "completed_at": row.completed_at})
    if row.status in UI_ACTIVE_STATES:
        node.base.attributes.set("scheduler_state", UI_ACTIVE_STATES[row.status])
        node.store()
        return
    node.store()
    _finish(node, row)


def _update_row(node: orm.CalcJobNode, row: UIJob) -> bool:
    """Bring an open (active when imported) node to the row's status; whether anything changed."""
    if row.status == node.base.extras.get(_TUI_EXTRA)["status"]:
        return False
    extra = node.base.extras.get(_TUI_EXTRA) | {
        "status": row.status,
        "completed_at": row.completed_at,
    }
    node.base.extras.set(_TUI_EXTRA, extra)
    if row.status in UI_ACTIVE_STATES:
        node.base.attributes.set("scheduler_state", UI_ACTIVE_STATES[row.status])
        return True
    node.base.attributes.set("scheduler_state", "done")
    _finish(node, row)
    return True


def _finish(node: orm.CalcJobNode, row: UIJob) -> None:
    """Record a finished row on its stored node: state, exit status, results; then seal it."""
    state, exit_status = UI_FINISHED_STATES.get(row.status, ("excepted", None))
    node.set_process_state(state)
    if exit_status is not None:
        node.set_exit_status(exit_status)
    results = _results(row)
    if results:
        output = orm.Dict(results)
        output.base.links.add_incoming(node, LinkType.CREATE, "output_parameters")
        output.store()
    node.seal()


def _row_inputs(row: UIJob) -> dict[str, orm.Data]:
    """Return the row's deck and, when the deck parses and its geometry expands, its structure."""
    deck_text = row.input_file or _deck_file(row.work_dir)
    if not deck_text:
        return {}
    inputs: dict[str, orm.Data] = {
        "deck": orm.SinglefileData.from_string(deck_text, filename="input.d12")
    }
    structure = _deck_structure(deck_text, Path(row.work_dir))
    if structure is not None:
        inputs["structure"], _ = structure_to_node(structure)
    return inputs


def _deck_file(work_dir: str) -> str | None:
    """``input.d12`` in the job's directory, if the UI left the deck only there."""
    path = Path(work_dir) / "input.d12"
    return path.read_text(errors="replace") if path.is_file() else None


def _deck_structure(deck_text: str, work_dir: Path) -> Structure | Molecule | None:
    """Return the geometry of a deck (EXTERNAL: the fort.34 beside it); None if it is unreadable."""
    try:
        deck = CrystalInput.from_string(deck_text)
        if isinstance(deck.geometry, ExternalGeometry) and (work_dir / "fort.34").is_file():
            deck.geometry = ExternalGeometry(fort34=Fort34.from_file(work_dir / "fort.34"))
    except (ValueError, OSError):
        return None
    return deck_structure(deck)


def _results(row: UIJob) -> dict[str, Any]:
    """Return the row's energy and key results (the UI's JSON), for ``output_parameters``."""
    results: dict[str, Any] = {}
    if row.key_results:
        try:
            parsed = json.loads(row.key_results)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            results.update(parsed)
    if row.final_energy is not None:
        results["energy_hartree"] = row.final_energy
    if results:
        results["state"] = row.status.lower()
    return results


def _timestamp(value: str | None) -> datetime:
    """SQLite's CURRENT_TIMESTAMP text is UTC without a zone."""
    if not value:
        return datetime.now(UTC)
    stamp = datetime.fromisoformat(value)
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
