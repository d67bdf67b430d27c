"""crystal_atomate flows on FireWorks: conversion, LaunchPads, launchers, and the UI's job list.

jobflow's ``flow_to_workflow`` does the conversion (one Firework per job, ``Response`` replace and
detour as FireWorks detours, ``stop_children`` as defused children). What we add:

* every CRYSTAL node gets its worker routing and resources as Firework spec keys (``_fworker``,
  ``_category``, ``_queueadapter``, ``_priority``) through jobflow's ``manager_config``, which
  jobflow passes on to the restarts our error handlers create, so a restart runs where its first
  attempt could;
* the job store travels serialised inside each Firework, so launchers on any machine write to the
  same ``CrystalMathJobStore`` (an absolute SQLite path) or MongoDB job store;
* the terminal UI's ``jobs`` table follows each job without any store pretending anything: rows
  become QUEUED when a flow is added (:func:`add_flows`), RUNNING when a launcher starts the job
  (:class:`TrackedJobFiretask`, which also queues the restarts it produces), COMPLETED or FAILED
  when the job document is written (the store's own mirror), and FAILED when the job raises before
  any document exists.
"""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from fireworks import FWAction, FWorker, LaunchPad, Workflow, explicit_serialize
from fireworks.utilities.fw_serializers import recursive_serialize, serialize_fw
from jobflow import Flow, Job, JobStore
from jobflow.core.flow import get_flow
from jobflow.managers.fireworks import JobFiretask, flow_to_workflow
from monty.json import jsanitize

from crystal_atomate.engines.fireworks_launchpad import embedded_launchpad, write_launchpad_yaml
from crystal_atomate.jobs.base import BaseCrystalMaker
from crystal_atomate.jobs.properties import BasePropertiesMaker

__all__ = [
    "DEFAULT_DB_DIR",
    "TrackedJobFiretask",
    "add_flows",
    "configure_crystal_jobs",
    "crystal_workflow",
    "is_crystal_job",
    "launcher_command",
    "open_launchpad",
    "launchpad_file",
    "start_launchers",
    "workflow_states",
    "write_fworker_yaml",
]

#: Where the embedded LaunchPad lives unless told otherwise (``CRYSTAL_ATOMATE_FW_DB`` overrides).
DEFAULT_DB_DIR = Path("~/.crystal_atomate/fireworks")
_DB_DIR_ENV = "CRYSTAL_ATOMATE_FW_DB"


def is_crystal_job(job: Job) -> bool:
    """Whether ``job`` runs the CRYSTAL or properties binary (as opposed to bookkeeping jobs)."""
    return isinstance(job.maker, (BaseCrystalMaker, BasePropertiesMaker))


def _spec_keys(
    fworker: str | None,
    category: str | None,
    resources: Mapping[str, Any] | None,
    priority: int | None,
) -> dict[str, Any]:
    keys: dict[str, Any] = {
        "_fworker": fworker,
        "_category": category,
        "_queueadapter": dict(resources) if resources else None,
        "_priority": priority,
    }
    return {key: value for key, value in keys.items() if value is not None}


def _jobs_of(flow: Flow | Job) -> list[Job]:
    return [job for job, _ in get_flow(flow).iterflow()]


def configure_crystal_jobs(
    flow: Flow | Job,
    fworker: str | None = None,
    category: str | None = None,
    resources: Mapping[str, Any] | None = None,
    priority: int | None = None,
) -> Flow | Job:
    """Put FireWorks routing and resources on every CRYSTAL job of ``flow`` (in place).

    ``fworker`` and ``category`` restrict which launchers may run the job (``my_fworker.yaml``'s
    ``name``/``category``); ``resources`` becomes ``_queueadapter`` (e.g. ``{"nodes": 1,
    "walltime": "04:00:00"}``) for ``qlaunch``; ``priority`` orders READY Fireworks. The keys go to
    ``manager_config``, which jobflow copies onto restarts and detours.
    """
    keys = _spec_keys(fworker, category, resources, priority)
    if keys:
        for job in _jobs_of(flow):
            if is_crystal_job(job):
                job.config.manager_config = {**job.config.manager_config, **keys}
    return flow


