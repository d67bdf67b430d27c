"""Tutorial 1: a first CRYSTAL calculation with crystal_atomate — a static SCF on MgO.

Run it with ``python tutorials/01_first_static.py``. CRYSTAL is licensed and not installed here, so
the CRYSTAL binary is replaced by the replay executable, which checks the deck we write against a
recorded real run and hands back that run's real output. With a real CRYSTAL23 installed, drop the
``replay_environment`` block and set ``CRYSTAL_ATOMATE_CRYSTAL_CMD``: nothing else changes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from jobflow import run_locally

from crystal_atomate.demo import mgo_makers, mgo_structure, replay_environment
from crystal_atomate.stores.jobstore import CrystalMathJobStore


def main(work_dir: Path) -> float:
    """Run one static job on MgO into a fresh shared database; return its energy in Hartree."""
    work_dir.mkdir(parents=True, exist_ok=True)
    structure = mgo_structure()
    # The static Maker with the settings of the recorded run (B3LYP, SHRINK 12 24, ...).
    # Any StaticMaker works the same way with a real CRYSTAL: StaticMaker().make(structure).
    job = mgo_makers()["static"].make(structure)

    print("The deck this job will write:\n")
    print(job.maker.input_set_generator.get_input_set(structure, title=job.name).crystal_input)

    store = CrystalMathJobStore(work_dir / ".crystal_tui.db")
    with replay_environment(work_dir / "replay"):
        run_locally(job, store=store, create_folders=True, root_dir=work_dir, log=False)

    store.connect()
    doc = store.query_one({"uuid": job.uuid})["output"]
    print(f"state         {doc['state']}")
    print(
        f"energy        {doc['output']['energy_hartree']:.10f} Ha = "
        f"{doc['output']['energy']:.6f} eV"
    )
    print(f"band gap      {doc['output']['bandgap']} eV")
    print(f"SCF cycles    {doc['output']['scf_cycles']}")
    print(f"run folder    {doc['dir_name']}")
    print(f"database      {store.db_file} (the terminal UI lists this job)")
    return doc["output"]["energy_hartree"]


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        main(Path(tmp))
