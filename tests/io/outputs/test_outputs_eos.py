"""CRYSTAL's native EOS tables in the parser and the task document, against the real hTaAs run."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from crystal_atomate.io.outputs import parse_output
from crystal_atomate.io.units import HARTREE_TO_EV
from crystal_atomate.schemas.task import CrystalEosDoc, CrystalOutputDoc

EOS_RUN = "hTaAs_eos_lda_ecp_crystal23"
TOL = 1e-8


def test_sorted_energy_volume_points(ref_dir: Path) -> None:
    """All 14 sorted points (13 of RANGE + the central one read from the restart)."""
    eos = parse_output(ref_dir / EOS_RUN / "OUTPUT.out").eos
    assert eos is not None
    assert len(eos.volumes_a3) == len(eos.energies_ha) == 14
    assert eos.volumes_a3[0] == pytest.approx(30.195589, abs=1e-6)
    assert eos.energies_ha[0] == pytest.approx(-63.70199863738, abs=TOL)
    assert eos.volumes_a3[11] == pytest.approx(34.662057, abs=1e-6)
    assert eos.energies_ha[11] == pytest.approx(-63.71760042906, abs=TOL)
    assert eos.volumes_a3 == sorted(eos.volumes_a3)


def test_fits_of_every_equation_and_polynomial(ref_dir: Path) -> None:
    eos = parse_output(ref_dir / EOS_RUN / "OUTPUT.out").eos
    assert eos is not None
    by_name = {fit.equation: fit for fit in eos.fits}
    assert list(by_name) == [
        "MURNAGHAN 1944", "BIRCH-MURNAGHAN 1947", "POIRIER-TARANTOLA 1998", "VINET 1987",
        "THIRD ORDER POLYNOMIAL", "FOURTH ORDER POLYNOMIAL", "FIFTH ORDER POLYNOMIAL",
    ]
    birch = by_name["BIRCH-MURNAGHAN 1947"]
    assert (birch.volume_a3, birch.bulk_modulus_gpa) == (34.7678, 179.42)
    assert birch.bulk_modulus_derivative == 3.97
    assert birch.energy_ha == pytest.approx(-63.71760839, abs=TOL)
    assert by_name["FIFTH ORDER POLYNOMIAL"].bulk_modulus_derivative is None
    assert by_name["FIFTH ORDER POLYNOMIAL"].bulk_modulus_gpa == 178.38


def test_task_document_uses_atomate2_eos_layout(ref_dir: Path) -> None:
    """eV and Angstrom^3 with pymatgen's EOS names, as atomate2's EOS postprocessor writes them."""
    doc = CrystalOutputDoc.from_crystal_output(parse_output(ref_dir / EOS_RUN / "OUTPUT.out")).eos
    assert isinstance(doc, CrystalEosDoc)
    assert doc.energy[0] / HARTREE_TO_EV == pytest.approx(-63.70199863738, abs=TOL)
    assert set(doc.EOS) == {
        "murnaghan", "birch_murnaghan", "pourier_tarantola", "vinet",
        "third_order_polynomial", "fourth_order_polynomial", "fifth_order_polynomial",
    }
    vinet = doc.EOS["vinet"]
    assert vinet["e0"] / HARTREE_TO_EV == pytest.approx(-63.71760801, abs=TOL)
    assert vinet["v0"] == 34.7683 and vinet["b1"] == 4.06 and vinet["b0 GPa"] == 179.02
    assert vinet["b0"] == pytest.approx(179.02 / 160.21766208, rel=1e-8)


@pytest.mark.parametrize("folder", ["mgo_opt_b3lyp_crystal22", "elastcon_3d_pbe0_crystal17"])
def test_no_eos_outside_eos_runs(ref_dir: Path, folder: str) -> None:
    out = parse_output(ref_dir / folder / "OUTPUT.out")
    assert out.eos is None
    assert CrystalOutputDoc.from_crystal_output(out).eos is None


def test_fit_table_without_points_is_ignored_and_junk_does_not_break_the_scan() -> None:
    """A truncated EOS print: fits without the points table, then a SORTING header with no rows."""
    text = (
        " EEEEEEEEEE STARTING  DATE 24 07 2025 TIME 08:08:39.7\n title\n"
        " EQUATION OF STATE             VOL(A^3)        E(AU)       BM(GPa)   BM PRIME\n"
        " -------------------------------------------------------------------------------\n"
        " MURNAGHAN 1944                 34.7673       -63.71760925  180.21     3.76\n\n"
        " SORTING VOLUMES/ENERGIES\n\n     VOLUME (A^3)    ENERGY (a.u.)\n\n not a number\n"
        " POSSIBLY CONDUCTING STATE - EFERMI(AU)  -0.1234\n"
    )
    out = parse_output(io.StringIO(text))
    assert out.eos is None
    assert out.fermi_energy_ha == pytest.approx(-0.1234)
