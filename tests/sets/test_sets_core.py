"""Input-set generators: defaults, overrides, k-points, spin, restart files, and bad settings."""

from __future__ import annotations

import pytest
from pymatgen.core import Lattice, Structure

from crystal_atomate.io.basis import BasisSet, UnknownBasisElementError
from crystal_atomate.io.d12 import CrystalInput, ExternalGeometry
from crystal_atomate.io.geometry import StructureError
from crystal_atomate.sets.base import CrystalInputGenerator, InputSettingsError, deep_update
from crystal_atomate.sets.core import (
    FreqSetGenerator,
    RelaxSetGenerator,
    StaticSetGenerator,
    TightRelaxSetGenerator,
)


@pytest.fixture
def mgo() -> Structure:
    return Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(4.217), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )


def test_defaults_round_trip_through_the_deck(mgo, tmp_path):
    input_set = StaticSetGenerator().get_input_set(mgo, title="static")
    deck = input_set.crystal_input
    assert deck.title == "static"
    assert isinstance(deck.geometry, ExternalGeometry)
    assert deck.basis.library == "POB-TZVP-REV2"
    assert deck.hamiltonian.dft.functional == "PBE0"
    assert deck.scf.tolinteg == (7, 7, 7, 7, 14)
    input_set.write_input(tmp_path)
    assert CrystalInput.from_file(tmp_path / "INPUT") == deck
    assert (tmp_path / "fort.34").is_file()


def test_kspacing_gives_the_shrink_factor(mgo):
    # the primitive cell of rocksalt with a = 4.217 A has |b| = 2 pi sqrt(3)/a = 2.581 1/A
    shrink = (
        StaticSetGenerator(user_kpoints_settings={"kspacing": 0.2})
        .get_input_set(mgo)
        .crystal_input.scf.shrink
    )
    assert (shrink.mesh, shrink.isp) == (13, 26)
    explicit = StaticSetGenerator(user_kpoints_settings={"shrink": [8, 16]}).shrink(mgo)
    assert (explicit.mesh, explicit.isp) == (8, 16)


def test_user_settings_override_and_none_removes(mgo):
    generator = StaticSetGenerator(
        functional="HSE06", user_input_settings={"scf": {"fmixing": 70, "ppan": None}}
    )
    deck = generator.get_input_set(mgo).crystal_input
    assert deck.hamiltonian.dft.functional == "HSE06"
    assert deck.scf.fmixing == 70
    assert deck.scf.ppan is False
    assert deep_update({"a": {"b": 1, "c": 2}}, {"a": {"c": None, "d": 3}}) == {
        "a": {"b": 1, "d": 3}
    }


def test_calculation_types(mgo):
    relax = RelaxSetGenerator(relax_type="cell").get_input_set(mgo).crystal_input
    assert relax.optgeom.type == "CELLONLY"
    tight = TightRelaxSetGenerator().get_input_set(mgo).crystal_input
    assert (tight.optgeom.type, tight.optgeom.toldeg, tight.scf.toldee) == ("FULLOPTG", 0.0001, 10)
    freq = FreqSetGenerator().get_input_set(mgo).crystal_input
    assert freq.freqcalc.numderiv == 2 and freq.freqcalc.intens and freq.scf.toldee == 10


def test_magnetic_elements_are_spin_polarised(ref_dir):
    nio = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(4.17), ["Ni", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )
    deck = StaticSetGenerator().get_input_set(nio).crystal_input
    assert deck.hamiltonian.dft.spin is True
    assert deck.scf.atomspin == [(1, 1)]
    hf = StaticSetGenerator(functional="HF").get_input_set(nio).crystal_input
    assert hf.hamiltonian.method == "UHF"


def test_previous_wavefunction_becomes_guessp(mgo, tmp_path):
    prev = tmp_path / "prev"
    prev.mkdir()
    (prev / "fort.9").write_bytes(b"wavefunction")
    (prev / "HESSOPT.DAT").write_text("hessian")
    input_set = StaticSetGenerator().get_input_set(mgo, prev_dir=prev)
    assert input_set.crystal_input.scf.guessp is True
    input_set.write_input(tmp_path / "run")
    assert (tmp_path / "run" / "fort.20").read_bytes() == b"wavefunction"
    assert (tmp_path / "run" / "HESSOPT.DAT").read_text() == "hessian"
    fresh = StaticSetGenerator(inherit_wavefunction=False).get_input_set(mgo, prev_dir=prev)
    assert fresh.crystal_input.scf.guessp is False


def test_empty_wavefunction_is_not_reused(mgo, tmp_path):
    (tmp_path / "fort.9").write_bytes(b"")
    assert (
        StaticSetGenerator().get_input_set(mgo, prev_dir=tmp_path).crystal_input.scf.guessp is False
    )


def test_unknown_settings_are_named(mgo):
    with pytest.raises(InputSettingsError, match=r"Unknown input settings section\(s\) \['sfc'\]"):
        StaticSetGenerator(user_input_settings={"sfc": {}}).get_input_set(mgo)
    with pytest.raises(InputSettingsError, match=r"scf\.fmixng: Extra inputs are not permitted"):
        StaticSetGenerator(user_input_settings={"scf": {"fmixng": 40}}).get_input_set(mgo)
    with pytest.raises(InputSettingsError, match=r"scf\.fmixing"):
        StaticSetGenerator(user_input_settings={"scf": {"fmixing": 140}}).get_input_set(mgo)
    with pytest.raises(InputSettingsError, match="Unknown functional preset 'PW91'"):
        StaticSetGenerator(functional="PW91").get_input_set(mgo)


def test_bad_structures_fail_before_anything_is_written(ref_dir, mgo, tmp_path):
    only_mg = BasisSet.from_file(ref_dir / "basis_sets_crystal_format" / "sto3g__sto3g_Mg.basis")
    generator = CrystalInputGenerator(user_basis_settings=only_mg)
    with pytest.raises(UnknownBasisElementError, match="O"):
        generator.check_structure(mgo)
    overlapping = Structure(Lattice.cubic(4.0), ["Mg", "O"], [[0, 0, 0], [0.02, 0, 0]])
    with pytest.raises(StructureError, match=r"sites 0 \(Mg\) and 1 \(O\)"):
        StaticSetGenerator().check_structure(overlapping)
    disordered = Structure(
        Lattice.cubic(4.0), [{"Mg": 0.5, "Ca": 0.5}, "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )
    with pytest.raises(StructureError, match="partial occupancy"):
        StaticSetGenerator().check_structure(disordered)
    assert not list(tmp_path.iterdir())
