"""``crystal-atomate aiida``: set up AiiDA for CRYSTAL, list its calculations, import the UI's jobs.

AiiDA is imported inside the commands, so the rest of the CLI works without the ``aiida`` extra.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from crystal_atomate.cli.aiida_computer import computer_app
from crystal_atomate.settings import CrystalAtomateSettings

aiida_app = typer.Typer(
    help="Run CRYSTAL through AiiDA: setup, job list, import of the UI's jobs.",
    no_args_is_help=True,
)
aiida_app.add_typer(computer_app, name="computer")

#: aiida-core warns on first import in a new AIIDA_PATH; it is not the user's concern.
warnings.filterwarnings("ignore", message="Creating AiiDA configuration folder")
_console = Console()
_errors = Console(stderr=True, highlight=False, soft_wrap=True)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn an AiiDA user error into ``error:`` (and ``hint:``) lines and its exit code.

    An :class:`~crystal_atomate.aiida.errors.AiidaUserError` is printed one line each instead of a
    traceback.
    """
    from crystal_atomate.aiida.errors import AiidaUserError

    try:
        yield
    except AiidaUserError as error:
        _errors.print(f"error: {error}", markup=False)
        if error.hint:
            _errors.print(f"hint: {error.hint}", markup=False)
        raise typer.Exit(error.exit_code) from None


_STATUS_STYLE = {
    "COMPLETED": "green",
    "FAILED": "red",
    "RUNNING": "cyan",
    "QUEUED": "yellow",
    "PENDING": "white",
}


@aiida_app.command()
def setup(
    profile: Annotated[
        str, typer.Option(help="Profile name (created if missing).")
    ] = "crystal-atomate",
    computer: Annotated[str, typer.Option(help="Label of the localhost computer.")] = "localhost",
    workdir: Annotated[
        Path | None, typer.Option(help="Where jobs run (default ~/aiida_run).")
    ] = None,
    crystal: Annotated[
        str | None, typer.Option(help="CRYSTAL executable (default: CRYSTAL_CMD).")
    ] = None,
    properties: Annotated[
        str | None, typer.Option(help="properties executable (default: PROPERTIES_CMD).")
    ] = None,
    replay: Annotated[
        bool, typer.Option(help="Use the replay executable (tests, demo, tutorial).")
    ] = False,
    postgres: Annotated[
        bool, typer.Option(help="core.psql_dos storage instead of embedded SQLite.")
    ] = False,
    db_host: Annotated[str, typer.Option(help="PostgreSQL host.")] = "127.0.0.1",
    db_port: Annotated[int, typer.Option(help="PostgreSQL port.")] = 5432,
    db_name: Annotated[
        str | None, typer.Option(help="Database (default: the profile name).")
    ] = None,
    db_user: Annotated[str, typer.Option(help="Database user.")] = "aiida",
    db_password: Annotated[str, typer.Option(help="Database password.")] = "aiida",
    rabbitmq: Annotated[
        bool, typer.Option(help="RabbitMQ broker instead of the built-in ZeroMQ one.")
    ] = False,
    broker_host: Annotated[str, typer.Option(help="RabbitMQ host.")] = "127.0.0.1",
    broker_port: Annotated[int, typer.Option(help="RabbitMQ port.")] = 5672,
) -> None:
    """Create (idempotently) a profile, a localhost computer and the crystal + properties codes."""
    with _user_errors():
        _setup(
            profile,
            computer,
            workdir,
            crystal,
            properties,
            replay,
            postgres,
            _psql_config(profile, db_host, db_port, db_name, db_user, db_password)
            if postgres
            else None,
            _rabbitmq_config(broker_host, broker_port) if rabbitmq else None,
        )


