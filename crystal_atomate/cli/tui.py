"""``crystal-atomate tui``: browse the shared database's jobs while engines run."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from crystal_atomate.cli.app import database


class Backend(str, Enum):
    """Where the browser reads jobs; ``sqlite`` is also the way back from AiiDA."""

    sqlite = "sqlite"
    aiida = "aiida"


def tui(
    db: Path = typer.Option(
        None, help="Shared database (default: CRYSTAL_TUI_DB or .crystal_tui.db)."
    ),
    interval: float = typer.Option(
        2.0, min=0.1, help="Seconds between checks of the file for changes."
    ),
    backend: Backend = typer.Option(
        Backend.sqlite,
        help="Where the jobs are: the shared database (sqlite) or an AiiDA profile (aiida).",
    ),
    profile: str = typer.Option(
        None, help="AiiDA profile for --backend aiida (default: AiiDA's default)."
    ),
) -> None:
    """Browse the jobs in a terminal: the job list, a job's detail, live refresh (read-only)."""
    from crystal_atomate.tui.app import JobBrowser

    if backend is Backend.aiida:
        from crystal_atomate.aiida.job_source import AiidaJobs

        source = AiidaJobs(profile)
    else:
        source = database(db)
    JobBrowser(source, poll_seconds=interval).run()
