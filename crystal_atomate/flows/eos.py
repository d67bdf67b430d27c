"""Equation-of-state flow with CRYSTAL, as atomate2's ``vasp.flows.eos``.

atomate2's :class:`~atomate2.common.flows.eos.CommonEosMaker` does the work (strain the relaxed
cell, relax each volume, fit with pymatgen's EOS); this module only supplies CRYSTAL Makers. For
CRYSTAL's own single-job EOS (``EOS`` keyword) see :class:`crystal_atomate.jobs.core.EosMaker`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from atomate2.common.flows.eos import CommonEosMaker
from jobflow import Maker

from crystal_atomate.jobs.core import RelaxMaker, TightRelaxMaker
from crystal_atomate.sets.core import TightRelaxSetGenerator

__all__ = ["CrystalEosMaker"]


@dataclass
class CrystalEosMaker(CommonEosMaker):
    """Relax, strain the cell isotropically, relax the atoms at each volume, fit E(V).

    Unlike VASP's ``EosDoubleRelaxMaker``, the equilibrium is relaxed once: CRYSTAL's atom-centred
    Gaussian basis follows the atoms, so there is no plane-wave basis left behind by a change of
    cell (Pulay stress) for a second relaxation to correct. The deformed cells relax their atoms
    only (``ATOMONLY``, VASP's ``ISIF = 2``); to also relax the cell shape at fixed volume, set
    ``optgeom.type`` to ``CVOLOPT`` with
    :func:`crystal_atomate.powerups.update_user_input_settings`.

    Parameters are those of :class:`~atomate2.common.flows.eos.CommonEosMaker`.
    """

    name: str = "CRYSTAL EOS"
    initial_relax_maker: Maker | None = field(
        default_factory=lambda: TightRelaxMaker(name="EOS equilibrium relax")
    )
    eos_relax_maker: Maker | None = field(
        default_factory=lambda: RelaxMaker(
            name="EOS deformation relax",
            input_set_generator=TightRelaxSetGenerator(relax_type="atoms"),
        )
    )
    static_maker: Maker | None = None
