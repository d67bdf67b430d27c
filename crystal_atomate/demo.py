"""The main job: real multi-job flows on MgO and NiO, run with CRYSTAL's recorded outputs replayed.

Two flows, both through jobflow's ``run_locally`` into the shared database:

* MgO: relax -> static -> band structure + DOS, with the B3LYP settings of the recorded
  calculations (``mgo_opt_b3lyp_crystal22``, ``mgo_scf_band_doss_b3lyp_crystal17``);
* NiO (antiferromagnetic, UHF): an SCF that stops at MAXCYCLE (``nio_scf_too_many_cycles``), which
  the error handlers restart from the density with more mixing (``nio_scf_restart_guessp``).

The recordings ship with the package (``crystal_atomate/testing/recordings``), so the demo runs from
a plain install. Recipes that only tests and tutorials replay are in
:mod:`crystal_atomate.testing.recipes`.

The settings reproduce the recorded decks, so the replay executable accepts them keyword by
keyword; with a real CRYSTAL23 (``CRYSTAL_ATOMATE_CRYSTAL_CMD``) the same flows run for real.
"""

from __future__ import annotations

import os
import shlex
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from jobflow import Flow, run_locally
from pymatgen.core import Lattice, Structure

from crystal_atomate.flows.core import RelaxBandStructureMaker
from crystal_atomate.io.fort34 import Fort34
from crystal_atomate.jobs.core import RelaxMaker, StaticMaker
from crystal_atomate.jobs.properties import BandStructureMaker, DosMaker
from crystal_atomate.sets.core import RelaxSetGenerator, StaticSetGenerator
from crystal_atomate.sets.properties import BandStructureSetGenerator, DosSetGenerator
from crystal_atomate.testing.reference import recorded_input, reference_file
from crystal_atomate.testing.replay import PLAN_ENV
from crystal_atomate.testing.replay_setup import use_replay

__all__ = [
    "DEMO_REPLAY",
    "demo_flows",
    "mgo_makers",
    "mgo_structure",
    "nio_structure",
    "replay_environment",
    "run_demo",
]

_MGO_OPT = "mgo_opt_b3lyp_crystal22"
_MGO_SCF = "mgo_scf_band_doss_b3lyp_crystal17"
_NIO_FAIL = "nio_scf_too_many_cycles_crystal17"
_NIO_OK = "nio_scf_restart_guessp_crystal17"

#: Which recording answers which job. The recorded static run started from scratch while ours
#: reuses the relaxation's density (GUESSP); the recorded NiO restart used MAXCYCLE 10 and
#: FMIXING 40 where our handler raises both: those keywords are allowed to differ, nothing else.
DEMO_REPLAY: dict[str, Any] = {
    "relax": _MGO_OPT,
    "static": {"recording": _MGO_SCF, "ignore": ["scf.guessp"]},
    "band structure": {
        "recording": _MGO_SCF,
        "output": "BAND.outp",
        "deck": "BAND.d3",
        "files": ["BAND.DAT"],
    },
    "dos": {"recording": _MGO_SCF, "output": "DOSS.outp", "deck": "DOSS.d3", "files": ["DOSS.DAT"]},
    "NiO static": [_NIO_FAIL, {"recording": _NIO_OK, "ignore": ["scf.maxcycle", "scf.fmixing"]}],
}


def mgo_structure() -> Structure:
    """Rocksalt MgO at the experimental-like lattice constant of the recorded runs."""
    return Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(4.217), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )


def nio_structure() -> Structure:
    """Return antiferromagnetic NiO: the recorded runs' cell, Ni moments up and down.

    The cell is read from the restart's input fort.34 (the failed run's folder holds a fort.34 that
    CRYSTAL wrote later).
    """
    structure = Fort34.from_file(reference_file(_NIO_OK, "fort.34")).to_structure()
    moments = [
        5.0 if i == 0 else -5.0 if site.specie.symbol == "Ni" else 0.0
        for i, site in enumerate(structure)
    ]
    return structure.copy(site_properties={"magmom": moments})


