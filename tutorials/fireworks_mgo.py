"""Tutorial: crystal_atomate flows on FireWorks, with two real launchers and no database server.

Run it with ``python tutorials/fireworks_mgo.py``. It adds the demo's two flows to an embedded
LaunchPad (MgO relax -> static -> band structure + DOS, and a NiO SCF that stops at MAXCYCLE and is
restarted by the error handlers as a FireWorks detour), runs them with two ``rlaunch rapidfire``
processes, and reads the results from the shared database the terminal UI shows.

CRYSTAL is licensed and not installed here, so the launchers run the replay executable (recorded
real CRYSTAL outputs, decks checked keyword by keyword). With CRYSTAL23 installed, drop ``env=``
and set ``CRYSTAL_ATOMATE_CRYSTAL_CMD`` for the launchers instead.
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

from crystal_atomate.demo import DEMO_REPLAY, demo_flows
from crystal_atomate.engines.embedded_db import stop_server
from crystal_atomate.engines.fireworks import (
    add_flows,
    launchpad_file,
    open_launchpad,
    start_launchers,
    workflow_states,
)
from crystal_atomate.stores.jobstore import CrystalMathJobStore
from crystal_atomate.testing.replay_setup import use_replay

LAUNCH_TIMEOUT = 600


def main(work_dir: Path) -> dict[str, float]:
    """Run both flows through FireWorks; return the final energies (Ha) by job name."""
    db_dir = work_dir / "fireworks-db"
    launchpad = open_launchpad(db_dir=db_dir)  # starts the embedded server, creates the LaunchPad
    store = CrystalMathJobStore(work_dir / ".crystal_tui.db")
    try:
        added = add_flows(demo_flows(), launchpad, store)
        print(f"added {len(added)} workflows; Fireworks: {dict(workflow_states(launchpad))}")

        replay = use_replay(DEMO_REPLAY, work_dir / "replay")  # the launchers' CRYSTAL commands
        launch_dir = work_dir / "launches"
        launchers = start_launchers(2, launchpad_file(db_dir=db_dir), launch_dir, env=replay)
        for launcher in launchers:
            launcher.wait(timeout=LAUNCH_TIMEOUT)
        print(f"after the launchers: {dict(workflow_states(launchpad))}")
    finally:
        stop_server(db_dir)

    store.connect()
    energies = {}
    for doc in store.query({}, properties=["name", "index", "output.state", "output.output"]):
        energy = doc["output"]["output"].get("energy_hartree")
        print(f"{doc['name']:15s} run {doc['index']}  {doc['output']['state']:10s}  {energy}")
        if energy is not None and doc["output"]["state"] == "successful":
            energies[doc["name"]] = energy
    with sqlite3.connect(store.db_file) as conn:
        rows = conn.execute("SELECT name, status, final_energy FROM jobs ORDER BY id").fetchall()
    print("\nThe terminal UI's job list:")
    for name, status, energy in rows:
        print(f"  {name:15s} {status:10s} {energy}")
    assert abs(energies["static"] - -275.44859113743) < 1e-8
    assert abs(energies["NiO static"] - -3128.2821705429) < 1e-8
    return energies


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        main(Path(tmp))
