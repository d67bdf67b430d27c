"""Engine parity: one set of flows, five engines, the same task documents and the same UI rows.

MgO relax -> static -> band structure + DOS, the NiO SCF that stops at MAXCYCLE and is restarted,
and CRYSTAL's native EOS on TaAs (from ``crystal_atomate.demo`` and
``crystal_atomate.testing.recipes``) run once per engine, CRYSTAL replaced by the replay executable,
each engine into its own ``CrystalMathJobStore``:

* ``run_locally`` (the reference the others are compared with);
* FireWorks: two real ``rlaunch`` processes on the embedded LaunchPad;
* jobflow-remote: the real ``jf runner`` daemon, one runner session for all flows;
* AiiDA in executor mode (``use_aiida_executor``): jobflow's ``run_locally`` drives the flow and
  every CRYSTAL and properties step is a CalcJob on the embedded ``core.sqlite_dos`` profile;
* AiiDA in flow mode (``run_flow``): each flow is one ``JobflowWorkChain`` and every CRYSTAL and
  properties step a CalcJob it calls.

Every document is compared with run_locally's, per job name and index: the fields that carry the
science with their tolerances (:data:`FIELDS`), then everything else exactly, except the engine
bookkeeping fields named in :data:`BOOKKEEPING`. The module lives with the AiiDA tests because their
profile fixtures belong to this directory and an AiiDA session holds one profile.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from jobflow import Flow, run_locally

from crystal_atomate.aiida.executor import use_aiida_executor
from crystal_atomate.aiida.flow_mode import run_flow
from crystal_atomate.demo import DEMO_REPLAY, demo_flows, replay_environment
from crystal_atomate.engines.fireworks import add_flows, launchpad_file, write_fworker_yaml
from crystal_atomate.stores.jobstore import CrystalMathJobStore
from crystal_atomate.stores.ui_queries import list_jobs
from crystal_atomate.testing.engines import fresh_launchpad, remote_project, run_launchers
from crystal_atomate.testing.parity import (
    BOOKKEEPING,
    TOL_HARTREE,
    all_keys,
    close,
    differences,
    field_differences,
    get_path,
)
from crystal_atomate.testing.recipes import EOS_REPLAY, eos_flow
from crystal_atomate.testing.replay_setup import use_replay

pytestmark = pytest.mark.timeout(300)

PLAN = {**DEMO_REPLAY, **EOS_REPLAY}
ENGINES = ["fireworks", "jobflow_remote", "aiida", "aiida_flow"]
#: Every job document the flows leave, by (name, index): the NiO restart is index 2.
JOBS = [
    ("relax", 1),
    ("static", 1),
    ("band structure", 1),
    ("dos", 1),
    ("NiO static", 1),
    ("NiO static", 2),
    ("TaAs eos", 1),
]



def _flows() -> list[Flow]:
    """The parity flows, built fresh (a jobflow job runs once)."""
    return [*demo_flows(), eos_flow()]


def _run_locally(flows: list[Flow], store: CrystalMathJobStore, root: Path) -> CrystalMathJobStore:
    for flow in flows:
        run_locally(
            flow, store=store, create_folders=True, root_dir=root, ensure_success=True, log=False
        )
    store.connect()
    return store


@pytest.fixture(scope="module")
def local_store(tmp_path_factory: pytest.TempPathFactory) -> CrystalMathJobStore:
    root = tmp_path_factory.mktemp("parity_local")
    with replay_environment(root / "replay", PLAN):
        return _run_locally(_flows(), CrystalMathJobStore(root / ".crystal_tui.db"), root)


@pytest.fixture(scope="module")
def fireworks_store(tmp_path_factory: pytest.TempPathFactory) -> CrystalMathJobStore:
    root = tmp_path_factory.mktemp("parity_fireworks")
    store = CrystalMathJobStore(root / ".crystal_tui.db")
    with fresh_launchpad(root / "db") as launchpad:
        add_flows(_flows(), launchpad, store)
        env = use_replay(PLAN, root / "replay")
        fworker = write_fworker_yaml(root / "my_fworker.yaml")
        run_launchers(2, launchpad_file(db_dir=root / "db"), root / "launches", fworker, env)
    store.connect()
    return store


def _all_finished(states: dict[tuple[str, int], str]) -> bool:
    return len(states) == len(JOBS) and set(states.values()) <= {"COMPLETED", "FAILED"}


@pytest.fixture(scope="module")
def jobflow_remote_store(tmp_path_factory: pytest.TempPathFactory) -> CrystalMathJobStore:
    flows = {flow.name: flow for flow in _flows()}
    with remote_project(tmp_path_factory.mktemp("parity_remote"), flows, PLAN) as remote:
        remote.jf("runner", "start")
        remote.wait_for(_all_finished, 180, "every job to finish")
        assert set(remote.states().values()) == {"COMPLETED"}
    remote.store.connect()
    return remote.store


@pytest.fixture(scope="module")
def aiida_store(
    codes, localhost_replay, tmp_path_factory: pytest.TempPathFactory
) -> CrystalMathJobStore:
    del codes  # the crystal and properties codes the executor runs
    root = tmp_path_factory.mktemp("parity_aiida")
    with localhost_replay(PLAN, root / "replay"):
        flows = [use_aiida_executor(flow) for flow in _flows()]
        return _run_locally(flows, CrystalMathJobStore(root / ".crystal_tui.db"), root)


@pytest.fixture(scope="module")
def aiida_flow_store(
    codes, localhost_replay, tmp_path_factory: pytest.TempPathFactory
) -> CrystalMathJobStore:
    del codes
    root = tmp_path_factory.mktemp("parity_aiida_flow")
    store = CrystalMathJobStore(root / ".crystal_tui.db")
    with localhost_replay(PLAN, root / "replay"):
        for flow in _flows():
            node = run_flow(flow, store=store, root_dir=root)
            assert node.is_finished_ok, node.exit_message
    store.connect()
    return store


def _documents(store: CrystalMathJobStore) -> dict[tuple[str, int], dict]:
    return {(doc["name"], doc["index"]): doc for doc in store.query({}, load=True)}


@pytest.fixture(scope="module")
def local_docs(local_store: CrystalMathJobStore) -> dict[tuple[str, int], dict]:
    return _documents(local_store)


@pytest.fixture(scope="module", params=ENGINES)
def engine(request: pytest.FixtureRequest) -> tuple[str, CrystalMathJobStore]:
    """An engine's name and the store it ran the flows into."""
    return request.param, request.getfixturevalue(f"{request.param}_store")