def _use_tracked_tasks(workflow: Workflow) -> Workflow:
    """Swap jobflow's ``JobFiretask`` for :class:`TrackedJobFiretask` in every Firework."""
    for firework in workflow.fws:
        firework.tasks = [
            TrackedJobFiretask(job=task["job"], store=task["store"])
            if type(task) is JobFiretask
            else task
            for task in firework.tasks
        ]
    return workflow


def crystal_workflow(
    flow: Flow | Job,
    store: JobStore | None = None,
    fworker: str | None = None,
    category: str | None = None,
    resources: Mapping[str, Any] | None = None,
    priority: int | None = None,
    **workflow_kwargs: Any,
) -> Workflow:
    """Build a FireWorks ``Workflow`` for a crystal_atomate flow.

    ``store`` is serialised into every Firework; ``None`` leaves the choice to each launcher's
    ``JOB_STORE`` setting, which is how results end up in different places by accident, so pass one.
    """
    configure_crystal_jobs(flow, fworker, category, resources, priority)
    return _use_tracked_tasks(flow_to_workflow(flow, store, **workflow_kwargs))


def _mark(
    store: JobStore | None, jobs: Iterable[Job], state: str, work_dir: str | None = None
) -> None:
    """Record ``state`` for ``jobs`` in the UI table when the store has one (CrystalMathJobStore).

    Other job stores have no UI table to keep up to date.
    """
    mark = getattr(store, "mark_job_state", None)
    if mark is None:
        return
    for job in jobs:
        workflow_id = job.hosts[-1] if job.hosts else None
        mark(job.uuid, state, work_dir=work_dir, name=job.name, workflow_id=workflow_id)


@explicit_serialize
class TrackedJobFiretask(JobFiretask):
    """jobflow's ``JobFiretask`` that also tells the UI's job list what happens to the job.

    RUNNING (with the launch directory) before the job starts; FAILED if it raises (no job
    document exists then, so the store's mirror cannot say it); QUEUED for the restarts and
    detours it adds to the workflow, which are tracked the same way.

    It also serialises the job strictly, as jobflow-remote does: jobflow's ``JobFiretask`` uses
    lenient ``jsanitize``, which turns pydantic settings (a Maker's ``BasisSet``) into their
    ``repr`` string, so the job read back by a launcher would no longer build its input.
    """

    @serialize_fw
    @recursive_serialize
    def to_dict(self) -> dict:
        """Serialise the task with the job sanitised strictly, so a launcher can rebuild its input.

        Returns
        -------
        dict
            FireWorks' task dictionary, the job as a strict ``jsanitize`` of ``Job.as_dict()``.
        """
        serialised = dict(self)
        serialised["job"] = jsanitize(
            serialised["job"].as_dict(), strict=True, enum_values=True, allow_bson=True
        )
        return serialised

    def run_task(self, fw_spec: dict) -> FWAction:
        """Run the job as ``JobFiretask`` does, its UI row marked RUNNING, then FAILED if it raises.

        Parameters
        ----------
        fw_spec
            The Firework's spec, passed on to ``JobFiretask.run_task``.

        Returns
        -------
        FWAction
            jobflow's action; the jobs of its detours and additions are marked QUEUED in the UI.
        """
        store = self.get("store")
        job: Job = self["job"]
        _mark(store, [job], "RUNNING", work_dir=os.getcwd())
        try:
            action = super().run_task(fw_spec)
        except BaseException:
            _mark(store, [job], "FAILED", work_dir=os.getcwd())
            raise
        for workflow in [*(action.detours or []), *(action.additions or [])]:
            _use_tracked_tasks(workflow)
            added = [task["job"] for fw in workflow.fws for task in fw.tasks if "job" in task]
            _mark(store, added, "QUEUED")
        return action


def add_flows(
    flows: Iterable[Flow | Job],
    launchpad: LaunchPad,
    store: JobStore | None = None,
    **workflow_kwargs: Any,
) -> dict[str, list[int]]:
    """Add each flow as a Workflow and mark its jobs QUEUED in the UI.

    Returns the Firework ids of each flow by flow uuid. ``workflow_kwargs`` are those of
    :func:`crystal_workflow`.
    """
    added: dict[str, list[int]] = {}
    if store is not None:
        store.connect()
    for item in flows:
        flow = get_flow(item)
        id_map = launchpad.add_wf(crystal_workflow(flow, store, **workflow_kwargs))
        added[flow.uuid] = sorted(id_map.values())
        _mark(store, _jobs_of(flow), "QUEUED")
    return added


