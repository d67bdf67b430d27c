"""``crystal-atomate ht submit|summary``: one flow per structure, then a table of what came out."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from crystal_atomate.cli.app import database, settings_option
from crystal_atomate.errors import InputError, UnknownNameError
from crystal_atomate.stores.ui_queries import has_document, open_readonly

__all__ = ["ht_app"]

console = Console()

ht_app = typer.Typer(
    help="High-throughput: one flow per Materials Project or CIF structure, and a summary of a "
         "batch.",
    no_args_is_help=True,
)


def _store(db: Path | None) -> Any:
    from crystal_atomate.stores.jobstore import CrystalMathJobStore

    return CrystalMathJobStore(database(db))


def _query(criteria: list[str]) -> Any:
    """Parse ``["formula=MgO", "max_sites=4"]`` into an ``MPQuery``.

    pydantic turns the text into numbers and booleans and refuses unknown keys.
    """
    from pydantic import ValidationError

    from crystal_atomate.mp.client import MPQuery

    pairs = [item.split("=", 1) for item in criteria]
    if any(len(pair) != 2 for pair in pairs):
        raise typer.BadParameter(
            "write each criterion as KEY=VALUE, e.g. formula=MgO", param_hint="--query"
        )
    try:
        return MPQuery.model_validate(dict(pairs))
    except ValidationError as exc:
        raise typer.BadParameter(str(exc), param_hint="--query") from exc


def _source_candidates(
    db: Path | None,
    optimade: str | None,
    optimade_filter: str | None,
    providers: list[str],
    mpcontribs: str | None,
    refresh: bool,
) -> list[Any]:
    """Candidates from OPTIMADE providers and an MPContribs project (cache-first, the UI's keys)."""
    from crystal_atomate.cli.structures import source_errors
    from crystal_atomate.highthroughput import candidates_from_records

    db_file = database(db)
    records: list[Any] = []
    with source_errors():
        if optimade or optimade_filter:
            from crystal_atomate.mp.optimade import Optimade, OptimadeQuery

            query = OptimadeQuery(
                formula=optimade, filter=optimade_filter, providers=tuple(providers or ("mp",))
            )
            service = Optimade(db_file)
            try:
                records += service.search(query, refresh=refresh)
            finally:
                service.close()
        if mpcontribs:
            from crystal_atomate.mp.mpcontribs import MPContribs

            contribs = MPContribs(db_file)
            try:
                records += contribs.structures(mpcontribs, refresh=refresh)
            finally:
                contribs.close()
    return candidates_from_records(records)


def _candidates(query: list[str], ids: list[str], folder: list[Path], refresh: bool) -> list[Any]:
    from crystal_atomate.cli.mp import _materials_project
    from crystal_atomate.highthroughput import (
        candidates_from_files,
        candidates_from_ids,
        candidates_from_query,
    )

    candidates = candidates_from_files(folder, on_unreadable=_skipped) if folder else []
    material_ids = [part.strip() for item in ids for part in item.split(",") if part.strip()]
    if query or material_ids:
        with _materials_project() as materials_project:
            if query:
                candidates += candidates_from_query(materials_project, _query(query), refresh)
            candidates += candidates_from_ids(materials_project, material_ids, refresh)
    return candidates


def _skipped(path: Path, error: Exception) -> None:
    """Warn on stderr of a structure file that cannot be read; the batch goes on without it."""
    typer.echo(f"warning: skipped {path}: {error}", err=True)


def _origin(candidate: Any) -> str:
    """'MP 2025.09.25' or 'file' for the table."""
    if candidate.origin is None:
        return "file"
    return f"MP {candidate.origin.db_version or '(release unknown)'}"


def _entries_table(batch: Any, states: dict[str, str]) -> Table:
    table = Table(title=f"batch {batch.batch_id} ({batch.flow_name})")
    for column in ("structure", "formula", "origin", "status", "flow"):
        table.add_column(column, overflow="fold")
    colours = {
        "completed": "green",
        "failed": "red",
        "done": "cyan",
        "submitted": "yellow",
        "rejected": "red",
    }
    for entry in batch.entries:
        candidate = entry.candidate
        status = states.get(entry.flow.uuid, entry.status) if entry.flow else entry.status
        shown = f"[{colours.get(status, 'white')}]{status}[/]" + (
            f" ({entry.reason})" if entry.reason else ""
        )
        table.add_row(
            candidate.label,
            candidate.formula,
            _origin(candidate),
            shown,
            entry.flow.uuid[:8] if entry.flow else "-",
        )
    return table


@ht_app.command()
def submit(
    query: list[str] = typer.Option(
        None,
        help="Materials Project criterion KEY=VALUE, repeatable (formula, chemsys, band_gap_min, "
             "band_gap_max, stable, energy_above_hull_max, max_sites, limit).",
    ),
    ids: list[str] = typer.Option(
        None, help="Material ids, comma separated or repeated, e.g. mp-1265,mp-149."
    ),
    folder: list[Path] = typer.Option(
        None, help="A folder of CIF files (or one structure file); repeatable."
    ),
    optimade: str = typer.Option(
        None, help="A formula to search OPTIMADE providers for, e.g. Fe2O3."
    ),
    optimade_filter: str = typer.Option(
        None, help="An OPTIMADE filter, e.g. 'elements HAS \"Si\"'."
    ),
    provider: list[str] = typer.Option(
        None, help="OPTIMADE provider (mp, cod, oqmd, ... or a URL); repeatable."
    ),
    mpcontribs: str = typer.Option(
        None, help="An MPContribs project whose contributed structures to run."
    ),
    flow: str = typer.Option(
        "static", help="The flow each structure gets (as for 'crystal-atomate run')."
    ),
    engine: str = typer.Option("local", help="local, fireworks, remote, aiida or aiida-daemon."),
    functional: str = typer.Option(
        None, help="Functional preset (HF, B3LYP, PBE0, HSE06, PBE, PBESOL)."
    ),
    basis: str = typer.Option(None, help="Internal basis-set library name, e.g. POB-TZVP-REV2."),
    kspacing: float = typer.Option(None, help="k-point spacing in 1/Angstrom (2 pi included)."),
    settings: str = typer.Option(
        None, help='Input settings as JSON, e.g. \'{"scf": {"maxcycle": 200}}\'.'
    ),
    tag: list[str] = typer.Option(
        None, help="Tag stored in every task document's metadata.tags; repeatable."
    ),
    batch: str = typer.Option(None, help="Batch id (default: FLOW-date-time-random)."),
    refresh: bool = typer.Option(
        False, help="Ask the Materials Project even when the cache is fresh."
    ),
    dry_run: bool = typer.Option(
        False, help="Show what would run and what is skipped; submit nothing."
    ),
    db: Path = typer.Option(None, help="Shared database."),
    work_dir: Path = typer.Option(Path("."), help="Where the job folders go (local engine)."),
    profile: str = typer.Option(
        None, help="AiiDA profile (aiida engines; default: AiiDA's default profile)."
    ),
    code: str = typer.Option(
        None, help="AiiDA CRYSTAL code, LABEL or LABEL@COMPUTER (aiida engines; default: crystal)."
    ),
) -> None:
    """One flow per structure, tagged with its origin and batch; finished ones are skipped.

    A structure is finished when the store holds the same structure run with the same settings,
    successfully; everything else is handed to the engine.
    """
    from crystal_atomate.flows.registry import check_flow_settings
    from crystal_atomate.highthroughput import (
        ENGINES,
        HighThroughputBuilder,
        make_engine,
        submit_batch,
    )

    if not (query or ids or folder or optimade or optimade_filter or mpcontribs):
        raise typer.BadParameter(
            "give structures with --query, --ids, --folder, --optimade, --optimade-filter or "
            "--mpcontribs"
        )
    flow_settings = {
        "functional": functional,
        "basis": basis,
        "kspacing": kspacing,
        "settings": settings_option(settings),
    }
    check_flow_settings(flow, functional=functional, settings=flow_settings["settings"])
    if engine not in ENGINES:
        raise UnknownNameError("engine", engine, ENGINES)
    builder = HighThroughputBuilder(
        flow=flow, flow_settings={k: v for k, v in flow_settings.items() if v},
        tags=list(tag or []), batch_id=batch,
    )
    store = _store(db)
    with console.status("building flows and checking the store"):
        candidates = _candidates(
            query or [], ids or [], folder or [], refresh
        ) + _source_candidates(db, optimade, optimade_filter, provider or [], mpcontribs, refresh)
        built = builder.build(candidates, store)
    states: dict[str, str] = {}
    if not dry_run and built.flows:
        runner = make_engine(engine, store, work_dir.resolve(), profile=profile, code=code)
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console) as progress:
            task = progress.add_task(f"{engine}: {built.flow_name}", total=len(built.flows))
            for result in submit_batch(built, runner, lambda _: progress.advance(task)):
                states[result.flow_uuid] = result.state
    console.print(_entries_table(built, states))
    skipped = built.count("done") + built.count("duplicate")
    console.print(
        f"{len(built.flows)} to run, {skipped} skipped, {built.count('rejected')} rejected. "
        f"Summary: crystal-atomate ht summary --batch {built.batch_id}"
    )


