"""Finite-displacement phonons from CRYSTAL forces and phonopy, as atomate2's vasp phonon flow.

atomate2's :class:`~atomate2.common.flows.phonons.BasePhononMaker` builds the supercells, runs one
force calculation per displacement and hands the forces to phonopy; this module supplies CRYSTAL
Makers. For CRYSTAL's own Gamma-point frequencies with IR intensities (``FREQCALC``) see
:class:`crystal_atomate.jobs.core.FreqMaker`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from atomate2.common.flows.phonons import BasePhononMaker

from crystal_atomate.jobs.base import BaseCrystalMaker
from crystal_atomate.jobs.core import StaticMaker, TightRelaxMaker
from crystal_atomate.sets.core import StaticSetGenerator

__all__ = ["CrystalPhononMaker", "phonon_displacement_maker"]


def phonon_displacement_maker() -> StaticMaker:
    """Single point with analytical forces on a displaced supercell.

    A CRYSTAL SCF alone prints no forces: ``GRADCAL`` asks for them. The supercell has more atoms
    than the cell whose ``fort.9`` atomate2 passes as ``prev_dir``, and CRYSTAL stops when a guess
    does not match the basis, so the wavefunction is never inherited. ``TOLDEE 10`` keeps the
    forces of a 0.01 Angstrom displacement above the SCF noise, as CRYSTAL's FREQCALC does.
    """
    return StaticMaker(
        name="phonon static",
        input_set_generator=StaticSetGenerator(
            inherit_wavefunction=False,
            user_input_settings={"scf": {"toldee": 10, "extra": ["GRADCAL"]}},
        ),
    )


@dataclass
class CrystalPhononMaker(BasePhononMaker):
    """Tight relax, static energy, displaced supercells with CRYSTAL forces, phonopy.

    Parameters are those of :class:`~atomate2.common.flows.phonons.BasePhononMaker`. ``code`` is
    ``"vasp"`` because atomate2 accepts only the codes it lists, and the code only selects the
    frequency unit conversion: our task documents give forces in eV/Angstrom, VASP's units. Born
    charges are not computed (``born_maker=None``): pass ``born``/``epsilon_static`` to ``make``
    for polar materials.
    """

    name: str = "CRYSTAL phonon"
    code: str = "vasp"
    bulk_relax_maker: BaseCrystalMaker | None = field(
        default_factory=lambda: TightRelaxMaker(name="phonon bulk relax")
    )
    static_energy_maker: BaseCrystalMaker | None = field(
        default_factory=lambda: StaticMaker(name="phonon static energy")
    )
    born_maker: BaseCrystalMaker | None = None
    phonon_displacement_maker: BaseCrystalMaker = field(default_factory=phonon_displacement_maker)

    @property
    def prev_calc_dir_argname(self) -> str:
        """CRYSTAL Makers take the previous directory as ``prev_dir``."""
        return "prev_dir"
