"""The ``crystal-atomate`` Typer application and the map of its commands.

Each command group lives in its own module, imported only when the command runs (see
:mod:`crystal_atomate.cli.lazy`): ``crystal-atomate --help``, ``jobs`` and ``show`` start without
pymatgen, jobflow, atomate2, AiiDA, FireWorks or jobflow-remote. A new command is one line in
:data:`COMMANDS`.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import typer

from crystal_atomate.cli.failures import DEBUG_ENV
from crystal_atomate.cli.lazy import LazyCommand, lazy_group
from crystal_atomate.errors import InputError

__all__ = ["COMMANDS", "app", "database", "settings_option"]

#: Every command: name -> where it lives and its one-line help.
COMMANDS: dict[str, LazyCommand] = {
    "demo": LazyCommand(
        "crystal_atomate.cli.jobs:demo",
        "Run the demo flows (MgO relax -> static -> bands + DOS; a NiO SCF that fails and "
        "recovers).",
    ),
    "run": LazyCommand(
        "crystal_atomate.cli.jobs:run",
        "Run a named flow on a structure through jobflow's run_locally into the shared database.",
    ),
    "jobs": LazyCommand("crystal_atomate.cli.jobs:jobs", "The job list of the shared database."),
    "show": LazyCommand(
        "crystal_atomate.cli.jobs:show",
        "A job's task document summary, its input deck, its errors and restarts.",
    ),
    "parse": LazyCommand(
        "crystal_atomate.cli.parse:parse",
        "Parse a CRYSTAL output and print a summary, or the full result with --json.",
    ),
    "check": LazyCommand(
        "crystal_atomate.cli.check:check", "Check CRYSTAL input decks before they run."
    ),
    "structures": LazyCommand(
        "crystal_atomate.cli.structures:app",
        "Structures from the Materials Project, OPTIMADE and MPContribs.",
    ),
    "mp": LazyCommand(
        "crystal_atomate.cli.mp:mp_app",
        "Materials Project structures (key: MP_API_KEY), cached in the shared database.",
    ),
    "ht": LazyCommand(
        "crystal_atomate.cli.highthroughput:ht_app",
        "High-throughput: one flow per Materials Project or CIF structure, and a summary of a "
        "batch.",
    ),
    "fw": LazyCommand(
        "crystal_atomate.cli.engines:fw_app",
        "Run crystal_atomate flows with FireWorks (embedded LaunchPad default).",
    ),
    "remote": LazyCommand(
        "crystal_atomate.cli.engines:remote_app", "Run crystal_atomate flows with jobflow-remote."
    ),
    "aiida": LazyCommand(
        "crystal_atomate.cli.aiida:aiida_app",
        "Run CRYSTAL through AiiDA: setup, job list, import of the UI's jobs.",
    ),
    "cluster": LazyCommand(
        "crystal_atomate.cli.clusters:cluster_app",
        "A cluster (SSH + SLURM, from a cluster file or the UI) for FireWorks and jobflow-remote.",
    ),
    "tui": LazyCommand(
        "crystal_atomate.cli.tui:tui",
        "A terminal job browser: the job list, a job's detail, live refresh (read-only).",
    ),
}

_Group = lazy_group(COMMANDS)

app = typer.Typer(
    name="crystal-atomate",
    cls=_Group,
    help="CRYSTAL23 workflows with jobflow, atomate2 and the CRYSTAL-TOOLS shared database.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
_Group.root = app


@app.callback()
def main(
    debug: bool = typer.Option(
        False, "--debug", help=f"Print the traceback of an error (also: {DEBUG_ENV}=1)."
    ),
) -> None:
    """CRYSTAL23 workflows with jobflow, atomate2 and the CRYSTAL-TOOLS shared database.

    Exit codes: 0 success, 1 a calculation or operation failed, 2 usage or bad input.
    """
    # jobflow's run_locally still enters each job folder with monty's deprecated ``cd``; its
    # FutureWarning, printed once per flow, says nothing a user of this command line can act on.
    warnings.filterwarnings("ignore", message="cd is deprecated", category=FutureWarning)


def database(db: Path | None) -> Path:
    """Return the shared database a command works on: ``--db``, else the settings' ``DB_FILE``.

    The settings (pydantic-settings, a quarter of a second to import) are read only when
    something could change the default: ``CRYSTAL_ATOMATE_DB_FILE`` or a configuration file.
    Otherwise the default is the settings' own: ``CRYSTAL_TUI_DB``, else ``.crystal_tui.db``.

    Parameters
    ----------
    db
        The ``--db`` option, if given.

    Returns
    -------
    Path
        The database file (it may not exist yet).
    """
    if db is not None:
        return db
    config = Path(
        os.environ.get("CRYSTAL_ATOMATE_CONFIG_FILE", "~/.crystal_atomate.yaml")
    ).expanduser()
    if "CRYSTAL_ATOMATE_DB_FILE" in os.environ or config.is_file():
        from crystal_atomate.settings import CrystalAtomateSettings

        return CrystalAtomateSettings().DB_FILE
    return Path(os.environ.get("CRYSTAL_TUI_DB", ".crystal_tui.db")).expanduser()


def settings_option(text: str | None) -> dict[str, Any]:
    """Parse the ``--settings`` JSON into a dict of sections.

    Raises
    ------
    InputError
        When the text is not a JSON object.
    """
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"--settings is not JSON: {exc}", hint='write e.g. \'{"scf": {"maxcycle": 200}}\''
        ) from exc
    if not isinstance(value, dict):
        raise InputError(
            "--settings must be a JSON object of sections",
            hint='e.g. \'{"scf": {"maxcycle": 200}}\'',
        )
    return value
