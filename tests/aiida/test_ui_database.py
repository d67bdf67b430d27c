"""The UI's data layer on AiiDA: one scenario run on the UI's own SQLite ``Database`` and on
:class:`AiidaDatabase` gives the same ``get_all_jobs()``; create + submit run a real CalcJob."""

from __future__ import annotations

import dataclasses

import pytest
from aiida import orm

from crystal_atomate.aiida.ui_database import (
    AiidaDatabase,
    Cluster,
    Job,
    JobResult,
    NotADraft,
    NotAJob,
    StatusOwnedByAiida,
)
from crystal_atomate.demo import DEMO_REPLAY
from crystal_atomate.testing.recipes import MGO_STATIC_HA
from crystal_atomate.testing.reference import reference_dir
from crystal_atomate.testing.ui_client import UIClientMissing, ui_module

#: Fields of the UI's ``Job`` that mean the same on both backends (ids, times and the deck
#: differ by construction: a node pk, AiiDA's clock).
_SAME_JOB_FIELDS = (
    "name",
    "work_dir",
    "input_file",
    "status",
    "workflow_id",
    "pid",
    "final_energy",
    "key_results",
    "cluster_id",
    "runner_type",
    "dft_code",
)
_SAME_CLUSTER_FIELDS = (
    "name",
    "type",
    "hostname",
    "port",
    "username",
    "connection_config",
    "status",
    "setup_commands",
)


@pytest.fixture(scope="module")
def ui_core():
    try:
        return ui_module("src.core.database")
    except UIClientMissing as exc:
        pytest.skip(str(exc))


def _deck() -> str:
    return (reference_dir() / DEMO_REPLAY["static"]["recording"] / "INPUT.d12").read_text()


def _summary(jobs) -> list[tuple]:
    return [(job.name, job.status, job.final_energy) for job in jobs]


def test_records_have_the_ui_fields(ui_core):
    for ours, theirs in (
        (Job, ui_core.Job),
        (JobResult, ui_core.JobResult),
        (Cluster, ui_core.Cluster),
    ):
        assert [(f.name, f.default) for f in dataclasses.fields(ours)] == [
            (f.name, f.default) for f in dataclasses.fields(theirs)
        ]


def test_one_scenario_on_both_backends(ui_core, codes, replay, tmp_path):
    replay({"MgO static": DEMO_REPLAY["static"]})
    sqlite = ui_core.Database(tmp_path / "ui.db")
    sqlite_id = sqlite.create_job("MgO static", str(tmp_path / "sqlite"), _deck())
    sqlite.update_status(sqlite_id, "RUNNING")
    sqlite.update_status(sqlite_id, "COMPLETED")
    sqlite.update_results(sqlite_id, final_energy=MGO_STATIC_HA)

    aiida = AiidaDatabase()
    draft = aiida.create_job("MgO static", str(tmp_path / "aiida"), _deck())
    assert aiida.get_job(draft).status == "PENDING"
    job_id = aiida.submit_job(draft, code=codes["crystal"].full_label, wait=True)
    with pytest.raises(NotADraft):
        aiida.submit_job(draft)
    node = orm.load_node(job_id)
    assert node.is_finished_ok, node.exit_message
    mine = [job for job in aiida.get_all_jobs() if job.work_dir == str(tmp_path / "aiida")]
    assert (
        _summary(mine)[0][:2]
        == _summary(sqlite.get_all_jobs())[0][:2]
        == ("MgO static", "COMPLETED")
    )
    assert mine[0].final_energy == pytest.approx(sqlite.get_all_jobs()[0].final_energy, abs=1e-8)
    assert aiida.get_job_statuses_batch([job_id, draft, -1]) == {job_id: "COMPLETED"}
    assert aiida.job_exists_batch([job_id, -1]) == {job_id: True, -1: False}
    assert [job.id for job in aiida.get_jobs_by_status("completed")].count(job_id) == 1
    result = aiida.get_job_result(job_id)
    assert result.key_results["energy_hartree"] == pytest.approx(MGO_STATIC_HA, abs=1e-8)
    assert result.convergence_status == "successful"


def _fields(record, names) -> dict:
    return {name: getattr(record, name) for name in names}


def _ui_scenario(database, work_dir: str, deck: str) -> int:
    """What the UI's local runner does with a job: create, start (pid), finish, store results."""
    job_id = database.create_job("NiO scan", work_dir, deck)
    database.update_status(job_id, "QUEUED")
    database.update_status(job_id, "RUNNING", pid=4242)
    database.update_status(job_id, "COMPLETED", pid=4242)
    database.update_results(job_id, final_energy=MGO_STATIC_HA, key_results={"band_gap_ev": 7.8})
    return job_id


