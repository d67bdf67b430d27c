"""parse_output over every real OUTPUT.out of the reference set, against values read by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pymatgen.core import Molecule, Structure

from crystal_atomate.io.errors import CrystalErrorKind
from crystal_atomate.io.outputs import CalculationKind, CrystalOutput, parse_output
from crystal_atomate.io.units import HARTREE_TO_EV
from crystal_atomate.testing.reference import reference_file

TOL = 1e-8

# folder: (version, kind, state, energy_ha, last SCF cycles, n_atoms, error kinds)
EXPECTED: dict[
    str, tuple[int, CalculationKind, str, float | None, int | None, int | None, list[str]]
] = {
    "bccfe_opt_scf_failed_b3pw_crystal14": (
        14,
        CalculationKind.OPTIMISATION,
        "failed",
        None,
        41,
        1,
        ["scf_failed_in_opt", "mpi_abort"],
    ),
    "be_scf_truncated_crystal17": (
        17,
        CalculationKind.SINGLE_POINT,
        "failed",
        None,
        None,
        2,
        ["truncated"],
    ),
    "cnanotube_elastcon_1d_crystal22": (
        22,
        CalculationKind.ELASTIC,
        "converged",
        -1.9682421380395e03,
        2,
        52,
        [],
    ),
    "dryice_freq_ir_b3lypd3_crystal22": (
        22,
        CalculationKind.FREQUENCY,
        "converged",
        -7.542764457403e02,
        9,
        12,
        [],
    ),
    "elastcon_3d_pbe0_crystal17": (
        17,
        CalculationKind.ELASTIC,
        "converged",
        -6.2238169993737e02,
        10,
        2,
        [],
    ),
    "elastcon_scf_failed_mpi_abort_crystal17": (
        17,
        CalculationKind.ELASTIC,
        "failed",
        -2.3858477070099e03,
        16,
        5,
        ["scf_failed_in_opt", "mpi_abort"],
    ),
    "fe_slabcut_testgeom_crystal17": (
        17,
        CalculationKind.TESTGEOM,
        "converged",
        None,
        None,
        None,
        [],
    ),
    "graphene_elastcon_2d_crystal22": (
        22,
        CalculationKind.ELASTIC,
        "converged",
        -7.6091361265011e01,
        6,
        2,
        [],
    ),
    "graphene_vacancy_scf_spin_smear_crystal17": (
        17,
        CalculationKind.SINGLE_POINT,
        "converged",
        -2.7007904049166e03,
        17,
        71,
        [],
    ),
    "hTaAs_eos_lda_ecp_crystal23": (23, CalculationKind.EOS, "converged", None, None, 2, []),
    "mackinawite_opt_failed_crystal17": (
        17,
        CalculationKind.OPTIMISATION,
        "failed",
        -3.323077458663e03,
        15,
        4,
        ["opt_not_converged", "mpi_abort"],
    ),
    "mgo100_slab_guessp_itol_error_crystal17": (
        17,
        CalculationKind.SINGLE_POINT,
        "failed",
        None,
        None,
        6,
        ["guessp_mismatch"],
    ),
    "mgo_opt_b3lyp_crystal22": (
        22,
        CalculationKind.OPTIMISATION,
        "converged",
        -2.754486980727e02,
        3,
        2,
        [],
    ),
    "mgo_opt_onelog_crystal22": (
        22,
        CalculationKind.OPTIMISATION,
        "converged",
        -2.754486980727e02,
        3,
        2,
        [],
    ),
    "mgo_scf_band_doss_b3lyp_crystal17": (
        17,
        CalculationKind.SINGLE_POINT,
        "converged",
        -2.7544859113743e02,
        7,
        2,
        [],
    ),
    "mgo_scf_hf_sto3g_crystal17": (
        17,
        CalculationKind.SINGLE_POINT,
        "converged",
        -2.7121814374931e02,
        7,
        2,
        [],
    ),
    "mgo_scf_spin_band_crystal17": (
        17,
        CalculationKind.SINGLE_POINT,
        "converged",
        -2.7544859113743e02,
        7,
        2,
        [],
    ),
    "nio_opt_walltime_killed_crystal17": (
        17,
        CalculationKind.OPTIMISATION,
        "failed",
        -3.1283182941933e03,
        None,
        4,
        ["walltime_killed"],
    ),
    "nio_scf_restart_guessp_crystal17": (
        17,
        CalculationKind.SINGLE_POINT,
        "converged",
        -3.1282821705429e03,
        2,
        4,
        [],
    ),
    "nio_scf_too_many_cycles_crystal17": (
        17,
        CalculationKind.SINGLE_POINT,
        "failed",
        -3.1282821683361e03,
        10,
        4,
        ["scf_not_converged"],
    ),
    "nio_scf_uhf_afm_crystal17": (
        17,
        CalculationKind.SINGLE_POINT,
        "converged",
        -3.1282821685295e03,
        13,
        4,
        [],
    ),
    "paracetamol_phonon_dispersion_large_crystal22": (
        22,
        CalculationKind.FREQUENCY,
        "converged",
        -2.057687006893e03,
        None,
        80,
        [],
    ),
    "quartz_freq_hf_crystal06": (
        6,
        CalculationKind.FREQUENCY,
        "converged",
        -1.3167028008915e03,
        100,
        9,
        [],
    ),
    "quartz_freq_raman_hf_crystal23": (
        23,
        CalculationKind.FREQUENCY,
        "converged",
        -1.316705706697e03,
        None,
        9,
        [],
    ),
    "s2_molecule_opt_hse06_crystal17": (
        17,
        CalculationKind.OPTIMISATION,
        "converged",
        -7.958373629615e02,
        11,
        2,
        [],
    ),
    "toluene_molecule_opt_m062x_crystal22": (
        22,
        CalculationKind.OPTIMISATION,
        "converged",
        -2.715375656273e02,
        10,
        15,
        [],
    ),
}


@pytest.fixture(scope="module")
def parsed(ref_dir: Path) -> dict[str, CrystalOutput]:
    """Every reference output parsed once (companion files discovered)."""
    return {folder: parse_output(ref_dir / folder / "OUTPUT.out") for folder in EXPECTED}


def test_every_reference_output_is_covered(ref_dir: Path) -> None:
    """A new OUTPUT.out in the reference set must get expectations here."""
    assert {p.parent.name for p in ref_dir.glob("*/OUTPUT.out")} == set(EXPECTED)


@pytest.mark.parametrize("folder", sorted(EXPECTED))
def test_reference_output(folder: str, parsed: dict[str, CrystalOutput]) -> None:
    version, kind, state, energy, cycles, n_atoms, errors = EXPECTED[folder]
    out = parsed[folder]
    assert out.crystal_version == version
    assert out.calculation is kind
    assert out.state == state
    assert [kind.value for kind in out.error_kinds] == errors
    if energy is not None:
        assert out.energy_ha == pytest.approx(energy, abs=TOL)
    assert out.scf_cycles == cycles
    assert out.n_atoms == n_atoms
    assert out.title


def test_mgo_sto3g_single_point(parsed: dict[str, CrystalOutput]) -> None:
    out = parsed["mgo_scf_hf_sto3g_crystal17"]
    assert out.crystal_release == "1.0.1 - Feb 1st, 2017"
    assert out.title == "MgO bulk"
    assert out.hamiltonian == "HF"
    assert out.calculation_type == "RESTRICTED CLOSED SHELL"
    assert out.spin_polarized is False
    assert (out.n_ao, out.n_electrons, out.shrink) == (14, 20, [8, 8, 8])
    assert out.terminated
    run = out.scf[-1]
    assert run.converged and run.n_cycles == 7 and len(run.cycles) == 8
    assert run.cycles[0].cycle == 0
    assert out.band_gap_ev == pytest.approx(12.6917)
    assert out.band_edges[0].direct is False
    assert out.is_conducting is False
    assert out.energy_ev == pytest.approx(-2.7121814374931e02 * HARTREE_TO_EV)


def test_mgo_opt_with_scfout(parsed: dict[str, CrystalOutput], ref_dir: Path) -> None:
    out = parsed["mgo_opt_b3lyp_crystal22"]
    assert out.crystal_release == "1.0.1 - Jul 29th, 2021"
    assert out.optimisation_type == "CELL"
    assert out.functional_exchange == "BECKE 88"
    assert out.functional_correlation == "LEE-YANG-PARR"
    assert out.hybrid_exchange_percent == pytest.approx(20.0)
    assert out.opt_converged is True and out.opt_points == 4
    assert [step.point for step in out.opt_steps] == [1, 2, 3, 4]
    assert out.opt_steps[0].energy_ha == pytest.approx(-2.7544859113772e02, abs=TOL)
    assert out.opt_steps[1].energy_ha == pytest.approx(-2.7544868940122e02, abs=TOL)
    assert out.opt_steps[1].max_gradient == pytest.approx(0.004694)
    assert out.opt_steps[1].max_gradient_converged is False
    assert out.opt_steps[-1].rms_displacement == pytest.approx(0.000015)
    assert out.opt_steps[-1].rms_displacement_converged is True
    # 1 SCF in OUTPUT.out + 3 in SCFOUT.LOG; the last is point 4's
    assert [run.source for run in out.scf] == ["output", "SCFOUT.LOG", "SCFOUT.LOG", "SCFOUT.LOG"]
    assert [run.n_cycles for run in out.scf] == [7, 6, 5, 3]
    assert out.scf_energy_ha == pytest.approx(-2.7544869807267e02, abs=TOL)
    assert out.final_band_gap_ev == pytest.approx(6.9612)
    assert out.telapse_s == pytest.approx(44.05) and out.tcpu_s == pytest.approx(42.26)
    structure = out.structure
    assert isinstance(structure, Structure)
    assert structure.lattice.abc == pytest.approx((2.99828782,) * 3, abs=1e-7)
    assert structure.lattice.angles == pytest.approx((60.0,) * 3)
    assert structure.composition.reduced_formula == "MgO"
    assert structure[1].coords == pytest.approx([2.120109647183] * 3)
    without = parse_output(ref_dir / "mgo_opt_b3lyp_crystal22" / "OUTPUT.out", discover=False)
    assert len(without.scf) == 1
    assert without.pressure_gpa == pytest.approx(2.748)


def test_mgo_onelog_stress_and_forces(parsed: dict[str, CrystalOutput]) -> None:
    out = parsed["mgo_opt_onelog_crystal22"]
    assert [run.n_cycles for run in out.scf] == [7, 6, 5, 3]
    assert all(run.source == "output" for run in out.scf)
    assert out.pressure_gpa == pytest.approx(-0.4075e-2)
    assert out.stress_ha_per_bohr3 is not None and len(out.stress_ha_per_bohr3) == 3
    trace = sum(out.stress_ha_per_bohr3[i][i] for i in range(3))
    # CRYSTAL's printed pressure is -trace/3 of its printed tensor
    assert -trace / 3 * 29421 == pytest.approx(out.pressure_gpa, rel=2e-3)
    assert out.stress_kbar is not None
    assert out.stress_kbar[0][0] == pytest.approx(
        -out.stress_ha_per_bohr3[0][0] * 294210.26, rel=1e-5
    )
    assert out.forces_ha_per_bohr is not None and len(out.forces_ha_per_bohr) == 2
    assert out.forces_ev_per_angstrom is not None
    assert out.cell_gradient_ha_per_bohr is not None


def test_molecules(parsed: dict[str, CrystalOutput]) -> None:
    toluene = parsed["toluene_molecule_opt_m062x_crystal22"]
    assert isinstance(toluene.structure, Molecule)
    assert toluene.structure.composition.formula == "H8 C7"
    assert toluene.dimensionality == 0
    assert toluene.optimisation_type == "COORDINATE"
    assert len(toluene.opt_steps) == 16 and toluene.opt_points == 16
    assert toluene.final_band_gap_ev == pytest.approx(8.0635)
    s2 = parsed["s2_molecule_opt_hse06_crystal17"]
    assert isinstance(s2.structure, Molecule)
    assert s2.structure.cart_coords[1][0] == pytest.approx(1.911828337007)
    assert s2.mulliken is not None and s2.mulliken.populations == [16.0, 16.0]
    assert s2.mulliken.net_charges == [0.0, 0.0]


def test_low_dimensional_structures(parsed: dict[str, CrystalOutput]) -> None:
    graphene = parsed["graphene_elastcon_2d_crystal22"].structure
    assert isinstance(graphene, Structure)
    assert graphene.lattice.c == pytest.approx(500.0)
    assert graphene.lattice.pbc == (True, True, False)
    tube = parsed["cnanotube_elastcon_1d_crystal22"].structure
    assert isinstance(tube, Structure)
    assert tube.lattice.a == pytest.approx(8.92207636536)
    assert tube.lattice.pbc == (True, False, False)
    assert len(tube) == 52
    slab = parsed["fe_slabcut_testgeom_crystal17"].structure
    assert isinstance(slab, Structure) and slab.lattice.pbc == (True, True, False)
    assert slab.composition["Fe"] == 40


def test_spin_and_populations(parsed: dict[str, CrystalOutput]) -> None:
    nio = parsed["nio_scf_uhf_afm_crystal17"]
    assert nio.calculation_type == "UNRESTRICTED OPEN SHELL" and nio.spin_polarized
    assert nio.band_gap_ev is None  # SPIN LOCKING: NO ENERGY GAP COMPUTED
    assert nio.mulliken is not None
    assert nio.mulliken.labels == ["Ni", "Ni", "O", "O"]
    assert nio.mulliken.populations == [27.602, 27.603, 8.398, 8.397]
    assert nio.mulliken.spins == [3.057, -3.057, -0.072, 0.072]
    assert nio.mulliken.net_charges == pytest.approx([0.398, 0.397, -0.398, -0.397])
    spin_mgo = parsed["mgo_scf_spin_band_crystal17"]
    assert {edge.spin for edge in spin_mgo.band_edges} == {"alpha", "beta"}
    assert spin_mgo.band_gap_ev == pytest.approx(7.1237)


def test_conducting_states(parsed: dict[str, CrystalOutput]) -> None:
    be = parsed["be_scf_truncated_crystal17"]
    assert be.is_conducting is True
    assert be.fermi_energy_ha == pytest.approx(-1.0301147e-01)
    assert be.band_gap_ev == 0.0
    assert [cycle.cycle for cycle in be.scf[0].cycles] == list(range(10))
    assert be.scf[0].converged is None


def test_dispersion(parsed: dict[str, CrystalOutput]) -> None:
    ice = parsed["dryice_freq_ir_b3lypd3_crystal22"]
    assert ice.dispersion_energy_ha == pytest.approx(-5.1734242764165e-02, abs=TOL)
    assert ice.energy_with_dispersion_ha == pytest.approx(-7.5427644574029e02, abs=TOL)
    assert ice.scf_energy_ha == pytest.approx(-7.5422471149753e02, abs=TOL)
    assert ice.band_gap_ev == pytest.approx(9.0790)


def test_frequencies(parsed: dict[str, CrystalOutput]) -> None:
    quartz = parsed["quartz_freq_raman_hf_crystal23"]
    assert len(quartz.frequencies_cm1) == 27
    assert quartz.frequencies_cm1[:5] == [0.0, 0.0, 0.0, 146.2133, 146.2133]
    assert quartz.frequencies[-1].frequency_cm1 == pytest.approx(1234.1390)
    assert quartz.frequencies[-1].irrep == "E"
    a1 = quartz.frequencies[3]
    assert (a1.frequency_cm1, a1.irrep, a1.ir_active, a1.raman_active) == (
        220.7810,
        "A1",
        False,
        True,
    )
    old = parsed["quartz_freq_hf_crystal06"]
    assert old.frequencies_cm1[0] == pytest.approx(-1.8930)
    ice = parsed["dryice_freq_ir_b3lypd3_crystal22"]
    assert ice.frequencies[1].ir_intensity_km_mol == pytest.approx(2.07)
    assert (ice.frequencies[1].first_mode, ice.frequencies[1].last_mode) == (4, 6)
    para = parsed["paracetamol_phonon_dispersion_large_crystal22"]
    assert len(para.frequencies_cm1) == 240  # Gamma table only, not the 215 dispersion k-points
    assert para.frequencies[3].frequency_cm1 == pytest.approx(41.0383)
    assert para.frequencies[3].irrep == "Bg"


def test_elastic_constants(parsed: dict[str, CrystalOutput]) -> None:
    cubic = parsed["elastcon_3d_pbe0_crystal17"]
    assert cubic.elastic_constants_unit == "GPa"
    c = cubic.elastic_constants
    assert c is not None and len(c) == 6
    assert c[0][0] == pytest.approx(94.908) and c[0][1] == pytest.approx(3.349)
    assert c[1][0] == pytest.approx(3.349) and c[3][3] == pytest.approx(-1.628)
    s = cubic.compliance_tpa_inv
    assert s is not None and s[3][3] == pytest.approx(-614.1995) and s[2][0] == pytest.approx(-0.36)
    graphene = parsed["graphene_elastcon_2d_crystal22"]
    assert graphene.elastic_constants_unit == "HARTREE"
    assert graphene.elastic_constants == [
        [4.479, 0.982, 0.0],
        [0.982, 4.479, 0.0],
        [0.0, 0.0, 1.749],
    ]
    assert parsed["cnanotube_elastcon_1d_crystal22"].elastic_constants == [[102.835]]


def test_json_dump_round_trips(parsed: dict[str, CrystalOutput]) -> None:
    data = json.loads(parsed["mgo_opt_b3lyp_crystal22"].model_dump_json())
    assert data["energy_ha"] == pytest.approx(-2.754486980727e02)
    assert data["energy_ev"] == pytest.approx(-2.754486980727e02 * HARTREE_TO_EV)
    assert data["structure"]["@class"] == "Structure"
    assert Structure.from_dict(data["structure"]).composition.reduced_formula == "MgO"
    assert data["state"] == "converged" and data["error_kinds"] == []


def test_stream_input_matches_path(ref_dir: Path) -> None:
    path = ref_dir / "mgo_scf_hf_sto3g_crystal17" / "OUTPUT.out"
    with path.open() as handle:
        from_stream = parse_output(handle)
    assert from_stream.source_path is None
    assert from_stream.energy_ha == parse_output(path).energy_ha
    assert from_stream.state == "converged"


def test_error_catalogue_is_consistent() -> None:
    for kind in CrystalErrorKind:
        assert (300 <= kind.exit_status < 400) != kind.recoverable
        assert (400 <= kind.exit_status < 500) == kind.recoverable
    statuses = [kind.exit_status for kind in CrystalErrorKind]
    assert len(statuses) == len(set(statuses))


def test_spin_polarised_final_gap_is_the_final_geometrys(parsed: dict[str, CrystalOutput]) -> None:
    """S2 (HSE06, SPIN): after OPT END CRYSTAL prints ``ALPHA BAND GAP: 5.9497`` and
    ``BETA BAND GAP: 4.6668``; the gap is the smaller, not the first SCF's beta gap (4.9745)."""
    out = parsed["s2_molecule_opt_hse06_crystal17"]
    assert out.final_band_gap_alpha_ev == 5.9497
    assert out.final_band_gap_beta_ev == 4.6668
    assert out.final_band_gap_ev == 4.6668
    assert out.band_gap_ev == 4.6668
    assert [edge.band_gap_ev for edge in out.band_edges] == [6.1759, 4.9745]


