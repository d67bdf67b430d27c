"""``crystal-atomate parse OUTPUT [--json]``: what a CRYSTAL run did and whether it succeeded."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from crystal_atomate.io.errors import CrystalParseError
from crystal_atomate.io.outputs import CrystalOutput, parse_output

__all__ = ["parse"]


def parse(
    output: Annotated[
        Path,
        typer.Argument(help="CRYSTAL output file (fort.87 / SCFOUT.LOG beside it are read too)."),
    ],
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help="Print the whole parsed result as JSON (units in the key names)."
        ),
    ] = False,
    discover: Annotated[
        bool, typer.Option(help="Read fort.87 and SCFOUT.LOG from the output's directory.")
    ] = True,
) -> None:
    """Parse a CRYSTAL output and print a summary, or the full result with --json.

    Exit code 0 when the run converged, 1 when it failed, 2 when the file is not a CRYSTAL output.
    """
    try:
        result = parse_output(output, discover=discover)
    except CrystalParseError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
    else:
        Console().print(_summary(result))
    raise typer.Exit(0 if result.state == "converged" else 1)


def _fmt(value: object, unit: str = "") -> str:
    """Readable cell: '-' for missing values."""
    if value is None:
        return "-"
    return f"{value} {unit}".strip()


def _summary(out: CrystalOutput) -> Table:
    """Two-column table of the fields a human checks first."""
    table = Table(title=out.source_path or "CRYSTAL output", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    colour = "green" if out.state == "converged" else "red"
    table.add_row("state", f"[{colour}]{out.state}[/{colour}]")
    for error in out.errors:
        where = f" (line {error.line_number})" if error.line_number else ""
        table.add_row(
            "error",
            f"{error.kind.value} [{error.kind.exit_status}]{where}: {error.message} - fix: "
            f"{error.kind.fix}",
        )
    version = f"CRYSTAL{out.crystal_version:02d}" if out.crystal_version is not None else None
    rows: list[tuple[str, str]] = [
        ("version", _fmt(version) + (f" ({out.crystal_release})" if out.crystal_release else "")),
        ("title", _fmt(out.title)),
        (
            "calculation",
            out.calculation.value
            + (f" ({out.optimisation_type})" if out.optimisation_type else ""),
        ),
        (
            "hamiltonian",
            _fmt(out.hamiltonian)
            + (
                f" {out.functional_exchange}/{out.functional_correlation}"
                if out.functional_exchange
                else ""
            ),
        ),
        ("type", _fmt(out.calculation_type)),
        (
            "atoms / AO / electrons",
            f"{_fmt(out.n_atoms)} / {_fmt(out.n_ao)} / {_fmt(out.n_electrons)}",
        ),
        ("k-mesh (SHRINK)", _fmt(out.shrink)),
        ("energy", f"{_fmt(out.energy_ha, 'Ha')} = {_fmt(out.energy_ev, 'eV')}"),
        (
            "SCF",
            f"{len(out.scf)} run(s), last converged={out.scf_converged}, cycles={out.scf_cycles}",
        ),
        ("band gap", _fmt(out.band_gap_ev, "eV") + (" (conducting)" if out.is_conducting else "")),
        ("terminated", str(out.terminated)),
        ("time", f"TELAPSE {_fmt(out.telapse_s, 's')}, TCPU {_fmt(out.tcpu_s, 's')}"),
    ]
    if out.opt_steps:
        rows.append(("optimisation", f"{len(out.opt_steps)} points, converged={out.opt_converged}"))
    if out.structure is not None:
        rows.append(
            (
                "final structure",
                f"{out.structure.composition.reduced_formula}, {len(out.structure)} sites",
            )
        )
    if out.frequencies:
        rows.append(
            (
                "frequencies",
                f"{len(out.frequencies_cm1)} modes, max {max(out.frequencies_cm1):.2f} cm-1",
            )
        )
    if out.elastic_constants is not None:
        rows.append(
            (
                "elastic constants",
                f"{len(out.elastic_constants)}x{len(out.elastic_constants)} "
                f"({out.elastic_constants_unit})",
            )
        )
    if out.pressure_gpa is not None:
        rows.append(("pressure", _fmt(out.pressure_gpa, "GPa")))
    for name, value in rows:
        table.add_row(name, value)
    return table
