"""Shared fixtures. The recorded runs are required: a missing directory fails the run, never skips.

The local Materials Project, OPTIMADE and MPContribs servers and the fresh shared database are here
because tests/mp, tests/cli and the high-throughput tests all use them.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from crystal_atomate.io.d12 import CrystalInput
from crystal_atomate.testing.hpc import (
    ClusterUnavailable,
    LoopbackCluster,
    local_documents,
    loopback_cluster,
)
from crystal_atomate.testing.mp_server import VALID_KEY, MPServer, start_server
from crystal_atomate.testing.mpcontribs_server import MPContribsServer
from crystal_atomate.testing.mpcontribs_server import start_server as start_mpcontribs_server
from crystal_atomate.testing.optimade_server import OptimadeServer, start_optimade_server
from crystal_atomate.testing.reference import ReferenceDataMissing, reference_dir


@pytest.fixture(scope="session")
def ref_dir() -> Path:
    """The recorded runs: ``CRYSTAL_ATOMATE_REFERENCE_DIR``, else ``testing/recordings``."""
    try:
        return reference_dir()
    except ReferenceDataMissing as exc:
        pytest.fail(str(exc), pytrace=False)


def _stage(ref_dir: Path, folder: str, workdir: Path, title: str | None = None) -> Path:
    """Copy a recorded deck (and its fort.34) into ``workdir`` as ``INPUT``, optionally retitled."""
    workdir.mkdir(parents=True, exist_ok=True)
    deck = CrystalInput.from_file(ref_dir / folder / "INPUT.d12")
    if title is not None:
        deck = deck.model_copy(update={"title": title})
    (workdir / "INPUT").write_text(deck.to_string())
    if (ref_dir / folder / "fort.34").is_file():
        shutil.copy(ref_dir / folder / "fort.34", workdir / "fort.34")
    return workdir


@pytest.fixture
def stage_recorded_deck(ref_dir: Path) -> Callable[..., Path]:
    """``stage(folder, workdir, title=None)``: a recorded deck staged as ``INPUT`` to run."""

    def stage(folder: str, workdir: Path, title: str | None = None) -> Path:
        return _stage(ref_dir, folder, workdir, title)

    return stage


@pytest.fixture
def no_real_materials_project(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the Materials Project client at a closed local port, with the valid test key.

    A test that forgets the local server then fails to connect instead of reaching
    api.materialsproject.org; tests/mp uses it for every test, other modules through
    ``pytestmark = pytest.mark.usefixtures("no_real_materials_project")``.
    """
    monkeypatch.setenv("MP_API_ENDPOINT", "http://127.0.0.1:9/")
    monkeypatch.setenv("MP_API_KEY", VALID_KEY)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def mp_server(
    no_real_materials_project: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[MPServer]:
    """A fresh server on a random free port of 127.0.0.1; ``MP_API_ENDPOINT`` points at it.

    A new port per test also gives mp-api a new endpoint, whose heartbeat it has not cached.
    """
    server, thread = start_server()
    monkeypatch.setenv("MP_API_ENDPOINT", server.url)
    yield server
    server.stop()
    thread.join(timeout=5)


@pytest.fixture
def db_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A new shared database file, also what ``CRYSTAL_TUI_DB`` names for the CLI."""
    path = tmp_path / "crystal_tui.db"
    monkeypatch.setenv("CRYSTAL_TUI_DB", str(path))
    return path


@pytest.fixture(scope="session")
def _optimade_reference_server() -> Iterator[OptimadeServer]:
    pytest.importorskip("optimade.server", reason="needs optimade[server] (mp extra)")
    server = start_optimade_server()
    yield server
    server.stop()


@pytest.fixture
def optimade_server(_optimade_reference_server: OptimadeServer) -> Iterator[OptimadeServer]:
    """The ``optimade`` package's reference server (hematite, MgO, corundum) on loopback, shared by
    the session; each test starts with no fault scripted and no request seen, and leaves no fault.
    """
    _optimade_reference_server.fail(None)
    _optimade_reference_server.paths.clear()
    yield _optimade_reference_server
    _optimade_reference_server.fail(None)


@pytest.fixture
def mpcontribs_server() -> Iterator[MPContribsServer]:
    """The recorded MPContribs API on a free port of 127.0.0.1 (project ``crystal_oxides``)."""
    pytest.importorskip("mpcontribs.client", reason="needs mpcontribs-client (mp extra)")
    server = start_mpcontribs_server()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cluster() -> LoopbackCluster:
    """The running loopback SLURM cluster (``.ci/hpc.sh``), or a skip saying how to start it."""
    try:
        return loopback_cluster()
    except ClusterUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def cluster_reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """The relax and static documents run_locally stores: what every cluster engine must match."""
    return local_documents(tmp_path_factory.mktemp("cluster_reference"))
