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

#: The whole tree is checked.
CLEAN_PATHS = ["crystal_atomate", "tests", "benchmarks", "tutorials"]



def test_ruff_finds_nothing() -> None:
    if importlib.util.find_spec("ruff") is None:
        pytest.skip("ruff is not installed (it is in the dev extra: pip install -e .[dev])")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--no-cache",
            *CLEAN_PATHS,
        ],
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
