"""crystal_atomate flows through jobflow-remote: the project ``crystal-atomate remote init`` writes,
the real ``jf runner`` daemon with a local shell worker, CRYSTAL replaced by the replay executable
(its plan and commands exported by the project's ``crystal`` exec config), and the results read
back from ``CrystalMathJobStore`` and the UI's ``jobs`` table.

One runner serves the module: MgO relax -> static, the NiO SCF restarted after its failure, and a
NiO SCF that may not restart (FAILED on the worker with its classified error). The runner is killed
while the relaxation runs and started again; the failed job is rerun with ``jf job rerun`` once
the replay (standing in for the fixed CRYSTAL installation) is repaired."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from jobflow import Flow
from typer.testing import CliRunner

from crystal_atomate.cli import app
from crystal_atomate.demo import DEMO_REPLAY, demo_flows, mgo_structure, nio_structure
from crystal_atomate.engines.embedded_db import stop_server
from crystal_atomate.engines.remote import (
    LOCAL_WORKER,
    failed_jobs,
    load_project,
    submit_flows,
    sync_ui_states,
)
from crystal_atomate.engines.remote_store import EmbeddedMongoStore
from crystal_atomate.flows.core import RelaxBandStructureMaker
from crystal_atomate.stores.jobstore import CrystalMathJobStore
from crystal_atomate.testing.replay_setup import use_replay

pytestmark = pytest.mark.timeout(240)

NAME = "crystal_atomate_test"
NIO_FAILED_RUN, NIO_RECOVERED_RUN = DEMO_REPLAY["NiO static"]
FAST_RUNNER = ["--runner-delay", "1"]


@dataclass
class Remote:
    """A crystal_atomate project in a temporary projects folder, its flows submitted."""

    env: dict[str, str]
    project_file: Path
    db_dir: Path
    base_dir: Path
    store: CrystalMathJobStore
    plan_dir: Path
    flows: dict[str, Flow]

    def jf(self, *args: str, timeout: float = 60) -> str:
        """Run ``jf ARGS``; fail the test with its output if it fails."""
        result = subprocess.run(
            ["jf", "-p", NAME, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if result.returncode:
            pytest.fail(f"jf {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def states(self) -> dict[tuple[str, int], str]:
        jobs = EmbeddedMongoStore(self.db_dir, collection_name="jobs")
        jobs.connect()
        try:
            docs = jobs.query(properties=["uuid", "index", "state", "job.name"])
            return {(doc["job"]["name"], doc["index"]): doc["state"] for doc in docs}
        finally:
            jobs.close()

    def wait_for(self, wanted: Callable[[dict], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        states = self.states()
        while not wanted(states):
            if time.monotonic() > deadline:
                log = self.base_dir / "log" / "runner.log"
                tail = log.read_text()[-3000:] if log.exists() else "(no runner log)"
                pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}: {states}\n{tail}")
            time.sleep(0.5)
            states = self.states()

    def ui_rows(self) -> dict[str, tuple]:
        with sqlite3.connect(self.store.db_file) as conn:
            rows = conn.execute("SELECT name, status, final_energy, workflow_id FROM jobs")
            return {name: rest for name, *rest in rows.fetchall()}


def _settled(states: dict[tuple[str, int], str]) -> bool:
    finished = {key for key, state in states.items() if state in ("COMPLETED", "FAILED")}
    return len(finished) == len(states) == 5


def _relax_static() -> Flow:
    makers = {job.name: job.maker for job, _ in demo_flows()[0].iterflow()}
    maker = RelaxBandStructureMaker(
        name="MgO relax static",
        relax_maker=makers["relax"],
        static_maker=makers["static"],
        band_structure_maker=None,
        dos_maker=None,
    )
    return maker.make(mgo_structure())


def _unfixable() -> Flow:
    (static,) = demo_flows()[1].jobs
    maker = dataclasses.replace(static.maker, name="NiO unfixable", max_restarts=0)
    return Flow([maker.make(nio_structure())], name="NiO unfixable")


def _init_project(tmp_path: Path, env: dict[str, str], replay_env: dict[str, str]) -> Path:
    """``crystal-atomate remote init`` into the temporary projects folder (a real CLI call)."""
    args = [
        "remote", "init", "--name", NAME,
        "--db-dir", str(tmp_path / "db"),
        "--ui-db", str(tmp_path / ".crystal_tui.db"),
        "--work-dir", str(tmp_path / "work"),
        "--base-dir", str(tmp_path / "base"),
        *FAST_RUNNER,
    ]
    for key, value in replay_env.items():
        args += ["--env", f"{key}={value}"]
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    return Path(env["JFREMOTE_PROJECTS_FOLDER"]) / f"{NAME}.yaml"


def _shutdown_runner(remote: Remote) -> None:
    """Stop the runner daemon; if it does not go, kill supervisord and its runner processes."""
    pid_file = remote.base_dir / "daemon" / "supervisord.pid"
    pid = int(pid_file.read_text().strip()) if pid_file.exists() else None
    if pid is None or not psutil.pid_exists(pid):
        return
    subprocess.run(
        ["jf", "-p", NAME, "runner", "shutdown", "--wait"],
        env=remote.env, capture_output=True, timeout=60,
    )
    if psutil.pid_exists(pid):
        daemon = psutil.Process(pid)
        for process in [*daemon.children(recursive=True), daemon]:
            process.kill()


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    tmp_path = tmp_path_factory.mktemp("remote")
    env = {**os.environ, "JFREMOTE_PROJECTS_FOLDER": str(tmp_path / "projects")}
    plan = {**DEMO_REPLAY, "NiO unfixable": NIO_FAILED_RUN}
    replay_env = use_replay(plan, tmp_path / "replay")
    project_file = _init_project(tmp_path, env, replay_env)
    flows = {"mgo": _relax_static(), "nio": demo_flows()[1], "unfixable": _unfixable()}
    store = CrystalMathJobStore(tmp_path / ".crystal_tui.db")
    remote = Remote(
        env, project_file, tmp_path / "db", tmp_path / "base", store, tmp_path / "replay", flows
    )
    try:
        remote.jf("admin", "reset", "-y")
        submit_flows(flows.values(), project_file)
        yield remote
    finally:
        _shutdown_runner(remote)
        stop_server(remote.db_dir)


@pytest.fixture(scope="module")
def settled(remote: Remote) -> Remote:
    """The runner started, killed while the relaxation runs, restarted, and every job finished."""
    assert {status for status, *_ in remote.ui_rows().values()} == {"QUEUED"}
    remote.jf("runner", "start")
    remote.wait_for(
        lambda s: s[("relax", 1)] in ("SUBMITTED", "RUNNING"), 90, "the relaxation to start"
    )
    remote.jf("runner", "kill", "--wait")
    assert remote.states()[("static", 1)] == "WAITING"
    remote.jf("runner", "start")
    remote.wait_for(_settled, 180, "every job to finish")
    remote.store.connect()
    return remote


def _doc(store: CrystalMathJobStore, name: str, index: int = 1) -> dict:
    return store.query_one({"name": name, "index": index})["output"]


def test_the_project_is_the_one_init_wrote(remote: Remote) -> None:
    project = load_project(remote.project_file)
    assert list(project.workers) == [LOCAL_WORKER]
    export = project.exec_config["crystal"].export
    assert Path(export["CRYSTAL_ATOMATE_REPLAY_PLAN"]) == remote.plan_dir / "plan.json"
    assert isinstance(project.get_queue_store(), EmbeddedMongoStore)
    docs_store = project.get_jobstore().docs_store
    assert docs_store.db_file == remote.store.db_file and docs_store.tui_mirror


def test_mgo_relax_static(settled: Remote) -> None:
    relax, static = _doc(settled.store, "relax"), _doc(settled.store, "static")
    assert relax["state"] == static["state"] == "successful"
    assert relax["output"]["energy_hartree"] == pytest.approx(-2.754486980727e02, abs=1e-8)
    assert static["output"]["energy_hartree"] == pytest.approx(-2.7544859113743e02, abs=1e-8)
    assert relax["structure"]["lattice"]["a"] == pytest.approx(2.99828782, abs=1e-6)
    assert "GUESSP" in static["input"]["d12"]
    assert settled.states()[("relax", 1)] == "COMPLETED"


def test_nio_failure_is_restarted(settled: Remote) -> None:
    failed, recovered = _doc(settled.store, "NiO static", 1), _doc(settled.store, "NiO static", 2)
    assert failed["state"] == "failed" and failed["errors"] == ["scf_not_converged"]
    assert failed["output"]["energy_hartree"] == pytest.approx(-3.1282821683361e03, abs=1e-8)
    assert recovered["state"] == "successful"
    assert recovered["output"]["energy_hartree"] == pytest.approx(-3.1282821705429e03, abs=1e-8)
    assert recovered["restarts"][0]["from_dir"] == failed["dir_name"]


def test_worker_failure_is_reported_with_the_crystal_error(settled: Remote) -> None:
    (failure,) = failed_jobs(settled.project_file)
    assert failure.name == "NiO unfixable" and failure.state == "FAILED"
    assert "CrystalJobFailed" in failure.error and "scf_not_converged" in failure.error
    assert sync_ui_states(settled.project_file) == {"FAILED": 1}
    rows = settled.ui_rows()
    assert rows["NiO unfixable"][0] == "FAILED"
    assert {name: row[0] for name, row in rows.items() if name != "NiO unfixable"} == {
        "relax": "COMPLETED",
        "static": "COMPLETED",
        "NiO static": "COMPLETED",
    }
    assert rows["static"][1] == pytest.approx(-2.7544859113743e02, abs=1e-8)
    assert rows["NiO static"][1] == pytest.approx(-3.1282821705429e03, abs=1e-8)
    assert {row[2] for row in rows.values()} == {flow.uuid for flow in settled.flows.values()}


def test_failed_job_reruns_after_a_fix(settled: Remote) -> None:
    fixed = {**NIO_RECOVERED_RUN, "ignore": [*NIO_RECOVERED_RUN["ignore"], "scf.guessp"]}
    use_replay({**DEMO_REPLAY, "NiO unfixable": fixed}, settled.plan_dir)
    (job,) = settled.flows["unfixable"].jobs
    settled.jf("job", "rerun", job.uuid)
    assert sync_ui_states(settled.project_file) == {"QUEUED": 1}
    settled.wait_for(lambda s: s[("NiO unfixable", 1)] == "COMPLETED", 90, "the rerun")
    doc = _doc(settled.store, "NiO unfixable")
    assert doc["state"] == "successful"
    assert doc["output"]["energy_hartree"] == pytest.approx(-3.1282821705429e03, abs=1e-8)
    assert settled.ui_rows()["NiO unfixable"][0] == "COMPLETED"
    assert failed_jobs(settled.project_file) == []


def test_example_project_is_what_init_writes() -> None:
    import yaml
    from jobflow_remote.config.base import Project

    from crystal_atomate.engines.remote import project_config

    examples = Path(__file__).parents[2] / "stores" / "jobflow-remote"
    example = yaml.safe_load((examples / "crystal_atomate-ui.yaml").read_text())
    expected = project_config(
        db_dir="/home/user/.crystal_atomate/jobflow-remote",
        ui_db_file="/home/user/.crystal_tui.db",
        work_dir="/home/user/crystal_atomate/remote_runs",
    )
    for section in ("queue", "jobstore", "workers", "runner"):
        assert _without_versions(example[section]) == _without_versions(expected[section])
    assert Project.model_validate(example).get_jobstore().docs_store.tui_mirror


def _without_versions(spec: object) -> object:
    if isinstance(spec, dict):
        return {k: _without_versions(v) for k, v in spec.items() if k != "@version"}
    return spec
