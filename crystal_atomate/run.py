"""Run the CRYSTAL and properties executables in a directory that already holds their input files.

CRYSTAL exits with status 0 even on fatal errors, and its parallel builds write the output to
standard error, so this module only *runs* the program and records what happened; whether the
calculation succeeded is decided by parsing the output (see :mod:`crystal_atomate.io.outputs`).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from crystal_atomate.errors import OperationFailed
from crystal_atomate.settings import CrystalAtomateSettings

__all__ = [
    "CLUSTER_ENV",
    "OUTPUT_FILE",
    "UI_INPUT_FILE",
    "UI_OUTPUT_FILE",
    "CrystalExecutableNotFound",
    "check_executable",
    "CrystalRunError",
    "CrystalRunRecord",
    "SchedulerJob",
    "crystal_command",
    "load_executor",
    "run_crystal",
    "run_local",
    "scheduler_job",
]

OUTPUT_FILE = "OUTPUT"
#: What the terminal UI opens in a job folder: the deck (its input preview) and the output
#: (its results summary and log); symbolic links to CRYSTAL's own ``INPUT`` and ``OUTPUT``.
UI_INPUT_FILE = "input.d12"
UI_OUTPUT_FILE = "output.out"
_STDERR_FILE = "crystal.stderr"
JOB_NAME_ENV = "CRYSTAL_ATOMATE_JOB_NAME"

Program = Literal["crystal", "properties"]


class CrystalExecutableNotFound(OperationFailed, FileNotFoundError):
    """The configured CRYSTAL command is not on this machine."""


class CrystalRunError(RuntimeError):
    """The executable could not produce an output at all (it did not start, or wrote nothing)."""


#: Set by the cluster configurations we write (FireWorks queue adapter, jobflow-remote worker):
#: the CrystalMath UI's name of the cluster a job runs on, so its ``remote_jobs`` row can name it.
CLUSTER_ENV = "CRYSTAL_ATOMATE_CLUSTER"


class SchedulerJob(BaseModel):
    """The batch-scheduler job a run went through: what the UI's ``remote_jobs`` table records."""

    job_id: str = Field(description="The scheduler's job id (SLURM_JOB_ID).")
    cluster: str | None = Field(
        None, description="The UI's cluster name, else the scheduler's own."
    )
    queue: str | None = Field(None, description="Partition or queue.")
    nodes: str | None = Field(None, description="The node list.")
    work_dir: str | None = Field(None, description="Where the job ran, on the cluster.")


def scheduler_job(
    env: Mapping[str, str], work_dir: str | Path | None = None
) -> SchedulerJob | None:
    """Identify the SLURM job this process runs in, from the variables SLURM sets in a job.

    Parameters
    ----------
    env
        The environment (``os.environ``).
    work_dir
        Where the run happens.

    Returns
    -------
    SchedulerJob or None
        None outside a SLURM job.
    """
    job_id = env.get("SLURM_JOB_ID")
    if not job_id:
        return None
    return SchedulerJob(
        job_id=job_id,
        cluster=env.get(CLUSTER_ENV) or env.get("SLURM_CLUSTER_NAME"),
        queue=env.get("SLURM_JOB_PARTITION"),
        nodes=env.get("SLURM_JOB_NODELIST"),
        work_dir=str(work_dir) if work_dir is not None else None,
    )


class CrystalRunRecord(BaseModel):
    """What one execution did: recorded in the task document's run statistics."""

    command: str
    program: Program
    mpi: bool
    exit_code: int
    wall_time_seconds: float
    output_file: str = Field(description="Relative name of the file holding the program's output.")
    executor: str = Field("local", description="Who ran it (see run_crystal's executor).")
    aiida_uuid: str | None = Field(
        None, description="The AiiDA CalcJob node, with the aiida executor."
    )
    started_at: datetime | None = Field(None, description="When the program started (UTC).")
    scheduler: SchedulerJob | None = Field(None, description="The batch job it ran in, if any.")


