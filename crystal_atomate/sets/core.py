"""Input-set generators for each kind of CRYSTAL calculation (static, relax, frequency, ...)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pymatgen.core import Molecule, Structure

from crystal_atomate.sets.base import CrystalInputGenerator

__all__ = [
    "ElasticSetGenerator",
    "EosSetGenerator",
    "FreqSetGenerator",
    "RelaxSetGenerator",
    "StaticSetGenerator",
    "TightRelaxSetGenerator",
]

RelaxType = Literal["full", "atoms", "cell", "default"]

#: CRYSTAL's OPTGEOM type keyword for each relax type. "default" writes plain OPTGEOM, which means
#: atoms + cell in CRYSTAL23 but atoms only in CRYSTAL17: prefer an explicit type.
OPTGEOM_TYPES: dict[str, str | None] = {
    "full": "FULLOPTG",
    "atoms": "ATOMONLY",
    "cell": "CELLONLY",
    "default": None,
}


@dataclass
class StaticSetGenerator(CrystalInputGenerator):
    """A single-point SCF."""


@dataclass
class RelaxSetGenerator(CrystalInputGenerator):
    """OPTGEOM: ``relax_type`` full (atoms and cell), atoms only, or cell only."""

    relax_type: RelaxType = "full"

    def calculation_updates(self, structure: Structure | Molecule) -> dict[str, Any]:
        """Return ``OPTGEOM`` for ``relax_type``; a molecule has no cell to relax."""
        optgeom: dict[str, Any] = {"type": OPTGEOM_TYPES[self.relax_type], "maxcycle": 100}
        if isinstance(structure, Molecule) and self.relax_type != "default":
            optgeom["type"] = None if self.relax_type == "atoms" else "FULLOPTG"
        return {"optgeom": optgeom}


@dataclass
class TightRelaxSetGenerator(RelaxSetGenerator):
    """A relax with tighter gradients, SCF and integrals, before frequencies or elastic tensors."""

    def calculation_updates(self, structure: Structure | Molecule) -> dict[str, Any]:
        """Return the relax's updates with tighter gradient, SCF and integral tolerances."""
        updates = super().calculation_updates(structure)
        updates["optgeom"] |= {"toldeg": 0.0001, "toldex": 0.0004, "toldee": 9}
        updates["scf"] = {"toldee": 10, "tolinteg": [8, 8, 8, 8, 16]}
        return updates


@dataclass
class FreqSetGenerator(CrystalInputGenerator):
    """FREQCALC at Gamma with IR intensities (Berry phase); TOLDEE 10 as CRYSTAL asks for."""

    intensities: bool = True

    def calculation_updates(self, structure: Structure | Molecule) -> dict[str, Any]:
        """Return ``FREQCALC`` (numerical second derivatives) and a tighter SCF."""
        del structure
        return {"freqcalc": {"numderiv": 2, "intens": self.intensities}, "scf": {"toldee": 10}}


@dataclass
class ElasticSetGenerator(CrystalInputGenerator):
    """ELASTCON: CRYSTAL's own strain-stress fit of the elastic tensor."""

    preoptimise: bool = False

    def calculation_updates(self, structure: Structure | Molecule) -> dict[str, Any]:
        """Return ``ELASTCON`` (optionally pre-optimised) and a tighter SCF."""
        del structure
        return {"elastcon": {"preoptgeom": self.preoptimise}, "scf": {"toldee": 10}}


@dataclass
class EosSetGenerator(CrystalInputGenerator):
    """EOS: CRYSTAL's own equation of state (volume range and points)."""

    volume_range: tuple[float, float, int] = (0.92, 1.08, 7)

    def calculation_updates(self, structure: Structure | Molecule) -> dict[str, Any]:
        """Return ``EOS`` over ``volume_range`` and a tighter SCF."""
        del structure
        return {"eos": {"range": list(self.volume_range)}, "scf": {"toldee": 9}}
