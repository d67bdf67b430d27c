"""crystal_atomate flows through jobflow-remote: the project ``crystal-atomate remote init`` writes,
the real ``jf runner`` daemon with a local shell worker, CRYSTAL replaced by the replay executable
(its plan and commands exported by the project's ``crystal`` exec config), and the results read
back from ``CrystalMathJobStore`` and the UI's ``jobs`` table.

One runner serves the module: MgO relax -> static, the NiO SCF restarted after its failure, and a
NiO SCF that may not restart (FAILED on the worker with its classified error). The runner is killed
while the relaxation runs and started again; the failed job is rerun with ``jf job rerun`` once the
replay (standing in for the fixed CRYSTAL installation) is repaired. Every job runs in
jobflow-remote's plain ``jf execution run``, the default ``remote init`` writes (the warm executor
is opt-in and tested in ``test_remote_exec.py``); no warm server may appear in the module's folder.

Without the runner: a job's completion on the project's job store, as jobflow-remote's
``update_store`` and as jobflow's ``JobStore.update`` perform it, SIGKILLed between its two writes
(issue 18, item 1): the UI row is COMPLETED only when the whole output loads.
"""

from __future__ import annotations

import dataclasses
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from jobflow import Flow
from monty.serialization import dumpfn, loadfn

from crystal_atomate.demo import DEMO_REPLAY, demo_flows, nio_structure
from crystal_atomate.engines.remote import (
    LOCAL_WORKER,
    failed_jobs,
    load_project,
    project_config,
    sync_ui_states,
    write_project,
)
from crystal_atomate.engines.remote_exec import EXEC_DIR_ENV, running_servers, stop_servers
from crystal_atomate.engines.remote_store import EmbeddedMongoStore
from crystal_atomate.io.units import HARTREE_TO_EV
from crystal_atomate.stores.jobstore import CrystalMathJobStore
from crystal_atomate.testing.engines import RemoteProject, remote_project
from crystal_atomate.testing.hpc import relax_static_flow
from crystal_atomate.testing.job_completion import complete_job, recorded_dos
from crystal_atomate.testing.replay_setup import use_replay

# Each job is a fresh `jf execution run` (seconds of imports, minutes on a loaded 2-core machine).
pytestmark = pytest.mark.timeout(900)

NIO_FAILED_RUN, NIO_RECOVERED_RUN = DEMO_REPLAY["NiO static"]


def _settled(states: dict[tuple[str, int], str]) -> bool:
    finished = {key for key, state in states.items() if state in ("COMPLETED", "FAILED")}
    return len(finished) == len(states) == 5


def _unfixable() -> Flow:
    (static,) = demo_flows()[1].jobs
    maker = dataclasses.replace(static.maker, name="NiO unfixable", max_restarts=0)
    return Flow([maker.make(nio_structure())], name="NiO unfixable")


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RemoteProject]:
    flows = {"mgo": relax_static_flow(), "nio": demo_flows()[1], "unfixable": _unfixable()}
    plan = {**DEMO_REPLAY, "NiO unfixable": NIO_FAILED_RUN}
    exec_dir = str(tmp_path_factory.mktemp("exec"))
    with remote_project(tmp_path_factory.mktemp("remote"), flows, plan) as remote:
        remote.env[EXEC_DIR_ENV] = exec_dir  # the runner's environment, so every job's
        yield remote
    stop_servers(exec_dir)
    assert running_servers(exec_dir) == {}


@pytest.fixture(scope="module")
def settled(remote: RemoteProject) -> RemoteProject:
    """The runner started, killed while the relaxation runs, restarted, and every job finished."""
    assert {status for status, *_ in remote.ui_rows().values()} == {"QUEUED"}
    remote.jf("runner", "start")
    remote.wait_for(
        lambda s: s[("relax", 1)] in ("SUBMITTED", "RUNNING"), 240, "the relaxation to start"
    )
    remote.jf("runner", "kill", "--wait")
    assert remote.states()[("static", 1)] == "WAITING"
    remote.jf("runner", "start")
    remote.wait_for(_settled, 600, "every job to finish")
    remote.store.connect()
    return remote


