"""Create, idempotently, what running CRYSTAL through AiiDA needs: profile, computer, codes.

Used by ``crystal-atomate aiida setup`` and by the tests, so the tests exercise the very objects a
new user gets. Everything is looked up by label first; a second call returns what the first made.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path
from typing import Any

from aiida import orm
from aiida.common.exceptions import NotExistent

from crystal_atomate.aiida.errors import CodeMismatch, CrystalNotFound

__all__ = [
    "CODE_LABELS",
    "POLL_INTERVAL_SECONDS",
    "CodeMismatch",
    "ensure_code",
    "ensure_codes",
    "ensure_localhost",
    "ensure_profile",
    "install_code",
    "replay_prepend_text",
    "resolve_executables",
]

#: Code label -> (program, CalcJob plugin).
CODE_LABELS: dict[str, tuple[str, str]] = {
    "crystal": ("crystal", "crystal_atomate.crystal"),
    "properties": ("properties", "crystal_atomate.properties"),
}


POLL_OPTION = "runner.poll.interval"
#: How often an in-process work chain checks whether the CalcJobs it waits for have finished.
POLL_INTERVAL_SECONDS = 1


def ensure_profile(
    name: str,
    *,
    storage: str = "core.sqlite_dos",
    storage_config: dict[str, Any] | None = None,
    broker: str | None = "core.zeromq",
    broker_config: dict[str, Any] | None = None,
    email: str = "crystal-atomate@localhost",
) -> Any:
    """Load profile ``name``, creating it first if needed.

    Embedded SQLite + ZeroMQ by default, as ``verdi presto --use-zeromq``; pass ``core.psql_dos`` +
    ``core.rabbitmq`` for a scaled-out one.

    A work chain run in this process (no daemon, so no broker broadcast says a child finished)
    learns that its CalcJob finished by polling every ``runner.poll.interval`` (AiiDA's default:
    60 s): a restart work chain or a flow would idle a minute after each CalcJob. The profile,
    made here or found, gets :data:`POLL_INTERVAL_SECONDS` unless its owner set the option.
    """
    from aiida import load_profile
    from aiida.manage.configuration import create_profile, get_config

    config = get_config(create=True)
    if name not in config.profile_names:
        if storage == "core.sqlite_dos" and not storage_config:
            storage_config = {"filepath": str(Path(config.dirpath) / "repository" / name)}
        profile = create_profile(
            config,
            name=name,
            email=email,
            storage_backend=storage,
            storage_config=storage_config or {},
            broker_backend=broker,
            broker_config=broker_config,
        )
        profile.set_option("warnings.development_version", False)
        if config.default_profile_name is None:
            config.set_default_profile(name)
    else:
        profile = config.get_profile(name)
    if POLL_OPTION not in profile.options:
        profile.set_option(POLL_OPTION, POLL_INTERVAL_SECONDS)
    config.update_profile(profile)
    config.store()
    return load_profile(name, allow_switch=True)


def ensure_localhost(label: str = "localhost", workdir: str | Path | None = None) -> orm.Computer:
    """Return a configured ``core.local`` + ``core.direct`` computer.

    It polls without delay and without a login shell: local jobs finish in a second, and AiiDA's
    default 10 s poll interval, or sourcing the login profile for each of the ~10 commands of a job,
    would dominate every run.
    """
    try:
        computer = orm.load_computer(label)
    except NotExistent:
        workdir = Path(workdir or Path.home() / "aiida_run").expanduser().resolve()
        computer = orm.Computer(
            label=label,
            hostname="localhost",
            description="this machine (crystal-atomate aiida setup)",
            transport_type="core.local",
            scheduler_type="core.direct",
            workdir=str(workdir),
        ).store()
        computer.set_minimum_job_poll_interval(0.0)
        computer.set_default_mpiprocs_per_machine(1)
    if not computer.is_configured:
        computer.configure(safe_interval=0.0, use_login_shell=False)
    return computer


def ensure_code(
    label: str,
    computer: orm.Computer,
    command: str,
    plugin: str,
    prepend_text: str = "",
) -> orm.InstalledCode:
    """Return the code ``label@computer`` running ``command`` (resolved on this machine).

    An existing one must run the same executable.
    """
    executable = _resolve(command, plugin.rsplit(".", 1)[-1])
    return install_code(label, computer, executable, plugin, prepend_text)


def install_code(
    label: str,
    computer: orm.Computer,
    executable: str,
    plugin: str,
    prepend_text: str = "",
) -> orm.InstalledCode:
    """Return the code ``label@computer`` running ``executable``, created if missing.

    Parameters
    ----------
    label, computer
        Where the code is looked up, and made.
    executable
        Absolute path of the executable on ``computer`` (already checked by the caller).
    plugin
        The code's default CalcJob plugin.
    prepend_text
        Shell lines the code's jobs run first.

    Returns
    -------
    orm.InstalledCode
        The stored code.

    Raises
    ------
    CodeMismatch
        A code with that label runs another executable (codes are immutable in AiiDA).
    """
    try:
        code = orm.load_code(f"{label}@{computer.label}")
    except NotExistent:
        return orm.InstalledCode(
            label=label,
            computer=computer,
            filepath_executable=executable,
            default_calc_job_plugin=plugin,
            prepend_text=prepend_text,
            description=f"CRYSTAL {label} ({executable}) on {computer.label}",
        ).store()
    if str(code.filepath_executable) != executable:
        raise CodeMismatch(
            f"code {label}@{computer.label} runs {code.filepath_executable}, not {executable}",
            hint=f"set up another computer label with --computer, or delete the code first: "
            f"verdi code delete {label}@{computer.label}",
        )
    return code


def ensure_codes(
    computer: orm.Computer, crystal: str, properties: str, prefix: str = "", prepend_text: str = ""
) -> dict[str, orm.InstalledCode]:
    """Return the ``crystal`` and ``properties`` codes.

    Labels ``{prefix}crystal``, ``{prefix}properties``.
    """
    commands = {"crystal": crystal, "properties": properties}
    return {
        name: ensure_code(f"{prefix}{name}", computer, commands[name], plugin, prepend_text)
        for name, (_, plugin) in CODE_LABELS.items()
    }


def replay_prepend_text(plan: str | Path, reference_dir: str | Path | None = None) -> str:
    """Shell lines that point the replay executable at a plan.

    AiiDA jobs do not inherit the submitting shell's environment when the daemon runs them.
    """
    lines = [f"export CRYSTAL_ATOMATE_REPLAY_PLAN={shlex.quote(str(plan))}"]
    if reference_dir is not None:
        lines.append(f"export CRYSTAL_ATOMATE_REFERENCE_DIR={shlex.quote(str(reference_dir))}")
    return "\n".join(lines)


def resolve_executables(commands: dict[str, str]) -> dict[str, str]:
    """Return the absolute path of each program's command, checked before anything is created.

    The result is ``{"crystal": ..., "properties": ...}``.

    Raises
    ------
    CrystalNotFound
        A command is not an executable on this machine, with the options that fix it.
    """
    return {program: _resolve(command, program) for program, command in commands.items()}


def _resolve(command: str, program: str = "crystal") -> str:
    path = shutil.which(command)
    if path is None:
        raise CrystalNotFound(
            f"the {program} executable {command!r} is not on this machine's PATH",
            hint=f"pass --{program} PATH, set CRYSTAL_ATOMATE_{program.upper()}_CMD, or use "
                 "--replay (the recorded demo runs)",
        )
    return str(Path(path).resolve())