def crystal_command(
    program: Program, mpi_procs: int, settings: CrystalAtomateSettings | None = None
) -> tuple[str, bool]:
    """Return the command line and whether it is a parallel build (reads INPUT, writes stderr)."""
    settings = settings or CrystalAtomateSettings()
    if program == "crystal":
        serial, parallel = settings.CRYSTAL_CMD, settings.CRYSTAL_MPI_CMD
    else:
        serial, parallel = settings.PROPERTIES_CMD, settings.PROPERTIES_MPI_CMD
    if mpi_procs > 1 and parallel:
        return parallel.replace("{nprocs}", str(mpi_procs)), True
    return serial, False


def _check_executable(command: str, program: Program) -> None:
    executable = shlex.split(command)[0]
    if shutil.which(executable) is None:
        setting = "CRYSTAL_CMD" if program == "crystal" else "PROPERTIES_CMD"
        raise CrystalExecutableNotFound(
            f"CRYSTAL executable {executable!r} not found (CRYSTAL_ATOMATE_{setting} names no "
            "program on PATH)",
            hint=f"set CRYSTAL_ATOMATE_{setting} (or {setting} in ~/.crystal_atomate.yaml) to your "
            f"{program} binary, or try 'crystal-atomate demo', which replays recorded runs",
        )


def check_executable(program: Program = "crystal") -> None:
    """Fail now, not inside a queued job, when the serial ``program`` is not on this machine.

    Raises
    ------
    CrystalExecutableNotFound
        Naming the command and the setting to change.
    """
    _check_executable(crystal_command(program, 1)[0], program)


EXECUTOR_GROUP = "crystal_atomate.executors"


@cache
def load_executor(name: str) -> Callable[..., CrystalRunRecord]:
    """Load the executor ``name`` of the ``crystal_atomate.executors`` entry-point group.

    Engines plug in here (``aiida`` runs the directory as an AiiDA CalcJob), so Makers select one by
    name in ``run_crystal_kwargs`` and never import an engine themselves.
    """
    found = entry_points(group=EXECUTOR_GROUP, name=name)
    if not found:
        known = sorted(point.name for point in entry_points(group=EXECUTOR_GROUP))
        raise ValueError(f"Unknown executor {name!r}; installed executors: {known}")
    return next(iter(found)).load()


def run_crystal(
    directory: str | Path = ".", *, executor: str = "local", **kwargs
) -> CrystalRunRecord:
    """Run CRYSTAL in ``directory`` with ``executor`` (``local``: :func:`run_local`).

    Every executor leaves the program's files in ``directory``, so parsing and restarts do not
    depend on it.
    """
    if executor == "local":
        record = run_local(directory, **kwargs)
    else:
        record = load_executor(executor)(directory, **kwargs)
    link_ui_files(Path(directory))
    return record


def link_ui_files(directory: Path) -> None:
    """Give the UI its ``input.d12`` and ``output.out`` beside CRYSTAL's ``INPUT`` and ``OUTPUT``.

    Relative symbolic links, not copies: no second copy of a large output, and they move with
    the folder. A regular file of that name (written by the UI or a user) is left alone.

    Parameters
    ----------
    directory
        The job folder, after the run.
    """
    for name, target in ((UI_INPUT_FILE, "INPUT"), (UI_OUTPUT_FILE, OUTPUT_FILE)):
        link = directory / name
        if link.exists() and not link.is_symlink():
            continue
        link.unlink(missing_ok=True)
        link.symlink_to(target)


