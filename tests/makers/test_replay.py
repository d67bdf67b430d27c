"""The replay executable: deck checks, sequences, parallel mode, failures that name their cause."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from crystal_atomate.io.d12 import CrystalInput
from crystal_atomate.io.outputs import parse_output
from crystal_atomate.run import CrystalExecutableNotFound, CrystalRunError, run_crystal
from crystal_atomate.testing.replay import ReplayError, ReplayPlan, ReplayStep
from crystal_atomate.testing.replay_setup import replay_command

MGO_SCF = "mgo_scf_hf_sto3g_crystal17"


def _stage(ref_dir: Path, folder: str, workdir: Path, title: str | None = None) -> Path:
    """Copy a recorded deck (and its fort.34) into ``workdir`` as ``INPUT``, optionally retitled."""
    workdir.mkdir(parents=True, exist_ok=True)
    deck = CrystalInput.from_file(ref_dir / folder / "INPUT.d12")
    if title is not None:
        deck = deck.model_copy(update={"title": title})
    (workdir / "INPUT").write_text(deck.to_string())
    if (ref_dir / folder / "fort.34").is_file():
        shutil.copy(ref_dir / folder / "fort.34", workdir / "fort.34")
    return workdir


def test_matching_deck_gets_the_recorded_output(ref_dir, mock_crystal, tmp_path):
    mock_crystal({"MgO bulk": MGO_SCF})
    workdir = _stage(ref_dir, MGO_SCF, tmp_path / "run")
    record = run_crystal(workdir)
    assert record.exit_code == 0
    assert (workdir / "OUTPUT").read_text() == (ref_dir / MGO_SCF / "OUTPUT.out").read_text()
    assert parse_output(workdir / "OUTPUT").energy_ha == pytest.approx(
        -2.7121814374931e02, abs=1e-8
    )
    assert (workdir / "fort.9").stat().st_size > 0


def test_a_changed_keyword_fails_the_run_naming_it(ref_dir, mock_crystal, tmp_path):
    mock_crystal({"MgO bulk": MGO_SCF})
    workdir = _stage(ref_dir, MGO_SCF, tmp_path / "run")
    deck = CrystalInput.from_file(workdir / "INPUT")
    changed = deck.model_copy(update={"scf": deck.scf.model_copy(update={"maxcycle": 7})})
    (workdir / "INPUT").write_text(changed.to_string())
    with pytest.raises(CrystalRunError, match=r"scf\.maxcycle: ours 7, recorded None"):
        run_crystal(workdir)


def test_ignored_keywords_may_differ(ref_dir, mock_crystal, tmp_path):
    mock_crystal({"MgO bulk": {"recording": MGO_SCF, "ignore": ["scf.maxcycle"]}})
    workdir = _stage(ref_dir, MGO_SCF, tmp_path / "run")
    deck = CrystalInput.from_file(workdir / "INPUT")
    (workdir / "INPUT").write_text(
        deck.model_copy(update={"scf": deck.scf.model_copy(update={"maxcycle": 7})}).to_string()
    )
    run_crystal(workdir)
    assert parse_output(workdir / "OUTPUT").state == "converged"


def test_a_different_cell_is_rejected(ref_dir, mock_crystal, tmp_path):
    mock_crystal({"MgO bulk": MGO_SCF})
    workdir = _stage(ref_dir, MGO_SCF, tmp_path / "run")
    text = (workdir / "INPUT").read_text().replace("4.21", "4.61", 1)
    (workdir / "INPUT").write_text(text)
    with pytest.raises(CrystalRunError, match="cell: ours"):
        run_crystal(workdir)


def test_failure_then_success_sequence(ref_dir, mock_crystal, tmp_path):
    failed, recovered = "nio_scf_too_many_cycles_crystal17", "nio_scf_restart_guessp_crystal17"
    mock_crystal(
        {"NiO*": [{"recording": failed, "deck": None}, {"recording": recovered, "deck": None}]}
    )
    first = _stage(ref_dir, failed, tmp_path / "first")
    second = _stage(ref_dir, recovered, tmp_path / "second")
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


def test_parallel_mode_reads_INPUT_and_writes_stderr_into_OUTPUT(
    ref_dir, mock_crystal, tmp_path, monkeypatch
):
    mock_crystal({"MgO bulk": MGO_SCF})
    monkeypatch.setenv("CRYSTAL_ATOMATE_CRYSTAL_MPI_CMD", replay_command())
    workdir = _stage(ref_dir, MGO_SCF, tmp_path / "run")
    record = run_crystal(workdir, mpi_procs=4)
    assert record.mpi
    assert parse_output(workdir / "OUTPUT").state == "converged"


def test_missing_binary_names_the_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("CRYSTAL_ATOMATE_CRYSTAL_CMD", "no-such-crystal-binary")
    (tmp_path / "INPUT").write_text("x\n")
    with pytest.raises(CrystalExecutableNotFound, match="CRYSTAL_ATOMATE_CRYSTAL_CMD"):
        run_crystal(tmp_path)


def test_properties_without_wavefunction_is_refused(tmp_path):
    (tmp_path / "INPUT").write_text("NEWK\n8 8\n1 0\nEND\n")
    with pytest.raises(CrystalRunError, match="fort.9"):
        run_crystal(tmp_path, program="properties")


def test_scratch_directory_runs_elsewhere_and_copies_back(
    ref_dir, mock_crystal, tmp_path, monkeypatch
):
    mock_crystal({"MgO bulk": MGO_SCF})
    scratch = tmp_path / "scratch"
    monkeypatch.setenv("CRYSTAL_ATOMATE_SCRATCH_DIR", str(scratch))
    workdir = _stage(ref_dir, MGO_SCF, tmp_path / "run")
    run_crystal(workdir)
    assert parse_output(workdir / "OUTPUT").energy_ha == pytest.approx(
        -2.7121814374931e02, abs=1e-8
    )
    assert (workdir / "fort.9").is_file()
    assert scratch.is_dir() and not list(scratch.iterdir())
