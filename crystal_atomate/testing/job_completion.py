"""Store a finished job as jobflow-remote's runner or as jobflow does, and die between two writes.

The kill tests of the UI's job store on jobflow-remote's path (issue 18, item 1) run this module
in a child process, on the job store of a project file exactly as jobflow-remote rebuilds it
(``Project.get_jobstore()``: a plain ``JobStore`` over the UI file's two collections):

* ``runner``: the worker's step (``Job.run`` into the run folder's JSON store, the line
  ``jf execution run`` executes) and then the runner's: jobflow-remote's own ``update_store``,
  which ``JobController.complete_job`` calls; it copies each blob into the ``data`` store and
  then the document into the documents' store, each write its own transaction;
* ``jobflow``: ``Job.run`` straight onto the project's job store, as ``run_locally`` or any
  jobflow code given that store: jobflow's ``JobStore.update`` writes the document, then its
  blobs.

``--die-after data|docs`` SIGKILLs the process as soon as the first write to that store has
committed: no ``finally`` block, no ``close``, as when a runner is killed::

    python -m crystal_atomate.testing.job_completion complete PROJECT_FILE JOB_JSON RUN_DIR
        --writer runner --die-after data

The larger run behind docs/reliability.md kills children that store one job after another at
random moments, for each writer, and counts what the kills left::

    python -m crystal_atomate.testing.job_completion kills --trials 50
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from jobflow import Job, JobStore, job
from jobflow_remote.remote.data import get_remote_store, get_remote_store_filenames, update_store
from maggma.core import Store
from monty.serialization import loadfn

from crystal_atomate.engines.remote import load_project, project_config, write_project
from crystal_atomate.io.outputs.properties import read_doss_dat
from crystal_atomate.stores.jobstore import CrystalMathJobStore
from crystal_atomate.stores.tui_completion import blob_references
from crystal_atomate.testing.reference import reference_dir

__all__ = [
    "WRITERS",
    "KillRun",
    "complete_job",
    "kill_trials",
    "main",
    "recorded_dos",
    "store_until_killed",
]

_MODULE = "crystal_atomate.testing.job_completion"
#: How a finished job reaches the project's job store (see the module doc).
WRITERS = ("runner", "jobflow")
Writer = Literal["runner", "jobflow"]
StoreName = Literal["data", "docs"]


@job(data="dos")
def recorded_dos(doss_dat: str) -> dict[str, Any]:
    """Return a DOS job's output: the total DOS of a recorded ``DOSS.DAT``, stored as a blob.

    Parameters
    ----------
    doss_dat
        A CRYSTAL ``DOSS.DAT`` file.

    Returns
    -------
    dict
        ``state`` (successful, so the UI row becomes COMPLETED) and ``dos`` (a pymatgen ``Dos``,
        which ``data="dos"`` sends to the ``data`` store).
    """
    return {"state": "successful", "dos": read_doss_dat(doss_dat).to_dos()}


def _die_after_first_write(store: Store) -> None:
    """Make the first ``update`` of ``store`` SIGKILL this process once it has committed."""
    write = store.update

    def write_then_die(*args: Any, **kwargs: Any) -> None:
        write(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    store.update = write_then_die  # type: ignore[method-assign]


def _target(store: JobStore, name: StoreName) -> Store:
    return store.docs_store if name == "docs" else store.additional_stores["data"]


def complete_job(
    project_file: str | Path,
    finished: Job,
    run_dir: str | Path,
    writer: Writer,
    die_after: StoreName | None = None,
) -> None:
    """Store ``finished`` in the project's job store the way ``writer`` does (see the module doc).

    Parameters
    ----------
    project_file
        The jobflow-remote project file whose job store receives the job.
    finished
        The job. The ``jobflow`` writer runs it each time; the ``runner`` writer only when its
        run folder holds no output yet (the worker ran it once; the runner retries only its
        own step).
    run_dir
        The job's run folder (the JSON store of the ``runner`` writer).
    writer
        ``runner`` (jobflow-remote's ``update_store``) or ``jobflow`` (``JobStore.update``).
    die_after
        SIGKILL the process once the first write to this store (``data`` or ``docs``) committed.
    """
    project = load_project(project_file)
    store = project.get_jobstore()
    if die_after is not None:
        _die_after_first_write(_target(store, die_after))
    if writer == "jobflow":
        store.connect()
        try:
            finished.run(store=store)
        finally:
            store.close()
        return
    remote = get_remote_store(store, run_dir, project.remote_jobstore)
    files = get_remote_store_filenames(store, project.remote_jobstore)
    if not all((Path(run_dir) / name).exists() for name in files):
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        remote.connect()
        try:
            finished.run(store=remote)
        finally:
            remote.close()
    update_store(store, remote, db_id=1)


def store_until_killed(
    project_file: str | Path, doss_dat: str | Path, work_dir: str | Path, writer: Writer
) -> None:
    """Store one recorded DOS job after another as ``writer`` does, until the process is killed.

    Each job's uuid is printed once it is stored, so a parent knows the imports are done.

    Parameters
    ----------
    project_file
        The project whose job store receives the jobs.
    doss_dat
        The recorded ``DOSS.DAT`` each job reads.
    work_dir
        Where the run folders go.
    writer
        ``runner`` or ``jobflow`` (see the module doc).
    """
    for number in itertools.count():
        finished = recorded_dos(str(doss_dat))
        complete_job(project_file, finished, Path(work_dir) / f"run-{number}", writer)
        print(finished.uuid, flush=True)


@dataclass(frozen=True)
class KillRun:
    """What random kills of one writer left in the UI file (see :func:`kill_trials`)."""

    writer: str
    kills: int
    documents: int
    without_blob: int
    blob_without_document: int
    finished_rows: int
    torn_rows: int


def kill_trials(folder: Path, writer: Writer, trials: int, seed: int = 18) -> KillRun:
    """SIGKILL ``trials`` children storing DOS jobs as ``writer`` at random moments; count.

    Every child is killed at a random moment (up to 0.5 s) after its first job is stored. Then
    the UI file is read: documents whose blob is missing, blobs whose document is missing (kills
    that landed between the two writes), and finished UI rows whose output does not load.

    Parameters
    ----------
    folder
        An empty folder for the project, its UI database and the run folders.
    writer
        ``runner`` or ``jobflow``.
    trials
        How many children to kill.
    seed
        Seed of the kill moments.

    Returns
    -------
    KillRun
        The counts.
    """
    config = project_config(
        name="kills", db_dir=folder / "db", ui_db_file=folder / ".crystal_tui.db",
        work_dir=folder / "work", base_dir=folder / "base",
    )
    project_file = write_project(config, folder=folder / "projects")
    doss_dat = reference_dir() / "mgo_scf_band_doss_b3lyp_crystal17" / "DOSS.DAT"
    rng = random.Random(seed)
    for trial in range(trials):
        child = subprocess.Popen(
            [sys.executable, "-m", _MODULE, "loop", str(project_file), str(doss_dat),
             str(folder / "runs" / str(trial)), "--writer", writer],
            stdout=subprocess.PIPE, text=True,
        )
        assert child.stdout is not None
        child.stdout.readline()
        time.sleep(rng.uniform(0, 0.5))
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
    return _count(CrystalMathJobStore(folder / ".crystal_tui.db"), writer, trials)


def _count(store: CrystalMathJobStore, writer: str, kills: int) -> KillRun:
    store.connect()
    try:
        blobs = set(store.additional_stores["data"].distinct("blob_uuid"))
        docs = {doc["uuid"]: blob_references(doc) for doc in store.docs_store.query()}
        with store.docs_store.reading() as conn:
            finished = [uuid for (uuid,) in conn.execute(
                "SELECT l.job_uuid FROM jobs j JOIN jobflow_job_links l ON l.tui_job_id = j.id "
                "WHERE j.status IN ('COMPLETED', 'FAILED')"
            )]
    finally:
        store.close()
    referenced = set().union(*docs.values()) if docs else set()
    incomplete = {uuid for uuid, refs in docs.items() if not refs <= blobs}
    return KillRun(
        writer=writer,
        kills=kills,
        documents=len(docs),
        without_blob=len(incomplete),
        blob_without_document=len(blobs - referenced),
        finished_rows=len(finished),
        torn_rows=sum(uuid in incomplete or uuid not in docs for uuid in finished),
    )


def main(argv: list[str] | None = None) -> int:
    """Run one completion, the storing loop of a kill trial, or the kill trials (module doc).

    Parameters
    ----------
    argv
        The arguments; default ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit status: 1 when kill trials left a torn row.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("complete", help="store one job, maybe dying between the writes")
    one.add_argument("project_file")
    one.add_argument("job_json", help="the job, serialised with monty (dumpfn)")
    one.add_argument("run_dir")
    one.add_argument("--writer", choices=WRITERS, required=True)
    one.add_argument("--die-after", choices=("data", "docs"))
    loop = commands.add_parser("loop", help="store jobs until killed")
    loop.add_argument("project_file")
    loop.add_argument("doss_dat")
    loop.add_argument("work_dir")
    loop.add_argument("--writer", choices=WRITERS, required=True)
    kills = commands.add_parser("kills", help="the kill trials, for each writer")
    kills.add_argument("--trials", type=int, default=20)
    kills.add_argument("--seed", type=int, default=18)
    args = parser.parse_args(argv)
    if args.command == "complete":
        complete_job(args.project_file, loadfn(args.job_json), args.run_dir, args.writer,
                     args.die_after)
        return 0
    if args.command == "loop":
        store_until_killed(args.project_file, args.doss_dat, args.work_dir, args.writer)
        return 0
    torn = 0
    for writer in WRITERS:
        with tempfile.TemporaryDirectory(prefix="completion-kills-") as folder:
            run = kill_trials(Path(folder), writer, args.trials, args.seed)
        torn += run.torn_rows
        print(
            f"{run.writer}: {run.kills} kills, {run.documents} documents, "
            f"{run.without_blob} without their blob, {run.blob_without_document} blobs without "
            f"their document, {run.finished_rows} finished UI rows, {run.torn_rows} of them "
            "whose output does not load",
            flush=True,
        )
    return 1 if torn else 0


if __name__ == "__main__":
    sys.exit(main())
