"""crystal_atomate flows on jobflow-remote: the project, submission, and the UI's job list.

The project (:func:`project_config`, written by ``crystal-atomate remote init``) has

* the queue on the embedded database (``EmbeddedMongoStore``): no MongoDB server;
* the job store in the terminal UI's SQLite file: the same ``outputs``/``outputs_blobs``
  collections ``CrystalMathJobStore`` uses, so documents written by the runner land where
  ``run_locally`` and FireWorks put theirs, and the store's mirror fills the UI's ``jobs`` row in
  the same transaction, once the blobs the document names are stored (the runner writes them
  first; see :mod:`crystal_atomate.stores.tui_completion`). jobflow-remote rebuilds a job store
  only from a plain ``JobStore`` dict (any other ``@class`` is read as a ``type:`` spec), so the
  section is a ``JobStore`` over the very store pair ``CrystalMathJobStore`` builds
  (``UIDocsStore``, ``UIBlobStore``), not a copy or a mirror of it;
* a local shell worker, and an exec config (``crystal``) exporting the CRYSTAL commands. The
  worker runs each job with jobflow-remote's own ``jf -fe execution run``. The warm executor
  (:mod:`crystal_atomate.engines.remote_exec`: jobs forked from a server that imported
  jobflow-remote and crystal_atomate once) is opt-in (``warm_executor=True``, ``remote init
  --warm-executor``): it saves the seconds of imports per job, noise beside a real CRYSTAL run,
  at the price of a long-lived process whose limits and state the jobs inherit.

The UI's table follows a job as far as jobflow-remote lets an outsider see it: QUEUED at
submission (:func:`submit_flows`), COMPLETED or FAILED when the runner has stored the job
document and its blobs, and the rest (RUNNING, a worker-side exception, a restart queued, a
rerun) when :func:`sync_ui_states` reads the queue, as ``crystal-atomate remote status`` does.
jobflow-remote has no hook in its runner or worker to report states sooner.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from jobflow import Flow, Job, JobStore
from jobflow.core.flow import get_flow
from jobflow_remote.config.base import Project
from jobflow_remote.config.manager import ConfigManager
from jobflow_remote.jobs.jobcontroller import JobController
from jobflow_remote.jobs.state import JobState
from monty.json import jsanitize

from crystal_atomate.engines.remote_exec import execution_command
from crystal_atomate.engines.remote_store import project_store_config
from crystal_atomate.settings import CrystalAtomateSettings
from crystal_atomate.stores.jobstore import CrystalMathJobStore
from crystal_atomate.stores.sqlite_store import SQLiteStore

__all__ = [
    "CRYSTAL_EXEC_CONFIG",
    "DEFAULT_DB_DIR",
    "DEFAULT_PROJECT",
    "FailedJob",
    "LOCAL_WORKER",
    "RUNNER_DELAYS",
    "crystal_exec_config",
    "failed_jobs",
    "load_project",
    "project_config",
    "projects_folder",
    "runner_delays",
    "submit_flows",
    "sync_ui_states",
    "ui_jobstore_config",
    "ui_store",
    "warm_execution_command",
    "write_project",
]

DEFAULT_PROJECT = "crystal_atomate"
DEFAULT_DB_DIR = Path("~/.crystal_atomate/jobflow-remote")
LOCAL_WORKER = "local_shell"
CRYSTAL_EXEC_CONFIG = "crystal"


def runner_delays(seconds: float) -> dict[str, float]:
    """Return the runner's polling delays: ``seconds`` between the steps a job goes through.

    The slower bookkeeping loops wait five times that.
    """
    step, slow = seconds, 5 * seconds
    return {
        "delay_checkout": step,
        "delay_check_run_status": step,
        "delay_advance_status": step,
        "delay_refresh_limited": slow,
        "delay_update_batch": slow,
    }


#: For a workstation queue; jobflow-remote's defaults (30 s and more) are meant for cluster
#: schedulers and would leave a 2 s CRYSTAL job waiting half a minute at each step.
RUNNER_DELAYS = runner_delays(1)

_UI_STATUS = {
    JobState.WAITING: "QUEUED",
    JobState.READY: "QUEUED",
    JobState.CHECKED_OUT: "QUEUED",
    JobState.UPLOADED: "QUEUED",
    JobState.SUBMITTED: "QUEUED",
    JobState.BATCH_SUBMITTED: "QUEUED",
    JobState.PAUSED: "QUEUED",
    JobState.RUNNING: "RUNNING",
    JobState.BATCH_RUNNING: "RUNNING",
    JobState.RUN_FINISHED: "RUNNING",
    JobState.DOWNLOADED: "RUNNING",
    JobState.REMOTE_ERROR: "FAILED",
    JobState.FAILED: "FAILED",
    JobState.STOPPED: "CANCELLED",
    JobState.USER_STOPPED: "CANCELLED",
}


def projects_folder() -> Path:
    """Where ``jf`` looks for project files: ``JFREMOTE_PROJECTS_FOLDER``, else ``~/.jfremote``."""
    return Path(os.environ.get("JFREMOTE_PROJECTS_FOLDER", "~/.jfremote")).expanduser()


def ui_jobstore_config(db_file: str | Path | None = None) -> dict[str, Any]:
    """Build the ``jobstore`` section: a plain ``JobStore`` over ``CrystalMathJobStore``'s stores.

    Serialised strictly so the YAML holds no Python objects (``last_updated_type`` stays a monty
    enum dict that decodes back to maggma's ``DateTimeFormat``).
    """
    ui = CrystalMathJobStore(db_file)
    plain = JobStore(ui.docs_store, additional_stores=ui.additional_stores, save=ui.save)
    return jsanitize(plain.as_dict(), strict=True)


def crystal_exec_config(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Build the ``crystal`` exec config: this machine's CRYSTAL commands, plus ``env``.

    ``env`` (e.g. the replay's plan and commands) is exported before each job runs on the worker.
    """
    settings = CrystalAtomateSettings()
    export = {
        "CRYSTAL_ATOMATE_CRYSTAL_CMD": settings.CRYSTAL_CMD,
        "CRYSTAL_ATOMATE_PROPERTIES_CMD": settings.PROPERTIES_CMD,
        **dict(env or {}),
    }
    return {CRYSTAL_EXEC_CONFIG: {"export": export}}


def project_config(
    name: str = DEFAULT_PROJECT,
    db_dir: str | Path = DEFAULT_DB_DIR,
    ui_db_file: str | Path | None = None,
    work_dir: str | Path = "~/crystal_atomate/remote_runs",
    base_dir: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    runner: Mapping[str, float] | None = None,
    max_jobs: int | None = None,
    warm_executor: bool = False,
) -> dict[str, Any]:
    """Build a jobflow-remote project for crystal_atomate on this machine (see the module doc).

    ``max_jobs`` bounds how many jobs the local worker runs at once (None: no bound).
    ``warm_executor=True`` opts in to the warm executor; by default the worker keeps
    jobflow-remote's own ``jf -fe execution run {}`` for each job.
    """
    worker: dict[str, Any] = {
        "type": "local",
        "scheduler_type": "shell",
        "work_dir": str(Path(work_dir).expanduser().absolute()),
        "resources": {},
        "timeout_execute": 60,
    }
    if max_jobs:
        worker["max_jobs"] = max_jobs
    config: dict[str, Any] = {
        "name": name,
        "workers": {LOCAL_WORKER: worker},
        "exec_config": crystal_exec_config(env),
        "queue": project_store_config(db_dir)["queue"],
        "jobstore": ui_jobstore_config(ui_db_file),
        "runner": dict(runner or RUNNER_DELAYS),
    }
    if base_dir:
        config["base_dir"] = str(Path(base_dir).expanduser().absolute())
    if warm_executor:
        worker["execution_cmd"] = warm_execution_command(config)
    return jsanitize(config, strict=True)


def warm_execution_command(config: Mapping[str, Any]) -> str:
    """Return the local worker's ``execution_cmd`` for the warm executor of project ``config``.

    Its servers belong to the project's runner daemon: an idle server retires as soon as the
    daemon's supervisord is gone (``jf runner shutdown``) instead of lingering for the idle
    timeout.
    """
    daemon_dir = Path(Project.model_validate(dict(config)).daemon_dir)
    return execution_command(owner=daemon_dir / "supervisord.pid")


def write_project(
    config: Mapping[str, Any], folder: str | Path | None = None, overwrite: bool = False
) -> Path:
    """Validate ``config`` with jobflow-remote and write ``FOLDER/<name>.yaml``.

    The default folder is the projects folder ``jf`` reads; an existing project is replaced only
    with ``overwrite``.
    """
    Project.model_validate(dict(config))
    folder = Path(folder).expanduser() if folder else projects_folder()
    path = folder / f"{config['name']}.yaml"
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite to replace it")
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    return path


def load_project(project: str | Path | Project | None = None) -> Project:
    """Load a project from itself, a project file, or a name in the projects folder.

    None is the default project, as for ``jf``.
    """
    if isinstance(project, Project):
        return project
    path = Path(project) if project is not None else None
    if path is not None and path.suffix in (".yaml", ".yml") and path.is_file():
        return Project.model_validate(yaml.safe_load(path.read_text()))
    return ConfigManager().get_project(None if project is None else str(project))


def ui_store(project: Project) -> CrystalMathJobStore | None:
    """Return the project's job store as a ``CrystalMathJobStore`` if it is the UI's SQLite file."""
    jobstore = project.get_jobstore()
    docs, data = jobstore.docs_store, jobstore.additional_stores.get("data")
    if not isinstance(docs, SQLiteStore):
        return None
    blobs = data.collection_name if isinstance(data, SQLiteStore) else "outputs_blobs"
    return CrystalMathJobStore(
        docs.db_file, collection_name=docs.collection_name, data_collection_name=blobs
    )


def submit_flows(
    flows: Iterable[Flow | Job],
    project: str | Path | Project | None = None,
    worker: str = LOCAL_WORKER,
    exec_config: str | None = CRYSTAL_EXEC_CONFIG,
    resources: Mapping[str, Any] | None = None,
) -> dict[str, list[str]]:
    """Add each flow to the project's queue and mark its jobs QUEUED in the UI.

    Returns the db ids of each flow's jobs by flow uuid. One queue connection serves every flow.
    """
    project = load_project(project)
    controller = JobController.from_project(project)
    store = ui_store(project)
    submitted: dict[str, list[str]] = {}
    try:
        for item in flows:
            flow = get_flow(item)
            submitted[flow.uuid] = controller.add_flow(
                flow, worker, exec_config=exec_config, resources=dict(resources or {}) or None
            )
            if store is not None:
                for job, _ in flow.iterflow():
                    store.mark_job_state(job.uuid, "QUEUED", name=job.name, workflow_id=flow.uuid)
    finally:
        controller.close()
        if store is not None:
            store.close()
    return submitted


@dataclass(frozen=True)
class FailedJob:
    """A job jobflow-remote gave up on, with the last line of its error.

    For our jobs that line is the classified CRYSTAL failure, e.g. ``CrystalJobFailed: ...
    (scf_not_converged) ...``.
    """

    uuid: str
    index: int
    name: str
    state: str
    error: str


def _summary(error: str | None) -> str:
    lines = [line for line in (error or "").splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def failed_jobs(project: str | Path | Project | None = None) -> list[FailedJob]:
    """List the project's FAILED and REMOTE_ERROR jobs, for ``crystal-atomate remote status``."""
    controller = JobController.from_project(load_project(project))
    try:
        infos = controller.get_jobs_info(states=[JobState.FAILED, JobState.REMOTE_ERROR])
    finally:
        controller.close()
    return [
        FailedJob(
            info.uuid,
            info.index,
            info.name,
            info.state.value,
            _summary(info.error or info.remote.error),
        )
        for info in infos
    ]


def sync_ui_states(project: str | Path | Project | None = None) -> Counter[str]:
    """Bring the UI rows of the project's unfinished jobs up to date with the queue.

    Only the latest run of each job counts, and a run whose document is already stored is left
    to the store's mirror (it knows COMPLETED from FAILED and the energy), so a sync racing the
    runner never overwrites a finished row. Returns how many rows got each status.
    """
    project = load_project(project)
    store = ui_store(project)
    if store is None:
        return Counter()
    controller = JobController.from_project(project)
    try:
        infos = controller.get_jobs_info_query({"state": {"$ne": JobState.COMPLETED.value}})
    finally:
        controller.close()
    latest: dict[str, Any] = {}
    for info in infos:
        if info.uuid not in latest or info.index > latest[info.uuid].index:
            latest[info.uuid] = info
    store.connect()
    try:
        stored = {
            (doc["uuid"], doc["index"])
            for doc in store.query({"uuid": {"$in": list(latest)}}, properties=["uuid", "index"])
        }
        counts: Counter[str] = Counter()
        for info in latest.values():
            if (info.uuid, info.index) in stored or info.state not in _UI_STATUS:
                continue
            status = _UI_STATUS[info.state]
            workflow_id = info.hosts[-1] if info.hosts else None
            store.mark_job_state(info.uuid, status, info.run_dir, info.name, workflow_id)
            counts[status] += 1
    finally:
        store.close()
    return counts