def _db_dir(db_dir: str | Path | None) -> Path:
    return Path(db_dir or os.environ.get(_DB_DIR_ENV) or DEFAULT_DB_DIR).expanduser().absolute()


def launchpad_file(
    launchpad_yaml: str | Path | None = None, db_dir: str | Path | None = None
) -> Path:
    """Return the ``my_launchpad.yaml`` launchers use: the given one, else the embedded database's.

    The given one may point at MongoDB or any LaunchPad; the embedded database is in ``db_dir``
    (default ``~/.crystal_atomate/fireworks``).
    """
    if launchpad_yaml:
        return Path(launchpad_yaml).expanduser().absolute()
    directory = _db_dir(db_dir)
    return write_launchpad_yaml(directory, directory / "my_launchpad.yaml", strm_lvl="WARNING")


def open_launchpad(
    launchpad_yaml: str | Path | None = None, db_dir: str | Path | None = None
) -> LaunchPad:
    """Open the LaunchPad of ``launchpad_yaml`` if given, else the embedded one.

    The embedded server is started, and initialised on first use: a new directory needs no ``lpad
    reset``.
    """
    if launchpad_yaml:
        return LaunchPad.from_file(str(launchpad_yaml))
    launchpad = embedded_launchpad(_db_dir(db_dir), strm_lvl="WARNING")
    fresh = launchpad.fw_id_assigner.count_documents({}) == 0
    if fresh and launchpad.workflows.count_documents({}) == 0:
        launchpad.reset("", require_password=False)
    return launchpad


def write_fworker_yaml(
    path: str | Path, name: str = "crystal_atomate", category: str | list[str] = ""
) -> Path:
    """Write ``my_fworker.yaml`` for launchers running Fireworks routed to ``name`` or ``category``.

    It is FireWorks' own format, so ``rlaunch -w`` reads it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FWorker(name=name, category=category).to_file(str(path))
    return path


def launcher_command(
    launchpad_yaml: str | Path, fworker_yaml: str | Path | None = None, sleep: float = 1.0
) -> list[str]:
    """``rlaunch rapidfire`` until no Firework is READY or waiting on a running one.

    The short sleep matters with several launchers: one that finds only WAITING Fireworks (their
    parent runs in another launcher) otherwise sleeps FireWorks' default 60 s.
    """
    command = ["rlaunch", "-s", "-l", str(launchpad_yaml)]
    if fworker_yaml:
        command += ["-w", str(fworker_yaml)]
    return [*command, "rapidfire", "--sleep", f"{sleep:g}"]


def start_launchers(
    n: int,
    launchpad_yaml: str | Path,
    launch_dir: str | Path,
    fworker_yaml: str | Path | None = None,
    env: Mapping[str, str] | None = None,
) -> list[subprocess.Popen]:
    """Start ``n`` concurrent rapidfire launchers in ``launch_dir``.

    Their launch folders go there, their output to ``launcher-<i>.log``. Each runs in its own
    process group, so a caller can stop a launcher together with the CRYSTAL run it started.
    """
    launch_dir = Path(launch_dir)
    launch_dir.mkdir(parents=True, exist_ok=True)
    command = launcher_command(launchpad_yaml, fworker_yaml)
    processes = []
    for index in range(n):
        with open(launch_dir / f"launcher-{index}.log", "ab") as log:
            processes.append(
                subprocess.Popen(
                    command,
                    cwd=launch_dir,
                    env={**os.environ, **(env or {})},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    return processes


def workflow_states(launchpad: LaunchPad) -> Counter[str]:
    """How many Fireworks are in each state (READY, RUNNING, COMPLETED, FIZZLED, DEFUSED, ...)."""
    return Counter(doc["state"] for doc in launchpad.fireworks.find({}, {"state": 1, "_id": 0}))
