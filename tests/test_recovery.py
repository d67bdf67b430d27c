"""The recovery rules on real failed CRYSTAL outputs (one catalogue, one set of rules)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pymatgen.core import Lattice, Structure

from crystal_atomate.io.d12 import CrystalInput
from crystal_atomate.io.errors import CrystalErrorKind as K
from crystal_atomate.io.outputs import parse_output
from crystal_atomate.recovery import Unrecoverable, plan_restart
from crystal_atomate.schemas.task import RestartRecord
from crystal_atomate.sets.core import RelaxSetGenerator, StaticSetGenerator


def _failed(ref_dir: Path, folder: str):
    out = parse_output(ref_dir / folder / "OUTPUT.out")
    assert out.state == "failed"
    files = [p.name for p in (ref_dir / folder).iterdir()]
    return out, files


@pytest.fixture
def generic_deck() -> CrystalInput:
    """A deck for recordings that come without their input (only the settings matter here)."""
    fe = Structure(Lattice.cubic(2.87), ["Fe", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    return RelaxSetGenerator().get_input_set(fe).crystal_input


def test_scf_too_many_cycles_escalates(ref_dir):
    out, files = _failed(ref_dir, "nio_scf_too_many_cycles_crystal17")
    deck = CrystalInput.from_file(ref_dir / "nio_scf_too_many_cycles_crystal17" / "INPUT.d12")
    first = plan_restart(
        out.error_kinds, deck, files=[*files, "fort.9"], is_metal=out.is_conducting
    )
    assert first.errors == [K.SCF_NOT_CONVERGED]
    assert first.input_updates == {"scf": {"maxcycle": 100, "fmixing": 50}}
    assert (first.wavefunction, first.geometry_from, first.attempt) == (True, "input", 1)
    history: list[RestartRecord] = [first]
    actions = []
    for _ in range(3):
        step = plan_restart(out.error_kinds, deck, history, files=files)
        history.append(step)
        actions.append(step.action)
    assert actions == ["FMIXING 70", "LEVSHIFT 5 1 (disables DIIS)", "BROYDEN 0.0001 50 2"]
    assert history[-1].input_updates["scf"]["levshift"] is None
    final = plan_restart(out.error_kinds, deck, history, files=files)
    assert isinstance(final, Unrecoverable) and "after 4 restarts" in final.reason


def test_scf_failure_inside_an_optimisation_of_a_metal(ref_dir, generic_deck):
    out, files = _failed(ref_dir, "bccfe_opt_scf_failed_b3pw_crystal14")
    assert out.error_kinds == [K.SCF_FAILED_IN_OPT, K.MPI_ABORT]
    plan = plan_restart(out.error_kinds, generic_deck, is_metal=out.is_conducting, files=files)
    assert plan.geometry_from == "last_step"
    assert plan.input_updates["scf"]["smear"] == 0.005
    assert "SMEAR" in plan.action


def test_optimisation_not_converged_starts_fresh_from_last_geometry(ref_dir, generic_deck):
    out, files = _failed(ref_dir, "mackinawite_opt_failed_crystal17")
    plan = plan_restart(out.error_kinds, generic_deck, files=[*files, "HESSOPT.DAT", "fort.9"])
    assert plan.errors[0] is K.OPT_NOT_CONVERGED
    assert plan.geometry_from == "last_step"
    assert plan.hessian and plan.input_updates == {"optgeom": {"restart": None, "hessopt": True}}


def test_walltime_kill_restarts_from_the_last_step_without_the_wavefunction(ref_dir):
    out, files = _failed(ref_dir, "nio_opt_walltime_killed_crystal17")
    deck = CrystalInput.from_file(ref_dir / "nio_opt_walltime_killed_crystal17" / "INPUT.d12")
    plan = plan_restart(out.error_kinds, deck, files=files)
    assert plan.errors == [K.WALLTIME_KILLED]
    assert (plan.geometry_from, plan.wavefunction, plan.input_updates) == ("last_step", False, {})


def test_guessp_mismatch_drops_guessp(ref_dir):
    out, files = _failed(ref_dir, "mgo100_slab_guessp_itol_error_crystal17")
    deck = CrystalInput.from_file(ref_dir / "mgo100_slab_guessp_itol_error_crystal17" / "INPUT.d12")
    plan = plan_restart(out.error_kinds, deck, files=files)
    assert plan.input_updates == {"scf": {"guessp": None}} and not plan.wavefunction


def test_truncated_output_is_not_guessed_at(ref_dir, generic_deck):
    out, _ = _failed(ref_dir, "be_scf_truncated_crystal17")
    plan = plan_restart(out.error_kinds, generic_deck)
    assert isinstance(plan, Unrecoverable)
    assert plan.errors == [K.TRUNCATED]


@pytest.mark.parametrize("kind", [kind for kind in K if kind.recoverable])
def test_every_recoverable_kind_has_a_rule(kind, generic_deck):
    plan = plan_restart([kind], generic_deck, files=["fort.9", "HESSOPT.DAT"])
    assert isinstance(plan, RestartRecord)
    assert plan.errors == [kind]


@pytest.mark.parametrize("kind", [K.ATOMS_TOO_CLOSE, K.CELL_NOT_NEUTRAL, K.INPUT_FORMAT_ERROR])
def test_geometry_and_input_errors_stop_with_the_reason(kind):
    mgo = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(4.2), ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )
    plan = plan_restart([kind], StaticSetGenerator().get_input_set(mgo).crystal_input)
    assert isinstance(plan, Unrecoverable)
    assert kind.message in plan.reason
