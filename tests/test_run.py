"""Running CRYSTAL (``crystal_atomate.run``): parallel mode, scratch folders, missing binaries.

CRYSTAL itself is the replay executable (``mock_crystal``), which writes the recorded output.
"""

from __future__ import annotations

import pytest

from crystal_atomate.io.outputs import parse_output
from crystal_atomate.run import CrystalExecutableNotFound, CrystalRunError, run_crystal
from crystal_atomate.testing.replay_setup import replay_command

MGO_SCF = "mgo_scf_hf_sto3g_crystal17"


def test_parallel_mode_reads_INPUT_and_writes_stderr_into_OUTPUT(
    mock_crystal, stage_recorded_deck, tmp_path, monkeypatch
):
    mock_crystal({"MgO bulk": MGO_SCF})
    monkeypatch.setenv("CRYSTAL_ATOMATE_CRYSTAL_MPI_CMD", replay_command())
    workdir = stage_recorded_deck(MGO_SCF, tmp_path / "run")
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
    mock_crystal, stage_recorded_deck, tmp_path, monkeypatch
):
    mock_crystal({"MgO bulk": MGO_SCF})
    scratch = tmp_path / "scratch"
    monkeypatch.setenv("CRYSTAL_ATOMATE_SCRATCH_DIR", str(scratch))
    workdir = stage_recorded_deck(MGO_SCF, tmp_path / "run")
    run_crystal(workdir)
    assert parse_output(workdir / "OUTPUT").energy_ha == pytest.approx(
        -2.7121814374931e02, abs=1e-8
    )
    assert (workdir / "fort.9").is_file()
    assert scratch.is_dir() and not list(scratch.iterdir())
