"""Fixtures shared by the CRYSTAL I/O tests."""

from __future__ import annotations

import warnings

import pytest
from pymatgen.core import Lattice, Structure
from pymatgen.symmetry.bandstructure import HighSymmKpath


@pytest.fixture(scope="module")
def mgo_primitive() -> Structure:
    """MgO as CRYSTAL builds it from ``225 / 4.217``: its Fm-3m primitive cell is pymatgen's."""
    conventional = Structure.from_spacegroup(
        225, Lattice.cubic(4.217), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return HighSymmKpath(conventional).prim