def mgo_makers() -> dict[str, Any]:
    """Return the Makers of the MgO flow, with the settings of the recorded B3LYP runs."""
    common: dict[str, Any] = {
        "functional": "B3LYP",
        "user_basis_settings": recorded_input(_MGO_OPT).basis,
        "geometry": "symmetrized",
        "user_kpoints_settings": {"shrink": [12, 24]},
    }
    scf = {"toldee": None, "ppan": None, "maxcycle": 200, "fmixing": 70, "extra": ["DIIS"]}
    dft = {"dft": {"grid": "XXLGRID"}}
    relax = RelaxMaker(
        input_set_generator=RelaxSetGenerator(
            relax_type="default",
            user_input_settings={"hamiltonian": dft, "scf": scf, "optgeom": {"maxcycle": None}},
            **common,
        )
    )
    static = StaticMaker(
        input_set_generator=StaticSetGenerator(
            user_input_settings={"hamiltonian": dft, "scf": scf}, **common
        )
    )
    band = BandStructureMaker(
        input_set_generator=BandStructureSetGenerator(
            band={
                "title": "BN",
                "shrink": 4,
                "n_points": 200,
                "path": [
                    {"start": [0, 0, 0], "end": [2, 0, 2]},
                    {"start": [2, 0, 2], "end": [2, 2, 2]},
                    {"start": [2, 2, 2], "end": [0, 0, 0]},
                    {"start": [0, 0, 0], "end": [2, 1, 3]},
                ],
            }
        )
    )
    dos = DosMaker(
        input_set_generator=DosSetGenerator(
            doss={
                "n_points": 300,
                "first_band": -1,
                "last_band": -1,
                "energy_range": [-0.7, 0.8],
                "n_polynomials": 12,
                "projections": [{"kind": "atom", "indices": [1]}, {"kind": "atom", "indices": [2]}],
            }
        )
    )
    return {"relax": relax, "static": static, "band_structure": band, "dos": dos}


def _mgo_flow() -> Flow:
    makers = mgo_makers()
    maker = RelaxBandStructureMaker(
        name="MgO relax band structure",
        relax_maker=makers["relax"],
        static_maker=makers["static"],
        band_structure_maker=makers["band_structure"],
        dos_maker=makers["dos"],
    )
    return maker.make(mgo_structure())


def _nio_flow() -> Flow:
    static = StaticMaker(
        name="NiO static",
        input_set_generator=StaticSetGenerator(
            functional="HF",
            user_basis_settings=recorded_input(_NIO_FAIL).basis,
            user_kpoints_settings={"shrink": [8, 8]},
            user_input_settings={
                "scf": {
                    "tolinteg": None,
                    "toldee": None,
                    "maxcycle": 10,
                    "fmixing": 50,
                    "spinlock": [0, 15],
                }
            },
        ),
    )
    return Flow([static.make(nio_structure())], name="NiO recovered SCF")


def demo_flows() -> list[Flow]:
    """Build the demo's flows, fresh on each call (a jobflow job runs once)."""
    return [_mgo_flow(), _nio_flow()]


@contextmanager
def replay_environment(plan_dir: Path, jobs: Mapping[str, Any] = DEMO_REPLAY) -> Iterator[None]:
    """Point the CRYSTAL commands at the replay executable for the duration of the block.

    ``jobs`` is the replay plan (``{job name: recordings}``), the demo's by default.
    """
    updates = use_replay(jobs, plan_dir)
    saved = {key: os.environ.get(key) for key in updates}
    os.environ.update(updates)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_demo(store: Any, work_dir: Path, replay: bool = True) -> dict[str, Any]:
    """Run the demo flows in ``work_dir`` into ``store``; return jobflow's responses per flow."""
    work_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    replaying = replay_environment(work_dir / "replay") if replay else nullcontext()
    with replaying, warnings.catch_warnings():
        # jobflow's run_locally still calls monty's deprecated cd(): not the demo user's concern.
        warnings.filterwarnings("ignore", message="cd is deprecated", category=FutureWarning)
        for flow in demo_flows():
            results[flow.name] = run_locally(
                flow,
                store=store,
                create_folders=True,
                root_dir=work_dir,
                ensure_success=True,
                log=False,
            )
    return results


def replay_code_prepend_text(plan_dir: Path) -> str:
    """Write the demo's replay plan in ``plan_dir``.

    Return a code's prepend text that points the replay executable at it.

    ``crystal-atomate aiida setup --replay`` gives its codes this text, so they run the demo's jobs
    with nothing else set. A plan exported before (a test's, in the computer's prepend text)
    takes precedence.

    Parameters
    ----------
    plan_dir
        Where the plan is written.

    Returns
    -------
    str
        One ``export`` line.
    """
    plan = use_replay(DEMO_REPLAY, plan_dir)[PLAN_ENV]
    return f"export {PLAN_ENV}=${{{PLAN_ENV}:-{shlex.quote(plan)}}}"
