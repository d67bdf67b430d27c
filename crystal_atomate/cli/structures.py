"""``crystal-atomate structures search|contributions``: structures from MP, OPTIMADE, MPContribs.

By default the Materials Project is asked first and the OPTIMADE providers when it has nothing
or cannot be used (the reason is one ``note:`` line on stderr); ``--source`` picks one of them,
``--filter`` sends a raw OPTIMADE filter. Every answer is cached in the shared database under the
UI's own keys. The table goes to stdout, notes and errors to stderr.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import typer

from crystal_atomate.mp.errors import MPError

if TYPE_CHECKING:
    from rich.table import Table

    from crystal_atomate.mp.search import Found

__all__ = ["app", "source_errors"]

app = typer.Typer(
    help="Structures from the Materials Project and OPTIMADE, cached in the shared database.",
    no_args_is_help=True,
)


@app.callback()
def structures() -> None:
    """Structures from the Materials Project and OPTIMADE, cached in the shared database."""


@contextmanager
def source_errors() -> Iterator[None]:
    """Turn a structure-source error into one ``error:`` line (and its ``hint:``).

    The exit code is 2 for bad input, 1 for a failure.
    """
    try:
        yield
    except MPError as exc:
        typer.echo(f"error: {exc}", err=True)
        if exc.hint:
            typer.echo(f"hint: {exc.hint}", err=True)
        raise typer.Exit(2 if exc.usage else 1) from exc


class Source(str, Enum):
    """Where ``structures search`` looks."""

    auto = "auto"
    mp = "mp"
    optimade = "optimade"


@app.command("search")
def search(
    formula: Annotated[str | None, typer.Option(help="Formula, e.g. Fe2O3.")] = None,
    filter_: Annotated[
        str | None,
        typer.Option(
            "--filter", help='Raw OPTIMADE filter, e.g. elements HAS "Fe" AND nelements=2.'
        ),
    ] = None,
    provider: Annotated[
        list[str] | None,
        typer.Option(help="OPTIMADE provider name or base URL (repeatable; default mp)."),
    ] = None,
    source: Annotated[
        Source, typer.Option(help="auto: MP, then OPTIMADE if MP has none.")
    ] = Source.auto,
    limit: Annotated[
        int, typer.Option(min=1, max=1000, help="Most structures (per provider).")
    ] = 50,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait for a provider.")] = 30.0,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Ask the servers even if cached.")
    ] = False,
) -> None:
    """List the structures of a formula (or an OPTIMADE filter) with where each came from."""
    from rich.console import Console

    from crystal_atomate.mp.cache import MaterialsProject
    from crystal_atomate.mp.client import MPQuery
    from crystal_atomate.mp.errors import OptimadeFilterError
    from crystal_atomate.mp.optimade import Optimade, OptimadeQuery
    from crystal_atomate.mp.search import Found, find_by_formula
    from crystal_atomate.settings import CrystalAtomateSettings

    providers = tuple(provider or ("mp",))
    db_file = CrystalAtomateSettings().DB_FILE
    mp, optimade = MaterialsProject(db_file), Optimade(db_file, timeout=timeout)
    with source_errors():
        try:
            if (formula is None) == (filter_ is None):
                raise OptimadeFilterError("Give --formula or --filter (one of them).")
            if filter_ is not None or source is Source.optimade:
                query = OptimadeQuery(
                    formula=formula, filter=filter_, providers=providers, limit=limit
                )
                found = Found(optimade.search(query, refresh=refresh), "optimade")
            elif source is Source.mp:
                query_mp = MPQuery(formula=formula, limit=limit)
                found = Found(mp.search_structures(query_mp, refresh=refresh), "mp")
            else:
                found = find_by_formula(str(formula), mp, optimade, providers, limit, refresh)
        finally:
            mp.close()
            optimade.close()
    if found.note:
        typer.echo(f"note: {found.note}", err=True)
    Console().print(_table(formula or str(filter_), found))


def _table(what: str, found: Found) -> Table:
    """One row per structure: id, formula, sites, space group, source and where to find it."""
    from rich.table import Table

    records = found.records
    cached = " (from cache)" if records and records[0].from_cache else ""
    table = Table(title=f"{len(records)} structures: {what}{cached}")
    for column in ("Id", "Formula", "Sites", "Space group", "Source", "URL"):
        table.add_column(column, no_wrap=column == "Id", overflow="fold")
    for record in records:
        symbol, number = record.structure.get_space_group_info()
        origin = record.origin
        table.add_row(
            record.material_id,
            record.formula,
            str(record.nsites),
            f"{symbol} ({number})",
            origin.provider or origin.source,
            origin.url or origin.endpoint or "-",
        )
    return table


@app.command("contributions")
def contributions(
    project: Annotated[str, typer.Argument(help="MPContribs project, e.g. carrier_transport.")],
    identifier: Annotated[str | None, typer.Option(help="Only this material, e.g. mp-149.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Most contributions.")] = 50,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Ask the server even if cached.")
    ] = False,
) -> None:
    """List a project's MPContribs contributions: identifier, formula, data, structures."""
    import json

    from rich.console import Console
    from rich.table import Table

    from crystal_atomate.mp.mpcontribs import MPContribs
    from crystal_atomate.settings import CrystalAtomateSettings

    service = MPContribs(CrystalAtomateSettings().DB_FILE)
    with source_errors():
        try:
            found = service.contributions(
                project, identifier=identifier, limit=limit, refresh=refresh
            )
        finally:
            service.close()
    table = Table(title=f"{len(found)} contributions: {project}")
    for column in ("Id", "Identifier", "Formula", "Data", "Structures"):
        table.add_column(column, overflow="fold")
    for item in found:
        table.add_row(
            item.contribution_id,
            item.identifier or "-",
            item.formula or "-",
            json.dumps(item.data, sort_keys=True),
            ", ".join(f"{s.formula} ({s.nsites} sites)" for s in item.structures) or "-",
        )
    Console().print(table)
