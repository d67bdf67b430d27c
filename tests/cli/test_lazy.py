"""Start-up: the command line imports a command's module only when that command runs.

Checked by import inspection in a fresh interpreter (``sys.modules`` after the command), never by
timing: ``--help``, ``jobs`` and ``show`` must not import the heavy stacks.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from crystal_atomate.cli.app import COMMANDS, app
from crystal_atomate.testing.ui_database import fill_ui_database

HEAVY = (
    "pymatgen",
    "jobflow",
    "atomate2",
    "aiida",
    "fireworks",
    "jobflow_remote",
    "maggma",
    "emmet",
)

_PROBE = """
import json, sys
from crystal_atomate.cli import app
try:
    app(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
heavy = sorted({name.split(".")[0] for name in sys.modules} & set(HEAVY))
print(json.dumps({"code": code, "heavy": heavy}), file=sys.stderr)
""".replace("HEAVY", repr(HEAVY))


def _probe(*args: str, cwd: Path) -> dict:
    """Run the command line in a fresh interpreter; its exit code and the heavy packages loaded."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return json.loads(done.stderr.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def big_db(tmp_path_factory) -> Path:
    return fill_ui_database(tmp_path_factory.mktemp("ui") / "ui.db", 2000, documents=5)


@pytest.mark.parametrize(
    "args",
    [["--help"], ["jobs"], ["show", "3"], ["jobs", "--status", "FAILED", "--limit", "5"]],
    ids=["help", "jobs", "show", "jobs-filtered"],
)
def test_light_commands_import_no_heavy_stack(args, big_db, tmp_path):
    probe = (
        _probe(*args, "--db", str(big_db), cwd=tmp_path)
        if args[0] != "--help"
        else _probe(*args, cwd=tmp_path)
    )
    assert probe == {"code": 0, "heavy": []}


def test_a_heavy_command_still_loads_its_stack(tmp_path):
    """The probe can fail: ``run --help`` imports the run command's module, which needs jobflow."""
    assert "jobflow" in _probe("fw", "--help", cwd=tmp_path)["heavy"]


def test_every_command_module_exists_or_is_announced_as_pending():
    """Each lazy target names a real module and attribute (check and structures come from other
    branches and are listed only once their module exists)."""
    import importlib

    for name, spec in COMMANDS.items():
        if not spec.available():
            assert name in {"check", "structures"}, name
            continue
        module = importlib.import_module(spec.module)
        assert getattr(module, spec.attribute, None) is not None, spec.target


def test_help_lists_commands_with_their_one_line_help():
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for name, spec in COMMANDS.items():
        if spec.available():
            assert f" {name} " in result.output
    assert "check" not in result.output or COMMANDS["check"].available()
