"""Flows that tests, tutorials and benchmarks replay but the demo does not run.

CRYSTAL's native EOS job on hexagonal TaAs, replayed from ``hTaAs_eos_lda_ecp_crystal23`` (GPL-3.0
data that stays in the repository, not in the wheel): the EOS tests, the EOS tutorial and the engine
parity matrix share its settings from here. The demo's own flows are in :mod:`crystal_atomate.demo`.
"""

from __future__ import annotations

from typing import Any

from jobflow import Flow
from pymatgen.core import Structure

from crystal_atomate.jobs.core import EosMaker
from crystal_atomate.sets.core import EosSetGenerator
from crystal_atomate.testing.reference import recorded_input

__all__ = [
    "EOS_RECORDING",
    "EOS_REPLAY",
    "MGO_STATIC_RECORDING",
    "MGO_STATIC_SETTINGS",
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