def _setup(
    profile: str,
    computer: str,
    workdir: Path | None,
    crystal: str | None,
    properties: str | None,
    replay: bool,
    postgres: bool,
    storage_config: dict | None,
    broker_config: dict | None,
) -> None:
    """Set up a profile, computer and codes; the executables are checked first.

    So a missing CRYSTAL creates nothing.
    """
    from aiida.manage.configuration.settings import AiiDAConfigDir

    from crystal_atomate.aiida.errors import storage_errors
    from crystal_atomate.aiida.setup import (
        ensure_codes,
        ensure_localhost,
        ensure_profile,
        resolve_executables,
    )
    from crystal_atomate.demo import replay_code_prepend_text

    settings = CrystalAtomateSettings()
    if replay:
        crystal = properties = "crystal-atomate-replay"
    commands = {
        "crystal": crystal or settings.CRYSTAL_CMD,
        "properties": properties or settings.PROPERTIES_CMD,
    }
    resolve_executables(commands)
    storage = "core.psql_dos" if postgres else "core.sqlite_dos"
    broker = "core.rabbitmq" if broker_config else "core.zeromq"
    with storage_errors(profile):
        loaded = ensure_profile(
            profile,
            storage=storage,
            storage_config=storage_config,
            broker=broker,
            broker_config=broker_config,
        )
        host = ensure_localhost(computer, workdir)
    prepend = (
        replay_code_prepend_text(AiiDAConfigDir.get() / "crystal-atomate" / profile / "replay")
        if replay
        else ""
    )
    codes = ensure_codes(host, commands["crystal"], commands["properties"], prepend_text=prepend)
    _console.print(f"profile [bold]{loaded.name}[/] ({loaded.storage_backend}, broker {broker})")
    _console.print(
        f"computer [bold]{host.label}[/] ({host.transport_type}, {host.scheduler_type}) in "
        f"{host.get_workdir()}"
    )
    for code in codes.values():
        _console.print(f"code [bold]{code.full_label}[/] -> {code.filepath_executable}")


def _load(profile: str | None) -> None:
    """Load ``profile`` (AiiDA's default when None), or exit with one line saying why not."""
    from crystal_atomate.aiida.errors import load_profile_or_fail

    with _user_errors():
        load_profile_or_fail(profile)


def _psql_config(
    profile: str, host: str, port: int, name: str | None, user: str, password: str
) -> dict:
    from aiida.manage.configuration.settings import AiiDAConfigDir

    repository = AiiDAConfigDir.get() / "repository" / profile
    return {
        "database_engine": "postgresql_psycopg",
        "database_hostname": host,
        "database_port": port,
        "database_name": name or profile,
        "database_username": user,
        "database_password": password,
        "repository_uri": f"file://{repository}",
    }


def _rabbitmq_config(host: str, port: int) -> dict:
    return {
        "broker_protocol": "amqp",
        "broker_username": "guest",
        "broker_password": "guest",
        "broker_host": host,
        "broker_port": port,
        "broker_virtual_host": "",
    }


@aiida_app.command()
def jobs(
    status: Annotated[
        str | None,
        typer.Option(
            help="Only this status: pending, queued, running, completed, failed, cancelled."
        ),
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many rows.")] = 50,
    profile: Annotated[str | None, typer.Option(help="Profile (default: AiiDA's default).")] = None,
) -> None:
    """CRYSTAL calculations in AiiDA with the terminal UI's status and energy."""
    from crystal_atomate.aiida.query import check_status, list_crystal_jobs

    with _user_errors():
        status = check_status(status)
    _load(profile)
    table = Table("PK", "Name", "Status", "Energy (Ha)", "Created", "Exit")
    for row in list_crystal_jobs(status, limit):
        energy = "" if row.energy_hartree is None else f"{row.energy_hartree:.10f}"
        style = _STATUS_STYLE.get(row.status, "white")
        exit_status = "" if row.exit_status is None else str(row.exit_status)
        table.add_row(str(row.pk), row.label, f"[{style}]{row.status}[/]", energy,
                      row.ctime.strftime("%Y-%m-%d %H:%M"), exit_status)
    _console.print(table)


@aiida_app.command("import-tui")
def import_tui(
    db: Annotated[
        Path | None, typer.Option(help="The UI's database (default: CRYSTAL_TUI_DB).")
    ] = None,
    profile: Annotated[str | None, typer.Option(help="Profile (default: AiiDA's default).")] = None,
) -> None:
    """Import the terminal UI's jobs into AiiDA nodes with their timestamps (no duplicates)."""
    from crystal_atomate.aiida.query import import_tui_jobs

    db = db or CrystalAtomateSettings().DB_FILE
    if not Path(db).is_file():
        raise typer.BadParameter(f"no database at {db}", param_hint="--db")
    _load(profile)
    summary = import_tui_jobs(db)
    _console.print(
        f"imported {summary.imported} job(s), updated {summary.updated}, {summary.unchanged} "
        "already in AiiDA, "
        f"{summary.ours} run through AiiDA"
    )

