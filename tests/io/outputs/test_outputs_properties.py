"""Readers for BAND.DAT, DOSS.DAT, fort.25 and the properties stdout, on the real files."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from pymatgen.core import Element
from pymatgen.electronic_structure.core import Spin
from pymatgen.electronic_structure.plotter import BSPlotter

from crystal_atomate.io.errors import CrystalErrorKind
from crystal_atomate.io.outputs.properties import (
    parse_properties_output,
    read_band_dat,
    read_doss_dat,
    read_fort25,
)
from crystal_atomate.io.properties import Doss, PropertiesInput, PropertiesParseError
from crystal_atomate.io.units import BOHR_TO_ANGSTROM, HARTREE_TO_EV

MGO = "mgo_scf_band_doss_b3lyp_crystal17"
FES = "fes_rocksalt_doss_pdos_crystal17"
NACL = "nacl_band_doss_hf_crystal14"
HA = HARTREE_TO_EV


def test_band_dat_mgo(ref_dir):
    data = read_band_dat(ref_dir / MGO / "BAND.DAT")
    assert (data.n_kpoints, data.n_bands, data.is_spin_polarized) == (201, 26, False)
    assert data.vertex_indices == [0, 52, 97, 142, 200]
    assert data.vertex_labels == ["(0,0,0)/4", "(2,0,2)/4", "(2,2,2)/4", "(0,0,0)/4", "(2,1,3)/4"]
    assert data.fermi_shifted
    assert data.efermi == pytest.approx(-0.15202 * HA, abs=1e-6)
    up = data.eigenvalues[Spin.up]
    assert up[0, 0] == pytest.approx(-0.46502e02 * HA, abs=1e-6)
    assert up[9, 0] == pytest.approx(0.0, abs=1e-6)  # valence-band top at Gamma = E_F
    assert up[10, 0] == pytest.approx(0.26179 * HA, abs=1e-6)
    assert up[11, 1] == pytest.approx(0.98344 * HA, abs=1e-6)
    assert data.distances[-1] == pytest.approx(3.03562 / BOHR_TO_ANGSTROM, abs=1e-4)
    np.testing.assert_allclose(data.vertex_fractions()[4], [0.5, 0.25, 0.75])


def test_band_dat_spin_blocks(ref_dir):
    data = read_band_dat(ref_dir / "mgo_scf_spin_band_crystal17" / "BAND.DAT")
    assert data.is_spin_polarized
    assert data.eigenvalues[Spin.down].shape == (26, 201)
    assert data.eigenvalues[Spin.down][10, -1] == pytest.approx(0.56425 * HA, abs=1e-6)
    # zero-moment UKS: both spins identical
    np.testing.assert_allclose(data.eigenvalues[Spin.up], data.eigenvalues[Spin.down], atol=1e-9)
    assert data.efermi == pytest.approx(-0.15202 * HA, abs=1e-6)


def test_band_structure_reproduces_crystal_gap(ref_dir, mgo_primitive):
    data = read_band_dat(ref_dir / MGO / "BAND.DAT")
    band = PropertiesInput.from_file(ref_dir / MGO / "BAND.d3").band
    bs = data.to_band_structure(mgo_primitive, band)
    assert len(bs.kpoints) == 201 + 3  # one duplicated k-point per inner vertex
    assert [k.label for k in bs.kpoints if k.label] == [
        "\\Gamma", "X", "X", "L", "L", "\\Gamma", "\\Gamma", "W",
    ]
    gap = bs.get_band_gap()
    assert gap["direct"] and gap["transition"] == "\\Gamma-\\Gamma"
    assert gap["energy"] == pytest.approx(7.1237, abs=1e-3)  # DIRECT ENERGY BAND GAP in BAND.outp
    assert bs.get_vbm()["energy"] == pytest.approx(-0.15202 * HA, abs=1e-6)
    assert bs.distance[-1] == pytest.approx(data.distances[-1], abs=1e-3)
    # without the deck, the vertices come from CRYSTAL17's printed coordinates
    assert len(data.to_band_structure(mgo_primitive).kpoints) == 204


def test_band_structure_plots(ref_dir, mgo_primitive, tmp_path):
    matplotlib.use("Agg")
    bs = read_band_dat(ref_dir / MGO / "BAND.DAT").to_band_structure(mgo_primitive)
    target = tmp_path / "mgo_bands.png"
    BSPlotter(bs).get_plot().figure.savefig(target)
    assert target.stat().st_size > 10_000


def test_crystal14_band_dat_and_fort25_agree(ref_dir, mgo_primitive):
    dat = read_band_dat(ref_dir / NACL / "BAND.DAT")
    assert (dat.n_kpoints, dat.n_bands) == (61, 18)
    assert dat.efermi is None and dat.vertex_labels == ["A"] * 5
    fort = read_fort25(ref_dir / NACL / "fort.25")
    bands = fort.bands
    assert bands.vertex_indices == dat.vertex_indices == [0, 19, 29, 43, 60]
    assert bands.vertex_labels == ["(0,0,0)", "(12,0,12)", "(12,6,18)", "(12,12,12)", "(0,0,0)"]
    assert not bands.fermi_shifted
    assert bands.efermi == pytest.approx(-0.396858 * HA, abs=1e-6)
    assert bands.eigenvalues[Spin.up][0, 0] == pytest.approx(-104.758 * HA, abs=1e-6)
    # BAND.DAT is fort.25 minus E_F, printed with 5 significant digits
    np.testing.assert_allclose(
        bands.eigenvalues[Spin.up] - bands.efermi,
        dat.eigenvalues[Spin.up],
        rtol=6e-5,
        atol=1e-5 * HA,
    )
    np.testing.assert_allclose(bands.distances, dat.distances, atol=1e-2)
    with pytest.raises(ValueError, match="pass the Band input"):
        dat.to_band_structure(mgo_primitive)


def test_doss_dat_mgo_atom_projections(ref_dir, mgo_primitive):
    data = read_doss_dat(ref_dir / MGO / "DOSS.DAT")
    assert data.energies.size == 302 and data.n_projections == 2
    assert data.fermi_shifted and data.efermi == pytest.approx(-0.15202 * HA, abs=1e-6)
    assert data.energies[0] == pytest.approx(-0.553 * HA, abs=1e-6)
    # the total is the last column and the sum of the two atom projections
    np.testing.assert_allclose(data.total(), data.densities[Spin.up][:2].sum(axis=0), atol=2e-4)
    # CRYSTAL: 7 doubly occupied bands in the window (14.00000), Mg 4.09902
    assert np.trapezoid(data.total(), data.energies) == pytest.approx(14.0, abs=0.2)
    assert np.trapezoid(data.densities[Spin.up][0], data.energies) == pytest.approx(4.099, abs=0.1)
    peak = data.energies[np.argmax(data.total())] / HA
    assert peak == pytest.approx(-0.031256, abs=1e-5)
    dos = data.to_dos()
    assert dos.efermi == pytest.approx(-0.15202 * HA, abs=1e-6)
    assert dos.energies[0] == pytest.approx((-0.553 - 0.15202) * HA, abs=1e-6)
    doss = Doss.from_structure(mgo_primitive, bands=(8, 14))
    elements = data.to_element_dos(mgo_primitive, doss)
    assert list(elements) == [Element("Mg"), Element("O")]
    np.testing.assert_allclose(
        elements[Element("O")].densities[Spin.up], data.densities[Spin.up][1]
    )


def test_doss_dat_spin_polarised_ao_projections(ref_dir):
    data = read_doss_dat(ref_dir / FES / "DOSS.DAT")
    assert data.energies.size == 1002 and data.n_projections == 7 and data.is_spin_polarized
    assert data.efermi == pytest.approx(-0.12479 * HA, abs=1e-6)
    # beta is written negative; we store it positive
    assert data.densities[Spin.up][0, 2] == pytest.approx(0.80161 / HA, abs=1e-6)
    assert data.densities[Spin.down][0, 2] == pytest.approx(0.80422 / HA, abs=1e-6)
    # 27 singly occupied bands (29..55) per spin
    for spin in (Spin.up, Spin.down):
        assert np.trapezoid(data.total(spin), data.energies) == pytest.approx(27.0, abs=0.15)
    fort = read_fort25(ref_dir / FES / "fort.25").doss
    assert fort.n_projections == 7 and not fort.fermi_shifted
    np.testing.assert_allclose(fort.energies - fort.efermi, data.energies, atol=1e-4 * HA)
    for spin in (Spin.up, Spin.down):
        np.testing.assert_allclose(fort.densities[spin], data.densities[spin], atol=1e-3)


def test_crystal14_doss_dat_has_absolute_energies(ref_dir):
    data = read_doss_dat(ref_dir / NACL / "DOSS.DAT")
    assert not data.fermi_shifted and data.efermi is None and data.n_projections == 0
    assert data.energies[0] == pytest.approx(-1.0307 * HA, abs=1e-6)
    with pytest.raises(ValueError, match="no Fermi level"):
        data.to_dos()
    efermi = read_fort25(ref_dir / NACL / "fort.25").doss.efermi
    dos = data.to_dos(efermi=efermi)
    assert dos.efermi == pytest.approx(-0.396858 * HA, abs=1e-6)
    assert dos.energies[0] == pytest.approx(-1.0307 * HA, abs=1e-6)


@pytest.mark.parametrize(
    ("name", "version", "efermi_ha", "n_warnings"),
    [
        (f"{MGO}/BAND.outp", "CRYSTAL17", -0.15202, 1),
        (f"{MGO}/DOSS.outp", "CRYSTAL17", -0.15202135, 0),
        (f"{FES}/DOSS.outp", "CRYSTAL17", -0.12478805, 0),
        (f"{NACL}/PROP_OUTPUT.outp", "CRYSTAL14", -0.39685829, 1),
    ],
)
def test_properties_stdout(ref_dir, name, version, efermi_ha, n_warnings):
    out = parse_properties_output(ref_dir / name)
    assert out.terminated and out.errors == [] and out.successful
    assert out.version == version
    assert out.efermi == pytest.approx(efermi_ha * HA, abs=1e-6)
    assert len(out.warnings) == n_warnings


def test_properties_stdout_truncated_and_error(ref_dir, tmp_path):
    lines = (ref_dir / MGO / "DOSS.outp").read_text().splitlines()
    cut = tmp_path / "cut.outp"
    cut.write_text("\n".join(lines[:200]))
    out = parse_properties_output(cut)
    assert not out.terminated and [e.kind for e in out.errors] == [CrystalErrorKind.TRUNCATED]
    failed = tmp_path / "failed.outp"
    failed.write_text(
        "\n".join(lines[:160] + [" ERROR **** DOSS **** FERMI ENERGY NOT IN INTERVAL"])
    )
    out = parse_properties_output(failed)
    assert [e.kind for e in out.errors] == [CrystalErrorKind.FERMI_NOT_IN_INTERVAL]
    assert out.errors[0].line_number == 161 and not out.successful


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_truncated_band_dat_names_file_and_line(ref_dir, tmp_path):
    lines = (ref_dir / MGO / "BAND.DAT").read_text().splitlines()
    path = _write(tmp_path, "BAND.DAT", "\n".join(lines[:100]) + "\n  0.1 0.2\n")
    with pytest.raises(PropertiesParseError, match="expected 27 columns, found 2") as info:
        read_band_dat(path)
    assert info.value.line == 101 and str(path) in str(info.value)
    path = _write(tmp_path, "BAND2.DAT", "\n".join(lines[:100]) + "\n")
    with pytest.raises(PropertiesParseError, match="67 k-points in a spin block, header says 201"):
        read_band_dat(path)


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("", "empty file", 1),
        ("hello world\n", "header must give NEPTS NPROJ NSPIN", 1),
        ("# NEPTS 2 NPROJ 1 NSPIN 1\n 0.1 0.2\n 0.2 zz\n", "not a number", 3),
        ("# NEPTS 2 NPROJ 1 NSPIN 2\n 0.1 0.2\n 0.2 0.3\n", "1 data blocks for NSPIN 2", 3),
    ],
)
def test_garbage_doss_dat(tmp_path, text, message, line):
    path = _write(tmp_path, "DOSS.DAT", text)
    with pytest.raises(PropertiesParseError, match=message) as info:
        read_doss_dat(path)
    assert info.value.line == line


def test_bad_fort25(ref_dir, tmp_path):
    lines = (ref_dir / NACL / "fort.25").read_text().splitlines()
    path = _write(tmp_path, "fort.25", "\n".join(lines[:40]) + "\n")
    with pytest.raises(PropertiesParseError, match="file ends"):
        read_fort25(path)
    path = _write(tmp_path, "map.25", "-%-0MAPN   65   65 1.00000E-01 1.00000E-01 0.00000E+00\n")
    with pytest.raises(PropertiesParseError, match="unsupported fort.25 record 'MAPN'") as info:
        read_fort25(path)
    assert info.value.line == 1
    broken = lines[:3] + ["-1.04758E+02-4.0426XE+01"] + lines[4:63]
    path = _write(tmp_path, "broken.25", "\n".join(broken) + "\n")
    with pytest.raises(PropertiesParseError, match="E12.5") as info:
        read_fort25(path)
    assert info.value.line == 4
    with pytest.raises(PropertiesParseError, match="cannot read"):
        read_fort25(tmp_path / "missing.25")