def test_closed_shell_final_gap_has_no_spin_values(parsed: dict[str, CrystalOutput]) -> None:
    out = parsed["mgo_opt_onelog_crystal22"]
    assert out.final_band_gap_ev == 6.9612
    assert out.final_band_gap_alpha_ev is None and out.final_band_gap_beta_ev is None


@pytest.mark.parametrize(
    ("folder", "name", "energy"),
    [
        ("mgo_scf_band_doss_b3lyp_crystal17", "BAND.outp", -2.7544859113743e02),
        ("mgo_scf_band_doss_b3lyp_crystal17", "DOSS.outp", -2.7544859113743e02),
        ("nacl_band_doss_hf_crystal14", "PROP_OUTPUT.outp", -6.2149540004172e02),
        ("fes_rocksalt_doss_pdos_crystal17", "DOSS.outp", -3.3230355825656e03),
    ],
)
def test_properties_output_reports_the_wave_function_energy(
    folder: str, name: str, energy: float
) -> None:
    """``TOTAL ENERGY -2.7544859113743E+02  CONVERGENCE ON ENER`` atop a properties run."""
    out = parse_output(reference_file(folder, name))
    assert out.calculation is CalculationKind.PROPERTIES
    assert out.includes_properties
    assert out.energy_ha == energy
    assert out.state == "converged"
    assert out.title and not out.title.startswith("*")  # the title, not the star rule before it


def test_optimisation_with_an_appended_properties_run(tmp_path: Path) -> None:
    """No real file has this shape, so it is composed: the MgO optimisation's OUTPUT.out followed
    by the MgO BAND properties output, as one log written by ``runcry`` then ``runprop``."""
    path = tmp_path / "OUTPUT.out"
    path.write_text(
        reference_file("mgo_opt_b3lyp_crystal22", "OUTPUT.out").read_text()
        + reference_file("mgo_scf_band_doss_b3lyp_crystal17", "BAND.outp").read_text()
    )
    out = parse_output(path, discover=False)
    assert out.calculation is CalculationKind.OPTIMISATION
    assert out.includes_properties
    assert out.opt_converged is True and out.opt_points == 4
    assert out.energy_ha == -2.754486980727e02
    assert out.final_band_gap_ev == 6.9612
    assert out.state == "converged"