def run_local(
    directory: str | Path = ".",
    *,
    program: Program = "crystal",
    mpi_procs: int = 1,
    job_name: str | None = None,
    settings: CrystalAtomateSettings | None = None,
    timeout: float | None = None,
) -> CrystalRunRecord:
    """Run ``program`` in ``directory`` on its ``INPUT`` file; the output goes to ``OUTPUT``.

    Serial builds read the deck on standard input and write standard output; parallel builds
    (``Pcrystal``, ``MPPcrystal``, ``Pproperties``) read ``INPUT`` and write standard error, so for
    them both streams go to ``OUTPUT``. ``job_name`` is exported as ``CRYSTAL_ATOMATE_JOB_NAME`` for
    wrappers (the replay executable uses it to pick the recorded run).
    """
    settings = settings or CrystalAtomateSettings()
    workdir = Path(directory).resolve()
    deck = workdir / "INPUT"
    if not deck.is_file():
        raise CrystalRunError(f"No INPUT file in {workdir}")
    if program == "properties" and not (workdir / "fort.9").is_file():
        raise CrystalRunError(f"properties needs the wavefunction fort.9 in {workdir}")
    command, mpi = crystal_command(program, mpi_procs, settings)
    _check_executable(command, program)
    env = dict(os.environ, OMP_NUM_THREADS=str(settings.CRYSTAL_OMP_THREADS))
    if job_name:
        env[JOB_NAME_ENV] = job_name
    started_at = datetime.now(UTC)
    start = time.perf_counter()
    with _run_directory(workdir, settings.SCRATCH_DIR) as rundir:
        try:
            returncode = _execute(command, mpi, rundir, env, timeout)
        except subprocess.TimeoutExpired as exc:
            raise CrystalRunError(
                f"{command!r} was still running after its time limit of {timeout:g} s and was "
                f"killed; its output so far is in {workdir / OUTPUT_FILE}"
            ) from exc
    elapsed = time.perf_counter() - start
    if (workdir / OUTPUT_FILE).stat().st_size == 0:
        raise CrystalRunError(
            f"{command!r} wrote no output in {workdir} (exit code {returncode}): "
            f"{_stderr_tail(workdir)}"
        )
    return CrystalRunRecord(
        command=command,
        program=program,
        mpi=mpi,
        exit_code=returncode,
        wall_time_seconds=elapsed,
        output_file=OUTPUT_FILE,
        started_at=started_at,
        scheduler=scheduler_job(os.environ, workdir),
    )


def _execute(
    command: str, mpi: bool, rundir: Path, env: dict[str, str], timeout: float | None
) -> int:
    """Run the program once in ``rundir``; return its exit code (CRYSTAL sets 0 even on errors)."""
    with open(rundir / "INPUT", "rb") as stdin, open(rundir / OUTPUT_FILE, "wb") as out:
        stderr_target = subprocess.STDOUT if mpi else open(rundir / _STDERR_FILE, "wb")
        try:
            proc = subprocess.run(
                shlex.split(command),
                cwd=rundir,
                stdin=subprocess.DEVNULL if mpi else stdin,
                stdout=out,
                stderr=stderr_target,
                env=env,
                timeout=timeout,
                check=False,
            )
        finally:
            if stderr_target is not subprocess.STDOUT:
                stderr_target.close()
    return proc.returncode


@contextmanager
def _run_directory(workdir: Path, scratch_root: Path | None) -> Iterator[Path]:
    """Run in place, or in a private folder under ``scratch_root`` that is copied back.

    The files are copied back even when the run is interrupted, so a killed job still leaves its
    output and optc files.
    """
    if scratch_root is None:
        yield workdir
        return
    scratch_root.mkdir(parents=True, exist_ok=True)
    rundir = Path(tempfile.mkdtemp(prefix="crystal-", dir=scratch_root))
    shutil.copytree(workdir, rundir, dirs_exist_ok=True)
    try:
        yield rundir
    finally:
        shutil.copytree(rundir, workdir, dirs_exist_ok=True)
        shutil.rmtree(rundir, ignore_errors=True)


def _stderr_tail(workdir: Path, lines: int = 20) -> str:
    path = workdir / _STDERR_FILE
    if not path.is_file():
        return "no standard error recorded"
    return (
        "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) or "standard error empty"
    )
