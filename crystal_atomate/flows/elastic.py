"""Elastic-constant flow with CRYSTAL, as atomate2's ``vasp.flows.elastic``.

atomate2's :class:`~atomate2.common.flows.elastic.BaseElasticMaker` strains the relaxed cell,
relaxes the atoms of every strained cell, and fits the tensor to the stresses; this module only
supplies CRYSTAL Makers and the two code-specific answers the base class asks for. For CRYSTAL's
own single-job elastic tensor (``ELASTCON``) see :class:`crystal_atomate.jobs.core.ElasticMaker`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from atomate2 import SETTINGS
from atomate2.common.flows.elastic import BaseElasticMaker

from crystal_atomate.jobs.base import BaseCrystalMaker
from crystal_atomate.jobs.core import RelaxMaker, TightRelaxMaker
from crystal_atomate.sets.core import TightRelaxSetGenerator

__all__ = ["CrystalElasticMaker", "elastic_relax_maker"]


def elastic_relax_maker() -> RelaxMaker:
    """Atoms-only relaxation of a strained cell that still reports the stress tensor.

    CRYSTAL computes the stress only when it optimises the cell, so an atoms-only run (VASP's
    ``ISIF = 2``) needs the SCF keyword ``STRESS`` to leave one in the output for the fit.
    """
    return RelaxMaker(
        name="elastic relax",
        input_set_generator=TightRelaxSetGenerator(
            relax_type="atoms", user_input_settings={"scf": {"extra": ["STRESS"]}}
        ),
    )


@dataclass
class CrystalElasticMaker(BaseElasticMaker):
    """Tight bulk relax, strained cells relaxed at fixed shape, elastic tensor fitted by atomate2.

    Parameters are those of :class:`~atomate2.common.flows.elastic.BaseElasticMaker`; the bulk
    relax is a single tight relaxation (a Gaussian basis has no Pulay stress to relax away twice).
    """

    name: str = "CRYSTAL elastic"
    order: int = 2
    sym_reduce: bool = True
    symprec: float = SETTINGS.SYMPREC
    bulk_relax_maker: BaseCrystalMaker | None = field(
        default_factory=lambda: TightRelaxMaker(name="elastic bulk relax")
    )
    elastic_relax_maker: BaseCrystalMaker = field(default_factory=elastic_relax_maker)
    max_failed_deformations: int | float | None = None
    generate_elastic_deformations_kwargs: dict = field(default_factory=dict)
    fit_elastic_tensor_kwargs: dict = field(default_factory=dict)
    task_document_kwargs: dict = field(default_factory=dict)

    @property
    def prev_calc_dir_argname(self) -> str:
        """CRYSTAL Makers take the previous directory (for fort.9 -> GUESSP) as ``prev_dir``."""
        return "prev_dir"

    @property
    def stress_sign_correction(self) -> float:
        """1: ``output.stress`` already has VASP's sign (kbar, positive under compression).

        atomate2 multiplies the stresses by -0.1 to get GPa with tension positive; CRYSTAL prints
        the physical stress, and the task document flips it, so no further correction is needed.
        """
        return 1.0
