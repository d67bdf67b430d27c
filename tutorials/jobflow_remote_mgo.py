"""Tutorial: crystal_atomate flows on jobflow-remote, with the real runner daemon and no MongoDB.

Run it with ``python tutorials/jobflow_remote_mgo.py``. It writes a crystal_atomate project (what
``crystal-atomate remote init`` writes) into a temporary projects folder, submits MgO relax ->
static and the NiO SCF that fails and is restarted, starts ``jf runner``, waits for the jobs, and
reads the task documents from the terminal UI's database, which is the project's job store.

CRYSTAL is replaced by the replay executable through the project's ``crystal`` exec config (its
plan and commands are exported to every job). With CRYSTAL23, ``remote init`` puts your
``CRYSTAL_ATOMATE_CRYSTAL_CMD`` there instead.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

from jobflow import Flow

from crystal_atomate.demo import DEMO_REPLAY, demo_flows, mgo_makers, mgo_structure
from crystal_atomate.engines.embedded_db import stop_server
from crystal_atomate.engines.remote import (
    project_config,
    runner_delays,
    submit_flows,
    sync_ui_states,
    write_project,
)
from crystal_atomate.engines.remote_store import EmbeddedMongoStore
from crystal_atomate.flows.core import RelaxBandStructureMaker
from crystal_atomate.stores.jobstore import CrystalMathJobStore
from crystal_atomate.testing.replay_setup import use_replay

NAME = "crystal_atomate_tutorial"
WAIT_TIMEOUT = 600


def relax_static() -> Flow:
    """MgO relax -> static with the settings of the recorded runs."""
    makers = mgo_makers()
    maker = RelaxBandStructureMaker(
        name="MgO relax static",
        relax_maker=makers["relax"],
        static_maker=makers["static"],
        band_structure_maker=None,
        dos_maker=None,
    )
    return maker.make(mgo_structure())


def jf(env: dict[str, str], *args: str) -> str:
    """Run the ``jf`` command line on this tutorial's project; return what it printed."""
    return subprocess.run(
        ["jf", "-p", NAME, *args], env=env, check=True, capture_output=True, text=True, timeout=120
    ).stdout


def wait_until_done(db_dir: Path, n_jobs: int) -> None:
    """Poll the queue database until ``n_jobs`` jobs are COMPLETED; raise after WAIT_TIMEOUT s."""
    queue = EmbeddedMongoStore(db_dir, collection_name="jobs")
    queue.connect()
    deadline = time.monotonic() + WAIT_TIMEOUT
    try:
        while queue.count({"state": "COMPLETED"}) < n_jobs:
            if time.monotonic() > deadline:
                states = [doc["state"] for doc in queue.query(properties=["state"])]
                raise TimeoutError(f"jobs not done after {WAIT_TIMEOUT} s: {states}")
            time.sleep(1)
    finally:
        queue.close()


def main(work_dir: Path) -> dict[str, float]:
    """Run both flows through jobflow-remote; return the final energies (Ha) by job name."""
    replay = use_replay(DEMO_REPLAY, work_dir / "replay")
    config = project_config(
        name=NAME,
        db_dir=work_dir / "queue-db",
        ui_db_file=work_dir / ".crystal_tui.db",
        work_dir=work_dir / "runs",
        base_dir=work_dir / "runner",
        env=replay,
        runner=runner_delays(1),
    )
    project_file = write_project(config, work_dir / "projects")
    print(f"project written to {project_file}")
    env = {**os.environ, "JFREMOTE_PROJECTS_FOLDER": str(work_dir / "projects")}
    try:
        jf(env, "admin", "reset", "-y")
        submit_flows([relax_static(), demo_flows()[1]], project_file)
        jf(env, "runner", "start")
        wait_until_done(work_dir / "queue-db", n_jobs=4)  # relax, static, NiO run 1 and its restart
        print(jf(env, "job", "list"))
        print(f"UI rows updated from the queue: {dict(sync_ui_states(project_file))}")
    finally:
        subprocess.run(["jf", "-p", NAME, "runner", "shutdown", "--wait"], env=env, timeout=120)
        stop_server(work_dir / "queue-db")

    store = CrystalMathJobStore(work_dir / ".crystal_tui.db")
    store.connect()
    energies = {}
    for doc in store.query({}, properties=["name", "index", "output.state", "output.output"]):
        energy = doc["output"]["output"].get("energy_hartree")
        print(f"{doc['name']:12s} run {doc['index']}  {doc['output']['state']:10s}  {energy}")
        if doc["output"]["state"] == "successful":
            energies[doc["name"]] = energy
    assert abs(energies["static"] - -275.44859113743) < 1e-8
    assert abs(energies["NiO static"] - -3128.2821705429) < 1e-8
    return energies


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        main(Path(tmp))