@pytest.fixture(scope="module")
def engine_docs(engine: tuple[str, CrystalMathJobStore]) -> dict[tuple[str, int], dict]:
    return _documents(engine[1])


def test_every_engine_stores_the_same_jobs(local_docs, engine_docs) -> None:
    assert sorted(local_docs) == sorted(engine_docs) == sorted(JOBS)


@pytest.mark.parametrize("job", JOBS, ids=[f"{name}-{index}" for name, index in JOBS])
def test_named_fields_match_run_locally(local_docs, engine_docs, job: tuple[str, int]) -> None:
    ours, theirs = local_docs[job]["output"], engine_docs[job]["output"]
    assert field_differences(ours, theirs) == {}


@pytest.mark.parametrize("job", JOBS, ids=[f"{name}-{index}" for name, index in JOBS])
def test_the_rest_is_identical_but_for_bookkeeping(
    local_docs, engine_docs, job: tuple[str, int]
) -> None:
    assert list(differences(local_docs[job], engine_docs[job])) == []


def test_every_bookkeeping_field_is_in_some_document(
    local_docs, request: pytest.FixtureRequest
) -> None:
    """No stale exclusion: each field named in :data:`BOOKKEEPING` is filled by some engine."""
    docs = [*local_docs.values()]
    for engine in ENGINES:
        docs += _documents(request.getfixturevalue(f"{engine}_store")).values()
    assert set(BOOKKEEPING) <= set(all_keys(docs))


def test_the_compared_fields_hold_results(local_docs) -> None:
    """The comparisons above are only as good as what run_locally stored: the headline values are
    there (an engine agreeing on ``None`` everywhere would prove nothing)."""
    assert {job: get_path(doc["output"], "state") for job, doc in local_docs.items()} == {
        **dict.fromkeys(JOBS, "successful"),
        ("NiO static", 1): "failed",
    }
    for job in ("relax", 1), ("static", 1), ("NiO static", 1), ("NiO static", 2):
        assert get_path(local_docs[job]["output"], "output.energy_hartree") < 0
        assert get_path(local_docs[job]["output"], "structure") is not None
    assert get_path(local_docs[("band structure", 1)]["output"], "output.bandgap") > 0
    assert len(get_path(local_docs[("TaAs eos", 1)]["output"], "output.eos.volume")) == 14
    (restart,) = local_docs[("NiO static", 2)]["output"]["restarts"]
    assert restart["errors"] == ["scf_not_converged"] and restart["wavefunction"] is True


def _ui_rows(store: CrystalMathJobStore) -> list[tuple[str, str, float | None]]:
    """The terminal UI's job list (its own query), as (name, status, final energy), sorted."""
    with sqlite3.connect(store.db_file) as conn:
        rows = [(row.name, row.status, row.final_energy) for row in list_jobs(conn)]
    return sorted(rows, key=lambda row: (row[0], row[1], row[2] or 0.0))


def test_the_ui_jobs_table_shows_the_same_rows(local_store, engine) -> None:
    ours, theirs = _ui_rows(local_store), _ui_rows(engine[1])
    assert [row[:2] for row in theirs] == [row[:2] for row in ours]
    assert close(TOL_HARTREE)([row[2] for row in theirs], [row[2] for row in ours])
