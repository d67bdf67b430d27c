"""The UI's data layer on AiiDA: one scenario run on the UI's own SQLite ``Database`` and on
:class:`AiidaDatabase` gives the same ``get_all_jobs()``; create + submit run a real CalcJob."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import pytest
from aiida import orm
from test_calculations import MGO_STATIC_HA

from crystal_atomate.aiida.ui_database import AiidaDatabase, Job, JobResult, NotADraft
from crystal_atomate.demo import DEMO_REPLAY
from crystal_atomate.testing.reference import reference_dir

_CLIENT = Path(
    os.environ.get("CRYSTALMATH_CLIENT_DIR", Path(__file__).parents[2] / ".." / "shared" / "crystalmath-client" / "tui")
)


@pytest.fixture(scope="module")
def ui_core():
    if not (_CLIENT / "src" / "core" / "database.py").is_file():
        pytest.skip(f"the CrystalMath client is not at {_CLIENT} (set CRYSTALMATH_CLIENT_DIR)")
    sys.path.insert(0, str(_CLIENT))
    try:
        from src.core import database
    finally:
        sys.path.remove(str(_CLIENT))
    return database


def _deck() -> str:
    return (reference_dir() / DEMO_REPLAY["static"]["recording"] / "INPUT.d12").read_text()


def _summary(jobs) -> list[tuple]:
    return [(job.name, job.status, job.final_energy) for job in jobs]


def test_records_have_the_ui_fields(ui_core):
    for ours, theirs in ((Job, ui_core.Job), (JobResult, ui_core.JobResult)):
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
    assert _summary(mine)[0][:2] == _summary(sqlite.get_all_jobs())[0][:2] == ("MgO static", "COMPLETED")
    assert mine[0].final_energy == pytest.approx(sqlite.get_all_jobs()[0].final_energy, abs=1e-8)
    assert aiida.get_job_statuses_batch([job_id, draft, -1]) == {job_id: "COMPLETED"}
    assert aiida.job_exists_batch([job_id, -1]) == {job_id: True, -1: False}
    assert [job.id for job in aiida.get_jobs_by_status("completed")].count(job_id) == 1
    result = aiida.get_job_result(job_id)
    assert result.key_results["energy_hartree"] == pytest.approx(MGO_STATIC_HA, abs=1e-8)
    assert result.convergence_status == "successful"
