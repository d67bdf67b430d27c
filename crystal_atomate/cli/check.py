"""``crystal-atomate check DECK [DECK ...]``: find what CRYSTAL would reject before a queue wait.

Each deck is read by the strict reader of its kind (``.d3``: properties, anything else: a
``.d12`` / ``INPUT`` deck). One line per broken deck, ``error: file:line: message``, then
``hint: ...`` when the likely fix is known; exit status 2 when any deck is invalid, 0 otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from crystal_atomate.io.d12 import CrystalInput
from crystal_atomate.io.deck_lines import DeckError
from crystal_atomate.io.properties import PropertiesInput

__all__ = ["app", "check", "check_deck"]

app = typer.Typer(help="Check CRYSTAL input decks without running CRYSTAL.")


def check_deck(path: Path, allow_unknown: list[str]) -> DeckError | None:
    """Read one deck strictly; the first problem found, or None when CRYSTAL would accept it.

    Parameters
    ----------
    path
        A ``.d12`` deck (any name, e.g. ``INPUT``) or a ``.d3`` properties deck.
    allow_unknown
        Keywords to accept although the keyword tables do not list them.

    Returns
    -------
    DeckError or None
        The error, carrying ``line`` and ``hint``.
    """
    text = path.read_text(errors="replace")
    try:
        if path.suffix.lower() == ".d3":
            PropertiesInput.from_string(text, allow_unknown=allow_unknown)
        else:
            CrystalInput.from_string(text, allow_unknown=allow_unknown)
    except DeckError as exc:
        return exc
    return None


@app.command()
def check(
    decks: Annotated[
        list[Path], typer.Argument(help=".d12 / INPUT decks, or .d3 properties decks.")
    ],
    allow: Annotated[
        list[str] | None,
        typer.Option(
            "--allow", help="A keyword to accept although it is not in the tables (repeatable)."
        ),
    ] = None,
) -> None:
    """Check CRYSTAL decks: unknown keywords, wrong counts, missing block terminators.

    Exit status 0 when every deck is valid, 2 when any is not (or cannot be read).
    """
    invalid = 0
    for path in decks:
        try:
            error = check_deck(path, allow or [])
        except OSError as exc:
            typer.echo(f"error: {path}: cannot read: {exc.strerror}", err=True)
            invalid += 1
            continue
        if error is None:
            typer.echo(f"ok: {path}")
            continue
        invalid += 1
        where = f"{path}:{error.line}" if error.line is not None else str(path)
        typer.echo(f"error: {where}: {error.reason}", err=True)
        if error.hint:
            typer.echo(f"hint: {error.hint}", err=True)
    raise typer.Exit(2 if invalid else 0)
