"""Phonons: atomate2's phonopy flow with CRYSTAL forces, and CRYSTAL's native FREQCALC replayed."""

from __future__ import annotations

from pathlib import Path

import pytest
from jobflow import run_locally
from pymatgen.core import Lattice, Structure

from crystal_atomate.flows.phonons import CrystalPhononMaker
from crystal_atomate.io.d12 import CrystalInput
from crystal_atomate.jobs.core import FreqMaker, StaticMaker, TightRelaxMaker
from crystal_atomate.sets.core import FreqSetGenerator
from crystal_atomate.testing.reference import reference_dir

DRY_ICE = "dryice_freq_ir_b3lypd3_crystal22"


@pytest.fixture
def mgo() -> Structure:
    return Structure(Lattice.cubic(4.217), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])


@pytest.fixture
def previous_run(tmp_path: Path) -> Path:
    """A finished run's directory, with the wavefunction a next job could start from."""
    (tmp_path / "fort.9").write_text("wavefunction")
    return tmp_path


def test_flow_chains_relax_static_and_displacements(mgo: Structure) -> None:
    maker = CrystalPhononMaker()
    assert maker.prev_calc_dir_argname == "prev_dir" and maker.born_maker is None
    flow = maker.make(mgo, prev_dir="/previous/run")
    names = [job.name for job in flow.jobs]
    assert names == [
        "phonon bulk relax",
        "get_supercell_size",
        "phonon static energy",
        "generate_phonon_displacements",
        "run_phonon_displacements",
        "generate_frequencies_eigenvectors",
    ]
    relax, _, static, displacements, runs, _ = flow.jobs
    assert isinstance(relax.maker, TightRelaxMaker)
    assert relax.function_kwargs["prev_dir"] == "/previous/run"
    assert static.function_kwargs["prev_dir"].uuid == relax.uuid
    assert displacements.function_kwargs["code"] == "vasp"
    assert isinstance(runs.function_kwargs["phonon_maker"], StaticMaker)
    assert runs.function_kwargs["prev_dir_argname"] == "prev_dir"


def test_displaced_supercells_compute_forces_from_scratch(
    mgo: Structure, previous_run: Path
) -> None:
    """GRADCAL for the forces; no GUESSP from the (smaller) cell's wavefunction in prev_dir."""
    generator = CrystalPhononMaker().phonon_displacement_maker.input_set_generator
    input_set = generator.get_input_set(mgo * (2, 2, 2), prev_dir=previous_run)
    assert "GRADCAL" in input_set.crystal_input.scf.extra
    assert input_set.crystal_input.scf.guessp is False
    assert "fort.20" not in input_set.restart_files
    static = CrystalPhononMaker().static_energy_maker.input_set_generator
    assert static.get_input_set(mgo, prev_dir=previous_run).crystal_input.scf.guessp is True


def _dry_ice_freq_maker() -> FreqMaker:
    """Settings that write the recorded dry-ice FREQCALC RESTART deck keyword by keyword."""
    recorded = CrystalInput.from_file(reference_dir() / DRY_ICE / "INPUT.d12")
    generator = FreqSetGenerator(
        functional="B3LYP-D3",
        user_basis_settings=recorded.basis,
        user_kpoints_settings={"shrink": [6, 6]},
        user_input_settings={
            "freqcalc": {"restart": True, "intcphf": [], "irspec": []},
            "hamiltonian": {"dft": {"grid": None}},
            "scf": {"toldee": 9, "tolinteg": None, "maxcycle": None, "fmixing": None, "ppan": None},
        },
    )
    return FreqMaker(name="dry ice frequencies", input_set_generator=generator)


def test_native_freqcalc_frequencies_and_ir_intensities(
    mock_crystal, tmp_path, monkeypatch
) -> None:
    mock_crystal({"dry ice frequencies": DRY_ICE})
    monkeypatch.chdir(tmp_path)
    dry_ice = CrystalInput.from_file(
        reference_dir() / DRY_ICE / "INPUT.d12"
    ).geometry.to_structure()
    job = _dry_ice_freq_maker().make(dry_ice)
    doc = run_locally(job, create_folders=True, ensure_success=True)[job.uuid][1].output
    assert doc.state == "successful" and doc.task_type == "frequency"
    out = doc.output
    assert out.energy_hartree == pytest.approx(-754.2764457403, abs=1e-8)
    assert len(out.frequencies) == len(out.ir_intensities) == 3 * 12
    assert out.frequencies[:3] == [0.0, 0.0, 0.0]
    assert out.frequencies[3:6] == [74.6367] * 3
    assert out.ir_intensities[3:6] == [2.07] * 3
    assert out.frequencies[6:8] == [76.4586] * 2 and out.ir_intensities[6:8] == [0.0, 0.0]
    assert out.frequencies[-3:] == [2392.5167] * 3 and out.ir_intensities[-3:] == [3840.70] * 3
    assert out.frequencies[22:25] == [659.4536] * 3 and out.ir_intensities[22:25] == [436.36] * 3
