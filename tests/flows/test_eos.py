"""EOS: atomate2's common EOS flow with CRYSTAL Makers, and CRYSTAL's native EOS job replayed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from jobflow import JobStore, OutputReference, run_locally
from maggma.stores import MemoryStore
from pymatgen.core import Lattice, Structure

from crystal_atomate.flows.eos import CrystalEosMaker
from crystal_atomate.io.units import HARTREE_TO_EV
from crystal_atomate.jobs.core import RelaxMaker, TightRelaxMaker
from crystal_atomate.run import CrystalRunError
from crystal_atomate.testing.recipes import EOS_REPLAY, eos_maker, eos_structure

TOL = 1e-8


@pytest.fixture
def mgo() -> Structure:
    return Structure(Lattice.cubic(4.217), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_flow_relaxes_then_strains_and_relaxes_atoms_at_each_volume(mgo: Structure) -> None:
    flow = CrystalEosMaker().make(mgo)
    jobs = [job for job, _ in flow.iterflow()]
    names = [job.name for job in jobs]
    assert names == [
        "EOS equilibrium relaxation",
        "apply_strain_to_structure",
        *(f"EOS deformation relax deformation {i}" for i in range(6)),
        "CRYSTAL EOS postprocessing",
    ]
    relax, strain, *deformations, _ = jobs
    assert isinstance(relax.maker, TightRelaxMaker)
    assert relax.maker.input_set_generator.relax_type == "full"
    assert all(isinstance(job.maker, RelaxMaker) for job in deformations)
    assert {job.maker.input_set_generator.relax_type for job in deformations} == {"atoms"}
    scales = [matrix[0][0] for matrix in strain.function_args[1]]
    assert scales == pytest.approx(1 + np.linspace(-0.05, 0.05, 6))
    for job in deformations:
        prev_dir = job.function_kwargs["prev_dir"]
        assert isinstance(prev_dir, OutputReference) and prev_dir.uuid == relax.uuid
        assert prev_dir.attributes == (("a", "dir_name"),)


def test_deformation_decks_relax_atoms_only(mgo: Structure) -> None:
    deck = CrystalEosMaker().eos_relax_maker.input_set_generator.get_input_set(mgo).crystal_input
    assert deck.optgeom is not None and deck.optgeom.type == "ATOMONLY"
    assert deck.optgeom.toldeg == 1e-4


def test_native_eos_job_puts_crystal_fits_in_the_task_document(
    mock_crystal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mock_crystal(EOS_REPLAY)
    monkeypatch.chdir(tmp_path)
    job = eos_maker().make(eos_structure())
    doc = run_locally(job, create_folders=True, ensure_success=True)[job.uuid][1].output
    assert doc.state == "successful" and doc.task_type == "eos"
    assert doc.input.parameters["eos"]["extra"] == ["RESTART2"]
    eos = doc.output.eos
    assert len(eos.volume) == 14
    assert eos.volume[0] == pytest.approx(30.195589, abs=1e-6)
    assert eos.energy[0] / HARTREE_TO_EV == pytest.approx(-63.70199863738, abs=TOL)
    assert eos.energy[-1] / HARTREE_TO_EV == pytest.approx(-63.71736155489, abs=TOL)
    murnaghan = eos.EOS["murnaghan"]
    assert murnaghan["e0"] / HARTREE_TO_EV == pytest.approx(-63.71760925, abs=TOL)
    assert (murnaghan["v0"], murnaghan["b0 GPa"], murnaghan["b1"]) == (34.7673, 180.21, 3.76)
    assert eos.EOS["fourth_order_polynomial"]["b0 GPa"] == 178.47


def test_native_eos_deck_that_differs_from_the_recording_fails_with_the_replay_message(
    mock_crystal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mock_crystal(EOS_REPLAY)
    monkeypatch.chdir(tmp_path)
    maker = eos_maker()
    maker.input_set_generator.volume_range = (0.9, 1.1, 7)
    store = JobStore(MemoryStore())
    store.connect()
    expected = r"eos\.range: ours \[0\.9, 1\.1, 7\], recorded \[0\.87, 1\.02, 13\]"
    with pytest.raises(CrystalRunError, match=expected):
        maker.make(eos_structure()).run(store)
