"""pytest plugin (registered through the ``pytest11`` entry point): the ``mock_crystal`` fixture.

Like atomate2's ``mock_vasp``, but the stand-in is a real executable: jobs run a real subprocess,
so the same fixture serves ``run_locally``, FireWorks launchers, jobflow-remote workers and AiiDA.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from crystal_atomate.testing.replay_setup import ReplaySpec, use_replay


@pytest.fixture
def mock_crystal(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[Mapping[str, ReplaySpec | Sequence[Any]]], Path]]:
    """Point CRYSTAL at the replay executable; call the fixture with ``{job name: recordings}``.

    Example::

        def test_relax(mock_crystal):
            mock_crystal({"relax": "mgo_opt_b3lyp_crystal22"})
            ...  # run a flow; the job named "relax" replays that recording
    """
    plan_dir = tmp_path_factory.mktemp("replay")

    def _configure(jobs: Mapping[str, ReplaySpec | Sequence[Any]]) -> Path:
        for key, value in use_replay(jobs, plan_dir).items():
            monkeypatch.setenv(key, value)
        return plan_dir / "plan.json"

    yield _configure
