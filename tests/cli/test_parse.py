"""``crystal-atomate parse`` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import Result
from typer.testing import CliRunner

from crystal_atomate.cli import app

runner = CliRunner()


def _invoke(*args: str) -> Result:
    """Run ``crystal-atomate parse ...`` in-process."""
    return runner.invoke(app, ["parse", *args])


def test_summary_of_a_converged_optimisation(ref_dir: Path) -> None:
    result = _invoke(str(ref_dir / "mgo_opt_b3lyp_crystal22" / "OUTPUT.out"))
    assert result.exit_code == 0, result.output
    assert "converged" in result.output
    assert "-275.4486980727 Ha" in result.output
    assert "CRYSTAL22" in result.output
    assert "4 points" in result.output


def test_summary_of_a_failed_run_names_the_error_and_exits_1(ref_dir: Path) -> None:
    result = _invoke(str(ref_dir / "nio_scf_too_many_cycles_crystal17" / "OUTPUT.out"))
    assert result.exit_code == 1
    assert "failed" in result.output
    assert "scf_not_converged" in result.output
    assert "[410]" in result.output


def test_json_output(ref_dir: Path) -> None:
    result = _invoke("--json", str(ref_dir / "elastcon_3d_pbe0_crystal17" / "OUTPUT.out"))
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["energy_ha"] == -622.38169993737
    assert data["state"] == "converged"
    assert data["elastic_constants"][0][0] == 94.908
    assert data["elastic_constants_unit"] == "GPa"
    assert data["structure"]["@class"] == "Structure"
    assert "forces_ev_per_angstrom" in data and "stress_kbar" in data


def test_json_of_failed_run_lists_errors(ref_dir: Path) -> None:
    out = ref_dir / "mgo100_slab_guessp_itol_error_crystal17" / "OUTPUT.out"
    result = _invoke("--json", str(out))
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["error_kinds"] == ["guessp_mismatch"]
    assert data["errors"][0]["routine"] == "INP12B"


def test_not_a_crystal_output_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "x.out"
    path.write_text("hello\n")
    result = _invoke(str(path))
    assert result.exit_code == 2
    assert "not a CRYSTAL output" in result.output
