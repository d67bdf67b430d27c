"""A cluster, once, for every engine: FireWorks queue adapters and jobflow-remote workers.

A cluster is described once, as the CrystalMath UI keeps it (:class:`UICluster`: login and SLURM
settings); these functions turn it into what each engine reads. AiiDA's computer is made by
:func:`crystal_atomate.aiida.computers.cluster_from_ui`. A SLURM job runs in a fresh login shell on
the cluster, so the commands it starts are named by absolute path: the ``rlaunch``/``jf`` of the
Python environment that runs this code, unless the caller names another one for the cluster.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from crystal_atomate.run import CLUSTER_ENV
from crystal_atomate.stores.ui_clusters import UICluster

__all__ = [
    "add_remote_worker",
    "environment_command",
    "qadapter_config",
    "qlaunch_command",
    "remote_worker_config",
    "write_qadapter_yaml",
]

#: The UI's SLURM keys -> FireWorks CommonAdapter keys (the rest are the same word in both).
_QADAPTER_KEYS: dict[str, str] = {"partition": "queue", "time": "walltime"}


def environment_command(name: str) -> str:
    """Return the absolute path of console script ``name`` in this Python environment.

    Parameters
    ----------
    name
        ``rlaunch``, ``jf`` ...

    Returns
    -------
    str
        ``<sys.prefix>/bin/<name>`` when it exists, else ``name`` (left to the cluster's PATH).
    """
    path = Path(sys.executable).parent / name
    return str(path) if path.is_file() else name


def qadapter_config(
    cluster: UICluster,
    launchpad_yaml: str | Path,
    fworker_yaml: str | Path | None = None,
    *,
    logdir: str | Path | None = None,
    rlaunch: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """FireWorks' ``my_qadapter.yaml`` for ``cluster``: one Firework per SLURM job.

    Parameters
    ----------
    cluster
        The cluster (its ``slurm`` settings: partition, account, qos, time, nodes, ntasks ...).
    launchpad_yaml, fworker_yaml
        The files the job's ``rlaunch`` reads (absolute paths, as the job runs elsewhere).
    logdir
        Where the SLURM scripts and their output go (default: the launch folder).
    rlaunch
        The ``rlaunch`` command on the cluster (default: this environment's).
    overrides
        Adapter keys that win over the cluster's (``walltime``, ``ntasks`` ...).

    Returns
    -------
    dict
        A ``CommonAdapter`` of type SLURM, as ``qlaunch -q`` reads it.
    """
    rocket = [
        rlaunch or environment_command("rlaunch"),
        "-s",
        "-l",
        str(Path(launchpad_yaml).absolute()),
    ]
    if fworker_yaml:
        rocket += ["-w", str(Path(fworker_yaml).absolute())]
    config: dict[str, Any] = {
        "_fw_name": "CommonAdapter",
        "_fw_q_type": "SLURM",
        "rocket_launch": " ".join([*rocket, "singleshot"]),
        "nodes": 1,
        "ntasks": 1,
        "walltime": "00:30:00",
        "job_name": "crystal_atomate",
        "pre_rocket": "\n".join([*cluster.setup_commands, _cluster_export(cluster)]),
    }
    config |= {_QADAPTER_KEYS.get(key, key): value for key, value in cluster.slurm.items()}
    if logdir is not None:
        config["logdir"] = str(Path(logdir).absolute())
    return config | dict(overrides or {})


def write_qadapter_yaml(path: str | Path, config: Mapping[str, Any]) -> Path:
    """Write a queue adapter (:func:`qadapter_config`) where ``qlaunch -q`` will read it.

    Parameters
    ----------
    path
        The file to write.
    config
        The adapter.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    return path


def qlaunch_command(
    launchpad_yaml: str | Path,
    fworker_yaml: str | Path,
    qadapter_yaml: str | Path,
    launch_dir: str | Path,
    nlaunches: int | str = "infinite",
) -> list[str]:
    """``qlaunch rapidfire``: submit a SLURM job per READY Firework until none is left.

    Parameters
    ----------
    launchpad_yaml, fworker_yaml, qadapter_yaml
        FireWorks' three files.
    launch_dir
        Where each job's launch folder is made.
    nlaunches
        How many jobs to submit at most (``infinite``: until nothing is READY).

    Returns
    -------
    list[str]
        The command line.
    """
    return [
        environment_command("qlaunch"), "-l", str(launchpad_yaml), "-w", str(fworker_yaml),
        "-q", str(qadapter_yaml), "--launch_dir", str(launch_dir),
        "rapidfire", "--nlaunches", str(nlaunches), "--sleep", "1",
    ]


def remote_worker_config(
    cluster: UICluster,
    work_dir: str,
    *,
    pre_run: str = "",
    resources: Mapping[str, Any] | None = None,
    max_jobs: int | None = None,
) -> dict[str, Any]:
    """Configure a jobflow-remote ``remote`` worker that submits to the cluster's SLURM over SSH.

    Parameters
    ----------
    cluster
        Login (host, port, user, key) and SLURM settings; the UI's setup commands run first.
    work_dir
        Where jobs run on the cluster.
    pre_run
        More shell lines before each job (e.g. activating the environment with crystal_atomate).
    resources
        qtoolkit's SLURM resources that win over the cluster's (``nodes``, ``ntasks``, ``time``
        ...).
    max_jobs
        How many jobs may be in the queue at once (None: no bound).

    Returns
    -------
    dict
        The worker, as a jobflow-remote project's ``workers`` entry.
    """
    worker: dict[str, Any] = {
        "type": "remote",
        "scheduler_type": "slurm",
        "host": cluster.hostname,
        "port": cluster.port,
        "user": cluster.username,
        "work_dir": work_dir,
        "pre_run": "\n".join([*cluster.setup_commands, _cluster_export(cluster), pre_run]).strip(),
        "resources": {**cluster.slurm, **dict(resources or {})},
        "execution_cmd": f"{environment_command('jf')} -fe execution run {{}}",
        "timeout_execute": 120,
    }
    if cluster.key_file:
        worker["key_filename"] = cluster.key_file
    if max_jobs:
        worker["max_jobs"] = max_jobs
    return worker


def _cluster_export(cluster: UICluster) -> str:
    """Return the shell line naming the cluster to the job, for its UI ``remote_jobs`` row."""
    return f"export {CLUSTER_ENV}={shlex.quote(cluster.name)}"


def add_remote_worker(
    project: str | None,
    cluster: UICluster,
    work_dir: str,
    *,
    worker: str | None = None,
    pre_run: str = "",
) -> tuple[Path, str]:
    """Add (or replace) ``cluster`` as a SLURM-over-SSH worker of a jobflow-remote project.

    Parameters
    ----------
    project
        The project's name in jobflow-remote's projects folder (None: its default project).
    cluster
        The cluster to submit to.
    work_dir
        Where jobs run on the cluster.
    worker
        The worker's name (default: the cluster's).
    pre_run
        Shell lines before each job.

    Returns
    -------
    tuple[Path, str]
        The project file written and the worker's name.
    """
    from jobflow_remote.config.base import RemoteWorker
    from jobflow_remote.config.manager import ConfigManager

    manager = ConfigManager()
    name = worker or cluster.name
    config = remote_worker_config(cluster, work_dir, pre_run=pre_run)
    manager.set_worker(name, RemoteWorker(**config), project_name=project, replace=True)
    return Path(manager.get_project_data(project).filepath), name
