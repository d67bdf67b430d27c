"""A real AiiDA profile for the AiiDA tests: embedded SQLite storage, the built-in ZeroMQ broker.

aiida-core's own pytest fixtures create the profile in a temporary AIIDA_PATH and start the ZeroMQ
broker service; CalcJobs run through ``core.direct`` on localhost with the replay executable as the
CRYSTAL code, exactly what ``crystal-atomate aiida setup --replay`` makes for a user.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aiida", reason="the aiida extra is not installed")

from aiida.tools.pytest_fixtures import *  # noqa: E402,F401,F403 - aiida's profile, broker and daemon fixtures

from crystal_atomate.aiida.setup import ensure_codes, ensure_localhost, replay_prepend_text  # noqa: E402
from crystal_atomate.testing.reference import reference_dir  # noqa: E402
from crystal_atomate.testing.replay_setup import use_replay  # noqa: E402


@pytest.fixture(scope="session")
def aiida_profile(aiida_config, aiida_profile_factory):  # noqa: F811 - aiida's, with the ZeroMQ broker
    """The session profile: ``core.sqlite_dos`` with the ZeroMQ broker, so the daemon is tested too.
    The daemon's 2 s call timeout is raised: on a busy CI machine, stopping it takes longer."""
    with aiida_profile_factory(aiida_config, broker_backend="core.zeromq") as profile:
        profile.set_option("daemon.timeout", 30)
        aiida_config.update_profile(profile)
        aiida_config.store()
        yield profile


@pytest.fixture(scope="session")
def localhost(aiida_profile, tmp_path_factory):
    """The localhost computer the setup command creates (direct scheduler, no poll delay)."""
    return ensure_localhost("localhost", tmp_path_factory.mktemp("aiida_run"))


@pytest.fixture(scope="session")
def codes(localhost):
    """``crystal@localhost`` and ``properties@localhost`` running the replay executable."""
    replay = shutil.which("crystal-atomate-replay")
    assert replay, "crystal-atomate-replay is not on PATH: pip install -e ."
    return ensure_codes(localhost, replay, replay)


@pytest.fixture(scope="session")
def localhost_replay(
    localhost,
) -> Callable[[Mapping[str, Any], Path], AbstractContextManager[Path]]:
    """A context manager: write a replay plan for ``{job name: recordings}`` in a folder and export
    it in the computer's prepend text while it is open, so jobs run by this process or by the
    daemon replay it. Session-scoped, for module-scoped runs too."""

    @contextmanager
    def exported(jobs: Mapping[str, Any], plan_dir: Path) -> Iterator[Path]:
        plan = Path(use_replay(jobs, plan_dir)["CRYSTAL_ATOMATE_REPLAY_PLAN"])
        localhost.set_prepend_text(replay_prepend_text(plan, reference_dir()))
        try:
            yield plan
        finally:
            localhost.set_prepend_text("")

    return exported


@pytest.fixture
def replay(localhost_replay, tmp_path) -> Iterator[Callable[[Mapping[str, Any]], Path]]:
    """``localhost_replay`` for one test: call it with ``{job name: recordings}``; the plan goes
    to the test's ``tmp_path`` and stays exported until the test ends."""
    with ExitStack() as stack:
        yield lambda jobs: stack.enter_context(localhost_replay(jobs, tmp_path / "replay"))


def pytest_collection_modifyitems(config, items):
    """Run the ``services`` tests last: they switch the loaded AiiDA profile to PostgreSQL, which
    closes the storage that the session's embedded-profile fixtures (computer, codes) are bound to.
    """
    del config
    items.sort(key=lambda item: item.get_closest_marker("services") is not None)
