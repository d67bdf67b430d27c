"""CRYSTAL job Makers for each calculation type, as atomate2's ``vasp.jobs.core``."""

from __future__ import annotations

from dataclasses import dataclass, field

from crystal_atomate.jobs.base import BaseCrystalMaker
from crystal_atomate.sets.base import CrystalInputGenerator
from crystal_atomate.sets.core import (
    ElasticSetGenerator,
    EosSetGenerator,
    FreqSetGenerator,
    RelaxSetGenerator,
    StaticSetGenerator,
    TightRelaxSetGenerator,
)

__all__ = [
    "ElasticMaker",
    "EosMaker",
    "FreqMaker",
    "RelaxMaker",
    "StaticMaker",
    "TightRelaxMaker",
]


@dataclass
class StaticMaker(BaseCrystalMaker):
    """A single-point SCF calculation."""

    name: str = "static"
    input_set_generator: CrystalInputGenerator = field(default_factory=StaticSetGenerator)


@dataclass
class RelaxMaker(BaseCrystalMaker):
    """A geometry optimisation (OPTGEOM); ``RelaxSetGenerator(relax_type=...)`` picks what moves."""

    name: str = "relax"
    input_set_generator: CrystalInputGenerator = field(default_factory=RelaxSetGenerator)


@dataclass
class TightRelaxMaker(BaseCrystalMaker):
    """A tightly converged optimisation, before frequencies or elastic constants."""

    name: str = "tight relax"
    input_set_generator: CrystalInputGenerator = field(default_factory=TightRelaxSetGenerator)


@dataclass
class FreqMaker(BaseCrystalMaker):
    """Gamma-point frequencies with IR intensities (FREQCALC)."""

    name: str = "frequency"
    input_set_generator: CrystalInputGenerator = field(default_factory=FreqSetGenerator)


@dataclass
class ElasticMaker(BaseCrystalMaker):
    """CRYSTAL's native elastic tensor (ELASTCON) in one job."""

    name: str = "elastic"
    input_set_generator: CrystalInputGenerator = field(default_factory=ElasticSetGenerator)


@dataclass
class EosMaker(BaseCrystalMaker):
    """CRYSTAL's native equation of state (EOS) in one job."""

    name: str = "eos"
    input_set_generator: CrystalInputGenerator = field(default_factory=EosSetGenerator)
