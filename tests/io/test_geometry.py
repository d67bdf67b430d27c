"""Symmetrised CRYSTAL geometry <-> pymatgen, checked against CRYSTAL's own expansion (.gui)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Lattice, Structure

from crystal_atomate.io.deck_lines import LineCursor, clean_lines
from crystal_atomate.io.fort34 import Fort34
from crystal_atomate.io.geometry import (
    CrystalGeometry,
    StructureError,
    atomspin_from_structure,
    check_structure,
    crystal_geometry_from_structure,
    parse_geometry,
)

MATCHER = StructureMatcher(scale=False, primitive_cell=True)
GUI = "gui_geometry_examples_crystal17"
NAMES = [
    "cubic-rocksalt",
    "cubic-zincblende",
    "greigite",
    "mackinawite",
    "marcasite",
    "pyrite",
    "pyrrhotite-4c-monoclinic",
    "troilite-hex-p63mc",
    "troilite-hex-p63mmc",
    "troilite-hexagonal",
    "troilite-mnp",
]


def _deck_geometry(path: Path) -> CrystalGeometry:
    cursor = LineCursor(clean_lines(path.read_text()))
    cursor.line("title")
    return parse_geometry(cursor)


@pytest.mark.parametrize("name", NAMES)
def test_expansion_matches_crystal(ref_dir: Path, name: str) -> None:
    """Our expansion of the deck equals the structure CRYSTAL itself wrote (origin settings too)."""
    geometry = _deck_geometry(ref_dir / GUI / f"{name}.d12")
    crystal_made = Fort34.from_file(ref_dir / GUI / f"{name}.gui").to_structure()
    expanded = geometry.to_structure()
    assert len(expanded.get_primitive_structure(tolerance=1e-3)) == len(crystal_made)
    assert MATCHER.fit(expanded, crystal_made)


@pytest.mark.parametrize("name", NAMES)
def test_structure_to_crystal_form_round_trip(ref_dir: Path, name: str) -> None:
    crystal_made = Fort34.from_file(ref_dir / GUI / f"{name}.gui")
    geometry = crystal_geometry_from_structure(crystal_made.to_structure())
    assert geometry.space_group == crystal_made.space_group[0]
    assert MATCHER.fit(geometry.to_structure(), crystal_made.to_structure())


def test_real_parameters(ref_dir: Path) -> None:
    mono = crystal_geometry_from_structure(
        Fort34.from_file(ref_dir / GUI / "pyrrhotite-4c-monoclinic.gui").to_structure()
    )
    np.testing.assert_allclose(
        mono.lattice_parameters, [12.22802157, 6.96923549, 13.00815222, 116.719787], atol=1e-5
    )
    hexagonal = crystal_geometry_from_structure(
        Fort34.from_file(ref_dir / GUI / "troilite-hex-p63mmc.gui").to_structure()
    )
    np.testing.assert_allclose(hexagonal.lattice_parameters, [3.445, 5.763], atol=1e-6)
    mackinawite = _deck_geometry(ref_dir / GUI / "mackinawite.d12")
    assert (mackinawite.ifso, mackinawite.space_group, mackinawite.lattice_parameters) == (
        1,
        129,
        [3.55114561, 5.35521437],
    )


def test_pymatgen_built_structures() -> None:
    zincblende = Structure.from_spacegroup(
        216, Lattice.cubic(5.43), ["Ga", "As"], [[0, 0, 0], [0.25, 0.25, 0.25]]
    )
    geometry = crystal_geometry_from_structure(zincblende.get_primitive_structure())
    assert geometry.space_group == 216 and geometry.lattice_parameters == pytest.approx([5.43])
    assert sorted(atom.number for atom in geometry.atoms) == [31, 33]
    monoclinic = Structure(Lattice.monoclinic(5.0, 6.0, 7.0, 100.0), ["Si", "O", "O"],
                           [[0.1, 0.2, 0.3], [0.6, 0.15, 0.85], [0.33, 0.71, 0.12]])
    geometry = crystal_geometry_from_structure(monoclinic)
    assert geometry.space_group == 1 and len(geometry.lattice_parameters) == 6
    assert MATCHER.fit(geometry.to_structure(), monoclinic)


def test_invalid_parameter_count() -> None:
    with pytest.raises(ValueError, match="takes 1 lattice parameter"):
        CrystalGeometry(
            space_group=225,
            lattice_parameters=[4.2, 4.2],
            atoms=[{"number": 12, "coords": (0, 0, 0)}],
        )


def test_nio_afm_atomspin(ref_dir: Path) -> None:
    """The reference AFM run: Ni up/down made inequivalent (P4/mmm), ATOMSPIN 1 +1 / 2 -1."""
    reference = Fort34.from_file(ref_dir / "nio_scf_uhf_afm_crystal17/fort.34")
    structure = reference.to_structure()
    structure.add_site_property("magmom", [2.0, -2.0, 0.0, 0.0])
    assert atomspin_from_structure(structure) == [(1, 1), (2, -1)]
    fort34 = Fort34.from_structure(structure)
    assert fort34.space_group == reference.space_group == (123, 16)
    structure.remove_site_property("magmom")
    assert Fort34.from_structure(structure).space_group[0] == 225


def test_structure_errors() -> None:
    with pytest.raises(StructureError, match="no sites"):
        check_structure(Structure(Lattice.cubic(3), [], []))
    with pytest.raises(StructureError, match="partial occupancy"):
        check_structure(Structure(Lattice.cubic(3), [{"Fe": 0.5, "Co": 0.5}], [[0, 0, 0]]))
    with pytest.raises(StructureError, match=r"sites 0 \(Na\) and 1 \(Cl\) are only 0.250 A apart"):
        check_structure(Structure(Lattice.cubic(5), ["Na", "Cl"], [[0, 0, 0], [0.05, 0, 0]]))
    check_structure(Structure(Lattice.cubic(5), ["Na", "Cl"], [[0, 0, 0], [0.1, 0, 0]]))
