"""``crystal-atomate mp get|search``: Materials Project structures, cached in the shared database.

The structure text goes to stdout and everything else (where it came from, warnings, errors) to
stderr, so ``crystal-atomate mp get mp-149 > Si.cif`` writes a clean file.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from crystal_atomate.cli.structures import source_errors
from crystal_atomate.mp.cache import MaterialsProject
from crystal_atomate.mp.client import MPQuery, MPStructure
from crystal_atomate.settings import CrystalAtomateSettings

__all__ = ["mp_app"]

mp_app = typer.Typer(
    help="Materials Project structures (key: MP_API_KEY), cached in the shared database.",
    no_args_is_help=True,
)


class OutputFormat(str, Enum):
    """Formats ``mp get`` prints, named as pymatgen's ``Structure.to`` knows them."""

    cif = "cif"
    json = "json"
    poscar = "poscar"


@contextmanager
def _materials_project() -> Iterator[MaterialsProject]:
    """Return the cache-first service on the settings' database.

    A user error is one ``error:`` line (exit 2 for bad input, else 1).
    """
    service = MaterialsProject(CrystalAtomateSettings().DB_FILE)
    with source_errors():
        try:
            yield service
        finally:
            service.close()


def _provenance(record: MPStructure) -> str:
    """'mp-149 Si, 2 sites, MP database 2025.09.25 (from cache)' for stderr."""
    where = "from cache" if record.from_cache else f"from {record.origin.endpoint}"
    version = record.origin.db_version or "unknown"
    return (
        f"{record.material_id} {record.formula}, {record.nsites} sites, "
        f"MP database {version} ({where})"
    )


@mp_app.command("get")
def get(
    material_id: Annotated[str, typer.Argument(help="Materials Project id, e.g. mp-149.")],
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Ask the server even if cached.")
    ] = False,
    fmt: Annotated[
        OutputFormat, typer.Option("--format", help="Output format.")
    ] = OutputFormat.cif,
) -> None:
    """Print a material's structure and cache it (30 days) in the shared database."""
    with _materials_project() as service:
        record = service.get_structure(material_id, refresh=refresh)
    typer.echo(record.structure.to(fmt=fmt.value))
    typer.echo(_provenance(record), err=True)


@mp_app.command("search")
def search(
    formula: Annotated[str | None, typer.Option(help="Formula, e.g. MgO.")] = None,
    chemsys: Annotated[str | None, typer.Option(help="Chemical system, e.g. Si-O.")] = None,
    band_gap_min: Annotated[float | None, typer.Option(min=0, help="Lowest band gap (eV).")] = None,
    band_gap_max: Annotated[
        float | None, typer.Option(min=0, help="Highest band gap (eV).")
    ] = None,
    stable: Annotated[bool, typer.Option("--stable", help="Only materials on the hull.")] = False,
    max_sites: Annotated[int | None, typer.Option(min=1, help="Most sites in the cell.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Most materials listed.")] = 50,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Ask the server even if cached.")
    ] = False,
) -> None:
    """List materials matching the filters (cached 7 days; their structures 30 days)."""
    query = MPQuery(
        formula=formula,
        chemsys=chemsys,
        band_gap_min=band_gap_min,
        band_gap_max=band_gap_max,
        stable=stable,
        max_sites=max_sites,
        limit=limit,
    )
    with _materials_project() as service:
        records = service.search_structures(query, refresh=refresh)
    Console().print(_table(query, records))


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _table(query: MPQuery, records: list[MPStructure]) -> Table:
    """One row per material, in the order the server returned them."""
    cached = " (from cache)" if records and records[0].from_cache else ""
    table = Table(title=f"{len(records)} materials: {query.describe()}{cached}")
    table.add_column("Material", no_wrap=True)
    table.add_column("Formula")
    table.add_column("Sites", justify="right")
    table.add_column("Space group", no_wrap=True)
    table.add_column("Gap eV", justify="right")
    table.add_column("E_hull eV/at", justify="right", no_wrap=True)
    table.add_column("Stable")
    for record in records:
        symbol, number = record.structure.get_space_group_info()
        table.add_row(
            record.material_id,
            record.formula,
            str(record.nsites),
            f"{symbol} ({number})",
            _number(record.band_gap, 2),
            _number(record.energy_above_hull, 3),
            {True: "yes", False: "no", None: "-"}[record.is_stable],
        )
    return table
