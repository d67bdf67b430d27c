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

import math
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from jobflow import Flow, run_locally
from pymatgen.core import Structure

from crystal_atomate.aiida.executor import use_aiida_executor
from crystal_atomate.aiida.flow_mode import run_flow
from crystal_atomate.demo import DEMO_REPLAY, demo_flows, replay_environment
from crystal_atomate.engines.fireworks import add_flows, launchpad_file, write_fworker_yaml
from crystal_atomate.io.units import HARTREE_TO_EV
from crystal_atomate.stores.jobstore import CrystalMathJobStore
from crystal_atomate.stores.ui_queries import list_jobs
from crystal_atomate.testing.engines import fresh_launchpad, remote_project, run_launchers
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

#: Fields engines legitimately fill differently (skipped wherever they occur in a document), and
#: why.
BOOKKEEPING: dict[str, str] = {
    "uuid": "each engine runs freshly built flows, so job uuids differ",
    "hosts": "the flow uuids that contain the job",
    "completed_at": "wall-clock time the job (or calculation) finished",
    "last_updated": "wall-clock time the task document was built",
    "dir_name": "the engine's run folder (job_*, launcher_*, the worker's, ...)",
    "from_dir": "a restart's previous run folder, an engine's folder too",
    "prev_dir": "the folder a band structure or DOS job read the SCF from, likewise",
    "run": "how CRYSTAL was started: command, executor, wall time, AiiDA node uuid",
    "fw_id": "FireWorks' id of the Firework that ran the job (in the job's metadata)",
    "db_id": "jobflow-remote's queue id of the job (in the job's metadata)",
}

TOL_HARTREE = 1e-8
TOL_ANGSTROM = 1e-6


def _same_structure(ours: dict | None, theirs: dict | None) -> bool:
    """Lattice, species and fractional coordinates within 1e-6."""
    if ours is None or theirs is None:
        return ours is theirs
    a, b = Structure.from_dict(ours), Structure.from_dict(theirs)
    return (
        a.species == b.species
        and np.allclose(a.lattice.matrix, b.lattice.matrix, rtol=0, atol=TOL_ANGSTROM)
        and np.allclose(a.frac_coords, b.frac_coords, rtol=0, atol=TOL_ANGSTROM)
    )


def _close(tolerance: float) -> Callable[[Any, Any], bool]:
    """Equal, numbers within ``tolerance``, through nested dicts and lists (EOS fits, energies)."""

    def close(ours: Any, theirs: Any) -> bool:
        if isinstance(ours, dict) and isinstance(theirs, dict):
            return ours.keys() == theirs.keys() and all(close(ours[k], theirs[k]) for k in ours)
        if isinstance(ours, list) and isinstance(theirs, list):
            return len(ours) == len(theirs) and all(map(close, ours, theirs))
        if isinstance(ours, float) and isinstance(theirs, float):
            return math.isclose(ours, theirs, rel_tol=0, abs_tol=tolerance)
        return ours == theirs

    return close


def _restart_history(ours: list[dict] | None, theirs: list[dict] | None) -> bool:
    """Each restart's errors, action, input updates, wavefunction and geometry source (its
    previous folder is bookkeeping)."""

    def history(restarts: list[dict] | None) -> list[dict]:
        return [
            {k: v for k, v in restart.items() if k not in BOOKKEEPING} for restart in restarts or []
        ]

    return history(ours) == history(theirs)


_equal = _close(0)

#: Fields compared with their own rule, by path in the task document (the job's ``output``).
FIELDS: dict[str, Callable[[Any, Any], bool]] = {
    "state": _equal,
    "task_type": _equal,
    "errors": _equal,
    "output.energy_hartree": _close(TOL_HARTREE),
    "output.energy": _close(TOL_HARTREE * HARTREE_TO_EV),
    "output.bandgap": _close(TOL_HARTREE),
    "structure": _same_structure,
    "output.eos": _close(TOL_HARTREE * HARTREE_TO_EV),
    "restarts": _restart_history,
    "input.d12": _equal,
}


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


def _get(doc: dict, path: str) -> Any:
    for key in path.split("."):
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc


def _differences(ours: Any, theirs: Any, path: str = "") -> Iterator[str]:
    """Paths where two documents differ, skipping :data:`BOOKKEEPING` and the :data:`FIELDS`."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for key in sorted(ours.keys() | theirs.keys()):
            where = f"{path}.{key}" if path else key
            if key in BOOKKEEPING or where.removeprefix("output.") in FIELDS:
                continue
            if key not in ours or key not in theirs:
                yield f"{where}: only in {'run_locally' if key in ours else 'the engine'}"
            else:
                yield from _differences(ours[key], theirs[key], where)
    elif isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        for index, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            yield from _differences(a, b, f"{path}[{index}]")
    elif ours != theirs:
        yield f"{path}: {str(ours)[:80]!r} != {str(theirs)[:80]!r}"


def test_every_engine_stores_the_same_jobs(local_docs, engine_docs) -> None:
    assert sorted(local_docs) == sorted(engine_docs) == sorted(JOBS)


@pytest.mark.parametrize("job", JOBS, ids=[f"{name}-{index}" for name, index in JOBS])
def test_named_fields_match_run_locally(local_docs, engine_docs, job: tuple[str, int]) -> None:
    ours, theirs = local_docs[job]["output"], engine_docs[job]["output"]
    differing = {
        path: (_get(ours, path), _get(theirs, path))
        for path, same in FIELDS.items()
        if not same(_get(ours, path), _get(theirs, path))
    }
    assert differing == {}


@pytest.mark.parametrize("job", JOBS, ids=[f"{name}-{index}" for name, index in JOBS])
def test_the_rest_is_identical_but_for_bookkeeping(
    local_docs, engine_docs, job: tuple[str, int]
) -> None:
    assert list(_differences(local_docs[job], engine_docs[job])) == []


def _keys(doc: Any) -> Iterator[str]:
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield key
            yield from _keys(value)
    elif isinstance(doc, list):
        for item in doc:
            yield from _keys(item)


def test_every_bookkeeping_field_is_in_some_document(
    local_docs, request: pytest.FixtureRequest
) -> None:
    """No stale exclusion: each field named in :data:`BOOKKEEPING` is filled by some engine."""
    docs = [*local_docs.values()]
    for engine in ENGINES:
        docs += _documents(request.getfixturevalue(f"{engine}_store")).values()
    assert set(BOOKKEEPING) <= set(_keys(docs))


def test_the_compared_fields_hold_results(local_docs) -> None:
    """The comparisons above are only as good as what run_locally stored: the headline values are
    there (an engine agreeing on ``None`` everywhere would prove nothing)."""
    assert {job: _get(doc["output"], "state") for job, doc in local_docs.items()} == {
        **dict.fromkeys(JOBS, "successful"),
        ("NiO static", 1): "failed",
    }
    for job in ("relax", 1), ("static", 1), ("NiO static", 1), ("NiO static", 2):
        assert _get(local_docs[job]["output"], "output.energy_hartree") < 0
        assert _get(local_docs[job]["output"], "structure") is not None
    assert _get(local_docs[("band structure", 1)]["output"], "output.bandgap") > 0
    assert len(_get(local_docs[("TaAs eos", 1)]["output"], "output.eos.volume")) == 14
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
    assert _close(TOL_HARTREE)([row[2] for row in theirs], [row[2] for row in ours])
