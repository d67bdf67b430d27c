"""The .d12 deck model: every real deck parses and re-renders to an equal model; failure paths."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymatgen.core import Lattice, Molecule, Structure

from crystal_atomate.io.basis import BasisSet, UnknownBasisElementError
from crystal_atomate.io.d12 import (
    FUNCTIONALS,
    GRIDS,
    CountMismatchError,
    CrystalInput,
    D12ParseError,
    DeckError,
    Dft,
    Hamiltonian,
    MissingTerminatorError,
    OptGeom,
    Scf,
    Shrink,
    UnknownKeywordError,
)
from crystal_atomate.testing.deck_mutations import mutations, outcome


def _decks(ref_dir: Path) -> list[Path]:
    decks = sorted(
        [*ref_dir.glob("*/INPUT.d12"), *ref_dir.glob("gui_geometry_examples_crystal17/*.d12")]
    )
    assert len(decks) == 30
    return decks


def test_every_real_deck_round_trips(ref_dir: Path) -> None:
    for path in _decks(ref_dir):
        deck = CrystalInput.from_string(path.read_text())
        assert CrystalInput.from_string(deck.to_string()) == deck, path


def test_mgo_values(ref_dir: Path) -> None:
    deck = CrystalInput.from_file(ref_dir / "mgo_opt_b3lyp_crystal22/INPUT.d12")
    assert deck.geometry.space_group == 225 and deck.geometry.lattice_parameters == [4.217]
    assert [a.number for a in deck.geometry.atoms] == [12, 8]
    assert deck.optgeom == OptGeom()
    assert [len(a.shells) for a in deck.basis.atoms] == [4, 4]
    assert deck.hamiltonian.dft == Dft(functional="B3LYP", grid="XXLGRID")
    assert deck.scf.shrink == Shrink(mesh=12, isp=24)
    assert (
        deck.scf.tolinteg == (7, 7, 7, 7, 14)
        and deck.scf.fmixing == 70
        and deck.scf.maxcycle == 200
    )
    assert deck.scf.extra == ["DIIS"]


def test_wild_features(ref_dir: Path) -> None:
    tas = CrystalInput.from_file(ref_dir / "hTaAs_eos_lda_ecp_crystal23/INPUT.d12")
    assert [a.number for a in tas.geometry.atoms] == [273, 233]
    assert [a.ecp.kind for a in tas.basis.atoms] == ["STUTSC", "STUTLC"]
    assert (
        tas.eos.range == (0.87, 1.02, 13)
        and tas.eos.prange == (0.0, 35.0, 30)
        and tas.eos.extra == ["RESTART2"]
    )
    assert tas.scf.smear == 0.001
    para = CrystalInput.from_file(
        ref_dir / "paracetamol_phonon_dispersion_large_crystal22/INPUT.d12"
    )
    assert para.basis.library == "def2-mSVP" and para.geometry.kind == "EXTERNAL"
    assert para.freqcalc.dispersion and para.freqcalc.numderiv == 2 and para.freqcalc.restart
    assert para.geometry_keywords[0] == "SCELPHONO" and para.scf.ldremo == 1
    dry = CrystalInput.from_file(ref_dir / "dryice_freq_ir_b3lypd3_crystal22/INPUT.d12")
    assert (
        dry.hamiltonian.dft.functional == "B3LYP-D3"
        and dry.freqcalc.intens
        and dry.freqcalc.irspec == []
    )
    fes = CrystalInput.from_file(ref_dir / "fes_rocksalt_doss_pdos_crystal17/INPUT.d12")
    assert fes.optgeom.type == "FULLOPTG" and fes.optgeom.maxcycle == 100
    assert fes.scf.atomspin == [(1, 1), (2, -1)] and "MODISYMM" in fes.geometry_keywords
    tube = CrystalInput.from_file(ref_dir / "cnanotube_elastcon_1d_crystal22/INPUT.d12")
    assert tube.geometry.layer_group == 77 and tube.elastcon.preoptgeom
    assert (tube.hamiltonian.dft.exchange, tube.hamiltonian.dft.correlation) == ("PBE", "PBE")
    mack = CrystalInput.from_file(ref_dir / "gui_geometry_examples_crystal17/mackinawite.d12")
    assert mack.basis is None and mack.geometry.ifso == 1


def test_nio_external_with_fort34(ref_dir: Path, tmp_path: Path) -> None:
    deck = CrystalInput.from_file(ref_dir / "nio_scf_uhf_afm_crystal17/INPUT.d12")
    assert deck.hamiltonian.method == "UHF" and deck.scf.spinlock == (0, 15)
    assert deck.geometry.fort34.space_group == (123, 16)
    deck.write_input(tmp_path / "run")
    assert (tmp_path / "run/fort.34").is_file()
    assert CrystalInput.from_file(tmp_path / "run/INPUT") == deck


def test_inline_arguments_comments_and_missing_newline() -> None:
    text = ("t\nMOLECULE\n1\n1\n8 0 0 0 # oxygen\nEND\n8 1\n1 0 3 2. 0.\n99 0\nEND\n"
            "MAXCYCLE 40\nTOLDEE\n9\nEND")
    deck = CrystalInput.from_string(text)
    assert deck.scf.maxcycle == 40 and deck.scf.toldee == 9
    origin = "t\nCRYSTAL\n0 0 2\n154\n0 0 16\n4.9 5.4\n1\n14 0.47 0.0 0.0 Biso 1.0 Si\nEND\n"
    geometry = CrystalInput.from_string(origin).geometry
    assert geometry.origin_shift == (0, 0, 16) and geometry.atoms[0].coords == (0.47, 0.0, 0.0)
    assert (
        CrystalInput.from_string(CrystalInput.from_string(origin).to_string()).geometry == geometry
    )


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("t\nCRYSTAL\n0 0 0\n225\n4.2\n2\n12 0 0 0\n", "line 7"),
        ("t\nCRYSTAL\n0 0 0\n225\nabc\n", "line 5"),
        ("t\nHELIX\n", "line 2"),
        ("t\nEXTERNAL\nBASISSET\nSTO-3G\nTOLINTEG\n7 7 7\nEND\n", "line 6"),
        ("t\nEXTERNAL\nBASISSET\nSTO-3G\nFMIXING\n150\nEND\n", "FMIXING|fmixing"),
        ("t\nEXTERNAL\nBASISSET\nSTO-3G\nSHRINK\n8 8\n", "final END"),
    ],
)
def test_malformed_decks(text: str, line: str) -> None:
    with pytest.raises(D12ParseError, match=line):
        CrystalInput.from_string(text)


def test_validation() -> None:
    with pytest.raises(ValueError, match="tolinteg"):
        Scf(tolinteg=(7, 7, 7, 7))
    with pytest.raises(ValueError, match="smear"):
        Scf(smear=0.0)
    with pytest.raises(ValueError, match="fmixing"):
        Scf(fmixing=101)
    with pytest.raises(ValueError, match="bogus"):
        Scf(bogus=1)
    with pytest.raises(ValueError, match="unknown functional"):
        Dft(functional="NOTAFUNCTIONAL")
    with pytest.raises(ValueError):
        Hamiltonian(method="UHF", dft=Dft(functional="PBE0"))


def _mgo() -> Structure:
    return Structure.from_spacegroup(
        225, Lattice.cubic(4.21), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )


def test_from_structure_forms(tmp_path: Path) -> None:
    scf = Scf(shrink=Shrink(mesh=8, isp=8))
    sym = CrystalInput.from_structure(_mgo(), geometry="symmetrized", basis="POB-TZVP-REV2",
                                      hamiltonian=Hamiltonian(dft=Dft(functional="PBE0")), scf=scf)
    assert sym.geometry.kind == "CRYSTAL" and sym.geometry.space_group == 225
    assert CrystalInput.from_string(sym.to_string()) == sym
    ext = CrystalInput.from_structure(_mgo().get_primitive_structure(), basis="STO-3G", scf=scf)
    assert ext.geometry.fort34.space_group == (225, 48)
    written = ext.write_input(tmp_path)
    assert written.read_text().splitlines()[1] == "EXTERNAL" and (tmp_path / "fort.34").is_file()
    water = Molecule(["O", "H", "H"], [[0, 0, 0], [0.76, 0.59, 0], [-0.76, 0.59, 0]])
    assert CrystalInput.from_structure(water, basis="STO-3G").geometry.fort34.dimensionality == 0
    slab = Structure(
        Lattice.hexagonal(2.46, 25.0), ["C", "C"], [[1 / 3, 2 / 3, 0.5], [2 / 3, 1 / 3, 0.5]]
    )
    assert CrystalInput.from_structure(slab, basis="STO-3G").geometry.fort34.dimensionality == 2


def test_from_structure_magnetic(ref_dir: Path) -> None:
    from crystal_atomate.io.fort34 import Fort34

    structure = Fort34.from_file(ref_dir / "nio_scf_uhf_afm_crystal17/fort.34").to_structure()
    structure.add_site_property("magmom", [2.0, -2.0, 0.0, 0.0])
    deck = CrystalInput.from_structure(structure, basis="STO-3G")
    assert deck.scf.atomspin == [(1, 1), (2, -1)] and deck.hamiltonian.method == "UHF"
    assert deck.geometry.fort34.space_group == (123, 16)
    with pytest.raises(ValueError, match="external"):
        CrystalInput.from_structure(structure, basis="STO-3G", geometry="symmetrized")


def test_basis_checked_before_writing(tmp_path: Path) -> None:
    cs = Structure(Lattice.cubic(4.1), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    with pytest.raises(UnknownBasisElementError, match="Cs"):
        CrystalInput.from_structure(cs, basis="POB-TZVP-REV2")
    deck = CrystalInput.from_structure(_mgo(), basis="STO-3G")
    deck.basis = BasisSet.from_string("8 1\n1 0 3 2. 0.\n")
    with pytest.raises(UnknownBasisElementError, match="Mg"):
        deck.write_input(tmp_path / "x")
    assert not (tmp_path / "x").exists()


positive = st.integers(min_value=1, max_value=60)
scf_strategy = st.builds(
    Scf,
    shrink=st.none()
    | st.builds(Shrink, mesh=positive | st.tuples(positive, positive, positive), isp=positive),
    tolinteg=st.none() | st.tuples(positive, positive, positive, positive, positive),
    toldee=st.none() | positive,
    maxcycle=st.none() | positive,
    fmixing=st.none() | st.integers(0, 100),
    levshift=st.none() | st.tuples(st.integers(0, 20), st.integers(0, 1)),
    broyden=st.none() | st.tuples(st.floats(1e-6, 1.0), positive, positive),
    anderson=st.booleans(),
    smear=st.none() | st.floats(1e-6, 0.1),
    atomspin=st.none()
    | st.lists(st.tuples(positive, st.sampled_from([-1, 0, 1])), min_size=1, max_size=4),
    spinlock=st.none() | st.tuples(st.integers(-10, 10), st.integers(0, 50)),
    guessp=st.booleans(),
    ppan=st.booleans(),
    ldremo=st.none() | positive,
    nodiis=st.booleans(),
    extra=st.lists(
        st.sampled_from([["SCFDIR"], ["NOSHIFT"], ["BIPOSIZE", "30000000"]]), max_size=3
    ).map(lambda units: [line for unit in units for line in unit]),
)
dft_strategy = st.builds(
    Dft,
    functional=st.sampled_from(sorted(FUNCTIONALS)).map(lambda f: f)
    | st.sampled_from(["B3LYP-D3", "PBE0-D3"]),
    spin=st.booleans(),
    grid=st.none() | st.sampled_from(GRIDS),
)


@settings(max_examples=150, deadline=None)
@given(scf=scf_strategy, dft=st.none() | dft_strategy)
def test_round_trip_random_settings(scf: Scf, dft: Dft | None) -> None:
    deck = CrystalInput(
        title="random",
        geometry={"kind": "EXTERNAL"},
        basis=BasisSet.from_library("STO-3G"),
        hamiltonian=Hamiltonian(dft=dft),
        scf=scf,
    )
    assert CrystalInput.from_string(deck.to_string()) == deck


# -- the strict reader: what CRYSTAL would reject is a typed error naming the line and the fix --
def _edit(path: Path, old: str, new: str) -> str:
    text = path.read_text()
    assert old in text
    return text.replace(old, new, 1)


def _raises(text: str, kind: type[DeckError], line: int, hint: str) -> DeckError:
    with pytest.raises(kind) as info:
        CrystalInput.from_string(text)
    assert info.value.line == line and hint in (info.value.hint or ""), info.value
    return info.value


def test_misspelt_keyword_names_line_and_fix(ref_dir: Path) -> None:
    mgo = ref_dir / "mgo_opt_b3lyp_crystal22/INPUT.d12"
    error = _raises(_edit(mgo, "SHRINK", "SHRIMK"), UnknownKeywordError, 59, "did you mean SHRINK?")
    assert (
        str(error)
        == "line 59: expected a keyword of the Hamiltonian/SCF block, got 'SHRIMK' (did you mean "
           "SHRINK?)"
    )
    _raises(_edit(mgo, "XXLGRID", "XXLGRIDD"), UnknownKeywordError, 55, "did you mean XXLGRID?")
    _raises(_edit(mgo, "B3LYP", "B3LPY"), UnknownKeywordError, 54, "did you mean B3LYP?")
    tube = ref_dir / "cnanotube_elastcon_1d_crystal22/INPUT.d12"
    _raises(_edit(tube, "PBE\n", "BPE\n"), UnknownKeywordError, 21, "known: B97 BECKE")
    para = ref_dir / "paracetamol_phonon_dispersion_large_crystal22/INPUT.d12"
    _raises(
        _edit(para, "def2-mSVP", "def22-mSVP"), UnknownKeywordError, 28, "did you mean DEF2-MSVP?"
    )
    _raises(_edit(para, "NOMODES", "NOMODE"), UnknownKeywordError, 24, "did you mean NOMODES?")
    _raises(_edit(mgo, "TOLINTEG", "SHRINK"), D12ParseError, 58, "")
    _raises(_edit(mgo, "DIIS", "MAXCYCLE\n3"), D12ParseError, 65, "MAXCYCLE is given twice")
    _raises(_edit(mgo, "DIIS", "B3LYP"), UnknownKeywordError, 65, "inside DFT ... ENDDFT")


def test_wrong_counts_name_the_count_line(ref_dir: Path) -> None:
    mgo = ref_dir / "mgo_opt_b3lyp_crystal22/INPUT.d12"
    _raises(
        _edit(mgo, "\n2\n12 0.", "\n1\n12 0."), CountMismatchError, 8, "atom count on line 6 says 1"
    )
    _raises(
        _edit(mgo, "\n2\n12 0.", "\n3\n12 0."), CountMismatchError, 9, "atom count on line 6 says 3"
    )
    _raises(
        _edit(mgo, "12 4\n", "12 5\n"),
        CountMismatchError,
        32,
        "NAT=12 on line 12 declares NSHL=5 shells, 4",
    )
    _raises(_edit(mgo, "12 4\n", "12 3\n"), CountMismatchError, 30, "(NAT=12) declares NSHL=3")
    nio = ref_dir / "nio_scf_uhf_afm_crystal17/INPUT.d12"
    _raises(
        _edit(nio, "ATOMSPIN\n2\n", "ATOMSPIN\n3\n"),
        CountMismatchError,
        22,
        "announces 3 atoms, 2 follow",
    )
    _raises(_edit(mgo, "SHRINK\n12 24\n", "SHRINK\n"), CountMismatchError, 60, "only a molecule")
    slab = ref_dir / "fe_slabcut_testgeom_crystal17/INPUT.d12"
    _raises(
        _edit(slab, "6 0.55 0.00 5.60\n", ""),
        CountMismatchError,
        25,
        "ATOMINSE on line 17 announces 8 entries, 7",
    )


def test_missing_terminators_name_the_block(ref_dir: Path) -> None:
    para = ref_dir / "paracetamol_phonon_dispersion_large_crystal22/INPUT.d12"
    _raises(
        _edit(para, "ENDFREQ\n", ""),
        MissingTerminatorError,
        26,
        "FREQCALC opened on line 7 is not closed",
    )
    dry = ref_dir / "dryice_freq_ir_b3lypd3_crystal22/INPUT.d12"
    _raises(
        _edit(dry, "ENDFREQ\n", ""),
        MissingTerminatorError,
        19,
        "line 18 closed FREQCALC (opened on line 9)",
    )
    _raises(
        _edit(dry, "INTCPHF\nEND\n", "INTCPHF\n"),
        MissingTerminatorError,
        15,
        "add END before line 15",
    )
    mgo = ref_dir / "mgo_opt_b3lyp_crystal22/INPUT.d12"
    _raises(_edit(mgo, "ENDDFT\n", ""), MissingTerminatorError, 56, "add ENDDFT before line 56")
    _raises(_edit(mgo, "ENDSCF\n", ""), MissingTerminatorError, 65, "ends with END")
    _raises(_edit(mgo, "99 0\nENDBS\n", "99 0\n"), MissingTerminatorError, 52, "ends with END")


def test_allow_unknown_is_the_escape_hatch(ref_dir: Path) -> None:
    text = _edit(ref_dir / "mgo_opt_b3lyp_crystal22/INPUT.d12", "DIIS\n", "NEWKEY23\n4 4\nDIIS\n")
    with pytest.raises(UnknownKeywordError, match="allow_unknown=\\['NEWKEY23'\\]"):
        CrystalInput.from_string(text)
    for allow in (["newkey23"], True):
        deck = CrystalInput.from_string(text, allow_unknown=allow)
        assert deck.scf.extra == ["NEWKEY23", "4 4", "DIIS"]
        assert CrystalInput.from_string(deck.to_string(), allow_unknown=allow) == deck
    with pytest.raises(CountMismatchError):  # numbers where a keyword belongs stay an error
        CrystalInput.from_string(
            _edit(ref_dir / "mgo_opt_b3lyp_crystal22/INPUT.d12", "DIIS\n", "4 4\nDIIS\n"),
            allow_unknown=True,
        )


def test_mutated_decks_never_read_silently() -> None:
    """150 seeded mutations of the 30 real decks: a typed error with a line, or a valid deck."""
    originals: dict[Path, str] = {}
    results = []
    for kind, path, mutated, what in mutations(150, seed=18):
        original = originals.setdefault(path, path.read_text())
        results.append((kind, outcome(original, mutated, kind, what)))
    errors = {
        kind: sum(1 for k, r in results if k == kind and r == "error")
        for kind in ("misspell", "drop_line", "drop_terminator")
    }
    assert errors == {"misspell": 45, "drop_line": 48, "drop_terminator": 50}, errors
