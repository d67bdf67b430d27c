"""The job browser on an AiiDA profile (``crystal-atomate tui --backend aiida``), through Textual's
pilot: the list shows the profile's CRYSTAL calculations (a real replayed CalcJob and jobs the UI's
data layer made), filters and sorts them, details one, and follows new ones live."""

from __future__ import annotations

import pytest
from aiida import orm
from typer.testing import CliRunner

from crystal_atomate.aiida.errors import ProfileNotFound
from crystal_atomate.aiida.job_source import AiidaJobs
from crystal_atomate.aiida.ui_database import AiidaDatabase
from crystal_atomate.cli import app
from crystal_atomate.demo import DEMO_REPLAY
from crystal_atomate.testing.reference import reference_dir
from crystal_atomate.testing.tui_pilot import (
    SIZE,
    pilot_test,
    rows_of,
    table_of,
    table_rows,
    text_of,
    wait_until,
)
from crystal_atomate.tui.app import JobBrowser
from crystal_atomate.tui.detail import DetailScreen

#: Final energy (Hartree) of the recorded MgO static run the replay plays back.
MGO_STATIC_HA = -275.44859113743


@pytest.fixture(scope="module")
def profile_jobs(codes, localhost_replay, tmp_path_factory) -> dict[str, int]:
    """In the session profile: a replayed MgO static CalcJob, a UI job that failed, one running."""
    root = tmp_path_factory.mktemp("tui_aiida")
    deck = (reference_dir() / DEMO_REPLAY["static"]["recording"] / "INPUT.d12").read_text()
    database = AiidaDatabase()
    with localhost_replay({"browser MgO static": DEMO_REPLAY["static"]}, root / "replay"):
        static = database.submit_job(
            database.create_job("browser MgO static", str(root / "static"), deck),
            code=codes["crystal"].full_label,
            wait=True,
        )
    assert orm.load_node(static).is_finished_ok
    failed = database.create_job("browser si opt", str(root / "si"), "Si OPT\nCRYSTAL\nOPTGEOM\n")
    database.update_status(failed, "FAILED")
    running = database.create_job("browser nio afm", str(root / "nio"), "NiO AFM\nCRYSTAL\n")
    database.update_status(running, "RUNNING", pid=7)
    database.update_results(running, final_energy=-3128.2821705429)
    return {"browser MgO static": static, "browser si opt": failed, "browser nio afm": running}


def _mine(app: JobBrowser) -> dict[str, list[str]]:
    return {name: row for name, row in rows_of(app).items() if name.startswith("browser ")}


@pilot_test
async def test_the_list_shows_the_calculations_of_the_profile(profile_jobs):
    app = JobBrowser(AiidaJobs(), poll_seconds=0.1)
    async with app.run_test(size=SIZE) as pilot:
        assert app.sub_title.startswith("AiiDA profile ")
        rows = _mine(app)
        assert list(rows) == ["browser nio afm", "browser si opt", "browser MgO static"], (
            "newest first"
        )
        assert {name: row[0] for name, row in rows.items()} == {
            name: str(pk) for name, pk in profile_jobs.items()
        }
        assert [row[1] for row in rows.values()] == ["RUNNING", "FAILED", "COMPLETED"]
        assert float(rows["browser MgO static"][3]) == pytest.approx(MGO_STATIC_HA, abs=1e-8)
        assert rows["browser nio afm"][3] == "-3128.2821705429" and rows["browser si opt"][3] == "-"

        await pilot.press("/", *"failed browser")
        assert list(rows_of(app)) == ["browser si opt"]
        await pilot.press("escape")
        await pilot.press("q")
    assert app.return_code == 0


@pilot_test
async def test_sorting_by_energy_puts_jobs_without_one_last(profile_jobs):
    """Over every calculation of the session's profile, whose names repeat (other modules' relax
    and static steps), so the order is read line by line, not by name."""
    app = JobBrowser(AiidaJobs(), poll_seconds=0.1)
    async with app.run_test(size=SIZE) as pilot:
        while app.sort_key != "energy":
            await pilot.press("s")
        energies = [row[3] for row in table_rows(app)]
        assert {"-3128.2821705429", "-"} <= set(energies), "jobs with and without an energy"
        present = [float(value) for value in energies if value != "-"]
        assert present == sorted(present, reverse=True) and energies[len(present) :] == ["-"] * (
            len(energies) - len(present)
        )
        await pilot.press("q")


@pilot_test
async def test_detail_of_a_calculation(profile_jobs):
    app = JobBrowser(AiidaJobs(), poll_seconds=0.1)
    async with app.run_test(size=SIZE) as pilot:
        table_of(app).move_cursor(
            row=table_of(app).get_row_index(str(profile_jobs["browser MgO static"]))
        )
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, DetailScreen)
        summary = text_of(screen, "#summary")
        assert "COMPLETED" in summary and "-275.4485911374" in summary and "successful" in summary
        assert "energy_hartree: -275.44859113743" in text_of(screen, "#key-results")
        assert text_of(screen, "#deck").startswith("MGO BULK - GEOMETRY TEST\nCRYSTAL")
        await pilot.press("escape")
        assert not isinstance(app.screen, DetailScreen)


@pilot_test
async def test_a_new_calculation_appears_and_its_status_follows(profile_jobs, tmp_path):
    del profile_jobs
    database = AiidaDatabase()
    app = JobBrowser(AiidaJobs(), poll_seconds=0.1)
    async with app.run_test(size=SIZE) as pilot:
        job_id = database.create_job("browser live", str(tmp_path), "MgO\nCRYSTAL\n")
        await wait_until(pilot, lambda: "browser live" in rows_of(app))
        assert rows_of(app)["browser live"][:2] == [str(job_id), "PENDING"]
        database.update_status(job_id, "QUEUED")
        await wait_until(pilot, lambda: rows_of(app)["browser live"][1] == "QUEUED")
        database.update_results(job_id, final_energy=-1.5)
        await wait_until(pilot, lambda: rows_of(app)["browser live"][3] == "-1.5000000000")


def test_an_unknown_profile_is_one_clear_error(aiida_profile):
    with pytest.raises(ProfileNotFound, match="no AiiDA profile 'no-such-profile'"):
        AiidaJobs("no-such-profile")
    result = CliRunner().invoke(app, ["tui", "--backend", "aiida", "--profile", "no-such-profile"])
    assert result.exit_code == 2
    assert "error: no AiiDA profile 'no-such-profile'" in result.output
    assert orm.QueryBuilder().append(orm.Computer).count() >= 1, "the session profile stays loaded"
