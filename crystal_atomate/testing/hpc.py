"""The loopback SLURM cluster that ``.ci/hpc.sh start`` runs, as the cluster tests see it.

The script writes ``.ci/hpc.env`` (host, port, user, key); :func:`loopback_cluster` reads it (or the
file ``CRYSTAL_ATOMATE_HPC_ENV`` names) and says why not when the cluster is not there, so the tests
skip with that reason on a machine without it and run in CI, which starts it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crystal_atomate.stores.ui_clusters import UICluster, load_cluster_file

if TYPE_CHECKING:
    from jobflow import Flow

__all__ = [
    "CLUSTER_EXAMPLE",
    "ClusterUnavailable",
    "LoopbackCluster",
    "loopback_cluster",
    "register_ui_cluster",
    "relax_static_flow",
    "ui_cluster",
]

_DEFAULT_ENV = Path(__file__).resolve().parents[2] / ".ci" / "hpc.env"
#: The shipped cluster description the tests use (so that the example cannot rot).
CLUSTER_EXAMPLE = (
    Path(__file__).resolve().parents[2] / "stores" / "clusters" / "loopback-slurm.yaml"
)


class ClusterUnavailable(RuntimeError):
    """The loopback cluster is not running here (its env file is absent or sshd does not answer)."""


@dataclass(frozen=True)
class LoopbackCluster:
    """SSH login and SLURM partition of the loopback cluster."""

    host: str
    port: int
    user: str
    key: str
    known_hosts: str
    partition: str

    def ssh(self, command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run ``command`` on the cluster's login node, as a user's terminal would."""
        return subprocess.run(
            ["ssh", "-q", "-i", self.key, "-p", str(self.port), "-o", "BatchMode=yes",
             "-o", "StrictHostKeyChecking=no", "-o", f"UserKnownHostsFile={self.known_hosts}",
             f"{self.user}@{self.host}", command],
            capture_output=True, text=True, timeout=timeout, check=False,
        )


def loopback_cluster(env_file: str | Path | None = None) -> LoopbackCluster:
    """Return the running loopback cluster.

    Parameters
    ----------
    env_file
        The file ``.ci/hpc.sh start`` wrote; default ``$CRYSTAL_ATOMATE_HPC_ENV`` or
        ``.ci/hpc.env``.

    Returns
    -------
    LoopbackCluster
        Its login and partition, once ``sinfo`` answers over SSH.

    Raises
    ------
    ClusterUnavailable
        No env file, no ``ssh`` client, or the login node does not answer.
    """
    path = Path(env_file or os.environ.get("CRYSTAL_ATOMATE_HPC_ENV") or _DEFAULT_ENV)
    if not path.is_file():
        raise ClusterUnavailable(f"no loopback cluster: {path} is absent (run '.ci/hpc.sh start')")
    if shutil.which("ssh") is None:
        raise ClusterUnavailable("no ssh client on this machine (apt-get install openssh-client)")
    values = dict(
        line.split("=", 1) for line in path.read_text().splitlines() if "=" in line
    )
    cluster = LoopbackCluster(
        host=values["CRYSTAL_ATOMATE_HPC_HOST"],
        port=int(values["CRYSTAL_ATOMATE_HPC_PORT"]),
        user=values["CRYSTAL_ATOMATE_HPC_USER"],
        key=values["CRYSTAL_ATOMATE_HPC_KEY"],
        known_hosts=values["CRYSTAL_ATOMATE_HPC_KNOWN_HOSTS"],
        partition=values["CRYSTAL_ATOMATE_HPC_PARTITION"],
    )
    answer = cluster.ssh("sinfo -h -o %t")
    if answer.returncode != 0 or "idle" not in answer.stdout and "mix" not in answer.stdout:
        raise ClusterUnavailable(
            f"the loopback cluster at {cluster.host}:{cluster.port} does not answer: "
            f"{(answer.stderr or answer.stdout).strip() or 'no idle node'}"
        )
    return cluster


def relax_static_flow() -> Flow:
    """MgO relax -> static with the demo's Makers: the flow every engine runs on the cluster."""
    from crystal_atomate.demo import demo_flows, mgo_structure
    from crystal_atomate.flows.core import RelaxBandStructureMaker

    makers = {job.name: job.maker for job, _ in demo_flows()[0].iterflow()}
    maker = RelaxBandStructureMaker(
        name="MgO relax static",
        relax_maker=makers["relax"],
        static_maker=makers["static"],
        band_structure_maker=None,
        dos_maker=None,
    )
    return maker.make(mgo_structure())


def ui_cluster(cluster: LoopbackCluster) -> UICluster:
    """Load the shipped ``stores/clusters/loopback-slurm.yaml``, the tests' cluster description.

    The example holds the values ``.ci/hpc.sh`` uses by default; a cluster started elsewhere
    (``CRYSTAL_ATOMATE_HPC_DIR``, ``..._SSH_PORT``) replaces the login with its own.
    """
    example = load_cluster_file(CLUSTER_EXAMPLE)
    return replace(
        example,
        hostname=cluster.host,
        port=cluster.port,
        username=cluster.user,
        key_file=cluster.key,
    )


def register_ui_cluster(db_file: str | Path, cluster: UICluster) -> bool:
    """Define ``cluster`` in the UI's database with the UI's own code, as a user would in the UI.

    Parameters
    ----------
    db_file
        The shared database (created by the UI's ``Database`` if new).
    cluster
        The cluster to define.

    Returns
    -------
    bool
        False when the UI's code is not on this machine (nothing written).
    """
    from crystal_atomate.testing.ui_client import UIClientMissing, ui_module

    try:
        database = ui_module("src.core.database").Database(Path(db_file))
    except UIClientMissing:
        return False
    database.create_cluster(
        name=cluster.name, type=cluster.kind, hostname=cluster.hostname, username=cluster.username,
        port=cluster.port, connection_config={"key_file": cluster.key_file, "slurm": cluster.slurm},
        setup_commands=list(cluster.setup_commands),
    )
    return True


def local_documents(root: Path) -> dict[str, dict]:
    """Run :func:`relax_static_flow` with ``run_locally`` and the replay: the reference documents.

    Parameters
    ----------
    root
        A fresh folder for the run, its store and its replay plan.

    Returns
    -------
    dict
        The relax and static job documents (blobs loaded), by job name.
    """
    from jobflow import run_locally

    from crystal_atomate.demo import DEMO_REPLAY, replay_environment
    from crystal_atomate.stores.jobstore import CrystalMathJobStore

    store = CrystalMathJobStore(root / ".crystal_tui.db")
    plan = {"relax": DEMO_REPLAY["relax"], "static": DEMO_REPLAY["static"]}
    with replay_environment(root / "replay", plan):
        run_locally(relax_static_flow(), store=store, create_folders=True, root_dir=root,
                    ensure_success=True, log=False)
    return documents_by_name(store)


def documents_by_name(store: Any) -> dict[str, dict]:
    """Return a store's job documents by job name (blobs loaded), for :func:`job_differences`."""
    store.connect()
    return {doc["name"]: doc for doc in store.query({}, load=True)}
