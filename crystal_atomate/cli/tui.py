"""``crystal-atomate tui``: browse the shared database's jobs while engines run."""

from __future__ import annotations

from pathlib import Path

import typer

from crystal_atomate.cli.app import database


def tui(
    db: Path = typer.Option(
        None, help="Shared database (default: CRYSTAL_TUI_DB or .crystal_tui.db)."
    ),
    interval: float = typer.Option(
        2.0, min=0.1, help="Seconds between checks of the file for changes."
    ),
) -> None:
    """Browse the jobs in a terminal: the job list, a job's detail, live refresh (read-only)."""
    from crystal_atomate.tui.app import JobBrowser

    JobBrowser(database(db), poll_seconds=interval).run()
