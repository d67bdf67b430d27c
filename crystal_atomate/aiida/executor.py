"""Executor mode: a Maker's CRYSTAL run as an AiiDA CalcJob, for provenance under any manager.

``run_crystal(directory, executor="aiida")`` (registered in the ``crystal_atomate.executors``
entry-point group) hands the directory the Maker already wrote to a :class:`CrystalCalculation`
(``input_folder``) or a :class:`PropertiesCalculation`, runs it to the end on the loaded profile,
and copies every retrieved file back, so the Maker parses and restarts exactly as after a local run.
The task document gets the node's uuid (``calcs_reversed[0].run.aiida_uuid``); the node gets the
jobflow job's uuid (extra ``jobflow_uuid``), so either side leads to the other.

Inside a flow-mode work chain (:mod:`crystal_atomate.aiida.flow_mode`) the same call does not block:
it raises :class:`CalcJobPending` with the builder, the work chain submits it, and when the CalcJob
has finished it runs the job again, and this call then takes the finished node instead of running
one.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiida import orm
from aiida.engine import run_get_node

from crystal_atomate.aiida.calculations import (
    OUTPUT_FILE,
    CrystalCalculation,
    PropertiesCalculation,
)
from crystal_atomate.aiida.errors import ensure_loaded, resolve_code
from crystal_atomate.aiida.lineage import (
    JOBFLOW_DIRECTORY_EXTRA,
    find_step_calcjob,
    job_context,
    lineage_of,
    parent_remote,
)
from crystal_atomate.run import (
    JOB_NAME_ENV,
    CrystalRunError,
    CrystalRunRecord,
    Program,
    SchedulerJob,
)
from crystal_atomate.settings import CrystalAtomateSettings

__all__ = [
    "JOBFLOW_UUID_EXTRA",
    "CalcJobPending",
    "FinishedCalcJobs",
    "finished_calcjobs",
    "run_aiida",
    "use_aiida_executor",
]

JOBFLOW_UUID_EXTRA = "jobflow_uuid"
_DEFAULT_CODES: dict[str, str] = {"crystal": "crystal", "properties": "properties"}


class CalcJobPending(BaseException):
    """Describe this CRYSTAL run's CalcJob has yet to run.

    Raised by :func:`run_aiida` in a flow-mode work chain step, which submits ``builder`` and runs
    the job again once the CalcJob has finished.

    A ``BaseException``, like ``GeneratorExit``: no ``except Exception`` in a job function between
    ``run_crystal`` and the work chain may mistake it for a failure and swallow it.
    """

    def __init__(self, builder: Any) -> None:
        super().__init__(f"CalcJob {builder.metadata.get('label', '')} pending")
        self.builder = builder


@dataclass
class FinishedCalcJobs:
    """The CalcJobs a flow-mode work chain has already run for the job it is running.

    They are in the order the job asks for them; each ``run_aiida`` call takes the next one, or
    raises :class:`CalcJobPending`.
    """

    uuids: list[str]
    taken: int = field(default=0)

    def take(self, builder: Any) -> orm.CalcJobNode:
        """Return the next finished CalcJob; raise :class:`CalcJobPending` when none is left."""
        if self.taken == len(self.uuids):
            raise CalcJobPending(builder)
        self.taken += 1
        return orm.load_node(self.uuids[self.taken - 1])


_FINISHED: ContextVar[FinishedCalcJobs | None] = ContextVar(
    "crystal_atomate_finished_calcjobs", default=None
)


@contextmanager
def finished_calcjobs(uuids: list[str]) -> Iterator[FinishedCalcJobs]:
    """While open, :func:`run_aiida` takes these finished CalcJobs instead of running new ones."""
    token = _FINISHED.set(FinishedCalcJobs(list(uuids)))
    try:
        yield _FINISHED.get()
    finally:
        _FINISHED.reset(token)


def run_aiida(
    directory: str | Path = ".",
    *,
    program: Program = "crystal",
    mpi_procs: int = 1,
    job_name: str | None = None,
    settings: CrystalAtomateSettings | None = None,
    timeout: float | None = None,
    code: str | None = None,
    profile: str | None = None,
    options: dict[str, Any] | None = None,
) -> CrystalRunRecord:
    """Run ``program`` on the files in ``directory`` as a CalcJob and bring its files back.

    ``code`` is the AiiDA code label (default ``crystal`` / ``properties``, as made by
    ``crystal-atomate aiida setup``); ``profile`` the profile to load when none is loaded;
    ``options`` extra ``metadata.options`` (queue, account, ...).
    """
    del settings
    workdir = Path(directory).resolve()
    if not (workdir / "INPUT").is_file():
        raise CrystalRunError(f"No INPUT file in {workdir}")
    ensure_loaded(profile)
    aiida_code = resolve_code(code or _DEFAULT_CODES[program])
    builder = _builder(program, workdir, aiida_code)
    builder.metadata.label = job_name or workdir.name
    builder.metadata.options = _options(mpi_procs, timeout, options)
    if job_name:
        builder.metadata.options["environment_variables"] = {JOB_NAME_ENV: job_name}
    node, elapsed = _run_or_take(builder)
    _tag(node, job_name, workdir)
    _copy_back(node, workdir)
    if not (workdir / OUTPUT_FILE).is_file() or (workdir / OUTPUT_FILE).stat().st_size == 0:
        raise CrystalRunError(
            f"AiiDA {node.process_label}<{node.pk}> left no output in {workdir}: "
            f"{node.exit_message}"
        )
    return CrystalRunRecord(
        command=f"aiida:{aiida_code.full_label}",
        program=program,
        mpi=mpi_procs > 1,
        exit_code=0,
        wall_time_seconds=elapsed,
        output_file=OUTPUT_FILE,
        executor="aiida",
        aiida_uuid=node.uuid,
        started_at=node.ctime,
        scheduler=_scheduler_job(node),
    )


def _scheduler_job(node: orm.CalcJobNode) -> SchedulerJob | None:
    """Return the batch job the CalcJob ran as, named by its computer.

    The UI's cluster of that name.
    """
    job_id = node.get_job_id()
    if not job_id:
        return None
    options = node.get_options()
    return SchedulerJob(
        job_id=str(job_id),
        cluster=node.computer.label,
        queue=options.get("queue_name"),
        work_dir=node.get_remote_workdir(),
    )


def _run_or_take(builder: Any) -> tuple[orm.CalcJobNode, float]:
    """Run the CalcJob here and now, or, in flow mode, take the one the work chain ran.

    Its wall time then from the node's creation to its last change.
    """
    finished = _FINISHED.get()
    if finished is not None:
        node = finished.take(builder)
        return node, (node.mtime - node.ctime).total_seconds()
    start = time.perf_counter()
    _, node = run_get_node(builder)
    return node, time.perf_counter() - start


def _builder(program: Program, workdir: Path, code: orm.AbstractCode) -> Any:
    """CrystalCalculation on the written directory, or properties on its deck and fort.9."""
    if program == "crystal":
        builder = CrystalCalculation.get_builder()
        structure, prev_dir = job_context()
        lineage = lineage_of(workdir, code, structure, prev_dir)
        builder.input_folder = _folder(workdir, skip=lineage.staged_from_parent)
        for name, node in lineage.inputs.items():
            builder[name] = node
    else:
        builder = PropertiesCalculation.get_builder()
        builder.deck = orm.SinglefileData(workdir / "INPUT")
        builder.parent_folder = _properties_parent(workdir, code)
    builder.code = code
    return builder


def _properties_parent(workdir: Path, code: orm.AbstractCode) -> orm.RemoteData | orm.FolderData:
    """Return what a properties CalcJob stages its fort.9 from.

    The SCF CalcJob's remote folder (its fort.9, and the link to it) when the job's ``prev_dir``
    was run through AiiDA on this computer; else the fort.9 the Maker copied, as a folder.
    """
    _, prev_dir = job_context()
    remote = parent_remote(find_step_calcjob(prev_dir) if prev_dir else None, code)
    if remote is not None:
        return remote
    parent = orm.FolderData()
    parent.base.repository.put_object_from_file(str(workdir / "fort.9"), "fort.9")
    return parent


def _folder(workdir: Path, skip: set[str]) -> orm.FolderData:
    """Return the written files, but those the parent folder stages.

    Restart files stay on the computer.
    """
    folder = orm.FolderData()
    for path in sorted(workdir.iterdir()):
        if path.is_file() and path.name not in skip:
            folder.base.repository.put_object_from_file(str(path), path.name)
    return folder


def _options(mpi_procs: int, timeout: float | None, extra: dict[str, Any] | None) -> dict[str, Any]:
    """Resources as ``run_crystal`` would use them, and every file retrieved.

    The Maker needs fort.9, HESSOPT.DAT, optc* ... in its directory afterwards.
    """
    options: dict[str, Any] = {
        "resources": {"num_machines": 1, "num_mpiprocs_per_machine": mpi_procs},
        "withmpi": mpi_procs > 1,
        "additional_retrieve_list": ["*"],
    }
    if timeout is not None:
        options["max_wallclock_seconds"] = int(timeout)
    return options | dict(extra or {})


def _tag(node: orm.ProcessNode, job_name: str | None, workdir: Path) -> None:
    """Return the jobflow side of the provenance, on the node."""
    from jobflow import CURRENT_JOB

    extras = {JOBFLOW_DIRECTORY_EXTRA: str(workdir)}
    if job_name:
        extras["jobflow_name"] = job_name
    if CURRENT_JOB.job is not None:
        extras[JOBFLOW_UUID_EXTRA] = CURRENT_JOB.job.uuid
        extras["jobflow_index"] = CURRENT_JOB.job.index
    node.base.extras.set_many(extras)


def _copy_back(node: orm.ProcessNode, workdir: Path) -> None:
    """Every retrieved file (but AiiDA's own submit script and scheduler logs) into ``workdir``."""
    if "retrieved" not in node.outputs:
        return
    with node.outputs.retrieved.base.repository.as_path() as retrieved:
        for path in retrieved.iterdir():
            if path.is_file() and not path.name.startswith("_"):
                shutil.copyfile(path, workdir / path.name)


def use_aiida_executor(
    flow: Any, code: str | None = None, profile: str | None = None, **options: Any
) -> Any:
    """Powerup.

    Run every CRYSTAL and properties step of ``flow`` (a Flow, Job or Maker) as an AiiDA CalcJob.
    ``code`` overrides the crystal code label (the properties code stays ``properties``).
    """
    from crystal_atomate.jobs.base import BaseCrystalMaker
    from crystal_atomate.jobs.properties import BasePropertiesMaker
    from crystal_atomate.powerups import update_run_crystal_kwargs

    common: dict[str, Any] = {"executor": "aiida"}
    if profile is not None:
        common["profile"] = profile
    if options:
        common["options"] = options
    flow = update_run_crystal_kwargs(
        flow, common | ({"code": code} if code else {}), class_filter=BaseCrystalMaker
    )
    return update_run_crystal_kwargs(flow, common, class_filter=BasePropertiesMaker)
