"""Core CRYSTAL flows as in atomate2's ``vasp.flows.core``: double relax, relax-static-bands/DOS."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from jobflow import Flow, Maker
from pymatgen.core import Molecule, Structure

from crystal_atomate.jobs.base import BaseCrystalMaker
from crystal_atomate.jobs.core import RelaxMaker, StaticMaker
from crystal_atomate.jobs.properties import BandStructureMaker, DosMaker

__all__ = ["DoubleRelaxMaker", "RelaxBandStructureMaker"]


@dataclass
class DoubleRelaxMaker(Maker):
    """Two relaxations in a row: the second starts from the first's geometry and wavefunction."""

    name: str = "double relax"
    relax_maker1: BaseCrystalMaker = field(default_factory=lambda: RelaxMaker(name="relax 1"))
    relax_maker2: BaseCrystalMaker = field(default_factory=lambda: RelaxMaker(name="relax 2"))

    def make(self, structure: Structure | Molecule, prev_dir: str | Path | None = None) -> Flow:
        """Relax twice; the flow's output is the second relaxation's task document."""
        relax1 = self.relax_maker1.make(structure, prev_dir=prev_dir)
        relax2 = self.relax_maker2.make(relax1.output.structure, prev_dir=relax1.output.dir_name)
        return Flow([relax1, relax2], output=relax2.output, name=self.name)


@dataclass
class RelaxBandStructureMaker(Maker):
    """Relax, then a static SCF on the relaxed structure, then band structure and DOS from it.

    ``relax_maker=None`` skips the relaxation; ``band_structure_maker``/``dos_maker`` = None skip
    those steps.
    """

    name: str = "relax band structure"
    relax_maker: BaseCrystalMaker | None = field(default_factory=RelaxMaker)
    static_maker: BaseCrystalMaker = field(default_factory=StaticMaker)
    band_structure_maker: BandStructureMaker | None = field(default_factory=BandStructureMaker)
    dos_maker: DosMaker | None = field(default_factory=DosMaker)

    def make(self, structure: Structure | Molecule, prev_dir: str | Path | None = None) -> Flow:
        """Build the flow; its output maps each step's name to its task document."""
        jobs = []
        outputs = {}
        if self.relax_maker is not None:
            relax = self.relax_maker.make(structure, prev_dir=prev_dir)
            jobs.append(relax)
            outputs["relax"] = relax.output
            structure, prev_dir = relax.output.structure, relax.output.dir_name
        static = self.static_maker.make(structure, prev_dir=prev_dir)
        jobs.append(static)
        outputs["static"] = static.output
        for key, maker in (("band_structure", self.band_structure_maker), ("dos", self.dos_maker)):
            if maker is not None:
                step = maker.make(static.output.structure, prev_dir=static.output.dir_name)
                jobs.append(step)
                outputs[key] = step.output
        return Flow(jobs, output=outputs, name=self.name)