def _doc(store: CrystalMathJobStore, name: str, index: int = 1) -> dict:
    return store.query_one({"name": name, "index": index})["output"]


def test_the_project_is_the_one_init_wrote(remote: RemoteProject) -> None:
    project = load_project(remote.project_file)
    assert list(project.workers) == [LOCAL_WORKER]
    export = project.exec_config["crystal"].export
    assert Path(export["CRYSTAL_ATOMATE_REPLAY_PLAN"]) == remote.plan_dir / "plan.json"
    assert isinstance(project.get_queue_store(), EmbeddedMongoStore)
    docs_store = project.get_jobstore().docs_store
    assert docs_store.db_file == remote.store.db_file and docs_store.tui_mirror
    assert project.workers[LOCAL_WORKER].execution_cmd is None


def test_jobs_ran_in_plain_jf_execution_run(settled: RemoteProject) -> None:
    """The default worker command: jobflow-remote's own ``jf -fe execution run`` in each run dir,
    and no warm executor server (nor its log) anywhere."""
    queue = EmbeddedMongoStore(settled.db_dir, collection_name="jobs")
    queue.connect()
    try:
        run_dirs = [Path(doc["run_dir"]) for doc in queue.query(properties=["run_dir"])]
    finally:
        queue.close()
    assert len(set(run_dirs)) == 5
    for run_dir in run_dirs:
        assert "jf -fe execution run" in (run_dir / "submit.sh").read_text()
    assert running_servers(settled.env[EXEC_DIR_ENV]) == {}
    assert list(Path(settled.env[EXEC_DIR_ENV]).iterdir()) == []


def test_mgo_relax_static(settled: RemoteProject) -> None:
    relax, static = _doc(settled.store, "relax"), _doc(settled.store, "static")
    assert relax["state"] == static["state"] == "successful"
    assert relax["output"]["energy_hartree"] == pytest.approx(-2.754486980727e02, abs=1e-8)
    assert static["output"]["energy_hartree"] == pytest.approx(-2.7544859113743e02, abs=1e-8)
    assert relax["structure"]["lattice"]["a"] == pytest.approx(2.99828782, abs=1e-6)
    assert "GUESSP" in static["input"]["d12"]
    assert settled.states()[("relax", 1)] == "COMPLETED"


def test_nio_failure_is_restarted(settled: RemoteProject) -> None:
    failed, recovered = _doc(settled.store, "NiO static", 1), _doc(settled.store, "NiO static", 2)
    assert failed["state"] == "failed" and failed["errors"] == ["scf_not_converged"]
    assert failed["output"]["energy_hartree"] == pytest.approx(-3.1282821683361e03, abs=1e-8)
    assert recovered["state"] == "successful"
    assert recovered["output"]["energy_hartree"] == pytest.approx(-3.1282821705429e03, abs=1e-8)
    assert recovered["restarts"][0]["from_dir"] == failed["dir_name"]


def test_worker_failure_is_reported_with_the_crystal_error(settled: RemoteProject) -> None:
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


def test_failed_job_reruns_after_a_fix(settled: RemoteProject) -> None:
    fixed = {**NIO_RECOVERED_RUN, "ignore": [*NIO_RECOVERED_RUN["ignore"], "scf.guessp"]}
    use_replay({**DEMO_REPLAY, "NiO unfixable": fixed}, settled.plan_dir)
    (job,) = settled.flows["unfixable"].jobs
    settled.jf("job", "rerun", job.uuid)
    assert sync_ui_states(settled.project_file) == {"QUEUED": 1}
    settled.wait_for(lambda s: s[("NiO unfixable", 1)] == "COMPLETED", 300, "the rerun")
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


# -- a completion killed between its writes (issue 18, item 1) --------------------------------

MGO_DOSS = "mgo_scf_band_doss_b3lyp_crystal17"


