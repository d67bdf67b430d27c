"""Remote AiiDA computers: a cluster over SSH with a batch scheduler, and CRYSTAL codes on it.

``crystal-atomate aiida computer add`` and the cluster tests both call :func:`ensure_ssh_computer`
and :func:`ensure_remote_code`, so the tests exercise what a user gets. A code's executable is
checked over the computer's own transport: the CRYSTAL binary lives on the cluster, and whether it
exists on the machine that runs AiiDA says nothing about it.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from aiida import orm
from aiida.common.exceptions import NotExistent

from crystal_atomate.aiida.errors import AiidaUserError
from crystal_atomate.aiida.setup import install_code
from crystal_atomate.errors import EXIT_USAGE
from crystal_atomate.stores.ui_clusters import UICluster

__all__ = [
    "ClusterComputer",
    "ComputerMismatch",
    "RemoteExecutableMissing",
    "check_computer",
    "cluster_from_ui",
    "ensure_remote_code",
    "ensure_ssh_computer",
]


class ComputerMismatch(AiidaUserError):
    """A computer with this label exists with other connection settings (AiiDA keeps them fixed)."""

    exit_code: ClassVar[int] = EXIT_USAGE


class RemoteExecutableMissing(AiidaUserError, FileNotFoundError):
    """The executable a code would run is not a file on the remote computer."""

    exit_code: ClassVar[int] = EXIT_USAGE


@dataclass(frozen=True)
class ClusterComputer:
    """How to reach a cluster and how to run there: what ``aiida computer add`` asks for.

    Parameters
    ----------
    label
        The AiiDA computer label.
    host, port, username, key_filename
        The SSH login (key-only; ``key_filename`` an absolute path on this machine).
    workdir
        Where AiiDA makes each calculation's folder on the cluster (``{username}`` is expanded).
    scheduler
        An AiiDA scheduler plugin: ``core.slurm`` (default), ``core.pbspro``, ``core.direct`` ...
    transport
        ``core.ssh`` (paramiko; port and key taken from here) or ``core.ssh_async`` (OpenSSH; host
        entry from ``~/.ssh/config``).
    mpirun_command
        How a parallel run starts (``srun`` under SLURM).
    mpiprocs_per_machine
        Default MPI processes per node; ``None`` leaves it to each job's resources.
    poll_interval
        Minimum seconds between two scheduler queries (AiiDA's default 10 s suits busy clusters).
    prepend_text
        Shell lines every job runs first (``module load crystal/23``).
    """

    label: str
    host: str
    username: str
    workdir: str
    port: int = 22
    key_filename: str | None = None
    scheduler: str = "core.slurm"
    transport: str = "core.ssh"
    mpirun_command: str = "srun"
    mpiprocs_per_machine: int | None = None
    poll_interval: float = 10.0
    safe_interval: float = 1.0
    prepend_text: str = ""
    description: str = field(default="")


def ensure_ssh_computer(spec: ClusterComputer) -> orm.Computer:
    """Create, configure for the current user, or check the computer ``spec.label``.

    Parameters
    ----------
    spec
        The cluster's connection and scheduler settings.

    Returns
    -------
    orm.Computer
        The stored, configured computer.

    Raises
    ------
    ComputerMismatch
        A computer with that label exists for another host, scheduler or transport.
    """
    try:
        computer = orm.load_computer(spec.label)
    except NotExistent:
        computer = _store_computer(spec)
    _check_same(computer, spec)
    if not computer.is_configured:
        computer.configure(**_auth_params(spec))
    return computer


def ensure_remote_code(
    label: str,
    computer: orm.Computer,
    executable: str,
    plugin: str,
    prepend_text: str = "",
) -> orm.InstalledCode:
    """Return the code ``label@computer`` running ``executable``, checked to exist on ``computer``.

    Parameters
    ----------
    label
        The code label (``crystal``, ``Pcrystal``, ``properties``).
    computer
        The remote computer the executable lives on.
    executable
        Absolute path of the executable on that computer.
    plugin
        The default CalcJob plugin of the code.
    prepend_text
        Shell lines the code's jobs run first.

    Returns
    -------
    orm.InstalledCode
        The stored code (an existing one with the same executable is returned as it is).

    Raises
    ------
    RemoteExecutableMissing
        ``executable`` is not a file on ``computer``.
    CodeMismatch
        A code with that label runs another executable there.
    """
    _check_remote_file(computer, executable)
    return install_code(label, computer, executable, plugin, prepend_text)


def _store_computer(spec: ClusterComputer) -> orm.Computer:
    """Store a new computer from ``spec``, with its poll interval and default MPI processes."""
    computer = orm.Computer(
        label=spec.label,
        hostname=spec.host,
        description=spec.description or f"{spec.scheduler} cluster at {spec.host}",
        transport_type=spec.transport,
        scheduler_type=spec.scheduler,
        workdir=spec.workdir,
    ).store()
    computer.set_mpirun_command(spec.mpirun_command.split())
    computer.set_minimum_job_poll_interval(spec.poll_interval)
    if spec.mpiprocs_per_machine is not None:
        computer.set_default_mpiprocs_per_machine(spec.mpiprocs_per_machine)
    if spec.prepend_text:
        computer.set_prepend_text(spec.prepend_text)
    return computer


def _check_same(computer: orm.Computer, spec: ClusterComputer) -> None:
    """Refuse to reuse a computer whose host, scheduler or transport differ from ``spec``."""
    stored = (computer.hostname, computer.scheduler_type, computer.transport_type)
    wanted = (spec.host, spec.scheduler, spec.transport)
    if stored != wanted:
        raise ComputerMismatch(
            f"computer {spec.label!r} is {stored[0]} ({stored[1]}, {stored[2]}), not "
            f"{wanted[0]} ({wanted[1]}, {wanted[2]}): choose another label"
        )


def _auth_params(spec: ClusterComputer) -> dict[str, object]:
    """Transport settings for ``computer.configure``: key-only login, no host-key prompt."""
    params: dict[str, object] = {"safe_interval": spec.safe_interval, "use_login_shell": False}
    if spec.transport == "core.ssh":
        params |= {
            "username": spec.username,
            "port": spec.port,
            "look_for_keys": spec.key_filename is None,
            "key_filename": str(Path(spec.key_filename).resolve()) if spec.key_filename else "",
            "key_policy": "AutoAddPolicy",
            "timeout": 30,
        }
    else:
        params["host"] = spec.host
    return params


def _check_remote_file(computer: orm.Computer, executable: str) -> None:
    """Raise unless ``executable`` is a file on ``computer``, asked over its transport."""
    with computer.get_transport() as transport:
        if not transport.isfile(executable):
            raise RemoteExecutableMissing(
                f"{executable} is not a file on computer {computer.label!r} ({computer.hostname})"
            )


def cluster_from_ui(cluster: UICluster, workdir: str | None = None) -> ClusterComputer:
    """Describe as an AiiDA computer a cluster the CrystalMath UI defined.

    Parameters
    ----------
    cluster
        The UI's cluster row (:func:`crystal_atomate.stores.ui_clusters.read_ui_cluster`).
    workdir
        Where calculations run on the cluster; default ``/tmp/{username}/aiida_run`` beside nothing
        the UI keeps (its rows name no scratch folder).

    Returns
    -------
    ClusterComputer
        SLURM for the UI's ``slurm`` clusters, direct execution for its plain ``ssh`` ones; the UI's
        setup commands become the computer's prepend text.
    """
    return ClusterComputer(
        label=cluster.name,
        host=cluster.hostname,
        port=cluster.port,
        username=cluster.username,
        key_filename=cluster.key_file,
        workdir=workdir or "/tmp/{username}/aiida_run",
        scheduler="core.slurm" if cluster.kind == "slurm" else "core.direct",
        mpirun_command="srun" if cluster.kind == "slurm" else "mpirun -np {tot_num_mpiprocs}",
        prepend_text="\n".join(cluster.setup_commands),
        description=f"from the CrystalMath UI's cluster {cluster.name!r}",
    )


def check_computer(computer: orm.Computer) -> list[str]:
    """Run the checks of ``verdi computer test``, returning what passed.

    Parameters
    ----------
    computer
        A stored, configured computer.

    Returns
    -------
    list[str]
        One line per check: login, scheduler query, work directory written and removed.

    Raises
    ------
    OSError
        The login, the scheduler query or the work directory failed (the message says which).
    """
    user = orm.User.collection.get_default()
    workdir = computer.get_workdir().format(
        username=computer.get_configuration(user).get("username", "")
    )
    done = []
    with computer.get_transport() as transport:
        done.append(f"logged in to {computer.hostname} with {computer.transport_type}")
        scheduler = computer.get_scheduler()
        scheduler.set_transport(transport)
        jobs = scheduler.get_jobs(as_dict=True)
        done.append(f"{computer.scheduler_type} answers ({len(jobs)} jobs in the queue)")
        transport.makedirs(workdir, ignore_existing=True)
        probe = f"{workdir.rstrip('/')}/.crystal_atomate_probe"
        with tempfile.NamedTemporaryFile("w", suffix=".probe") as handle:
            handle.write("ok\n")
            handle.flush()
            transport.putfile(handle.name, probe)
        transport.remove(probe)
        done.append(f"work directory {workdir} is writable")
    return done