@ht_app.command()
def summary(
    batch: str = typer.Option(None, help="Only this batch (default: every batch in the database)."),
    csv: Path = typer.Option(None, help="Write the rows to this CSV file."),
    json_file: Path = typer.Option(None, "--json", help="Write the rows to this JSON file."),
    plot: Path = typer.Option(
        None, help="Save a PNG: energy above the lowest per formula, band gaps."
    ),
    db: Path = typer.Option(None, help="Shared database."),
) -> None:
    """Energies (Ha, eV/atom), gaps, states and material ids of a batch, from the store."""
    from crystal_atomate.summary import batch_rows, plot_batch, summary_table, write_csv, write_json

    db_file = database(db)
    if not db_file.is_file():
        raise InputError(
            f"no database at {db_file}", hint="pass --db, or run 'crystal-atomate ht submit' first"
        )
    with closing(open_readonly(db_file)) as conn:
        found = has_document(conn, "output.metadata.batch_id", batch)
    if not found:
        raise InputError(
            f"no high-throughput jobs{f' in batch {batch!r}' if batch else ''} in {db_file}",
            hint="'crystal-atomate ht summary' without --batch summarises every batch",
        )
    rows = batch_rows(_store(db_file), batch)
    console.print(summary_table(rows, title=f"batch {batch}" if batch else "all batches"))
    for path, write in ((csv, write_csv), (json_file, write_json), (plot, plot_batch)):
        if path is not None:
            console.print(f"wrote {write(rows, path)}")
