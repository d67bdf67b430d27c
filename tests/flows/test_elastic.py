"""Elastic: atomate2's flow with CRYSTAL Makers (and its stress sign); native ELASTCON replayed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from atomate2.common.jobs.elastic import fit_elastic_tensor, generate_elastic_deformations
from jobflow import run_locally
from pymatgen.analysis.elasticity import Deformation, ElasticTensor
from pymatgen.core import Lattice, Structure

from crystal_atomate.flows.elastic import CrystalElasticMaker
from crystal_atomate.io.d12 import CrystalInput
from crystal_atomate.io.outputs import CrystalOutput, parse_output
from crystal_atomate.io.units import HARTREE_PER_BOHR3_TO_GPA
from crystal_atomate.jobs.core import ElasticMaker, RelaxMaker, TightRelaxMaker
from crystal_atomate.schemas.task import CrystalOutputDoc
from crystal_atomate.sets.core import ElasticSetGenerator
from crystal_atomate.testing.reference import reference_dir

GRAPHENE = "graphene_elastcon_2d_crystal22"
ELASTCON_3D = "elastcon_3d_pbe0_crystal17"
#: The 3D ELASTCON tensor printed in elastcon_3d_pbe0_crystal17 (GPa).
C_3D = [
    [94.908, 3.349, 3.349, 0, 0, 0],
    [3.349, 94.908, 3.349, 0, 0, 0],
    [3.349, 3.349, 94.908, 0, 0, 0],
    [0, 0, 0, -1.628, 0, 0],
    [0, 0, 0, 0, -1.628, 0],
    [0, 0, 0, 0, 0, -1.628],
]


@pytest.fixture(scope="module")
def sodium_chloride() -> Structure:
    """The cubic cell of the 3D ELASTCON recording (as parsed from its output)."""
    return parse_output(reference_dir() / ELASTCON_3D / "OUTPUT.out").structure


def test_flow_has_bulk_relax_deformations_and_fit(sodium_chloride: Structure) -> None:
    maker = CrystalElasticMaker()
    assert maker.prev_calc_dir_argname == "prev_dir"
    flow = maker.make(sodium_chloride, prev_dir="/previous/run")
    bulk, deformations, runs, fit = flow.jobs
    assert isinstance(bulk.maker, TightRelaxMaker) and bulk.name == "elastic bulk relax"
    assert bulk.function_kwargs["prev_dir"] == "/previous/run"
    assert deformations.name == "generate_elastic_deformations"
    assert isinstance(runs.function_kwargs["elastic_relax_maker"], RelaxMaker)
    assert fit.function_kwargs["stress_sign_factor"] == 1.0
    assert fit.function_kwargs["equilibrium_stress"].uuid == bulk.uuid


def test_deformation_deck_relaxes_atoms_and_prints_the_stress(sodium_chloride: Structure) -> None:
    deck = CrystalElasticMaker().elastic_relax_maker.input_set_generator.get_input_set(
        sodium_chloride
    )
    crystal_input = deck.crystal_input
    assert crystal_input.optgeom.type == "ATOMONLY"
    assert "STRESS" in crystal_input.scf.extra
    assert crystal_input.scf.toldee == 10


def test_stress_in_the_task_document_has_vasp_sign(ref_dir: Path) -> None:
    """bcc Fe under tension: CRYSTAL prints +3.34e-3 Ha/bohr^3 and P = -98.32 GPa, then shrinks
    the cell; VASP's convention (what atomate2 expects) is negative stress for a cell in tension."""
    out = parse_output(ref_dir / "bccfe_opt_scf_failed_b3pw_crystal14" / "OUTPUT.out")
    stress = np.array(CrystalOutputDoc.from_crystal_output(out).stress)
    assert out.pressure_gpa == pytest.approx(-98.32)
    assert np.trace(stress) / 3 / 10 == pytest.approx(out.pressure_gpa, rel=1e-3)
    assert out.opt_steps[1].energy_ha < out.opt_steps[0].energy_ha


def _task_document_stress(cauchy_gpa: np.ndarray) -> list[list[float]]:
    """The kbar stress our task document carries for a physical (tension positive) stress."""
    crystal_printed = (cauchy_gpa / HARTREE_PER_BOHR3_TO_GPA).tolist()
    return CrystalOutput(stress_ha_per_bohr3=crystal_printed).stress_kbar


