"""crystal_atomate flows through FireWorks: real ``rlaunch`` processes on the embedded LaunchPad,
CRYSTAL replaced by the replay executable, results in ``CrystalMathJobStore`` and the UI table.

The same values as ``tests/makers`` (run_locally): MgO relax -> static -> bands + DOS, the NiO SCF
that fails and is restarted through a FireWorks detour, plus a failure that defuses its child
(``stop_children``) and one that raises (FIZZLED, UI row FAILED)."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fireworks import LaunchPad
from jobflow import Flow

from crystal_atomate.demo import DEMO_REPLAY, demo_flows, nio_structure
from crystal_atomate.engines.embedded_db import stop_server
from crystal_atomate.engines.fireworks import (
    add_flows,
    crystal_workflow,
    launchpad_file,
    workflow_states,
    write_fworker_yaml,
)
from crystal_atomate.io.errors import CrystalErrorKind
from crystal_atomate.jobs.properties import DosMaker
from crystal_atomate.stores.jobstore import CrystalMathJobStore
from crystal_atomate.testing.engines import fresh_launchpad, run_launchers
from crystal_atomate.testing.replay_setup import use_replay

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnknownMarkWarning"),
]

NIO_FAILED_RUN = DEMO_REPLAY["NiO static"][0]


@dataclass
class FireworksRun:
    """The flows after two launchers have run them all."""

    launchpad: LaunchPad
    store: CrystalMathJobStore
    queued_rows: list[tuple[str, str]]
    flows: dict[str, Flow]


def _nio_failing(name: str, **maker_kwargs: object) -> Flow:
    """The demo's NiO SCF under another name, replayed with only its failed recording."""
    (static_job,) = demo_flows()[1].jobs
    maker = dataclasses.replace(static_job.maker, name=name, **maker_kwargs)
    return maker.make(nio_structure())


def _stopped_flow() -> Flow:
    stop = {"handle_unsuccessful": True}
    static = _nio_failing("NiO stopped", max_restarts=0, stop_children_kwargs=stop)
    dos = DosMaker().make(nio_structure(), prev_dir=static.output.dir_name)
    return Flow([static, dos], name="NiO stopped")


def _ui_rows(store: CrystalMathJobStore) -> list[tuple[str, str]]:
    with sqlite3.connect(store.db_file) as conn:
        return conn.execute("SELECT name, status FROM jobs").fetchall()


@pytest.fixture(scope="module")
def fireworks_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FireworksRun]:
    root = tmp_path_factory.mktemp("fireworks")
    db_dir = root / "db"
    store = CrystalMathJobStore(root / ".crystal_tui.db")
    mgo, nio = demo_flows()
    flows = {
        "mgo": mgo,
        "nio": nio,
        "stopped": _stopped_flow(),
        "unfixable": Flow([_nio_failing("NiO unfixable", max_restarts=0)], name="NiO unfixable"),
    }
    plan = {**DEMO_REPLAY, "NiO stopped": NIO_FAILED_RUN, "NiO unfixable": NIO_FAILED_RUN}
    with fresh_launchpad(db_dir) as launchpad:
        add_flows(flows.values(), launchpad, store, category="crystal")
        queued = _ui_rows(store)
        env = use_replay(plan, root / "replay")
        fworker = write_fworker_yaml(root / "my_fworker.yaml", category="crystal")
        run_launchers(2, launchpad_file(db_dir=db_dir), root / "launches", fworker, env)
        store.connect()
        yield FireworksRun(launchpad, store, queued, flows)


def _doc(store: CrystalMathJobStore, name: str, index: int = 1) -> dict:
    return store.query_one({"name": name, "index": index})["output"]


def test_store_and_routing_travel_in_each_firework() -> None:
    store = CrystalMathJobStore("relative/ui.db", save={"data": ["bandstructure"]})
    assert CrystalMathJobStore.from_dict(store.as_dict()).as_dict() == store.as_dict()
    mgo, _ = demo_flows()
    makers = {job.uuid: job.maker for job, _ in mgo.iterflow()}
    workflow = crystal_workflow(
        mgo, store, fworker="cluster", category="crystal", resources={"nodes": 1}
    )
    for firework in workflow.fws:
        restored = type(firework).from_dict(firework.to_dict())
        assert restored.spec["_fworker"] == "cluster" and restored.spec["_category"] == "crystal"
        assert restored.spec["_queueadapter"] == {"nodes": 1}
        task = restored.tasks[0]
        assert isinstance(task["store"], CrystalMathJobStore)
        assert task["store"].db_file == str(Path("relative/ui.db").absolute())
        assert task["job"].maker == makers[task["job"].uuid]  # pydantic settings (basis) intact


def test_every_job_is_queued_in_the_ui_when_added(fireworks_run: FireworksRun) -> None:
    assert {status for _, status in fireworks_run.queued_rows} == {"QUEUED"}
    assert len(fireworks_run.queued_rows) == 8


