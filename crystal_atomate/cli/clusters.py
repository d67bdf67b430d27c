"""``crystal-atomate cluster``: one cluster description, each engine's configuration from it.

A cluster comes from a cluster file with the CrystalMath UI's fields (``stores/clusters/*.yaml``)
or from the UI's own ``clusters`` table (``--from-ui NAME``, read-only). ``fireworks`` writes the
queue adapter ``qlaunch`` reads, ``remote`` adds a worker to a jobflow-remote project; the AiiDA
computer is ``crystal-atomate aiida computer add`` (same options).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from crystal_atomate.errors import InputError

if TYPE_CHECKING:
    from crystal_atomate.stores.ui_clusters import UICluster

cluster_app = typer.Typer(
    help="A cluster (SSH + SLURM) for FireWorks and jobflow-remote.", no_args_is_help=True
)

CLUSTER_FILE = typer.Option(None, "--cluster-file", help="A cluster file (stores/clusters/*.yaml).")
FROM_UI = typer.Option(None, "--from-ui", help="A cluster the CrystalMath UI defined, by name.")
UI_DB = typer.Option(Path(".crystal_tui.db"), "--db", help="The UI's database, for --from-ui.")


@cluster_app.callback()
def cluster() -> None:
    """Set up a cluster (SSH + SLURM) for FireWorks and jobflow-remote (a group of subcommands)."""


def find_cluster(cluster_file: Path | None, from_ui: str | None, db: Path) -> UICluster:
    """Load the cluster named by exactly one of ``--cluster-file`` and ``--from-ui``.

    Parameters
    ----------
    cluster_file
        A cluster file with the UI's fields.
    from_ui
        The name of a cluster in the UI's ``clusters`` table.
    db
        The UI's database, for ``from_ui``.

    Returns
    -------
    UICluster
        The cluster.

    Raises
    ------
    InputError
        Neither or both given, or the file or cluster is missing.
    """
    from crystal_atomate.stores.ui_clusters import load_cluster_file, read_ui_cluster

    if (cluster_file is None) == (from_ui is None):
        raise InputError("give exactly one of --cluster-file and --from-ui", hint="see --help")
    if cluster_file is not None:
        return load_cluster_file(cluster_file)
    return read_ui_cluster(db, str(from_ui))


@cluster_app.command("fireworks")
def fireworks(
    launchpad: Path = typer.Option(..., help="my_launchpad.yaml the jobs' rlaunch reads."),
    fworker: Path | None = typer.Option(None, help="my_fworker.yaml the jobs' rlaunch reads."),
    out: Path = typer.Option(Path("my_qadapter.yaml"), help="Where to write the queue adapter."),
    walltime: str | None = typer.Option(None, help="SLURM time limit (HH:MM:SS)."),
    ntasks: int | None = typer.Option(None, help="MPI tasks per job."),
    cluster_file: Path | None = CLUSTER_FILE,
    from_ui: str | None = FROM_UI,
    db: Path = UI_DB,
) -> None:
    """Write FireWorks' queue adapter for the cluster and print the qlaunch line that uses it."""
    from crystal_atomate.engines.clusters import (
        qadapter_config,
        qlaunch_command,
        write_qadapter_yaml,
    )

    overrides = {
        key: value
        for key, value in (("walltime", walltime), ("ntasks", ntasks))
        if value is not None
    }
    config = qadapter_config(
        find_cluster(cluster_file, from_ui, db), launchpad, fworker, overrides=overrides
    )
    path = write_qadapter_yaml(out, config)
    typer.echo(f"wrote {path}")
    typer.echo(" ".join(qlaunch_command(launchpad, fworker or "my_fworker.yaml", path, "launches")))


@cluster_app.command("remote")
def remote(
    work_dir: str = typer.Option(..., help="Where jobs run on the cluster."),
    worker: str | None = typer.Option(None, help="Worker name (default: the cluster's)."),
    project: str | None = typer.Option(None, help="jobflow-remote project name or YAML file."),
    pre_run: str = typer.Option("", help="Shell lines before each job (activate the environment)."),
    cluster_file: Path | None = CLUSTER_FILE,
    from_ui: str | None = FROM_UI,
    db: Path = UI_DB,
) -> None:
    """Add (or replace) the cluster as a jobflow-remote worker of a project."""
    from crystal_atomate.engines.clusters import add_remote_worker

    found = find_cluster(cluster_file, from_ui, db)
    path, name = add_remote_worker(project, found, work_dir, worker=worker, pre_run=pre_run)
    typer.echo(f"worker {name} ({found.username}@{found.hostname}:{found.port}, slurm) in {path}")
