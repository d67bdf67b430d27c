"""Counters and numbers that fill their Fortran field run into the label or the next number.

CRYSTAL prints ``POINT`` + I5, ``CYC`` + I4, ``CYCLES`` + I4, ``POINTS`` + I5 and the
``TOTAL ATOMIC CHARGES`` rows as 12-wide fixed-point fields, so ``POINT 9999`` is followed by
``POINT10000`` and a charge of -100 or less runs into the one before it. Each test rewrites a
real recorded output (MgO cell optimisation with ONELOG: 4 points, 4 SCFs, 25 charge rows) into
the glued form and checks that the parser reads the same run as from the original.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from pymatgen.core import Molecule

from crystal_atomate.io.outputs import CrystalOutput, parse_output
from crystal_atomate.testing.reference import reference_file

FOLDER = "mgo_opt_onelog_crystal22"


@pytest.fixture(scope="module")
def original_text() -> str:
    return reference_file(FOLDER, "OUTPUT.out").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def original(original_text: str) -> CrystalOutput:
    return parse_output(reference_file(FOLDER, "OUTPUT.out"), discover=False)


def _rewritten(
    tmp_path: Path, text: str, pattern: str, replace: Callable[[re.Match[str]], str]
) -> Path:
    new_text, count = re.subn(pattern, replace, text)
    assert count > 0, f"nothing to rewrite for {pattern!r}"
    path = tmp_path / "OUTPUT.out"
    path.write_text(new_text, encoding="utf-8")
    return path


def test_optimisation_points_past_9999(
    tmp_path: Path, original_text: str, original: CrystalOutput
) -> None:
    """``POINT10000`` / ``POINTS10000``: a converged 10,000-point optimisation stays converged."""
    shift = 9996
    text = re.sub(
        r"OPTIMIZATION - POINT +(\d+)",
        lambda m: f"OPTIMIZATION - POINT{int(m[1]) + shift:5d}",
        original_text,
    )
    path = _rewritten(
        tmp_path, text, r"POINTS +(\d+) \*", lambda m: f"POINTS{int(m[1]) + shift:5d} *"
    )
    assert "POINT10000" in path.read_text() and "POINTS10000 *" in path.read_text()
    out = parse_output(path, discover=False)
    assert [step.point for step in out.opt_steps] == [9997, 9998, 9999, 10000]
    assert out.opt_points == 10000
    assert out.opt_converged is True
    assert out.state == "converged"
    assert out.error_kinds == []
    assert out.energy_ha == original.energy_ha == -2.754486980727e02


def test_scf_cycles_past_999(tmp_path: Path, original_text: str, original: CrystalOutput) -> None:
    """``CYC1000 ETOT(AU)-2.75E+02`` and ``CYCLES1007``: every cycle and the count are read."""
    shift = 1000
    text = re.sub(
        r"CYC +(\d+) ETOT\(AU\) (-)",
        lambda m: f"CYC{int(m[1]) + shift:4d} ETOT(AU){m[2]}",
        original_text,
    )
    path = _rewritten(tmp_path, text, r"CYCLES +(\d+)", lambda m: f"CYCLES{int(m[1]) + shift:4d}")
    assert "CYC1000 ETOT(AU)-2.747683368289E+02" in path.read_text()
    out = parse_output(path, discover=False)
    assert [run.n_cycles for run in out.scf] == [
        n + shift for n in (run.n_cycles for run in original.scf)
    ]
    assert [run.cycle_count for run in out.scf] == [run.cycle_count for run in original.scf]
    assert out.scf[0].cycle_energies_ha[0] == -2.747683368289e02
    assert out.scf[0].cycle_numbers[0] == shift
    assert out.state == "converged"


def test_charges_that_run_together(tmp_path: Path, original_text: str) -> None:
    """``1010.12907781009.8709222``: two 12-wide fields (7 decimals).

    Not ``1010.12907781009`` and ``.8709222``.
    """
    path = _rewritten(
        tmp_path,
        original_text,
        r"(TOTAL ATOMIC CHARGES:\n)  10\.1290778   9\.8709222\n",
        lambda m: m[1] + f"{1010.1290778:12.7f}{1009.8709222:12.7f}\n",
    )
    out = parse_output(path, discover=False)
    assert out.mulliken is not None
    assert out.mulliken.populations == [1010.1290778, 1009.8709222]


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "row", ["1.11" * 16, "10.1243571" * 6 + "-" + "9.8756429" * 3, "-1.0" * 40, "1" * 200]
)
def test_hostile_charge_rows_finish(tmp_path: Path, original_text: str, row: str) -> None:
    """The rows that hung the floats-only pattern (15-21 s for 62 bytes) are read or refused now."""
    path = _rewritten(
        tmp_path,
        original_text,
        r"(TOTAL ATOMIC CHARGES:\n)  10\.1290778   9\.8709222\n",
        lambda m: m[1] + row + "\n",
    )
    out = parse_output(path, discover=False)
    assert out.state == "converged"
    assert out.energy_ha == -2.754486980727e02


def test_atom_numbers_run_into_their_flag_and_label(tmp_path: Path) -> None:
    """``1000001T  16S``: the S2 molecule's asymmetric-unit rows (its only geometry) still read."""
    text = reference_file("s2_molecule_opt_hse06_crystal17", "OUTPUT.out").read_text(
        encoding="utf-8"
    )
    path = _rewritten(
        tmp_path,
        text,
        r"(?m)^ +(\d) T +(\d+) S ",
        lambda m: f"{int(m[1]) + 1000000:7d}T{int(m[2]):4d}S ",
    )
    assert "1000001T  16S " in path.read_text()
    out = parse_output(path, discover=False)
    assert isinstance(out.structure, Molecule)
    assert [site.species_string for site in out.structure] == ["S", "S"]
    assert out.structure.cart_coords.tolist() == [
        [-2.182833700662e-02, 0.0, 0.0],
        [1.911828337007, 0.0, 0.0],
    ]
