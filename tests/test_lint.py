"""The code passes ruff: numpy docstrings (``D``), pycodestyle, pyflakes, isort, pyupgrade, bugbear.

The rule set is ``[tool.ruff.lint]`` in pyproject.toml; ruff is in the dev extra, so CI runs this.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: What is clean today. The rest of the package (aiida/ except computers.py, cli/aiida.py, and
#: the few files below left out of io/, sets/ and mp/) was being edited elsewhere when the lint set
#: came in: once it is clean too, this becomes ``["crystal_atomate", "tests", "benchmarks",
#: "tutorials"]``.
CLEAN_PATHS = [
    "crystal_atomate/__init__.py",
    "crystal_atomate/demo.py",
    "crystal_atomate/errors.py",
    "crystal_atomate/highthroughput.py",
    "crystal_atomate/powerups.py",
    "crystal_atomate/recovery.py",
    "crystal_atomate/run.py",
    "crystal_atomate/settings.py",
    "crystal_atomate/summary.py",
    "crystal_atomate/engines",
    "crystal_atomate/flows",
    "crystal_atomate/jobs",
    "crystal_atomate/schemas",
    "crystal_atomate/stores",
    "crystal_atomate/testing",
    "crystal_atomate/tui",
    "crystal_atomate/aiida/computers.py",
    "crystal_atomate/io/__init__.py",
    "crystal_atomate/io/basis.py",
    "crystal_atomate/io/d12_keywords.py",
    "crystal_atomate/io/deck_lines.py",
    "crystal_atomate/io/errors.py",
    "crystal_atomate/io/properties.py",
    "crystal_atomate/io/units.py",
    "crystal_atomate/io/outputs",
    "crystal_atomate/sets/__init__.py",
    "crystal_atomate/sets/properties.py",
    "crystal_atomate/mp/__init__.py",
    "crystal_atomate/mp/client.py",
    "crystal_atomate/mp/errors.py",
    "crystal_atomate/mp/mpcontribs.py",
    "crystal_atomate/mp/optimade.py",
    "crystal_atomate/mp/search.py",
    "crystal_atomate/cli/__init__.py",
    "crystal_atomate/cli/__main__.py",
    "crystal_atomate/cli/aiida_computer.py",
    "crystal_atomate/cli/app.py",
    "crystal_atomate/cli/check.py",
    "crystal_atomate/cli/clusters.py",
    "crystal_atomate/cli/engines.py",
    "crystal_atomate/cli/failures.py",
    "crystal_atomate/cli/flows.py",
    "crystal_atomate/cli/highthroughput.py",
    "crystal_atomate/cli/jobs.py",
    "crystal_atomate/cli/lazy.py",
    "crystal_atomate/cli/mp.py",
    "crystal_atomate/cli/parse.py",
    "crystal_atomate/cli/structures.py",
    "crystal_atomate/cli/tui.py",
    "tests",
    "benchmarks",
    "tutorials",
]


def test_ruff_finds_nothing() -> None:
    if importlib.util.find_spec("ruff") is None:
        pytest.skip("ruff is not installed (it is in the dev extra: pip install -e .[dev])")
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", *CLEAN_PATHS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_clean_paths_exist() -> None:
    """A renamed module must be renamed here too, not silently dropped from the check."""
    assert [path for path in CLEAN_PATHS if not (ROOT / path).exists()] == []
