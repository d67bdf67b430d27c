"""``crystal-atomate aiida``: setup in a fresh AIIDA_PATH (twice: idempotent), the job list, and the
import of the terminal UI's jobs, all on real profiles."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time

from aiida import orm
from typer.testing import CliRunner

from crystal_atomate.aiida.query import import_tui_jobs, list_crystal_jobs
from crystal_atomate.cli import app
from crystal_atomate.stores.tui_schema import ensure_ui_schema


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["crystal-atomate", "aiida", *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_setup_is_idempotent_and_registers_the_plugins(tmp_path):
    env = dict(os.environ, AIIDA_PATH=str(tmp_path))
    env.pop("AIIDA_PROFILE", None)
    args = ("setup", "--profile", "fresh", "--replay", "--workdir", str(tmp_path / "run"))
    first, second = _cli(env, *args), _cli(env, *args)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert "crystal@localhost" in second.stdout and "properties@localhost" in second.stdout
    codes = subprocess.run(
        ["verdi", "-p", "fresh", "code", "list", "-a"], env=env, capture_output=True, text=True
    )
    assert codes.stdout.count("@localhost") == 2, codes.stdout
    plugins = subprocess.run(
        ["verdi", "plugin", "list", "aiida.calculations"], env=env, capture_output=True, text=True
    )
    assert (
        "crystal_atomate.crystal" in plugins.stdout
        and "crystal_atomate.properties" in plugins.stdout
    )
    profile = subprocess.run(
        ["verdi", "profile", "show", "fresh"], env=env, capture_output=True, text=True
    )
    assert "core.sqlite_dos" in profile.stdout and "core.zeromq" in profile.stdout


def test_a_profile_without_broker_polls_its_waiting_processes_every_second(tmp_path):
    """Without a broker nothing announces that a work chain's CalcJobs finished; AiiDA's 60 s
    default poll would idle a flow-mode work chain a minute per wave."""
    script = (
        "from crystal_atomate.aiida.setup import ensure_profile\n"
        "for name, broker in (('quiet', None), ('zmq', 'core.zeromq')):\n"
        "    print(name, ensure_profile(name, broker=broker).get_option('runner.poll.interval'))\n"
    )
    env = dict(os.environ, AIIDA_PATH=str(tmp_path))
    env.pop("AIIDA_PROFILE", None)
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["quiet", "1", "zmq", "None"]  # None: AiiDA's default


def _tui_db(path, jobs):
    with sqlite3.connect(path) as conn:
        ensure_ui_schema(conn)
        conn.executemany(
            "INSERT INTO jobs (name, work_dir, status, created_at, final_energy) "
            "VALUES (?, ?, ?, ?, ?)",
            jobs,
        )
    return path


def test_import_tui_keeps_timestamps_and_is_idempotent(aiida_profile, tmp_path):
    db = _tui_db(
        tmp_path / "ui.db",
        [
            ("MgO scf", str(tmp_path / "a"), "COMPLETED", "2024-03-01 10:00:00", -275.4485911374),
            ("NiO opt", str(tmp_path / "b"), "FAILED", "2024-03-02 11:30:00", None),
            ("Si bands", str(tmp_path / "c"), "RUNNING", "2024-03-03 12:00:00", None),
        ],
    )
    assert import_tui_jobs(db) == (3, 0)
    assert import_tui_jobs(db) == (0, 3)
    rows = {row.label: row for row in list_crystal_jobs()}
    assert (
        rows["MgO scf"].status == "COMPLETED" and rows["MgO scf"].energy_hartree == -275.4485911374
    )
    assert rows["NiO opt"].status == "FAILED" and rows["Si bands"].status == "RUNNING"
    assert rows["MgO scf"].ctime.isoformat().startswith("2024-03-01T10:00:00")
    result = CliRunner().invoke(app, ["aiida", "import-tui", "--db", str(db)])
    assert result.exit_code == 0 and "imported 0 job(s), 3 already" in result.output


def test_jobs_lists_hundreds_of_calculations_fast(aiida_profile, tmp_path):
    rows = [
        (f"job {i}", str(tmp_path / str(i)), "COMPLETED", "2024-01-01 00:00:00", -1.0 - i)
        for i in range(300)
    ]
    import_tui_jobs(_tui_db(tmp_path / "many.db", rows))
    assert orm.QueryBuilder().append(orm.CalcJobNode).count() >= 300
    start = time.perf_counter()
    listed = list_crystal_jobs()
    elapsed = time.perf_counter() - start
    print(f"listed {len(listed)} calculations in {elapsed * 1000:.0f} ms")
    assert len(listed) >= 300 and elapsed < 0.3, elapsed
    result = CliRunner().invoke(app, ["aiida", "jobs", "--status", "completed", "--limit", "5"])
    assert result.exit_code == 0, result.output
    assert result.output.count("COMPLETED") == 5


def test_limited_listing_is_the_head_of_the_full_one_with_its_energies(aiida_profile, tmp_path):
    """The limit goes into the SQL and energies are fetched for the listed rows only: the rows
    and energies must still be those of the full listing (these jobs are the newest: year 2099)."""
    rows = [
        (f"future {i}", str(tmp_path / str(i)), "FAILED" if i % 4 == 0 else "COMPLETED",
         f"2099-01-01 00:{i:02d}:00", None if i % 3 == 0 else -100.0 - i)
        for i in range(12)
    ]
    import_tui_jobs(_tui_db(tmp_path / "future.db", rows))
    full = list_crystal_jobs()
    assert [(row.label, row.energy_hartree) for row in full[:12]] == [
        (name, energy) for name, _, _, _, energy in reversed(rows)
    ]
    assert list_crystal_jobs(limit=5) == full[:5]
    assert (
        list_crystal_jobs("failed", limit=2) == [row for row in full if row.status == "FAILED"][:2]
    )
    assert list_crystal_jobs(limit=0) == []
