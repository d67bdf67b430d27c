"""The replay executable: deck checks, sequences, and failures that name their cause."""

from __future__ import annotations

import pytest

from crystal_atomate.io.d12 import CrystalInput
from crystal_atomate.io.outputs import parse_output
from crystal_atomate.run import CrystalRunError, run_crystal
from crystal_atomate.testing.replay import ReplayError, ReplayPlan, ReplayStep

MGO_SCF = "mgo_scf_hf_sto3g_crystal17"


def test_matching_deck_gets_the_recorded_output(
    ref_dir, mock_crystal, stage_recorded_deck, tmp_path
):
    mock_crystal({"MgO bulk": MGO_SCF})
    workdir = stage_recorded_deck(MGO_SCF, tmp_path / "run")
    record = run_crystal(workdir)
    assert record.exit_code == 0
    assert (workdir / "OUTPUT").read_text() == (ref_dir / MGO_SCF / "OUTPUT.out").read_text()
    assert parse_output(workdir / "OUTPUT").energy_ha == pytest.approx(
        -2.7121814374931e02, abs=1e-8
    )
    assert (workdir / "fort.9").stat().st_size > 0


def test_a_changed_keyword_fails_the_run_naming_it(mock_crystal, stage_recorded_deck, tmp_path):
    mock_crystal({"MgO bulk": MGO_SCF})
    workdir = stage_recorded_deck(MGO_SCF, tmp_path / "run")
    deck = CrystalInput.from_file(workdir / "INPUT")
    changed = deck.model_copy(update={"scf": deck.scf.model_copy(update={"maxcycle": 7})})
    (workdir / "INPUT").write_text(changed.to_string())
    with pytest.raises(CrystalRunError, match=r"scf\.maxcycle: ours 7, recorded None"):
        run_crystal(workdir)


def test_ignored_keywords_may_differ(mock_crystal, stage_recorded_deck, tmp_path):
    mock_crystal({"MgO bulk": {"recording": MGO_SCF, "ignore": ["scf.maxcycle"]}})
    workdir = stage_recorded_deck(MGO_SCF, tmp_path / "run")
    deck = CrystalInput.from_file(workdir / "INPUT")
    (workdir / "INPUT").write_text(
        deck.model_copy(update={"scf": deck.scf.model_copy(update={"maxcycle": 7})}).to_string()
    )
    run_crystal(workdir)
    assert parse_output(workdir / "OUTPUT").state == "converged"


def test_a_different_cell_is_rejected(mock_crystal, stage_recorded_deck, tmp_path):
    mock_crystal({"MgO bulk": MGO_SCF})
    workdir = stage_recorded_deck(MGO_SCF, tmp_path / "run")
    text = (workdir / "INPUT").read_text().replace("4.21", "4.61", 1)
    (workdir / "INPUT").write_text(text)
    with pytest.raises(CrystalRunError, match="cell: ours"):
        run_crystal(workdir)


def test_failure_then_success_sequence(mock_crystal, stage_recorded_deck, tmp_path):
    failed, recovered = "nio_scf_too_many_cycles_crystal17", "nio_scf_restart_guessp_crystal17"
    mock_crystal(
        {"NiO*": [{"recording": failed, "deck": None}, {"recording": recovered, "deck": None}]}
    )
    first = stage_recorded_deck(failed, tmp_path / "first")
    second = stage_recorded_deck(recovered, tmp_path / "second")
    run_crystal(first)
    run_crystal(second)
    assert parse_output(first / "OUTPUT").state == "failed"
    assert parse_output(second / "OUTPUT").energy_ha == pytest.approx(-3.1282821705429e03, abs=1e-8)


def test_unknown_and_ambiguous_job_names(tmp_path):
    plan = ReplayPlan(
        jobs={"relax*": [ReplayStep(recording="x")], "*relax": [ReplayStep(recording="y")]}
    )
    with pytest.raises(ReplayError, match="No recorded run for job 'static'"):
        plan.steps_for("static")
    with pytest.raises(ReplayError, match="matches several replay entries"):
        plan.steps_for("relax")


def test_a_stalled_replay_is_cut_short_by_a_timeout(
    ref_dir, mock_crystal, stage_recorded_deck, tmp_path
):
    """A stall writes the first half of the output and waits: a timeout (a scheduler's time
    limit) leaves a truncated output that the parser says was cut short."""
    mock_crystal({"MgO bulk": {"recording": MGO_SCF, "stall_seconds": 120}})
    workdir = stage_recorded_deck(MGO_SCF, tmp_path / "run")
    with pytest.raises(CrystalRunError):
        run_crystal(workdir, timeout=10)
    written = (workdir / "OUTPUT").read_text()
    recorded = (ref_dir / MGO_SCF / "OUTPUT.out").read_text()
    assert recorded.startswith(written)
    assert len(written.splitlines()) == len(recorded.splitlines()) // 2
    assert parse_output(workdir / "OUTPUT").error_kinds[-1].value == "truncated"