def test_the_ui_runner_scenario_gives_the_same_jobs(ui_core, aiida_profile, tmp_path):
    sqlite = ui_core.Database(tmp_path / "ui.db")
    aiida = AiidaDatabase()
    sqlite_id = _ui_scenario(sqlite, str(tmp_path / "run"), _deck())
    aiida_id = _ui_scenario(aiida, str(tmp_path / "run"), _deck())

    theirs, ours = sqlite.get_job(sqlite_id), aiida.get_job(aiida_id)
    assert _fields(ours, _SAME_JOB_FIELDS) == _fields(theirs, _SAME_JOB_FIELDS)
    assert (
        ours.status == "COMPLETED" and ours.pid == 4242 and ours.key_results == {"band_gap_ev": 7.8}
    )
    assert ours.started_at <= ours.completed_at and theirs.started_at and theirs.completed_at
    listed = ("name", "status", "pid", "final_energy", "key_results")
    assert [
        _fields(job, listed) for job in aiida.get_jobs_by_status("COMPLETED") if job.id == aiida_id
    ] == [_fields(job, listed) for job in sqlite.get_jobs_by_status("COMPLETED")]
    node = orm.load_node(aiida_id)
    assert node.is_sealed and node.is_finished_ok and "output_parameters" not in node.outputs
    assert aiida.get_job_result(aiida_id) is None, "update_results writes extras, never outputs"
    with pytest.raises(NotADraft):
        aiida.submit_job(aiida_id)


def test_a_job_aiida_runs_keeps_its_provenance(codes, replay, tmp_path):
    replay({"MgO static": DEMO_REPLAY["static"]})
    aiida = AiidaDatabase()
    job_id = aiida.submit_job(aiida.create_job("MgO static", str(tmp_path), _deck()),
                              code=codes["crystal"].full_label, wait=True)
    node = orm.load_node(job_id)
    outputs = node.outputs.output_parameters.get_dict()
    with pytest.raises(StatusOwnedByAiida, match="AiiDA's to set"):
        aiida.update_status(job_id, "RUNNING")
    aiida.update_status(job_id, "COMPLETED", pid=99)
    aiida.update_results(job_id, final_energy=-1.0, key_results={"note": "from the UI"})

    job = aiida.get_job(job_id)
    assert job.input_file == _deck()
    assert (job.status, job.pid, job.final_energy, job.key_results) == (
        "COMPLETED", 99, -1.0, {"note": "from the UI"})
    node = orm.load_node(job_id)
    assert node.is_finished_ok and node.outputs.output_parameters.get_dict() == outputs
    assert aiida.get_job_result(job_id).key_results["energy_hartree"] == pytest.approx(
        MGO_STATIC_HA, abs=1e-8
    )
    with pytest.raises(NotAJob):
        aiida.update_results(-1, final_energy=0.0)
    with pytest.raises(NotAJob):
        aiida.update_status(-1, "RUNNING")


def test_clusters_are_computers(ui_core, aiida_profile, tmp_path):
    key = tmp_path / "id_ed25519"
    key.write_text("not a real key")
    cluster = {
        "name": "archer-ui",
        "type": "slurm",
        "hostname": "login.archer2.ac.uk",
        "username": "alice",
        "port": 2222,
        "connection_config": {"key_file": str(key)},
        "setup_commands": ["module load crystal/23"],
    }
    sqlite = ui_core.Database(tmp_path / "ui.db")
    aiida = AiidaDatabase()
    theirs = sqlite.get_cluster(sqlite.create_cluster(**cluster))
    cluster_id = aiida.create_cluster(**cluster)
    assert aiida.create_cluster(**cluster) == cluster_id, "idempotent per name"
    ours = aiida.get_cluster(cluster_id)
    assert _fields(ours, _SAME_CLUSTER_FIELDS) == _fields(theirs, _SAME_CLUSTER_FIELDS)
    assert orm.load_computer(cluster_id).scheduler_type == "core.slurm"
    assert aiida.get_cluster_by_name("archer-ui") == ours
    assert aiida.get_cluster_by_name("nowhere") is None and aiida.get_cluster(-1) is None
    names = [found.name for found in aiida.get_all_clusters()]
    assert "archer-ui" in names and names == sorted(names)
