"""CrystalMathJobStore with jobflow: a real Flow, references, the data store, the UI mirror."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from jobflow import Flow, JobStore, job, run_locally
from monty.json import MontyDecoder, MontyEncoder
from monty.serialization import dumpfn

from crystal_atomate.stores import CrystalMathJobStore, SQLiteStore
from crystal_atomate.stores.jobstore import tui_job_uuid
from crystal_atomate.stores.tui_mirror import HARTREE_TO_EV


@job
def relax(a: float, dir_name: str):
    """Shaped like our task documents: state, energy in eV, a raw Hartree energy, a deck."""
    return {
        "state": "successful",
        "energy": -275.0 * a,
        "final_energy_hartree": -275.0 * a / HARTREE_TO_EV,
        "dir_name": f"node01:{dir_name}",
        "input": {"d12": "MgO\nCRYSTAL\nEND\n"},
        "formula_pretty": "MgO",
        "output": {"converged": True, "scf_cycles": 12},
        "run_stats": {"cpu_time": 10.5, "wall_time": 11.0},
    }


@job(data="dos")
def dos(previous: dict):
    """Energy only in eV, a failed state, and a large object for the data store."""
    return {"state": "failed", "energy": previous["energy"] - 1.0, "dos": list(range(1000))}


@pytest.fixture()
def db(tmp_path) -> Path:
    return tmp_path / ".crystal_tui.db"


def run_flow(db: Path, tmp_path: Path):
    first = relax(1.0, str(tmp_path / "run1"))
    second = dos(first.output)
    flow = Flow([first, second])
    store = CrystalMathJobStore(db)
    responses = run_locally(flow, store=store, ensure_success=True)
    return flow, first, second, store, responses


def test_flow_runs_and_reads_back(db, tmp_path):
    flow, first, second, store, responses = run_flow(db, tmp_path)
    assert responses[second.uuid][1].output["energy"] == pytest.approx(-276.0)
    store.connect()
    assert isinstance(store.docs_store, SQLiteStore)
    out = store.get_output(second.uuid, load=True)
    assert out["dos"] == list(range(1000))
    lazy = store.get_output(second.uuid)
    assert lazy["dos"]["@class"] == "list" or "blob_uuid" in lazy["dos"]
    assert store.additional_stores["data"].count({"job_uuid": second.uuid}) == 1
    assert store.get_output(first.uuid, which="first")["energy"] == -275.0
    assert store.get_output(first.uuid, which=1)["formula_pretty"] == "MgO"
    assert [o["energy"] for o in store.get_output(first.uuid, which="all")] == [-275.0]
    doc = store.query_one({"uuid": second.uuid}, load=True)
    assert doc["output"]["dos"][-1] == 999


def test_ui_tables_show_the_jobs(db, tmp_path):
    flow, first, second, store, _ = run_flow(db, tmp_path)
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    rows = {r["name"]: r for r in conn.execute("SELECT * FROM jobs ORDER BY created_at DESC")}
    r1, r2 = rows["relax"], rows["dos"]
    assert r1["status"] == "COMPLETED" and r2["status"] == "FAILED"
    assert r1["final_energy"] == pytest.approx(-275.0 / HARTREE_TO_EV)
    assert r2["final_energy"] == pytest.approx(-276.0 / HARTREE_TO_EV)
    assert r1["work_dir"] == str(tmp_path / "run1")
    assert r2["work_dir"] == f"jobflow://{second.uuid}"
    assert r1["input_file"].startswith("MgO")
    assert r1["workflow_id"] == r2["workflow_id"] == flow.uuid
    assert r1["dft_code"] == "crystal"
    key_results = json.loads(r1["key_results"])
    assert key_results == {"convergence": "CONVERGED", "errors": [], "warnings": [],
                           "metadata": key_results["metadata"]}
    assert key_results["metadata"]["formula_pretty"] == "MgO"
    assert key_results["metadata"]["jobflow_uuid"] == first.uuid
    assert json.loads(r2["key_results"])["convergence"] == "UNKNOWN"
    res = conn.execute("SELECT * FROM job_results WHERE job_id = ?", (r1["id"],)).fetchone()
    assert (res["convergence_status"], res["scf_cycles"]) == ("CONVERGED", 12)
    assert (res["cpu_time_seconds"], res["wall_time_seconds"]) == (10.5, 11.0)
    assert store.tui_job_id(first.uuid) == r1["id"]


def test_mirror_reads_list_items_of_task_documents(db):
    """Fields inside ``calcs_reversed`` (a list) reach the UI row; a missing item is no value."""
    store = CrystalMathJobStore(db)
    uid = "0b0b0b0b-1111-2222-3333-444444444444"
    run = {"started_at": "2026-01-02T03:04:05+00:00",
           "scheduler": {"cluster": "nowhere", "job_id": 12}}
    store.update({"uuid": uid, "index": 1, "name": "scf", "completed_at": "2026-01-02T04:00:00",
                  "output": {"state": "failed", "output": {"scf_cycles": 3},
                             "calcs_reversed": [{"has_crystal_completed": False, "run": run}]}})
    store.update({"uuid": uid[:-1] + "5", "index": 1, "name": "empty",
                  "output": {"state": "successful", "calcs_reversed": []}})
    conn = sqlite3.connect(db)
    row = conn.execute(
        "SELECT j.started_at, j.status, r.convergence_status FROM jobs j "
        "JOIN job_results r ON r.job_id = j.id WHERE j.name = 'scf'"
    ).fetchone()
    assert row == ("2026-01-02 03:04:05", "FAILED", "NOT_CONVERGED")
    empty = conn.execute(
        "SELECT j.started_at, r.convergence_status FROM jobs j "
        "JOIN job_results r ON r.job_id = j.id WHERE j.name = 'empty'"
    ).fetchone()
    assert empty == (None, None)


def test_mark_job_state_moves_the_row(db):
    store = CrystalMathJobStore(db)
    uid = "0a0a0a0a-1111-2222-3333-444444444444"
    jid = store.mark_job_state(uid, "PENDING", name="scf", workflow_id="wf-1")
    assert store.mark_job_state(uid, "queued") == jid
    store.mark_job_state(uid, "RUNNING", work_dir="host:/scratch/scf")
    conn = sqlite3.connect(db)
    row = conn.execute("SELECT status, work_dir, name, workflow_id, queue_time IS NOT NULL, "
                       "started_at IS NOT NULL FROM jobs WHERE id = ?", (jid,)).fetchone()
    assert row == ("RUNNING", "/scratch/scf", "scf", "wf-1", 1, 1)
    with pytest.raises(ValueError, match="state must be one of"):
        store.mark_job_state(uid, "EXPLODED")
    store.update({"uuid": uid, "index": 1, "name": "scf", "output": {"state": "successful",
                  "energy": -1.0}, "hosts": ["wf-1"]})
    status, n = conn.execute("SELECT status, COUNT(*) FROM jobs").fetchone()
    assert (status, n) == ("COMPLETED", 1)


def test_serialisation_and_yaml(db, tmp_path, monkeypatch):
    store = CrystalMathJobStore(db)
    again = json.loads(json.dumps(store, cls=MontyEncoder), cls=MontyDecoder)
    assert isinstance(again, CrystalMathJobStore)
    assert again.docs_store == store.docs_store and again.db_file == str(db)
    assert set(again.additional_stores) == {"data"}
    dumpfn({"JOB_STORE": {"@module": "crystal_atomate.stores.jobstore",
                          "@class": "CrystalMathJobStore", "db_file": str(db)}},
           tmp_path / "jobflow.yaml")
    from jobflow.settings import JobflowSettings

    settings = JobflowSettings(CONFIG_FILE=str(tmp_path / "jobflow.yaml"))
    assert isinstance(settings.JOB_STORE, CrystalMathJobStore)
    assert settings.JOB_STORE.docs_store == store.docs_store
    spec = JobStore.from_dict_spec({"docs_store": {"type": "SQLiteStore", "db_file": str(db)}})
    assert isinstance(spec.docs_store, SQLiteStore)


def test_repo_yaml_files_load(tmp_path, monkeypatch):
    root = Path(__file__).resolve().parents[2] / "stores"
    monkeypatch.setenv("CRYSTAL_TUI_DB", str(tmp_path / "env.db"))
    from jobflow.settings import JobflowSettings

    store = JobflowSettings(CONFIG_FILE=str(root / "jobflow.yaml")).JOB_STORE
    assert isinstance(store, CrystalMathJobStore)


def test_default_path_follows_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("CRYSTAL_TUI_DB", str(tmp_path / "from_env.db"))
    assert CrystalMathJobStore().db_file == str(tmp_path / "from_env.db")


def test_import_tui_jobs(db, tmp_path, ref_dir):
    """A run the UI made by itself (a real CRYSTAL output in its work_dir) becomes a document."""
    store = CrystalMathJobStore(db)
    store.connect()
    run = tmp_path / "ui_run"
    run.mkdir()
    shutil.copy(ref_dir / "mgo_scf_hf_sto3g_crystal17" / "OUTPUT.out", run / "mgo.out")
    failed = tmp_path / "ui_failed"
    failed.mkdir()
    shutil.copy(ref_dir / "nio_scf_too_many_cycles_crystal17" / "OUTPUT.out", failed / "nio.out")
    conn = sqlite3.connect(db)
    conn.execute(
        "INSERT INTO jobs(name, work_dir, status, input_file, final_energy) "
        "VALUES ('mgo', ?, 'COMPLETED', 'MgO deck', -271.2)",
        (str(run),),
    )
    conn.execute(
        "INSERT INTO jobs(name, work_dir, status) VALUES ('nio', ?, 'COMPLETED')", (str(failed),)
    )
    conn.execute(
        "INSERT INTO jobs(name, work_dir, status) VALUES ('gone', '/nonexistent', 'COMPLETED')"
    )
    conn.commit()
    before_jobs = conn.execute("SELECT * FROM jobs ORDER BY id").fetchall()

    uuids = store.import_tui_jobs()
    assert uuids == [tui_job_uuid(str(run)), tui_job_uuid(str(failed))]
    doc = store.query_one({"uuid": uuids[0]})["output"]
    assert doc["state"] == "successful"
    assert doc["output"]["energy_hartree"] == pytest.approx(-2.7121814374931e02, abs=1e-8)
    assert doc["output"]["scf_cycles"] == 7
    assert doc["input"]["d12"] == "MgO deck"
    nio = store.query_one({"uuid": uuids[1]})["output"]
    assert nio["state"] == "failed" and nio["errors"] == ["scf_not_converged"]
    assert conn.execute("SELECT * FROM jobs ORDER BY id").fetchall() == before_jobs
    assert conn.execute("SELECT COUNT(*) FROM job_results").fetchone()[0] == 0
    assert store.import_tui_jobs() == []
    assert store.docs_store.count() == 2
