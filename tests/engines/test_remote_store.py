"""jobflow-remote on the embedded database: ``jf admin reset``, ``submit_flow``, the real
``jf runner`` daemon with a local worker, outputs read back, and a runner killed mid-flow."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from jobflow import JobStore

from crystal_atomate.engines.embedded_db import (
    connect,
    ensure_server,
    is_running,
    server_pid,
    stop_server,
)
from crystal_atomate.engines.remote_store import EmbeddedMongoStore, project_store_config
from crystal_atomate.testing.engines import shutdown_runner, wait_for_runner

# Every wait below is bounded; the bounds are for a loaded 2-core machine (jf alone takes seconds).
pytestmark = pytest.mark.timeout(300)

EXAMPLES = Path(__file__).parents[2] / "stores" / "jobflow-remote"

FAST_RUNNER = {
    "delay_checkout": 1,
    "delay_check_run_status": 1,
    "delay_advance_status": 1,
    "delay_refresh_limited": 5,
    "delay_update_batch": 5,
}

SUBMIT = """
import sys
from jobflow import Flow
from jobflow_remote import submit_flow
from jobflow_remote.testing import add, add_sleep

first = add_sleep(1, int(sys.argv[1]))
second = add(first.output, 10)
submit_flow(Flow([first, second]), worker="local_shell")
print(first.uuid, second.uuid)
"""


@dataclass
class RemoteProject:
    """A jobflow-remote project in a temporary folder, on its own embedded database."""

    env: dict[str, str]
    db_dir: Path
    base_dir: Path
    config: dict

    def jf(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run ``jf ARGS`` for this project; fail the test with its output if it fails."""
        result = subprocess.run(
            ["jf", *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if result.returncode:
            pytest.fail(f"jf {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def submit(self, sleep_seconds: int) -> tuple[str, str]:
        """Submit ``add_sleep(1, s) -> add(_, 10)`` from a separate process; return the uuids."""
        result = subprocess.run(
            [sys.executable, "-c", SUBMIT, str(sleep_seconds)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        first, second = result.stdout.split()[-2:]
        return first, second

    def states(self) -> dict[str, str]:
        jobs = EmbeddedMongoStore(self.db_dir, collection_name="jobs")
        jobs.connect()
        try:
            return {doc["uuid"]: doc["state"] for doc in jobs.query(properties=["uuid", "state"])}
        finally:
            jobs.close()

    def wait_for_states(self, wanted: Callable[[dict[str, str]], bool], timeout: float) -> None:
        wait_for_runner(self.states, wanted, timeout, "the job states", self.base_dir)

    def shutdown(self) -> None:
        """Shut the runner daemon down; fail the test unless it goes cleanly in time."""
        problem = shutdown_runner(["jf"], self.env, self.base_dir)
        assert not problem, problem


@pytest.fixture
def project(tmp_path: Path) -> Iterator[RemoteProject]:
    name = "crystal_atomate_test"
    projects_dir, base_dir, db_dir = tmp_path / "projects", tmp_path / "base", tmp_path / "db"
    projects_dir.mkdir()
    config = {
        "name": name,
        "base_dir": str(base_dir),
        "workers": {
            "local_shell": {
                "type": "local",
                "scheduler_type": "shell",
                "work_dir": str(tmp_path / "work"),
                "resources": {},
                "timeout_execute": 60,
            }
        },
        **project_store_config(db_dir),
        "runner": FAST_RUNNER,
    }
    (projects_dir / f"{name}.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "JFREMOTE_PROJECTS_FOLDER": str(projects_dir), "JFREMOTE_PROJECT": name}
    remote = RemoteProject(env=env, db_dir=db_dir, base_dir=base_dir, config=config)
    yield remote
    shutdown_runner(["jf"], env, base_dir)  # a test that failed may have left it running
    stop_server(db_dir)


def _outputs(remote: RemoteProject) -> JobStore:
    store = JobStore.from_dict(remote.config["jobstore"])
    store.connect()
    return store


def test_queue_store_is_accepted_by_jobflow_remote(project: RemoteProject) -> None:
    from jobflow_remote.config.base import Project

    parsed = Project.model_validate(project.config)
    assert isinstance(parsed.get_queue_store(), EmbeddedMongoStore)
    assert isinstance(parsed.get_jobstore().docs_store, EmbeddedMongoStore)
    queue_dict = parsed.get_queue_store().as_dict()
    assert EmbeddedMongoStore.from_dict(queue_dict).db_dir == str(project.db_dir.absolute())


def _without_versions(spec: object) -> object:
    if isinstance(spec, dict):
        return {k: _without_versions(v) for k, v in spec.items() if k != "@version"}
    return spec


def test_example_projects_validate() -> None:
    from jobflow_remote.config.base import Project

    embedded = yaml.safe_load((EXAMPLES / "crystal_atomate.yaml").read_text())
    expected = project_store_config("/home/user/.crystal_atomate/jobflow-remote")
    assert _without_versions(embedded["queue"]) == _without_versions(expected["queue"])
    outputs = expected["jobstore"]["docs_store"]
    assert _without_versions(embedded["jobstore"]["docs_store"]) == _without_versions(outputs)
    assert isinstance(Project.model_validate(embedded).get_queue_store(), EmbeddedMongoStore)

    slurm = yaml.safe_load((EXAMPLES / "crystal_atomate-mongodb-slurm.yaml").read_text())
    parsed = Project.model_validate(slurm)
    assert parsed.workers["cluster_slurm"].scheduler_type == "slurm"
    assert parsed.get_jobstore().docs_store.host == "mongodb.example.org"


def test_runner_daemon_completes_a_flow(project: RemoteProject) -> None:
    project.jf("admin", "reset", "-y")
    first, second = project.submit(sleep_seconds=1)
    assert project.states() == {first: "READY", second: "WAITING"}

    project.jf("runner", "start")
    project.wait_for_states(lambda s: set(s.values()) == {"COMPLETED"}, timeout=90)
    project.shutdown()

    store = _outputs(project)
    assert store.get_output(first) == 2
    assert store.get_output(second) == 12
    assert "COMPLETED" in project.jf("job", "list").stdout
    assert "COMPLETED" in project.jf("flow", "list").stdout  # an aggregation with $lookup


def test_killed_runner_restarts_and_finishes_the_flow(project: RemoteProject) -> None:
    project.jf("admin", "reset", "-y")
    first, second = project.submit(sleep_seconds=8)

    project.jf("runner", "start")
    project.wait_for_states(lambda s: s[first] in ("SUBMITTED", "RUNNING"), timeout=60)
    project.jf("runner", "kill", "--wait")
    states = project.states()
    assert states[second] == "WAITING", states

    project.jf("runner", "start")
    project.wait_for_states(lambda s: set(s.values()) == {"COMPLETED"}, timeout=90)
    project.shutdown()

    store = _outputs(project)
    assert (store.get_output(first), store.get_output(second)) == (9, 19)


@pytest.mark.timeout(420)
def test_server_killed_mid_flow_the_runner_carries_on(project: RemoteProject) -> None:
    """SIGKILL the embedded database while the runner works a flow, restart it after a pause: the
    runner's interrupted writes are retried, the flow completes without ``jf`` help and no job or
    flow is left locked."""
    project.jf("admin", "reset", "-y")
    first, second = project.submit(sleep_seconds=4)

    project.jf("runner", "start")
    project.wait_for_states(lambda s: s[first] in ("SUBMITTED", "RUNNING"), timeout=60)
    os.kill(server_pid(project.db_dir), signal.SIGKILL)
    deadline = time.monotonic() + 10
    while is_running(project.db_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(2)
    ensure_server(project.db_dir)
    project.wait_for_states(lambda s: set(s.values()) == {"COMPLETED"}, timeout=120)

    with connect(project.db_dir) as client:
        queue = client[project.config["queue"]["store"]["database"]]
        locked_jobs = queue.jobs.count_documents({"lock_id": {"$ne": None}})
        locked_flows = queue.flows.count_documents({"lock_id": {"$ne": None}})
    assert (locked_jobs, locked_flows) == (0, 0)
    project.shutdown()
    store = _outputs(project)
    assert (store.get_output(first), store.get_output(second)) == (5, 15)
