"""The error policy, command by command: bad input is one ``error:`` line (maybe a ``hint:``) on
stderr, exit code 2 (1 for a failed operation), no traceback, and nothing written."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crystal_atomate.cli import app
from crystal_atomate.cli.failures import DEBUG_ENV
from crystal_atomate.testing.ui_database import fill_ui_database

runner = CliRunner()

MGO_CIF = """data_MgO
_symmetry_space_group_name_H-M   'P 1'
_cell_length_a   2.98188
_cell_length_b   2.98188
_cell_length_c   2.98188
_cell_angle_alpha   60.0
_cell_angle_beta   60.0
_cell_angle_gamma   60.0
_symmetry_Int_Tables_number   1
loop_
 _symmetry_equiv_pos_as_xyz
  'x, y, z'
loop_
 _atom_site_type_symbol
 _atom_site_label
 _atom_site_fract_x
 _atom_site_fract_y
 _atom_site_fract_z
 _atom_site_occupancy
  Mg  Mg0  0.0  0.0  0.0  1
  O  O1  0.5  0.5  0.5  1
"""


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with a good CIF, a garbage one, a small shared database, and CRYSTAL
    (``true``) on hand, so each case fails only for the reason it tests."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CRYSTAL_ATOMATE_CRYSTAL_CMD", "true")
    monkeypatch.delenv("CRYSTAL_TUI_DB", raising=False)
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    (tmp_path / "mgo.cif").write_text(MGO_CIF)
    (tmp_path / "garbage.cif").write_text("this is not a CIF\n\x00\x01 at all\n")
    (tmp_path / "cifs").mkdir()
    (tmp_path / "cifs" / "garbage.cif").write_text("data_x\n_cell_length_a nonsense\n")
    fill_ui_database(tmp_path / "ui.db", 20, documents=3)
    return tmp_path


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(path.relative_to(root)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
    }


BAD_INPUTS = [
    # (command line, exit code, text of the error line, hint expected)
    (["nosuch"], 2, "No such command 'nosuch'", True),
    (["run", "magic", "mgo.cif"], 2, "unknown flow 'magic'", True),
    (["run", "static", "none.cif"], 2, "no structure file 'none.cif'", True),
    (["run", "static", "garbage.cif"], 2, "garbage.cif: not a structure file", False),
    (
        ["run", "static", "mgo.cif", "--settings", '{"scf":{"maxcycl":200}}'],
        2,
        "unknown scf setting 'maxcycl'; did you mean 'maxcycle'?",
        True,
    ),
    (
        ["run", "static", "mgo.cif", "--settings", '{"sfc":{}}'],
        2,
        "unknown input settings section 'sfc'; did you mean 'scf'?",
        True,
    ),
    (
        ["run", "static", "mgo.cif", "--functional", "B3LPY"],
        2,
        "unknown functional 'B3LPY'; did you mean 'B3LYP'?",
        True,
    ),
    (["run", "static", "mgo.cif", "--settings", "{scf: 1"], 2, "--settings is not JSON", True),
    (["run", "static", "mgo.cif", "--kspacing", "fine"], 2, "Invalid value for '--kspacing'", True),
    (["jobs", "--limit", "many"], 2, "Invalid value for '--limit'", True),
    (["show", "999", "--db", "ui.db"], 2, "no job '999' in ui.db", True),
    (["show", "1", "--db", "missing.db"], 2, "no job '1' in missing.db", True),
    (["parse", "missing.out"], 2, "missing.out", False),
    (["parse", "garbage.cif"], 2, "garbage.cif", False),
    (["ht", "submit"], 2, "give structures with --query, --ids, --folder, --optimade", True),
    (
        ["ht", "submit", "--folder", "cifs", "--flow", "statik"],
        2,
        "unknown flow 'statik'; did you mean 'static'?",
        True,
    ),
    (["ht", "submit", "--folder", "cifs", "--engine", "slurm"], 2, "unknown engine 'slurm'", True),
    (["ht", "submit", "--folder", "nowhere"], 2, "No structure file or folder: nowhere", False),
    (
        ["ht", "summary", "--db", "ui.db", "--batch", "b1"],
        2,
        "no high-throughput jobs in batch 'b1'",
        True,
    ),
    (["ht", "summary", "--db", "none.db"], 2, "no database at none.db", True),
    (["fw", "add", "magic", "mgo.cif"], 2, "unknown flow 'magic'", True),
    (
        ["fw", "add", "static", "mgo.cif", "--functional", "PBE1"],
        2,
        "unknown functional 'PBE1'",
        True,
    ),
    (
        ["remote", "submit", "relax-band", "mgo.cif"],
        2,
        "unknown flow 'relax-band'; did you mean 'relax-bands'?",
        True,
    ),
    (["remote", "init", "--env", "NOEQUALS"], 2, "--env wants KEY=VALUE", True),
]


@pytest.mark.parametrize(
    ("args", "code", "message", "hinted"), BAD_INPUTS, ids=[" ".join(c[0]) for c in BAD_INPUTS]
)
def test_bad_input_is_one_line_and_changes_nothing(workspace, args, code, message, hinted):
    before = _snapshot(workspace)
    result = runner.invoke(app, args)
    lines = result.stderr.splitlines()
    assert result.exit_code == code, result.output
    assert lines[0].startswith("error: ") and message in lines[0], lines
    assert len(lines) == (2 if hinted else 1) and (not hinted or lines[1].startswith("hint: ")), (
        lines
    )
    assert "Traceback" not in result.output and result.stdout == ""
    assert _snapshot(workspace) == before


def test_missing_crystal_is_one_line_with_the_fix(workspace, monkeypatch):
    monkeypatch.setenv("CRYSTAL_ATOMATE_CRYSTAL_CMD", "/nonexistent/crystal")
    before = _snapshot(workspace)
    result = runner.invoke(app, ["run", "static", "mgo.cif", "--db", "ui.db"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        (
            "error: CRYSTAL executable '/nonexistent/crystal' not found "
            "(CRYSTAL_ATOMATE_CRYSTAL_CMD names no "
            "program on PATH)"
        ),
        (
            "hint: set CRYSTAL_ATOMATE_CRYSTAL_CMD (or CRYSTAL_CMD in ~/.crystal_atomate.yaml) to "
            "your crystal "
            "binary, or try 'crystal-atomate demo', which replays recorded runs"
        ),
    ]
    assert _snapshot(workspace) == before


def test_debug_prints_the_traceback_before_the_line(workspace):
    quiet = runner.invoke(app, ["run", "magic", "mgo.cif"])
    loud = runner.invoke(app, ["--debug", "run", "magic", "mgo.cif"])
    by_env = runner.invoke(app, ["run", "magic", "mgo.cif"], env={DEBUG_ENV: "1"})
    assert "Traceback" not in quiet.stderr
    for result in (loud, by_env):
        assert result.exit_code == 2
        assert result.stderr.startswith("Traceback (most recent call last):")
        assert "UnknownNameError" in result.stderr
        assert result.stderr.splitlines()[-2:] == quiet.stderr.splitlines()


def test_a_failed_job_exits_1_and_is_failed_in_the_ui(workspace, monkeypatch):
    """``true`` as CRYSTAL writes nothing: the job raises, ``run`` says so, the UI shows FAILED."""
    result = runner.invoke(app, ["run", "static", "mgo.cif", "--db", "ui.db", "--work-dir", "runs"])
    assert result.exit_code == 1, result.output
    error, hint = result.stderr.splitlines()
    assert error.startswith(
        "error: flow 'static' failed: static: crystal_atomate.run.CrystalRunError: 'true' wrote no "
        "output"
    )
    assert hint == "hint: 'crystal-atomate show JOB' shows a job's errors"
    assert "FAILED" in result.stdout and "static" in result.stdout
    with closing(sqlite3.connect(workspace / "ui.db")) as conn:
        status = conn.execute("SELECT status FROM jobs WHERE name = 'static'").fetchall()
    assert status == [("FAILED",)]


def test_ht_submit_skips_a_garbage_cif_and_runs_the_rest(workspace):
    (workspace / "cifs" / "mgo.cif").write_text(MGO_CIF)
    result = runner.invoke(app, ["ht", "submit", "--folder", "cifs", "--db", "ui.db", "--dry-run"])
    assert result.exit_code == 0, result.output
    warnings = result.stderr.splitlines()
    assert len(warnings) == 1 and warnings[0].startswith(
        f"warning: skipped {Path('cifs') / 'garbage.cif'}"
    )
    assert "1 to run, 0 skipped, 0 rejected" in result.stdout and "mgo" in result.stdout
