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

    python -m crystal_atomate.testing.job_completion PROJECT_FILE JOB_JSON RUN_DIR
        --writer runner --die-after data
"""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path
from typing import Any, Literal

from jobflow import Job, JobStore, job
from jobflow_remote.remote.data import get_remote_store, get_remote_store_filenames, update_store
from maggma.core import Store
from monty.serialization import loadfn

from crystal_atomate.engines.remote import load_project
from crystal_atomate.io.outputs.properties import read_doss_dat

__all__ = ["WRITERS", "complete_job", "main", "recorded_dos"]

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


def main(argv: list[str] | None = None) -> None:
    """Run :func:`complete_job` from the command line (see the module doc).

    Parameters
    ----------
    argv
        The arguments; default ``sys.argv[1:]``.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project_file")
    parser.add_argument("job_json", help="the job, serialised with monty (dumpfn)")
    parser.add_argument("run_dir")
    parser.add_argument("--writer", choices=WRITERS, required=True)
    parser.add_argument("--die-after", choices=("data", "docs"))
    args = parser.parse_args(argv)
    complete_job(args.project_file, loadfn(args.job_json), args.run_dir, args.writer,
                 args.die_after)


if __name__ == "__main__":
    main()
