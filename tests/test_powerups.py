"""Powerups on Jobs, Flows and Makers: changed settings reach the written deck and the document."""

from __future__ import annotations

from pathlib import Path

import pytest
from jobflow import run_locally
from pymatgen.core import Lattice, Structure

from crystal_atomate.flows.elastic import CrystalElasticMaker
from crystal_atomate.flows.eos import CrystalEosMaker
from crystal_atomate.io.d12 import CrystalInput, Shrink
from crystal_atomate.jobs.core import RelaxMaker, StaticMaker, TightRelaxMaker
from crystal_atomate.powerups import (
    add_metadata_to_flow,
    update_handle_unsuccessful,
    update_run_crystal_kwargs,
    update_user_basis_settings,
    update_user_input_settings,
    update_user_kpoints_settings,
)
from crystal_atomate.sets.core import RelaxSetGenerator
from crystal_atomate.testing.reference import reference_dir

MGO_OPT = "mgo_opt_b3lyp_crystal22"


@pytest.fixture
def mgo() -> Structure:
    return Structure(Lattice.cubic(4.217), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def _deck(job, structure: Structure) -> CrystalInput:
    return job.maker.input_set_generator.get_input_set(
        structure, title=job.maker.name
    ).crystal_input


def _crystal_jobs(flow) -> list:
    return [job for job, _ in flow.iterflow() if hasattr(job.maker, "input_set_generator")]


def test_input_settings_merge_into_the_filtered_makers_of_a_flow(mgo: Structure) -> None:
    flow = CrystalEosMaker().make(mgo)
    updated = update_user_input_settings(
        flow, {"scf": {"maxcycle": 321}}, name_filter="deformation"
    )
    relax, *deformations = _crystal_jobs(updated)
    assert len(deformations) == 6
    for job in deformations:
        deck = _deck(job, mgo)
        assert deck.scf.maxcycle == 321
        assert deck.scf.toldee == 10 and deck.optgeom.type == "ATOMONLY"
    assert _deck(relax, mgo).scf.maxcycle == 100
    assert all(_deck(job, mgo).scf.maxcycle == 100 for job in _crystal_jobs(flow)[1:])


def test_class_filter_and_key_removal(mgo: Structure) -> None:
    flow = CrystalEosMaker().make(mgo)
    updated = update_user_input_settings(
        flow, {"optgeom": {"maxcycle": 7}, "scf": {"ppan": None}}, class_filter=TightRelaxMaker
    )
    relax, deformation, *_ = _crystal_jobs(updated)
    assert _deck(relax, mgo).optgeom.maxcycle == 7 and _deck(relax, mgo).scf.ppan is False
    assert (
        _deck(deformation, mgo).optgeom.maxcycle == 100 and _deck(deformation, mgo).scf.ppan is True
    )


def test_kpoints_and_basis_reach_the_nested_makers_of_a_maker(mgo: Structure) -> None:
    maker = update_user_kpoints_settings(CrystalElasticMaker(), {"shrink": [5, 10]})
    maker = update_user_basis_settings(maker, "STO-3G", class_filter=TightRelaxMaker)
    bulk, strained = (
        nested.input_set_generator.get_input_set(mgo).crystal_input
        for nested in (maker.bulk_relax_maker, maker.elastic_relax_maker)
    )
    assert bulk.scf.shrink == strained.scf.shrink == Shrink(mesh=5, isp=10)
    assert (bulk.basis.library, strained.basis.library) == ("STO-3G", "POB-TZVP-REV2")
    assert CrystalElasticMaker().bulk_relax_maker.input_set_generator.user_kpoints_settings == {}


def test_run_kwargs_and_failure_handling_on_a_job(mgo: Structure) -> None:
    job = StaticMaker().make(mgo)
    updated = update_handle_unsuccessful(update_run_crystal_kwargs(job, {"mpi_procs": 16}), False)
    assert updated.maker.run_crystal_kwargs == {"mpi_procs": 16}
    assert updated.maker.stop_children_kwargs == {"handle_unsuccessful": False}
    assert job.maker.run_crystal_kwargs == {}


def test_metadata_and_input_settings_reach_a_replayed_task_document(
    mock_crystal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Powerups turn default relax settings into the recorded MgO deck (the replay checks every
    keyword), round-trip an explicit basis, and put the metadata into the task document."""
    recorded = CrystalInput.from_file(reference_dir() / MGO_OPT / "INPUT.d12")
    mock_crystal({"relax": MGO_OPT})
    monkeypatch.chdir(tmp_path)
    job = RelaxMaker(input_set_generator=RelaxSetGenerator(relax_type="default")).make(
        recorded.geometry.to_structure()
    )
    job = update_user_basis_settings(job, recorded.basis)
    job = update_user_kpoints_settings(job, {"shrink": [12, 24]})
    job = update_user_input_settings(job, {
        "hamiltonian": {"dft": {"functional": "B3LYP", "grid": "XXLGRID"}},
        "scf": {"maxcycle": 200, "fmixing": 70, "extra": ["DIIS"], "toldee": None, "ppan": None},
        "optgeom": {"maxcycle": None},
    })
    job = add_metadata_to_flow(job, {"project": "MgO", "batch": 3})
    job = update_run_crystal_kwargs(job, {"timeout": 600})
    doc = run_locally(job, create_folders=True, ensure_success=True)[job.uuid][1].output
    assert doc.metadata == {"project": "MgO", "batch": 3}
    assert doc.state == "successful"
    assert doc.output.energy_hartree == pytest.approx(-275.4486980727, abs=1e-8)
