"""Every import of the package is declared in pyproject.toml, and every declaration is used.

deptry reads the ``[tool.deptry]`` section (the ignores there say why each one is there).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_deptry_finds_no_dependency_issue():
    deptry = shutil.which("deptry")
    if deptry is None:
        pytest.skip("deptry is not installed (it is in the dev extra: pip install -e .[dev])")
    done = subprocess.run(
        [deptry, "."], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
