"""The properties deck model against the real BAND/DOSS decks of the reference set."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from pymatgen.core import Element, Lattice, Structure

from crystal_atomate.io.properties import (
    Band,
    BandSegment,
    Doss,
    DossProjection,
    Newk,
    PropertiesInput,
    PropertiesParseError,
    high_symmetry_points,
)

MGO = "mgo_scf_band_doss_b3lyp_crystal17"


def test_real_band_deck(ref_dir):
    deck = PropertiesInput.from_file(ref_dir / MGO / "BAND.d3")
    assert deck.newk == Newk(shrink=12, gilat_shrink=24, recompute_fermi=True)
    band = deck.band
    assert (band.title, band.shrink, band.n_points) == ("BN", 4, 200)
    assert (band.first_band, band.last_band, band.plot, band.print_eigenvalues) == (1, 26, 1, 0)
    assert [(s.start, s.end) for s in band.path] == [
        ((0, 0, 0), (2, 0, 2)),
        ((2, 0, 2), (2, 2, 2)),
        ((2, 2, 2), (0, 0, 0)),
        ((0, 0, 0), (2, 1, 3)),
    ]
    assert deck.doss is None
    assert deck.layout == ["NEWK", "BAND"]
    assert PropertiesInput.from_string(deck.to_string()) == deck


def test_real_doss_deck_with_energy_window_and_atom_projections(ref_dir):
    deck = PropertiesInput.from_file(ref_dir / MGO / "DOSS.d3")
    doss = deck.doss
    assert (doss.n_points, doss.first_band, doss.last_band) == (300, -1, -1)
    assert doss.energy_range == (-0.7, 0.8)
    assert (doss.plot, doss.n_polynomials, doss.npr) == (2, 12, 0)
    assert doss.projections == [
        DossProjection(kind="atom", indices=[1]),
        DossProjection(kind="atom", indices=[2]),
    ]
    text = deck.to_string()
    assert "2 300 -1 -1 2 12 0\n-0.7 0.8\n-1 1\n-1 2\nEND\n" in text
    assert PropertiesInput.from_string(text) == deck


def test_real_doss_deck_with_ao_projections(ref_dir):
    deck = PropertiesInput.from_file(ref_dir / "fes_rocksalt_doss_pdos_crystal17" / "DOSS.d3")
    assert deck.newk.shrink == 18 and deck.newk.gilat_shrink == 36
    doss = deck.doss
    assert (doss.n_points, doss.first_band, doss.last_band, doss.n_polynomials) == (
        1000,
        29,
        55,
        14,
    )
    assert [len(p.indices) for p in doss.projections] == [12, 24, 30, 14, 10, 24, 10]
    assert all(p.kind == "ao" for p in doss.projections)
    assert doss.projections[2].indices[-1] == 73
    assert doss.projections[6].indices == [98, 99, 100, 101, 102, 120, 121, 122, 123, 124]
    assert deck.layout is None  # NEWK then DOSS is the default order
    assert PropertiesInput.from_string(deck.to_string()) == deck


def test_label_path_deck_echoed_by_crystal14(ref_dir):
    """The NaCl deck (BAND with ISS = 0 labels, NPR = 1) as echoed at the top of its output."""
    text = (ref_dir / "nacl_band_doss_hf_crystal14" / "PROP_OUTPUT.outp").read_text()
    deck = PropertiesInput.from_string(text.split("END\n")[0] + "END\n")
    assert deck.band.shrink == 0
    assert [(s.start, s.end) for s in deck.band.path] == [
        ("G", "X"), ("X", "W"), ("W", "L"), ("L", "G"),
    ]
    assert deck.doss.npr == 1 and deck.doss.print_record == "-1 1"
    assert deck.doss.projections == []
    assert deck.layout is None
    assert PropertiesInput.from_string(deck.to_string()) == deck
    with pytest.raises(ValueError, match="labels"):
        deck.band.fractional_vertices()


def test_extra_lines_kept_in_place():
    text = "RDFMWF\nNEWK\n0 16\n4 4 8\n0 0\nPPAN\nDOSS\n1 100 1 10 2 10 0\n3 1 2\n3\nEND\nECHG\n"
    deck = PropertiesInput.from_string(text)
    assert deck.extra == ["RDFMWF", "PPAN"]
    assert deck.layout == ["EXTRA", "NEWK", "EXTRA", "DOSS"]
    assert deck.newk.mesh == (4, 4, 8) and deck.newk.recompute_fermi is False
    assert deck.doss.projections == [DossProjection(kind="ao", indices=[1, 2, 3])]
    assert (
        deck.to_string()
        == "RDFMWF\nNEWK\n0 16\n4 4 8\n0 0\nPPAN\nDOSS\n1 100 1 10 2 10 0\n3 1 2 3\nEND\n"
    )
    assert PropertiesInput.from_string(deck.to_string()) == deck


def test_constructed_deck_round_trips_and_is_written_as_input(tmp_path):
    deck = PropertiesInput(
        newk=Newk(shrink=8, gilat_shrink=16),
        band=Band(
            shrink=2, n_points=50, first_band=1, last_band=12,
            path=[BandSegment(start=(0, 0, 0), end=(1, 0, 1))],
        ),
        doss=Doss(n_points=200, first_band=1, last_band=12, projections=[
            DossProjection(kind="atom", indices=[1, 2]),
        ]),
    )
    assert PropertiesInput.from_string(deck.to_string()) == deck
    path = deck.write_input(tmp_path)
    assert path.name == "INPUT"
    assert path.read_text().splitlines()[0] == "BAND"  # BAND before NEWK+DOSS by default
    assert PropertiesInput.from_file(path) == deck


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("NEWK\n12 24\n1 0\n", 3, "no END"),
        ("NEWK\n12\n1 0\nEND\n", 2, "expected 2 integers"),
        ("BAND\nT\n2 4 100 1 10 1 0\n0 0 0 2 0 2\nEND\n", 5, "expected 6 integers"),
        ("DOSS\n1 100 1 10 2 10 0\n3 1 x 3\nEND\n", 3, "not an integer"),
        ("DOSS\n1 100 -1 -1 2 10 0\n-0.5\n-1 1\nEND\n", 3, "BMI BMA"),
        ("DOSS\n0 100 5 1 2 10 0\nEND\n", 1, "first_band"),
        (
            "NEWK\n12 24\n1 0\nDOS\n1 100 1 10 2 10 0\nEND\n",
            4,
            "unknown properties keyword 'DOS' .did you mean DOSS",
        ),
        (
            "DOSS\n1 300 -1 -1 2 12 0\n-0.7 +0.8\n-1 1\n-1 2\nEND\n",
            5,
            "expected a keyword, got '-1 2'",
        ),
        (
            "PPAN\nECHG\n0\n100\nBAND\nT\n1 4 100 1 10 1 0\n0 0 0 2 0 2\n1 1 1\nEND\n",
            9,
            "NLINE, NPRO",
        ),
    ],
)
def test_bad_decks_name_file_and_line(tmp_path, text, line, message):
    path = tmp_path / "bad.d3"
    path.write_text(text)
    with pytest.raises(PropertiesParseError, match=message) as info:
        PropertiesInput.from_file(path)
    assert info.value.line == line
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_every_reference_deck_reads(ref_dir):
    decks = sorted(ref_dir.rglob("*.d3"))
    assert len(decks) == 4
    for path in decks:
        deck = PropertiesInput.from_file(path)
        assert PropertiesInput.from_string(deck.to_string()) == deck, path


def test_allow_unknown_keeps_the_keyword():
    text = "NEWKEY23\n4 4\nPPAN\nEND\n"
    with pytest.raises(PropertiesParseError, match="allow_unknown"):
        PropertiesInput.from_string(text)
    deck = PropertiesInput.from_string(text, allow_unknown=["newkey23"])
    assert deck.extra == ["NEWKEY23", "4 4", "PPAN"]
    assert PropertiesInput.from_string(deck.to_string(), allow_unknown=True) == deck


def test_models_reject_inconsistent_values():
    with pytest.raises(ValidationError, match="mesh"):
        Newk(shrink=0, gilat_shrink=8)
    with pytest.raises(ValidationError, match="labels exactly"):
        Band(
            shrink=4, n_points=10, first_band=1, last_band=2, path=[BandSegment(start="G", end="X")]
        )
    with pytest.raises(ValidationError, match="energy_range"):
        Doss(n_points=10, first_band=-1, last_band=-1)
    with pytest.raises(ValidationError, match="layout"):
        PropertiesInput(newk=Newk(shrink=4, gilat_shrink=8), layout=["BAND"])


def test_band_from_structure_mgo_vertices(mgo_primitive):
    band = Band.from_structure(mgo_primitive, bands=(1, 26), line_density=20)
    labelled = {}
    for segment, (a, b) in zip(band.path, band.labels, strict=True):
        labelled[a] = np.array(segment.start) / band.shrink
        labelled[b] = np.array(segment.end) / band.shrink
    assert band.shrink == 8
    np.testing.assert_allclose(labelled["\\Gamma"], [0, 0, 0])
    np.testing.assert_allclose(labelled["X"], [0.5, 0, 0.5])
    np.testing.assert_allclose(labelled["W"], [0.5, 0.25, 0.75])
    np.testing.assert_allclose(labelled["L"], [0.5, 0.5, 0.5])
    np.testing.assert_allclose(labelled["K"], [0.375, 0.375, 0.75])
    np.testing.assert_allclose(labelled["U"], [0.625, 0.25, 0.625])
    # the same points CRYSTAL was given in the real MgO deck, (2,0,2)/4 etc.
    assert band.labels[0] == ("\\Gamma", "X")
    assert 150 < band.n_points < 250
    deck = PropertiesInput(band=band)
    assert PropertiesInput.from_string(deck.to_string()).band == band.model_copy(
        update={"labels": None}
    )


def test_band_from_structure_follows_the_structure_basis(mgo_primitive):
    """A cyclically re-chosen primitive basis gets the vertices in its own reciprocal basis."""
    cycled = Lattice(np.roll(mgo_primitive.lattice.matrix, -1, axis=0))
    other = Structure(
        cycled, mgo_primitive.species, mgo_primitive.cart_coords, coords_are_cartesian=True
    )
    points = high_symmetry_points(other)
    np.testing.assert_allclose(points["X"], [0, 0.5, 0.5], atol=1e-12)
    np.testing.assert_allclose(points["W"], [0.25, 0.75, 0.5], atol=1e-12)
    band = Band.from_structure(other, bands=(1, 26))
    assert band.path[0].end == (0, 4, 4)


def test_band_from_structure_on_a_supercell_uses_its_basis(mgo_primitive):
    """A doubled a1 doubles the first reciprocal coordinate: the path is that of the supercell."""
    points = high_symmetry_points(mgo_primitive * (2, 1, 1))
    np.testing.assert_allclose(points["X"], [1.0, 0.0, 0.5], atol=1e-12)
    np.testing.assert_allclose(points["L"], [1.0, 0.5, 0.5], atol=1e-12)


def test_doss_from_structure_projects_per_element():
    structure = Structure.from_spacegroup(
        225, Lattice.cubic(4.217), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )
    doss = Doss.from_structure(structure, bands=(1, 104))
    assert doss.projections == [
        DossProjection(kind="atom", indices=[1, 2, 3, 4]),
        DossProjection(kind="atom", indices=[5, 6, 7, 8]),
    ]
    assert [structure[i - 1].specie for i in doss.projections[1].indices] == [Element("O")] * 4
    assert (
        "2 1000 1 104 2 14 0\n-4 1 2 3 4\n-4 5 6 7 8\nEND" in PropertiesInput(doss=doss).to_string()
    )