@dataclasses.dataclass
class Completion:
    """A project file on a fresh UI database, a DOS job QUEUED in it as ``submit_flows`` does."""

    project_file: Path
    store: CrystalMathJobStore
    job_file: Path
    run_dir: Path
    uuid: str

    def killed_after(self, writer: str, die_after: str) -> None:
        """Store the job as ``writer`` does in a child process killed after one write."""
        result = subprocess.run(
            [sys.executable, "-m", "crystal_atomate.testing.job_completion", "complete",
             str(self.project_file), str(self.job_file), str(self.run_dir), "--writer", writer,
             "--die-after", die_after],
            capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == -signal.SIGKILL, result.stderr

    def retried(self, writer: str) -> None:
        """Store the job again as ``writer`` does (here: the same code, in this process)."""
        complete_job(self.project_file, loadfn(self.job_file), self.run_dir, writer)

    def stored(self) -> tuple[int, int]:
        """Return how many documents and blobs of the job the UI file holds."""
        docs = self.store.docs_store.count({"uuid": self.uuid})
        return docs, self.store.additional_stores["data"].count()

    def ui_status(self) -> str:
        """Return the status of the job's UI row, as the UI and ``crystal-atomate jobs`` read it."""
        with closing(sqlite3.connect(self.store.db_file)) as conn:
            (status,) = conn.execute(
                "SELECT j.status FROM jobs j JOIN jobflow_job_links l ON l.tui_job_id = j.id "
                "WHERE l.job_uuid = ?", (self.uuid,)
            ).fetchone()
        return status


@pytest.fixture
def completion(tmp_path: Path, ref_dir: Path) -> Iterator[Completion]:
    config = project_config(
        name="torn", db_dir=tmp_path / "db", ui_db_file=tmp_path / ".crystal_tui.db",
        work_dir=tmp_path / "work", base_dir=tmp_path / "base",
    )
    project_file = write_project(config, folder=tmp_path / "projects")
    dos_job = recorded_dos(str(ref_dir / MGO_DOSS / "DOSS.DAT"))
    dumpfn(dos_job, tmp_path / "job.json")
    store = CrystalMathJobStore(tmp_path / ".crystal_tui.db")
    store.mark_job_state(dos_job.uuid, "QUEUED", name=dos_job.name)
    yield Completion(project_file, store, tmp_path / "job.json", tmp_path / "run", dos_job.uuid)
    store.close()


def _assert_recorded_dos(store: CrystalMathJobStore, uuid: str) -> None:
    dos = store.get_output(uuid, load=True)["dos"]
    assert dos["@class"] == "Dos" and len(dos["energies"]) == 302
    assert dos["efermi"] == pytest.approx(-0.15202 * HARTREE_TO_EV, abs=1e-6)
    assert dos["energies"][0] == pytest.approx((-0.553 - 0.15202) * HARTREE_TO_EV, abs=1e-6)


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("writer", "die_after", "stored", "status"),
    [
        # jobflow-remote's runner (update_store): the blob, then the document
        ("runner", "data", (0, 1), "QUEUED"),
        ("runner", "docs", (1, 1), "COMPLETED"),
        # jobflow's JobStore.update on the project's store: the document, then the blob
        ("jobflow", "docs", (1, 0), "QUEUED"),
        ("jobflow", "data", (1, 1), "COMPLETED"),
    ],
)
def test_a_completion_killed_between_its_writes_never_shows_completed_without_the_blob(
    completion: Completion, writer: str, die_after: str, stored: tuple[int, int], status: str
) -> None:
    """SIGKILL a job's completion right after one of its two writes committed: the UI row says
    COMPLETED only if the whole output loads; the retried completion then finishes it."""
    completion.killed_after(writer, die_after)
    assert completion.stored() == stored
    assert completion.ui_status() == status
    if status == "COMPLETED":
        _assert_recorded_dos(completion.store, completion.uuid)
    elif stored[0]:  # the document is stored without its blob: what the row must not claim
        with pytest.raises(KeyError):
            completion.store.get_output(completion.uuid, load=True)

    # jobflow-remote retries the runner's step of a DOWNLOADED job; jobflow runs the job again
    # (a new blob; the one a kill left behind stays unreferenced)
    completion.retried(writer)
    assert completion.stored() == (1, 1 if writer == "runner" else stored[1] + 1)
    assert completion.ui_status() == "COMPLETED"
    _assert_recorded_dos(completion.store, completion.uuid)
