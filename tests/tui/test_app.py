"""The job browser (``crystal-atomate tui``) driven through Textual's pilot.

Three kinds of database: one the demo filled through real flows (replayed CRYSTAL), one created
the way the original terminal UI creates its file (its schema only, rows without jobflow
documents), and empty ones. The browser must never write to any of them.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from crystal_atomate.demo import run_demo
from crystal_atomate.stores.jobstore import CrystalMathJobStore
from crystal_atomate.stores.tui_schema import UI_MIGRATIONS, UI_V1_SQL, ui_schema_version
from crystal_atomate.stores.ui_queries import list_jobs, open_readonly, resolve_job_uuid
from crystal_atomate.testing.tui_pilot import (
    SIZE,
    pilot_test,
    rows_of,
    table_of,
    text_of,
    wait_until,
)
from crystal_atomate.tui.app import JobBrowser, parse_filter
from crystal_atomate.tui.detail import DetailScreen
from crystal_atomate.tui.sources import SourceUnavailable, SqliteJobs

#: Final energies (Hartree) of the recorded CRYSTAL runs the demo replays.
RECORDED_HARTREE = {
    "relax": -275.4486980727,
    "static": -275.44859113743,
    "NiO static": -3128.2821705429,
}


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory) -> Path:
    """The demo's flows (MgO relax -> static -> bands + DOS, NiO recovered SCF), run once."""
    root = tmp_path_factory.mktemp("tui_demo")
    store = CrystalMathJobStore(root / "demo.db")
    run_demo(store, root / "work")
    store.close()
    return root / "demo.db"


