"""Basis sets: real CRYSTAL-format files, library coverage, element checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from crystal_atomate.io.basis import (
    BasisParseError,
    BasisSet,
    UnknownBasisElementError,
    UnknownBasisLibraryError,
)

BASIS_DIR = "basis_sets_crystal_format"


@pytest.mark.parametrize(
    ("name", "nat", "n_shells", "ecp", "first_exponent"),
    [
        ("manual_examples__tzvp.basis", 28, 14, None, 351535.72935),
        ("manual_examples__free.basis", 14, 3, None, 16115.9),
        ("manual_examples__3-21g.basis", 14, 4, None, None),
        ("manual_examples__barthe.basis", 228, 4, "BARTHE", 1.55),
        ("manual_examples__haywlc.basis", 228, 4, "HAYWLC", 1.257),
        ("manual_examples__free_ecp.basis", 228, 5, "INPUT", 1.257),
        ("sto3g__sto3g_Ni.basis", 28, 5, None, None),
        ("tzvp__tzvp_O.basis", 8, 8, None, 27032.382631),
    ],
)
def test_real_files(ref_dir: Path, name, nat, n_shells, ecp, first_exponent) -> None:
    basis = BasisSet.from_file(ref_dir / BASIS_DIR / name)
    (atom,) = basis.atoms
    assert atom.number == nat
    assert len(atom.shells) == n_shells
    assert (atom.ecp.kind if atom.ecp else None) == ecp
    if first_exponent is None:
        assert atom.shells[0].ityb == 1 or atom.shells[0].ityb == 2
        assert atom.shells[0].primitives == []
    else:
        assert atom.shells[0].primitives[0][0] == first_exponent
    assert BasisSet.from_string(basis.to_string()) == basis


def test_every_file_round_trips(ref_dir: Path) -> None:
    files = sorted((ref_dir / BASIS_DIR).glob("*.basis"))
    assert len(files) == 12
    for path in files:
        basis = BasisSet.from_file(path)
        assert BasisSet.from_string(basis.to_string()) == basis, path


def test_sp_shells_and_input_ecp(ref_dir: Path) -> None:
    free = BasisSet.from_file(ref_dir / BASIS_DIR / "manual_examples__free.basis").atoms[0]
    sp = free.shells[1]
    assert (sp.lat, sp.ng, sp.che) == (1, 2, 4.0)
    assert sp.primitives[0] == (1.07913, -0.376108, 0.0671030)
    ecp = BasisSet.from_file(ref_dir / BASIS_DIR / "manual_examples__free_ecp.basis").atoms[0].ecp
    assert ecp.znuc == 10.0 and ecp.counts == [5, 4, 5, 2, 0, 0]
    assert len(ecp.terms) == 16 and ecp.terms[0] == (344.841, -18.0, -1)


def test_directory_and_merge(ref_dir: Path) -> None:
    directory = ref_dir / BASIS_DIR
    basis = BasisSet.from_directory(directory, ["Mg", "O"], pattern="sto3g__*")
    assert [atom.number for atom in basis.atoms] == [8, 12]
    basis.check_elements(["Mg", "O"])
    with pytest.raises(UnknownBasisElementError, match="Zn"):
        BasisSet.from_directory(directory, ["Mg", "Zn"], pattern="sto3g__*")
    with pytest.raises(ValueError, match="several basis files"):
        BasisSet.from_directory(directory, ["Si"])


def test_check_elements() -> None:
    with pytest.raises(UnknownBasisElementError) as info:
        BasisSet.from_library("STO-3G").check_elements(["Mg", "Cs", "U"])
    assert "Cs, U" in str(info.value) and "STO-3G" in str(info.value)
    BasisSet.from_library("sto-3g").check_elements(["Xe", "H"])
    with pytest.raises(UnknownBasisLibraryError):
        BasisSet.from_library("MY-OWN").check_elements(["H"])


def test_malformed() -> None:
    with pytest.raises(BasisParseError, match="line 3"):
        BasisSet.from_string("8 2\n0 0 1 2.0 1.0\n0.5\n")
    with pytest.raises(BasisParseError, match="line 1"):
        BasisSet.from_string("228 1\n0 0 1 2.0 1.0\n0.5 1.0\n")
    with pytest.raises(ValueError):
        BasisSet()
