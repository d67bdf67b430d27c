"""Every tutorial runs as a user would run it: ``python tutorials/NAME.py`` in an empty folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

TUTORIALS = sorted((Path(__file__).parent.parent / "tutorials").glob("*.py"))


def test_there_are_tutorials():
    assert len(TUTORIALS) >= 2


@pytest.mark.parametrize("tutorial", TUTORIALS, ids=lambda path: path.stem)
def test_tutorial_runs(tutorial: Path, tmp_path: Path):
    result = subprocess.run(
        [sys.executable, str(tutorial)], cwd=tmp_path, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, (
        f"{tutorial.name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
