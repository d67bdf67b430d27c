"""Unit conversions shared by the CRYSTAL readers and writers.

CRYSTAL prints energies in Hartree, forces in Hartree/bohr, stress in Hartree/bohr^3 and
geometry in Angstrom; task documents in the Materials Project ecosystem want eV, eV/Angstrom
and kbar. The constants are CODATA 2018 (the values pymatgen and ASE use), not the slightly
older ones CRYSTAL prints (``BOHR = 0.5291772083``, ``1 HARTREE/BOHR^3 = 29421 GPa``), so a
converted value can differ from CRYSTAL's own converted print-out in the 5th digit.
"""

from __future__ import annotations

__all__ = [
    "BOHR_TO_ANGSTROM",
    "CM1_TO_HARTREE",
    "GPA_TO_KBAR",
    "HARTREE_PER_BOHR3_TO_GPA",
    "HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM",
    "HARTREE_TO_EV",
]

HARTREE_TO_EV = 27.211386245988
BOHR_TO_ANGSTROM = 0.529177210903
HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM = HARTREE_TO_EV / BOHR_TO_ANGSTROM
_HARTREE_J = 4.3597447222071e-18
HARTREE_PER_BOHR3_TO_GPA = _HARTREE_J / (BOHR_TO_ANGSTROM * 1e-10) ** 3 / 1e9
GPA_TO_KBAR = 10.0
CM1_TO_HARTREE = 4.556335252912e-6