def test_mgo_relax_static_bands_dos(fireworks_run: FireworksRun) -> None:
    store = fireworks_run.store
    relax, static = _doc(store, "relax"), _doc(store, "static")
    assert relax["state"] == static["state"] == "successful"
    assert relax["output"]["energy_hartree"] == pytest.approx(-2.754486980727e02, abs=1e-8)
    assert static["output"]["energy_hartree"] == pytest.approx(-2.7544859113743e02, abs=1e-8)
    assert relax["structure"]["lattice"]["a"] == pytest.approx(2.99828782, abs=1e-6)
    assert "GUESSP" in static["input"]["d12"]
    band = store.query_one({"name": "band structure"}, load=True)["output"]
    assert band["output"]["bandgap"] == pytest.approx(7.1237, abs=1e-3)
    assert band["bandstructure"]["@class"] == "BandStructureSymmLine"
    assert _doc(store, "dos")["output"]["n_dos_points"] == 302


def test_nio_failure_is_restarted_through_a_detour(fireworks_run: FireworksRun) -> None:
    store = fireworks_run.store
    failed, recovered = _doc(store, "NiO static", 1), _doc(store, "NiO static", 2)
    assert failed["state"] == "failed"
    assert failed["errors"] == [CrystalErrorKind.SCF_NOT_CONVERGED.value]
    assert failed["output"]["energy_hartree"] == pytest.approx(-3.1282821683361e03, abs=1e-8)
    assert recovered["state"] == "successful"
    assert recovered["output"]["energy_hartree"] == pytest.approx(-3.1282821705429e03, abs=1e-8)
    assert recovered["restarts"][0]["from_dir"] == failed["dir_name"]

    launchpad = fireworks_run.launchpad
    nio = launchpad.fireworks.find({"name": "NiO static"}, {"state": 1, "spec._category": 1})
    assert [(fw["state"], fw["spec"]["_category"]) for fw in nio] == [("COMPLETED", "crystal")] * 2


def test_stop_children_defuses_and_an_exception_fizzles(fireworks_run: FireworksRun) -> None:
    launchpad, store = fireworks_run.launchpad, fireworks_run.store
    fireworks = launchpad.fireworks.find({}, {"name": 1, "state": 1})
    states = {fw["name"]: fw["state"] for fw in fireworks}
    assert states["NiO stopped"] == "COMPLETED"
    stopped = launchpad.fireworks.find({"name": "dos"}, {"state": 1})
    assert sorted(fw["state"] for fw in stopped) == ["COMPLETED", "DEFUSED"]
    assert _doc(store, "NiO stopped")["state"] == "failed"
    assert states["NiO unfixable"] == "FIZZLED"
    assert store.query_one({"name": "NiO unfixable"}) is None
    assert workflow_states(launchpad) == {"COMPLETED": 7, "DEFUSED": 1, "FIZZLED": 1}


def test_the_ui_job_list_follows_fireworks(fireworks_run: FireworksRun) -> None:
    store = fireworks_run.store
    with sqlite3.connect(store.db_file) as conn:
        rows = conn.execute(
            "SELECT name, status, final_energy, work_dir, workflow_id FROM jobs"
        ).fetchall()
    by_name: dict[str, list[tuple]] = {}
    for name, *rest in rows:
        by_name.setdefault(name, []).append(tuple(rest))
    statuses = {name: sorted(row[0] for row in entries) for name, entries in by_name.items()}
    assert statuses == {
        "relax": ["COMPLETED"],
        "static": ["COMPLETED"],
        "band structure": ["COMPLETED"],
        "dos": ["COMPLETED", "QUEUED"],  # the NiO dos was defused, never started
        "NiO static": ["COMPLETED"],
        "NiO stopped": ["FAILED"],
        "NiO unfixable": ["FAILED"],
    }
    assert by_name["static"][0][1] == pytest.approx(-2.7544859113743e02, abs=1e-8)
    assert by_name["NiO static"][0][1] == pytest.approx(-3.1282821705429e03, abs=1e-8)
    assert Path(by_name["NiO unfixable"][0][2]).is_dir()  # the launch folder, marked on failure
    flow_ids = {flow.uuid for flow in fireworks_run.flows.values()}
    assert {row[3] for entries in by_name.values() for row in entries} == flow_ids


def test_cli_adds_one_workflow_per_structure(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from crystal_atomate.cli import app
    from crystal_atomate.demo import mgo_structure

    folder = tmp_path / "structures"
    folder.mkdir()
    for name in ("a", "b"):
        mgo_structure().to(filename=str(folder / f"{name}.cif"))
    ui_db, db_dir = tmp_path / "ui.db", tmp_path / "db"
    options = ["--fw-db-dir", str(db_dir)]
    try:
        added = CliRunner().invoke(
            app, ["fw", "add", "static", str(folder), "--db", str(ui_db), *options]
        )
        assert added.exit_code == 0, added.output
        assert "Added 2 workflows (2 Fireworks)" in added.output
        status = CliRunner().invoke(app, ["fw", "status", *options])
        assert status.exit_code == 0, status.output
        assert "READY" in status.output and "2" in status.output
        with sqlite3.connect(ui_db) as conn:
            rows = conn.execute("SELECT name, status FROM jobs").fetchall()
        assert rows == [("static", "QUEUED"), ("static", "QUEUED")]
    finally:
        stop_server(db_dir)
