"""Flows that tests, tutorials and benchmarks replay but the demo does not run.

CRYSTAL's native EOS job on hexagonal TaAs, replayed from ``hTaAs_eos_lda_ecp_crystal23`` (GPL-3.0
data that stays in the repository, not in the wheel): the EOS tests, the EOS tutorial and the engine
parity matrix share its settings from here. The demo's own flows are in :mod:`crystal_atomate.demo`;
the energies its replayed runs recorded, and AiiDA inputs equivalent to its Makers
(:func:`crystal_inputs`), are here so every test module imports them from one place.
"""

from __future__ import annotations

import functools
from typing import Any

from jobflow import Flow
from pymatgen.core import Structure

from crystal_atomate.demo import demo_flows
from crystal_atomate.jobs.core import EosMaker
from crystal_atomate.sets.base import CrystalInputGenerator
from crystal_atomate.sets.core import EosSetGenerator
from crystal_atomate.testing.reference import recorded_input

__all__ = [
    "EOS_RECORDING",
    "EOS_REPLAY",
    "MGO_RELAX_HA",
    "MGO_STATIC_HA",
    "MGO_STATIC_RECORDING",
    "MGO_STATIC_SETTINGS",
    "NIO_FAILED_HA",
    "NIO_RECOVERED_HA",
    "crystal_inputs",
    "demo_generators",
    "eos_flow",
    "eos_maker",
    "eos_structure",
]

EOS_RECORDING = "hTaAs_eos_lda_ecp_crystal23"

#: The native EOS job (:func:`eos_flow`) replays the recorded hTaAs EOS, keyword by keyword.
EOS_REPLAY: dict[str, Any] = {"TaAs eos": EOS_RECORDING}


def eos_structure() -> Structure:
    """Hexagonal TaAs, the cell of the recorded EOS run."""
    return recorded_input(EOS_RECORDING).geometry.to_structure()


def eos_maker(name: str = "TaAs eos") -> EosMaker:
    """Return CRYSTAL's native EOS Maker with the settings of the recorded hTaAs deck.

    The deck it writes matches keyword by keyword (RESTART2 included), so the replay accepts it;
    :data:`EOS_REPLAY` answers the default name.

    Parameters
    ----------
    name
        The job name, which the replay plan looks up.

    Returns
    -------
    EosMaker
        A fresh Maker (jobflow jobs run once).
    """
    generator = EosSetGenerator(
        volume_range=(0.87, 1.02, 13),
        user_basis_settings=recorded_input(EOS_RECORDING).basis,
        user_kpoints_settings={"shrink": [30, 30]},
        user_input_settings={
            "eos": {"prange": [0, 35, 30], "extra": ["RESTART2"]},
            "hamiltonian": {"dft": {"functional": "SVWN", "grid": None}},
            "scf": {
                "tolinteg": [8, 8, 8, 8, 20], "toldee": 7, "maxcycle": 200, "fmixing": 70,
                "smear": 0.001, "extra": ["NOSHIFT"], "ppan": None,
            },
        },
    )
    return EosMaker(name=name, input_set_generator=generator)


def eos_flow() -> Flow:
    """Build the native EOS job on TaAs as a one-job flow (fresh on each call)."""
    return Flow([eos_maker().make(eos_structure())], name="TaAs native EOS")


MGO_STATIC_RECORDING = "mgo_scf_band_doss_b3lyp_crystal17"

#: ``build_flow("static", ...)`` settings that write the recorded MgO static deck
#: (:data:`MGO_STATIC_RECORDING`) keyword by keyword: the high-throughput and summary tests use
#: them.
MGO_STATIC_SETTINGS: dict[str, Any] = {
    "functional": "B3LYP",
    "settings": {
        "hamiltonian": {"dft": {"grid": "XXLGRID"}},
        "scf": {
            "toldee": None,
            "ppan": None,
            "maxcycle": 200,
            "fmixing": 70,
            "extra": ["DIIS"],
            "shrink": {"mesh": 12, "isp": 24},
        },
    },
}


#: Final energies (Hartree) of the demo's replayed runs (:data:`crystal_atomate.demo.DEMO_REPLAY`),
#: as recorded in the real CRYSTAL outputs: every engine must report them to 1e-8 Ha.
MGO_RELAX_HA = -2.754486980727e02
MGO_STATIC_HA = -2.7544859113743e02
NIO_FAILED_HA = -3.1282821683361e03
NIO_RECOVERED_HA = -3.1282821705429e03


@functools.cache
def demo_generators() -> dict[str, CrystalInputGenerator]:
    """Return the input-set generators of the demo's Makers, by job name.

    They hold the settings of the recorded decks, so a CalcJob built from them runs what the
    Maker would.
    """
    return {
        job.name: job.maker.input_set_generator
        for flow in demo_flows()
        for job, _ in flow.iterflow()
    }


def crystal_inputs(code: Any, job_name: str, structure: Structure, **extra: Any) -> dict[str, Any]:
    """Return CalcJob inputs equivalent to the demo Maker ``job_name`` on ``structure``.

    Parameters
    ----------
    code
        The AiiDA ``crystal`` code the CalcJob runs.
    job_name
        A demo job (a key of :func:`demo_generators`), whose settings become the parameters.
    structure
        The structure, stored as a ``StructureData`` (magnetic moments as parameters).
    **extra
        Further CalcJob inputs (``metadata``, ``parent_folder`` ...), passed through.

    Returns
    -------
    dict
        ``code``, ``structure``, ``parameters`` and ``extra``, ready for a builder or ``run``.
    """
    # AiiDA is an optional extra: import it only when AiiDA inputs are asked for.
    from aiida import orm

    from crystal_atomate.aiida.parameters import parameters_from_generator
    from crystal_atomate.aiida.structures import structure_to_node

    node, magmoms = structure_to_node(structure)
    parameters = parameters_from_generator(demo_generators()[job_name], title=job_name)
    if magmoms:
        parameters["magmoms"] = magmoms
    return {"code": code, "structure": node, "parameters": orm.Dict(parameters), **extra}