def build_original_ui_db(path: Path, version: int = 9) -> None:
    """A file as the CRYSTAL-TOOLS UI makes it: its schema up to ``version`` (its own connection
    settings), and jobs it ran itself, one still RUNNING; no jobflow tables at all."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.executescript(UI_V1_SQL)
    conn.execute("INSERT INTO schema_version(version) VALUES (1)")
    for step in range(2, version + 1):
        UI_MIGRATIONS[step](conn)
        conn.execute("INSERT INTO schema_version(version) VALUES (?)", (step,))
    conn.executemany(
        "INSERT INTO jobs(name, work_dir, status, input_file, final_energy, key_results, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (
                "mgo_scf",
                "/runs/mgo_scf",
                "COMPLETED",
                "MgO SCF\nCRYSTAL\nEND",
                -275.1234567890,
                '{"band_gap_ev": 7.8}',
                "2024-01-01 10:00:00",
            ),
            (
                "si_opt",
                "/runs/si_opt",
                "FAILED",
                "Si OPT\nCRYSTAL\nOPTGEOM",
                None,
                None,
                "2024-01-02 10:00:00",
            ),
            (
                "nio_afm",
                "/runs/nio_afm",
                "RUNNING",
                "NiO AFM\nCRYSTAL",
                None,
                None,
                "2024-01-03 10:00:00",
            ),
        ],
    )
    conn.close()


@pytest.fixture
def ui_db(tmp_path) -> Path:
    path = tmp_path / ".crystal_tui.db"
    build_original_ui_db(path)
    return path


@pytest.fixture
def empty_db(tmp_path) -> Path:
    """A database crystal_atomate created (every table) with no job in it yet."""
    store = CrystalMathJobStore(tmp_path / "empty.db")
    store.connect()
    store.close()
    return tmp_path / "empty.db"


def tables_in(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {
            name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }


@pilot_test
async def test_empty_database(empty_db):
    app = JobBrowser(empty_db, poll_seconds=0.1)
    async with app.run_test(size=SIZE) as pilot:
        assert table_of(app).row_count == 0
        assert text_of(app, "#status-line").startswith("no jobs")
        await pilot.press("enter", "r", "s", "/", "x", "escape")
        assert table_of(app).row_count == 0 and not isinstance(app.screen, DetailScreen)
        await pilot.press("q")
    assert app.return_code == 0


@pilot_test
async def test_missing_file_is_not_created_and_appears_when_an_engine_writes(tmp_path):
    path = tmp_path / "later.db"
    app = JobBrowser(path, poll_seconds=0.1)
    async with app.run_test(size=SIZE) as pilot:
        assert "No database at" in text_of(app, "#status-line")
        await pilot.pause(0.3)
        assert not path.exists()
        CrystalMathJobStore(path).mark_job_state("uuid-first", "QUEUED", name="first job")
        await wait_until(pilot, lambda: "first job" in rows_of(app))
        assert rows_of(app)["first job"][1] == "QUEUED"


@pilot_test
async def test_database_of_the_original_ui(ui_db):
    before = (tables_in(ui_db), ui_db.read_bytes())
    app = JobBrowser(ui_db, poll_seconds=0.1)
    async with app.run_test(size=SIZE) as pilot:
        rows = rows_of(app)
        assert list(rows) == ["nio_afm", "si_opt", "mgo_scf"]
        assert [rows[name][1] for name in rows] == ["RUNNING", "FAILED", "COMPLETED"]
        assert rows["mgo_scf"][3] == "-275.1234567890" and rows["nio_afm"][3] == "-"
        assert rows["mgo_scf"][4] == "-"

        table_of(app).move_cursor(row=2)
        await pilot.press("enter")
        assert isinstance(app.screen, DetailScreen)
        assert "COMPLETED" in text_of(app.screen, "#summary")
        assert "band_gap_ev: 7.8" in text_of(app.screen, "#key-results")
        assert "no jobflow task document" in text_of(app.screen, "#runs")
        assert text_of(app.screen, "#restarts").endswith("none\n")
        assert text_of(app.screen, "#deck") == "MgO SCF\nCRYSTAL\nEND"
        await pilot.press("escape")
        assert not isinstance(app.screen, DetailScreen)
    assert (tables_in(ui_db), ui_db.read_bytes()) == before, (
        "the browser must not change the UI's file"
    )
    with sqlite3.connect(ui_db) as conn:
        assert ui_schema_version(conn) == 9


@pilot_test
async def test_database_of_an_older_ui_without_workflow_ids(tmp_path):
    path = tmp_path / "v5.db"
    build_original_ui_db(path, version=5)
    app = JobBrowser(path, poll_seconds=0.1)
    async with app.run_test(size=SIZE) as pilot:
        assert len(rows_of(app)) == 3
        while app.sort_key != "workflow":
            await pilot.press("s")
        assert len(rows_of(app)) == 3


@pilot_test
async def test_demo_database_shows_the_recorded_energies(demo_db):
    app = JobBrowser(demo_db)
    async with app.run_test(size=SIZE):
        rows = rows_of(app)
        assert set(rows) == {"relax", "static", "band structure", "dos", "NiO static"}
        assert all(row[1] == "COMPLETED" for row in rows.values())
        for name, energy in RECORDED_HARTREE.items():
            assert float(rows[name][3]) == pytest.approx(energy, abs=1e-8)
        assert rows["dos"][3] == "-"
        mgo_workflows = {rows[name][4] for name in ("relax", "static", "band structure", "dos")}
        assert len(mgo_workflows) == 1 and mgo_workflows != {rows["NiO static"][4]}


@pilot_test
async def test_demo_detail_shows_the_restart_of_nio(demo_db):
    app = JobBrowser(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        table = table_of(app)
        table.move_cursor(row=list(rows_of(app)).index("NiO static"))
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, DetailScreen)
        assert "restart 1: scf_not_converged -> MAXCYCLE 100, FMIXING 50" in text_of(
            screen, "#restarts"
        )
        assert "run 1: scf_not_converged" in text_of(screen, "#errors")
        runs = text_of(screen, "#runs")
        assert "run 1" in runs and "failed" in runs and "run 2" in runs and "successful" in runs
        assert "-3128.2821705429" in runs
        assert "GUESSP" in text_of(screen, "#deck") and "MAXCYCLE\n100" in text_of(screen, "#deck")
        assert "'jobflow_index': 2" in text_of(screen, "#key-results")  # under metadata
        await pilot.press("/")
        assert isinstance(app.screen, DetailScreen), "list keys are off on the detail screen"
        await pilot.press("escape")
        assert not isinstance(app.screen, DetailScreen)


@pilot_test
async def test_filter_by_name_and_status(ui_db):
    app = JobBrowser(ui_db)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("/", *"mgo")
        assert list(rows_of(app)) == ["mgo_scf"]
        await pilot.press("escape")
        assert len(rows_of(app)) == 3 and app.focused is table_of(app)
        await pilot.press("/", *"running", "enter")
        assert list(rows_of(app)) == ["nio_afm"] and app.focused is table_of(app)
        await pilot.press("q")
    assert app.return_code == 0


@pilot_test
async def test_sort_by_energy(demo_db):
    app = JobBrowser(demo_db)
    async with app.run_test(size=SIZE) as pilot:
        while app.sort_key != "energy":
            await pilot.press("s")
        energies = [row[3] for row in rows_of(app).values()]
        assert energies[:3] == sorted(energies[:3], key=float, reverse=True) and energies[3:] == [
            "-",
            "-",
        ]
        await pilot.press("S")
        assert list(rows_of(app))[0] == "NiO static"


@pilot_test
async def test_live_refresh_while_an_engine_runs(empty_db):
    store = CrystalMathJobStore(empty_db)
    app = JobBrowser(empty_db, poll_seconds=0.1)
    async with app.run_test(size=SIZE) as pilot:
        assert table_of(app).row_count == 0
        job_id = store.mark_job_state(
            "uuid-live", "RUNNING", work_dir="/runs/live", name="live job"
        )
        await wait_until(pilot, lambda: "live job" in rows_of(app))
        assert rows_of(app)["live job"][1] == "RUNNING"

        await pilot.press("enter")
        assert isinstance(app.screen, DetailScreen) and app.screen.job_id == job_id
        store.mark_job_state("uuid-live", "FAILED")
        await wait_until(pilot, lambda: "FAILED" in text_of(app.screen, "#summary"))
        await pilot.press("escape")
        assert rows_of(app)["live job"][1] == "FAILED"
    store.close()


def test_parse_filter_splits_statuses_from_name_text():
    assert parse_filter("Failed nio static") == (("FAILED",), "nio static")
    assert parse_filter("") == ((), None)


def test_queries_on_a_file_without_our_tables(ui_db):
    with closing(open_readonly(ui_db)) as conn:
        assert resolve_job_uuid(conn, "1") is None
        assert resolve_job_uuid(conn, "abc-uuid") == "abc-uuid"
        assert list_jobs(conn, uuids=["abc-uuid"]) == []
        assert [job.name for job in list_jobs(conn, sort="name", descending=False)] == [
            "mgo_scf",
            "nio_afm",
            "si_opt",
        ]


def test_sqlite_source_says_why_it_cannot_read(tmp_path):
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"not a database, just bytes " * 100)
    for path, message in ((tmp_path / "none.db", "No database at"), (broken, "Cannot read")):
        source = SqliteJobs(path)
        with pytest.raises(SourceUnavailable, match=message):
            source.list_jobs()
        assert source.change_token() is None and source.job_detail(1) is None
        source.close()
    assert not (tmp_path / "none.db").exists()