def test_atomate2_fit_recovers_the_crystal_tensor_from_our_stresses(
    sodium_chloride: Structure,
) -> None:
    """Stresses that the real ELASTCON tensor implies, written as our task documents write them and
    fitted by atomate2 with our sign correction, give that tensor back (a sign error flips it)."""
    tensor = ElasticTensor.from_voigt(C_3D)
    deformations = generate_elastic_deformations.original(sodium_chloride)
    data = []
    for index, matrix in enumerate(deformations):
        deformation = Deformation(matrix)
        second_piola = tensor.calculate_stress(deformation.green_lagrange_strain)
        cauchy = deformation @ second_piola @ deformation.T / np.linalg.det(deformation)
        data.append({"stress": _task_document_stress(cauchy), "deformation": matrix,
                     "uuid": str(index), "job_dir": f"/runs/{index}"})
    sign = CrystalElasticMaker().stress_sign_correction
    doc = fit_elastic_tensor.original(sodium_chloride, data, stress_sign_factor=sign)
    assert np.array(doc.elastic_tensor.raw) == pytest.approx(np.array(C_3D), abs=1e-3)


def _graphene_elastic_maker() -> ElasticMaker:
    """Settings that write the recorded 2D graphene ELASTCON deck keyword by keyword."""
    recorded = CrystalInput.from_file(reference_dir() / GRAPHENE / "INPUT.d12")
    generator = ElasticSetGenerator(
        preoptimise=True,
        functional="HSE06",
        user_basis_settings=recorded.basis,
        user_kpoints_settings={"shrink": [24, 48]},
        user_input_settings={
            "hamiltonian": {"dft": {"grid": "XXLGRID"}},
            "scf": {"tolinteg": [7, 7, 7, 7, 14], "toldee": 8, "fmixing": 30, "maxcycle": 200,
                    "smear": 0.0001, "ppan": None},
        },
    )
    return ElasticMaker(name="graphene elastic", input_set_generator=generator)


def _run(job, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    return run_locally(job, create_folders=True, ensure_success=True)[job.uuid][1].output


def _keywords(deck: CrystalInput) -> dict:
    return deck.model_dump(mode="json", exclude={"title", "geometry", "basis"})


def test_native_elastcon_2d_graphene(mock_crystal, tmp_path, monkeypatch) -> None:
    """The replay cannot turn a recorded SLAB deck into a structure (no layer-group expansion in
    io.geometry), so it skips the deck check here and the test compares the keywords itself."""
    mock_crystal({"graphene elastic": {"recording": GRAPHENE, "deck": None}})
    graphene = Structure(
        Lattice.hexagonal(2.45205264, 20.0), ["C", "C"], [[1 / 3, 2 / 3, 0.5], [2 / 3, 1 / 3, 0.5]]
    )
    doc = _run(_graphene_elastic_maker().make(graphene), tmp_path, monkeypatch)
    ours = CrystalInput.from_file(Path(doc.dir_name) / "INPUT")
    recorded = CrystalInput.from_file(reference_dir() / GRAPHENE / "INPUT.d12")
    assert _keywords(ours) == _keywords(recorded)
    assert ours.geometry.fort34.dimensionality == 2
    assert doc.state == "successful" and doc.task_type == "elastic"
    assert doc.input.parameters["elastcon"]["preoptgeom"] is True
    assert doc.output.elastic_tensor == [
        [4.479, 0.982, 0.0],
        [0.982, 4.479, 0.0],
        [0.0, 0.0, 1.749],
    ]
    assert doc.output.energy_hartree == pytest.approx(-76.091361265011, abs=1e-8)


def test_native_elastcon_3d_without_recorded_deck(
    mock_crystal, sodium_chloride, tmp_path, monkeypatch
) -> None:
    """The 3D recording kept no deck, so the replay skips the deck check (said explicitly)."""
    mock_crystal({"elastic": {"recording": ELASTCON_3D, "deck": None}})
    doc = _run(ElasticMaker().make(sodium_chloride), tmp_path, monkeypatch)
    assert doc.state == "successful"
    assert doc.output.elastic_tensor == C_3D
    assert doc.output.energy_hartree == pytest.approx(-622.38169993737, abs=1e-8)
