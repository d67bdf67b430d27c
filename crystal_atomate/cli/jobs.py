"""``crystal-atomate demo | run | jobs | show``: run flows and read the shared database."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from crystal_atomate.cli.app import database, settings_option
from crystal_atomate.errors import InputError, OperationFailed
from crystal_atomate.flows.registry import FLOWS, build_flow, check_flow_settings
from crystal_atomate.stores.ui_queries import (
    age,
    list_jobs,
    open_readonly,
    resolve_job_uuid,
    task_documents,
)

console = Console()


def _store(db: Path | None) -> Any:
    from crystal_atomate.stores.jobstore import CrystalMathJobStore

    return CrystalMathJobStore(database(db))


def demo(
    db: Path = typer.Option(
        None, help="Shared database (default: CRYSTAL_TUI_DB or .crystal_tui.db)."
    ),
    work_dir: Path = typer.Option(Path("crystal-atomate-demo"), help="Where the job folders go."),
) -> None:
    """Run the demo flows: MgO relax -> static -> bands + DOS; a NiO SCF that fails and recovers."""
    from rich.panel import Panel

    from crystal_atomate.demo import run_demo
    from crystal_atomate.testing.reference import reference_dir

    store = _store(db)
    console.print(
        Panel(
            "CRYSTAL is licensed and not installed here, so the CRYSTAL binary is "
            "[bold]replayed[/]: "
            f"real recorded CRYSTAL outputs from {reference_dir()} are written back after each "
            "input deck is checked keyword by keyword. Input writing, restarts, parsing and the "
            "store all run for real.\nWith a real CRYSTAL23, set CRYSTAL_ATOMATE_CRYSTAL_CMD "
            "(and CRYSTAL_ATOMATE_PROPERTIES_CMD) and use 'crystal-atomate run'.",
            title="crystal-atomate demo",
        )
    )
    with console.status("running the demo flows"):
        results = run_demo(store, work_dir.resolve())
    uuids = [uuid for responses in results.values() for uuid in responses]
    _print_jobs(Path(store.db_file), uuids=uuids)
    console.print(f"Database: {store.db_file}   Job folders: {work_dir.resolve()}")


def run(
    flow: str = typer.Argument(..., help=f"One of {', '.join(FLOWS)}."),
    structure: str = typer.Argument(
        ..., help="A structure file (CIF, POSCAR, pymatgen JSON) or a Materials Project id."
    ),
    functional: str = typer.Option(
        None, help="Functional preset (HF, B3LYP, PBE0, HSE06, PBE, PBESOL)."
    ),
    basis: str = typer.Option(None, help="Internal basis-set library name, e.g. POB-TZVP-REV2."),
    kspacing: float = typer.Option(None, help="k-point spacing in 1/Angstrom (2 pi included)."),
    settings: str = typer.Option(
        None, help='Input settings as JSON, e.g. \'{"scf": {"maxcycle": 200}}\'.'
    ),
    db: Path = typer.Option(None, help="Shared database."),
    work_dir: Path = typer.Option(Path("."), help="Where the job folders go."),
) -> None:
    """Run a named flow on a structure through jobflow's run_locally into the shared database.

    Everything is checked before a job is queued: the flow, functional and setting names, the
    structure, and that CRYSTAL is installed. Exit code 1 when a job fails (the table shows it
    FAILED).
    """
    overrides = settings_option(settings)
    check_flow_settings(flow, functional=functional, settings=overrides)

    from crystal_atomate.cli.flows import load_structure_with_origin
    from crystal_atomate.highthroughput import LocalEngine, origin_metadata
    from crystal_atomate.powerups import add_metadata_to_flow
    from crystal_atomate.run import check_executable

    loaded, origin = load_structure_with_origin(structure)
    check_executable("crystal")
    job_flow = build_flow(
        flow, loaded, functional=functional, basis=basis, kspacing=kspacing, settings=overrides
    )
    if origin is not None:
        job_flow = add_metadata_to_flow(job_flow, origin_metadata(origin))
    store = _store(db)
    (result,) = LocalEngine(store, work_dir.resolve()).submit([job_flow])
    _print_jobs(Path(store.db_file), uuids=list(result.job_uuids))
    if result.state == "failed":
        raise OperationFailed(
            f"flow {flow!r} failed: {result.detail}",
            hint="'crystal-atomate show JOB' shows a job's errors",
        )


def jobs(
    db: Path = typer.Option(None, help="Shared database."),
    status: str = typer.Option(None, help="Only this status (COMPLETED, FAILED, RUNNING, ...)."),
    name: str = typer.Option(None, help="Only names containing this text."),
    limit: int = typer.Option(50, help="At most this many rows, newest first."),
) -> None:
    """List the jobs of the shared database (the terminal UI's jobs table)."""
    _print_jobs(database(db), status=status, name=name, limit=limit)


def show(
    job: str = typer.Argument(..., help="The UI job number or the jobflow job uuid."),
    db: Path = typer.Option(None, help="Shared database."),
) -> None:
    """Show a job's task document summary, its input deck, its errors and restarts."""
    db_file = database(db)
    docs: list[dict[str, Any]] = []
    if db_file.is_file():
        with closing(open_readonly(db_file)) as conn:
            uuid = resolve_job_uuid(conn, job)
            docs = task_documents(conn, uuid) if uuid else []
    if not docs:
        raise InputError(
            f"no job {job!r} in {db_file}", hint="'crystal-atomate jobs' lists the job numbers"
        )
    for doc in docs:
        _print_document(doc)


def _print_document(doc: dict[str, Any]) -> None:
    task = doc.get("output") or {}
    output = task.get("output") or {}
    table = Table(show_header=False, title=f"{doc.get('name')} (run {doc.get('index')})")
    for label, value in (
        ("uuid", doc.get("uuid")),
        ("state", task.get("state")),
        ("task type", task.get("task_type")),
        ("directory", task.get("dir_name")),
        ("formula", task.get("formula_pretty")),
        ("energy (eV)", output.get("energy")),
        ("energy (Ha)", output.get("energy_hartree")),
        ("band gap (eV)", output.get("bandgap")),
        ("SCF cycles", output.get("scf_cycles")),
        ("errors", ", ".join(task.get("errors") or []) or "none"),
    ):
        table.add_row(label, "-" if value is None else str(value))
    console.print(table)
    for restart in task.get("restarts") or []:
        console.print(
            f"  restart {restart['attempt']}: {', '.join(restart['errors'])} -> {restart['action']}"
        )
    for message in task.get("error_messages") or []:
        console.print(f"  [red]{message}[/]")
    deck = (task.get("input") or {}).get("d12") or (task.get("input") or {}).get("d3")
    if deck:
        from rich.syntax import Syntax

        console.print(Syntax(deck, "text", line_numbers=False, theme="ansi_dark"))


def _print_jobs(
    db_file: Path,
    *,
    uuids: list[str] | None = None,
    status: str | None = None,
    name: str | None = None,
    limit: int = 50,
) -> None:
    """Rows of the UI's jobs table (the same the terminal UI lists), newest first."""
    if not Path(db_file).is_file():
        console.print(f"No database at {db_file} yet: run 'crystal-atomate demo' or a flow first.")
        return
    with closing(open_readonly(db_file)) as conn:
        rows = list_jobs(
            conn, uuids=uuids, statuses=[status] if status else (), name=name, limit=limit
        )
    table = Table(title=f"jobs in {db_file}")
    for column in ("id", "name", "status", "energy (Ha)", "workflow", "age"):
        table.add_column(column)
    colours = {"COMPLETED": "green", "FAILED": "red", "RUNNING": "yellow"}
    for row in rows:
        colour = colours.get(row.status, "white")
        table.add_row(
            str(row.id),
            row.name,
            f"[{colour}]{row.status}[/]",
            "-" if row.final_energy is None else f"{row.final_energy:.10f}",
            (row.workflow_id or "-")[:8],
            age(row.created_at),
        )
    console.print(table)
