"""Input generators for ``properties`` runs: a band structure or a DOS from a previous SCF."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymatgen.core import Structure

from crystal_atomate.io.d12 import CrystalInput
from crystal_atomate.io.outputs import parse_output
from crystal_atomate.io.properties import Band, Doss, KPathConvention, Newk, PropertiesInput
from crystal_atomate.run import OUTPUT_FILE

__all__ = ["BandStructureSetGenerator", "DosSetGenerator", "PropertiesSetGenerator", "scf_context"]


def scf_context(prev_dir: str | Path) -> tuple[Newk, tuple[int, int]]:
    """NEWK from the SCF deck's SHRINK and the band range (1, number of AO) from its output."""
    prev = Path(prev_dir)
    shrink = CrystalInput.from_file(
        prev / "INPUT", allow_unknown=True
    ).scf.shrink  # a deck that ran
    if shrink is None:
        raise ValueError(f"The SCF deck in {prev} has no SHRINK: give newk explicitly")
    mesh = shrink.mesh
    newk = (
        Newk(shrink=mesh, gilat_shrink=shrink.isp)
        if isinstance(mesh, int)
        else Newk(shrink=0, gilat_shrink=shrink.isp, mesh=mesh)
    )
    n_ao = parse_output(prev / OUTPUT_FILE, discover=False).n_ao
    if not n_ao:
        raise ValueError(f"The SCF output in {prev} does not give the number of AO")
    return newk, (1, n_ao)


@dataclass
class PropertiesSetGenerator(ABC):
    """Common part: NEWK from the previous SCF unless given; subclasses add BAND or DOSS."""

    newk: dict[str, Any] | None = None

    def get_input_set(self, structure: Structure, prev_dir: str | Path) -> PropertiesInput:
        """Return the properties deck for ``structure`` after the SCF in ``prev_dir``.

        The band range and the SCF's k-point mesh are read from ``prev_dir``, so the deck matches
        the wavefunction it reads.

        Parameters
        ----------
        structure
            The structure the SCF ran on (for the k-path or the projections).
        prev_dir
            The SCF's folder.

        Returns
        -------
        PropertiesInput
            NEWK plus this generator's BAND or DOSS section.
        """
        newk, bands = scf_context(prev_dir)
        if self.newk is not None:
            newk = Newk.model_validate(self.newk)
        return PropertiesInput(newk=newk, **self.sections(structure, bands))

    @abstractmethod
    def sections(self, structure: Structure, bands: tuple[int, int]) -> dict[str, Any]:
        """Return the BAND or DOSS section for ``structure`` over the band range ``bands``."""


@dataclass
class BandStructureSetGenerator(PropertiesSetGenerator):
    """BAND along pymatgen's high-symmetry path, or an explicit ``band`` block."""

    line_density: float = 20.0
    kpath: KPathConvention = "setyawan_curtarolo"
    band: dict[str, Any] | None = field(default=None, metadata={"help": "explicit Band fields"})

    def sections(self, structure: Structure, bands: tuple[int, int]) -> dict[str, Any]:
        """Return the BAND section: the explicit ``band`` block, else the high-symmetry path."""
        if self.band is not None:
            return {
                "band": Band.model_validate(
                    {"first_band": bands[0], "last_band": bands[1]} | self.band
                )
            }
        return {
            "band": Band.from_structure(
                structure, bands=bands, line_density=self.line_density, kpath=self.kpath
            )
        }


@dataclass
class DosSetGenerator(PropertiesSetGenerator):
    """DOSS: total plus per-element projections, or an explicit ``doss`` block."""

    n_points: int = 1000
    n_polynomials: int = 14
    doss: dict[str, Any] | None = None

    def sections(self, structure: Structure, bands: tuple[int, int]) -> dict[str, Any]:
        """Return the DOSS section: the explicit ``doss`` block, else total plus per element."""
        if self.doss is not None:
            return {
                "doss": Doss.model_validate(
                    {"first_band": bands[0], "last_band": bands[1]} | self.doss
                )
            }
        return {
            "doss": Doss.from_structure(
                structure, bands=bands, n_points=self.n_points, n_polynomials=self.n_polynomials
            )
        }
