"""The same relax -> static flow through FireWorks (``qlaunch`` + SLURM) and jobflow-remote (a
``remote`` worker over SSH + SLURM) on the loopback cluster ``.ci/hpc.sh`` starts, with the values
of the local runs: one cluster description (as the UI keeps it) configures both engines."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest

from crystal_atomate.demo import DEMO_REPLAY
from crystal_atomate.engines.clusters import (
    qadapter_config,
    qlaunch_command,
    remote_worker_config,
    write_qadapter_yaml,
)
from crystal_atomate.engines.embedded_db import stop_server
from crystal_atomate.engines.fireworks import add_flows, launchpad_file, write_fworker_yaml
from crystal_atomate.engines.remote import project_config, submit_flows, write_project
from crystal_atomate.stores.jobstore import CrystalMathJobStore
from crystal_atomate.testing.engines import RemoteProject, fresh_launchpad
from crystal_atomate.testing.hpc import (
    LoopbackCluster,
    documents_by_name,
    register_ui_cluster,
    relax_static_flow,
    ui_cluster,
)
from crystal_atomate.testing.parity import job_differences
from crystal_atomate.testing.replay_setup import use_replay

pytestmark = pytest.mark.timeout(300)

MGO_RELAX_HA = -2.754486980727e02
MGO_STATIC_HA = -2.7544859113743e02
PLAN = {"relax": DEMO_REPLAY["relax"], "static": DEMO_REPLAY["static"]}


def _assert_same_documents(reference: dict[str, dict], store: CrystalMathJobStore) -> None:
    """The engine's documents equal run_locally's but for bookkeeping (the parity matrix's rule)."""
    docs = documents_by_name(store)
    assert sorted(docs) == ["relax", "static"]
    for name in ("relax", "static"):
        assert job_differences(reference[name], docs[name]) == [], name


def _energies(store: CrystalMathJobStore) -> dict[str, float]:
    store.connect()
    return {
        name: store.query_one({"name": name})["output"]["output"]["energy_hartree"]
        for name in ("relax", "static")
    }


def _slurm_jobs(cluster: LoopbackCluster, name: str) -> list[str]:
    """States of the finished SLURM jobs called ``name``."""
    answer = cluster.ssh(f"squeue -h -t all -n {name} -o %T")
    return answer.stdout.split()


def _wait_for_slurm(
    cluster: LoopbackCluster, name: str, wanted: Callable[[list[str]], bool], timeout: float = 30
) -> list[str]:
    """The states of the SLURM jobs ``name`` once ``wanted(states)``; the rest are cancelled."""
    deadline = time.monotonic() + timeout
    states = _slurm_jobs(cluster, name)
    while not wanted(states) and time.monotonic() < deadline:
        time.sleep(0.5)
        states = _slurm_jobs(cluster, name)
    cluster.ssh(f"scancel -n {name}")
    return states


def _remote_jobs(db_file: Path) -> dict[str, tuple]:
    """The UI's ``remote_jobs`` rows by job name: (cluster, runner type, handle, queue, state)."""
    with closing(sqlite3.connect(db_file)) as conn:
        rows = conn.execute(
            "SELECT j.name, c.name, j.runner_type, r.remote_handle, r.queue_name, "
            "json_extract(r.metadata, '$.state') FROM remote_jobs r JOIN jobs j ON j.id = r.job_id "
            "JOIN clusters c ON c.id = r.cluster_id"
        ).fetchall()
    return {name: tuple(rest) for name, *rest in rows}


def _assert_remote_jobs(db_file: Path, registered: bool) -> None:
    """Both jobs have their SLURM job in the UI's ``remote_jobs``, under the UI's cluster."""
    if not registered:
        return
    rows = _remote_jobs(db_file)
    assert set(rows) == {"relax", "static"}, rows
    for cluster_name, runner, handle, queue, state in rows.values():
        assert (cluster_name, runner, queue, state) == (
            "loopback-slurm",
            "slurm",
            "debug",
            "COMPLETED",
        )
        assert handle.isdigit()


def test_fireworks_qlaunch_through_slurm(
    cluster: LoopbackCluster, tmp_path: Path, cluster_reference: dict[str, dict]
) -> None:
    registered = register_ui_cluster(tmp_path / ".crystal_tui.db", ui_cluster(cluster))
    store = CrystalMathJobStore(tmp_path / ".crystal_tui.db")
    env = {**os.environ, **use_replay(PLAN, tmp_path / "replay")}
    db_dir = tmp_path / "db"
    with fresh_launchpad(db_dir) as launchpad:
        add_flows([relax_static_flow()], launchpad, store)
        lp_yaml = launchpad_file(db_dir=db_dir)
        fworker = write_fworker_yaml(tmp_path / "my_fworker.yaml")
        name = f"ca-fw-{os.getpid()}"
        qadapter = write_qadapter_yaml(
            tmp_path / "my_qadapter.yaml",
            qadapter_config(ui_cluster(cluster), lp_yaml, fworker, overrides={"job_name": name}),
        )
        launches = tmp_path / "launches"
        launches.mkdir()
        command = qlaunch_command(lp_yaml, fworker, qadapter, launches, nlaunches="infinite")
        log = (tmp_path / "qlaunch.log").open("wb")
        qlaunch = subprocess.Popen(
            [*command, "--maxjobs_queue", "1"],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 180
            while {fw["state"] for fw in launchpad.fireworks.find({}, {"state": 1})} != {
                "COMPLETED"
            }:
                assert time.monotonic() < deadline, list(
                    launchpad.fireworks.find({}, {"state": 1, "name": 1})
                )
                assert qlaunch.poll() is None, (tmp_path / "qlaunch.log").read_text()[-3000:]
                time.sleep(1)
        finally:
            qlaunch.terminate()
            qlaunch.wait(timeout=30)
            log.close()
    energies = _energies(store)
    assert energies["relax"] == pytest.approx(MGO_RELAX_HA, abs=1e-8)
    assert energies["static"] == pytest.approx(MGO_STATIC_HA, abs=1e-8)
    states = _wait_for_slurm(cluster, name, lambda states: states.count("COMPLETED") >= 2)
    assert states.count("COMPLETED") >= 2, states
    _assert_remote_jobs(tmp_path / ".crystal_tui.db", registered)
    _assert_same_documents(cluster_reference, store)


@pytest.fixture
def slurm_project(cluster: LoopbackCluster, tmp_path: Path) -> Iterator[RemoteProject]:
    """A jobflow-remote project whose only worker submits through SSH to the loopback SLURM."""
    env = {**os.environ, "JFREMOTE_PROJECTS_FOLDER": str(tmp_path / "projects")}
    register_ui_cluster(tmp_path / ".crystal_tui.db", ui_cluster(cluster))
    replay_env = use_replay(PLAN, tmp_path / "replay")
    config = project_config(
        name="crystal_atomate_slurm",
        db_dir=tmp_path / "db",
        ui_db_file=tmp_path / ".crystal_tui.db",
        base_dir=tmp_path / "base",
        env=replay_env,
    )
    config["workers"] = {
        "loopback": remote_worker_config(ui_cluster(cluster), str(tmp_path / "cluster_work"))
    }
    project_file = write_project(config, tmp_path / "projects")
    store = CrystalMathJobStore(tmp_path / ".crystal_tui.db")
    remote = RemoteProject(
        env, project_file, tmp_path / "db", tmp_path / "base", store, tmp_path / "replay",
        {}, "crystal_atomate_slurm",
    )
    try:
        remote.jf("admin", "reset", "-y")
        yield remote
    finally:
        remote.shutdown_runner()
        stop_server(remote.db_dir)


def test_jobflow_remote_worker_through_ssh_and_slurm(
    cluster_reference: dict[str, dict],
    slurm_project: RemoteProject, cluster: LoopbackCluster
) -> None:
    os.environ["JFREMOTE_PROJECTS_FOLDER"] = slurm_project.env["JFREMOTE_PROJECTS_FOLDER"]
    try:
        submit_flows([relax_static_flow()], slurm_project.project_file, worker="loopback")
    finally:
        del os.environ["JFREMOTE_PROJECTS_FOLDER"]
    slurm_project.jf("runner", "start")
    slurm_project.wait_for(
        lambda states: len(states) == 2 and set(states.values()) == {"COMPLETED"},
        timeout=200, what="relax and static COMPLETED through SLURM",
    )
    energies = _energies(slurm_project.store)
    assert energies["relax"] == pytest.approx(MGO_RELAX_HA, abs=1e-8)
    assert energies["static"] == pytest.approx(MGO_STATIC_HA, abs=1e-8)
    rows = slurm_project.ui_rows()
    assert {rows[name][0] for name in ("relax", "static")} == {"COMPLETED"}
    with closing(sqlite3.connect(slurm_project.store.db_file)) as conn:
        registered = conn.execute("SELECT count(*) FROM clusters").fetchone()[0] == 1
    _assert_remote_jobs(Path(slurm_project.store.db_file), registered)
    _assert_same_documents(cluster_reference, slurm_project.store)
