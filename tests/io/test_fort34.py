"""fort.34 reader/writer against real CRYSTAL files and pymatgen round trips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Lattice, Molecule, Structure

from crystal_atomate.io.fort34 import Fort34, Fort34ParseError


def _all_geometry_files(ref_dir: Path) -> list[Path]:
    files = [*ref_dir.glob("*/*.gui"), *ref_dir.glob("*/fort.34"), *ref_dir.glob("*/optc0*")]
    assert len(files) >= 30
    return sorted(files)


def test_every_real_file_round_trips(ref_dir: Path) -> None:
    for path in _all_geometry_files(ref_dir):
        parsed = Fort34.from_file(path)
        assert Fort34.from_string(parsed.to_string()) == parsed, path
        assert len(parsed.symmops) >= 1 and len(parsed.atoms) >= 1


@pytest.mark.parametrize(
    ("relative", "dim", "n_ops", "n_atoms", "space_group", "first_lattice_row"),
    [
        (
            "gui_geometry_examples_crystal17/cubic-rocksalt.gui",
            3,
            48,
            2,
            (225, 48),
            (0.0, 2.42, 2.42),
        ),
        (
            "gui_geometry_examples_crystal17/greigite.gui",
            3,
            48,
            14,
            (227, 48),
            (0.0, 4.96199198, 4.96199198),
        ),
        (
            "gui_geometry_examples_crystal17/pyrrhotite-4c-monoclinic.gui",
            3,
            4,
            30,
            (15, 4),
            (6.114010785, 3.484617745, 0.0),
        ),
        ("nio_scf_uhf_afm_crystal17/fort.34", 3, 16, 4, (123, 16), (0.0, -2.082, -2.082)),
        ("fe_slabcut_testgeom_crystal17/fort.34", 2, 2, 56, (0, 0), (9.61937287705, 0.0, 0.0)),
        (
            "fes_rocksalt_doss_pdos_crystal17/fort.34",
            3,
            12,
            4,
            (0, 0),
            (-0.144410921265, 4.97747637229, 4.97747637229),
        ),
        (
            "mgo_opt_b3lyp_crystal22/optc004",
            3,
            48,
            2,
            (225, 48),
            (2.596593419977, 0.0, 1.499143910000),
        ),
    ],
)
def test_real_values(
    ref_dir: Path, relative, dim, n_ops, n_atoms, space_group, first_lattice_row
) -> None:
    parsed = Fort34.from_file(ref_dir / relative)
    assert parsed.dimensionality == dim
    assert len(parsed.symmops) == n_ops
    assert len(parsed.atoms) == n_atoms
    assert parsed.space_group == space_group
    np.testing.assert_allclose(parsed.lattice[0], first_lattice_row, atol=1e-9)


def test_nio_species_and_slab_vacuum(ref_dir: Path) -> None:
    nio = Fort34.from_file(ref_dir / "nio_scf_uhf_afm_crystal17/fort.34")
    assert [atom.number for atom in nio.atoms] == [28, 28, 8, 8]
    assert nio.to_structure().composition.reduced_formula == "NiO"
    slab = Fort34.from_file(ref_dir / "fe_slabcut_testgeom_crystal17/fort.34")
    assert slab.lattice[2][2] == 500.0
    assert {atom.element.symbol for atom in slab.atoms} == {"Fe", "C", "O"}


def test_energy_header(ref_dir: Path) -> None:
    s2 = Fort34.from_file(ref_dir / "s2_molecule_opt_hse06_crystal17/fort.34")
    assert s2.energy is not None
    assert s2.energy.energy == pytest.approx(-7.9583736296147e02)
    assert s2.energy.delta == pytest.approx(5.7e-10)
    assert s2.energy.n == 3
    molecule = s2.to_molecule()
    assert molecule.composition.formula == "S2"
    assert molecule.get_distance(0, 1) == pytest.approx(1.933656674014)


def _rocksalt() -> Structure:
    return Structure.from_spacegroup(
        225, Lattice.cubic(4.21), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )


@pytest.mark.parametrize("symmetry", [True, False])
def test_structure_round_trip_exact(symmetry: bool) -> None:
    structure = _rocksalt()
    structure.perturb(0.05, 0.05) if not symmetry else None
    fort34 = Fort34.from_structure(structure, symmetry=symmetry)
    back = Fort34.from_string(fort34.to_string()).to_structure()
    np.testing.assert_allclose(back.lattice.matrix, structure.lattice.matrix, atol=1e-6)
    np.testing.assert_allclose(back.cart_coords, structure.cart_coords, atol=1e-6)
    assert [s.specie.symbol for s in back] == [s.specie.symbol for s in structure]


def test_symmetry_operators_map_the_cell_onto_itself() -> None:
    structure = _rocksalt().get_primitive_structure()
    fort34 = Fort34.from_structure(structure)
    assert (
        len(fort34.symmops) == 48 and fort34.space_group == (225, 48) and fort34.crystal_type == 6
    )
    inverse = np.linalg.inv(np.array(fort34.lattice))
    for op in fort34.symmops:
        for atom in fort34.atoms:
            image = np.array(op.rotation) @ np.array(atom.position) + np.array(op.translation)
            assert any(
                other.number == atom.number
                and np.allclose(
                    ((image - np.array(other.position)) @ inverse + 0.5) % 1 - 0.5, 0, atol=1e-6
                )
                for other in fort34.atoms
            )


def test_p1_header_and_ecp_numbers() -> None:
    fort34 = Fort34.from_structure(_rocksalt(), symmetry=False, ecp_elements={"Mg"})
    assert fort34.to_string().splitlines()[0].split() == ["3", "1", "1"]
    assert len(fort34.symmops) == 1
    assert {atom.number for atom in fort34.atoms} == {212, 8}


def test_molecule_and_slab() -> None:
    water = Molecule(["O", "H", "H"], [[0, 0, 0], [0.76, 0.59, 0], [-0.76, 0.59, 0]])
    fort34 = Fort34.from_molecule(water)
    assert fort34.dimensionality == 0 and fort34.lattice[0][0] == 500.0
    np.testing.assert_allclose(
        Fort34.from_string(fort34.to_string()).to_molecule().cart_coords,
        water.cart_coords,
        atol=1e-6,
    )
    slab = Structure(
        Lattice.hexagonal(2.46, 20.0), ["C", "C"], [[1 / 3, 2 / 3, 0.5], [2 / 3, 1 / 3, 0.5]]
    )
    fort34 = Fort34.from_slab(slab)
    assert fort34.dimensionality == 2 and fort34.lattice[2] == (0.0, 0.0, 500.0)
    assert fort34.to_structure().get_distance(0, 1) == pytest.approx(slab.get_distance(0, 1))


def test_failures() -> None:
    with pytest.raises(Fort34ParseError, match="line 2"):
        Fort34.from_string("3 1 1\n1.0 0.0\n")
