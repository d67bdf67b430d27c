"""The ``crystal-atomate`` Typer application; each command group lives in its own module."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="crystal-atomate",
    help="CRYSTAL23 workflows with jobflow, atomate2 and the CRYSTAL-TOOLS shared database.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def main() -> None:
    """CRYSTAL23 workflows with jobflow, atomate2 and the CRYSTAL-TOOLS shared database.

    (A group callback keeps subcommands as subcommands even when only one is registered.)
    """
