"""``crystal-atomate aiida``: setup in a fresh AIIDA_PATH (twice: idempotent), the job list, and the
import of the terminal UI's jobs, all on real profiles."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing

import pytest
from aiida import orm
from typer.testing import CliRunner

from crystal_atomate.aiida.query import (
    CRYSTAL_PROCESS_TYPES,
    ImportSummary,
    import_tui_jobs,
    list_crystal_jobs,
)
from crystal_atomate.cli import app
from crystal_atomate.stores.tui_schema import ensure_ui_schema
from crystal_atomate.testing.recipes import MGO_STATIC_HA
from crystal_atomate.testing.reference import reference_dir


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
    static = subprocess.run(
        [sys.executable, "-c", _DEMO_STATIC], env=env, capture_output=True, text=True, timeout=300
    )
    assert static.returncode == 0, static.stderr
    exit_status, energy = static.stdout.split()
    assert exit_status == "0" and float(energy) == pytest.approx(MGO_STATIC_HA, abs=1e-8)


#: The demo's MgO static as a CalcJob on the profile 'fresh', nothing but ``setup --replay`` done.
_DEMO_STATIC = """
from aiida import load_profile, orm
from aiida.engine import run_get_node
from crystal_atomate.aiida.calculations import CrystalCalculation
from crystal_atomate.aiida.parameters import parameters_from_generator
from crystal_atomate.aiida.structures import structure_to_node
from crystal_atomate.demo import mgo_makers, mgo_structure
load_profile("fresh")
structure, _ = structure_to_node(mgo_structure())
parameters = parameters_from_generator(mgo_makers()["static"].input_set_generator, title="static")
_, node = run_get_node(CrystalCalculation, code=orm.load_code("crystal"), structure=structure,
                       parameters=orm.Dict(parameters))
print(node.exit_status, node.outputs.output_parameters["energy_hartree"])
"""


def test_every_profile_setup_makes_or_finds_polls_each_second(tmp_path):
    """An in-process work chain learns that its CalcJob finished by polling (AiiDA's default: every
    60 s); a profile setup makes or finds polls every second, unless its owner chose a value."""
    script = (
        "from aiida.manage.configuration import create_profile, get_config\n"
        "from crystal_atomate.aiida.setup import ensure_profile\n"
        "config = get_config(create=True)\n"
        "for name, poll in (('found', None), ('chosen', 5)):\n"
        "    profile = create_profile(config, name=name, email='a@b', "
        "storage_backend='core.sqlite_dos',\n"
        "        storage_config={'filepath': f'{config.dirpath}/repository/{name}'}, "
        "broker_backend=None)\n"
        "    if poll: profile.set_option('runner.poll.interval', poll)\n"
        "    config.update_profile(profile)\n"
        "config.store()\n"
        "for name in ('found', 'chosen', 'made'):\n"
        "    print(name, ensure_profile(name).get_option('runner.poll.interval'))\n"
    )
    env = dict(os.environ, AIIDA_PATH=str(tmp_path))
    env.pop("AIIDA_PROFILE", None)
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["found", "1", "chosen", "5", "made", "1"]


def _tui_db(path, jobs):
    with sqlite3.connect(path) as conn:
        ensure_ui_schema(conn)
        conn.executemany(
            "INSERT INTO jobs (name, work_dir, status, created_at, final_energy) VALUES (?, ?, ?, "
            "?, ?)",
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
    assert import_tui_jobs(db) == ImportSummary(imported=3, updated=0, unchanged=0, ours=0)
    assert import_tui_jobs(db) == ImportSummary(imported=0, updated=0, unchanged=3, ours=0)
    rows = {row.label: row for row in list_crystal_jobs()}
    assert (
        rows["MgO scf"].status == "COMPLETED" and rows["MgO scf"].energy_hartree == -275.4485911374
    )
    assert rows["NiO opt"].status == "FAILED" and rows["Si bands"].status == "RUNNING"
    assert rows["MgO scf"].ctime.isoformat().startswith("2024-03-01T10:00:00")
    result = CliRunner().invoke(app, ["aiida", "import-tui", "--db", str(db)])
    assert (
        result.exit_code == 0
        and "imported 0 job(s), updated 0, 3 already in AiiDA" in result.output
    )


def test_jobs_lists_hundreds_of_calculations(aiida_profile, tmp_path):
    """Every CRYSTAL calculation of the profile is listed, newest first, each with its status and
    energy (how fast is ``benchmarks/bench_aiida.py``'s business, at 1,000 calculations)."""
    rows = [
        (f"many {i}", str(tmp_path / str(i)), "FAILED" if i % 7 == 0 else "COMPLETED",
         f"2024-01-01 {i // 60:02d}:{i % 60:02d}:00", None if i % 5 == 0 else -1.0 - i)
        for i in range(300)
    ]
    import_tui_jobs(_tui_db(tmp_path / "many.db", rows))
    listed = list_crystal_jobs()
    crystal = orm.QueryBuilder().append(
        orm.CalcJobNode, filters={"process_type": {"in": list(CRYSTAL_PROCESS_TYPES)}}
    )
    assert len(listed) == crystal.count() >= 300
    assert [
        (row.label, row.status, row.energy_hartree)
        for row in listed
        if row.label.startswith("many ")
    ] == [(name, status, energy) for name, _, status, _, energy in reversed(rows)]
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


def _broken_postgres_profile(env: dict[str, str]) -> None:
    """A profile 'pg' whose PostgreSQL server is not there (a port nothing listens on)."""
    script = (
        "import json, socket\n"
        "from aiida.manage.configuration import create_profile, get_config\n"
        "config = get_config(create=True)\n"
        "create_profile(config, name='pg', email='a@b', storage_backend='core.sqlite_dos',\n"
        "               storage_config={'filepath': f'{config.dirpath}/repository/pg'}, "
        "broker_backend=None)\n"
        "config.store()\n"
        "with socket.socket() as s:\n"
        "    s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]\n"
        "data = json.load(open(config.filepath))\n"
        "data['profiles']['pg']['storage'] = {'backend': 'core.psql_dos', 'config': {\n"
        "    'database_engine': 'postgresql_psycopg', 'database_hostname': '127.0.0.1', "
        "'database_port': port,\n"
        "    'database_name': 'missing', 'database_username': 'aiida', 'database_password': "
        "'aiida',\n"
        "    'repository_uri': f'file://{config.dirpath}/repository/pg'}}\n"
        "json.dump(data, open(config.filepath, 'w'))\n"
    )
    subprocess.run(
        [sys.executable, "-c", script], env=env, check=True, capture_output=True, timeout=120
    )


def _snapshot(root) -> dict[str, float]:
    """Every file and its mtime, but AiiDA's process-access tracker.

    That is ``.aiida/access/<profile>/<pid>.pid``, which AiiDA writes on opening a storage and
    clears as stale later: not the user's data.
    """
    return {
        str(path): path.stat().st_mtime
        for path in root.rglob("*")
        if path.is_file() and "access" not in path.relative_to(root).parts
    }


@pytest.mark.parametrize(
    ("args", "exit_code", "message"),
    [
        (
            ("setup", "--profile", "new", "--crystal", "/no/such/crystal"),
            2,
            "error: the crystal executable '/no/such/crystal' is not on this machine's PATH",
        ),
        (
            ("setup", "--profile", "new", "--properties", "no-such-properties", "--crystal", "sh"),
            2,
            "error: the properties executable 'no-such-properties' is not on this machine's PATH",
        ),
        (
            ("jobs", "--status", "bogus"),
            2,
            "error: unknown status 'bogus'; choose from pending, queued, running, completed, "
            "failed, cancelled",
        ),
        (("jobs", "--profile", "nope"), 2, "error: no AiiDA profile 'nope'"),
        (
            ("import-tui", "--profile", "nope", "--db", "{ui_db}"),
            2,
            "error: no AiiDA profile 'nope'",
        ),
        (
            ("jobs", "--profile", "pg"),
            1,
            "error: the storage of profile 'pg' cannot be opened: connection failed",
        ),
        (
            ("import-tui", "--profile", "pg", "--db", "{ui_db}"),
            1,
            "error: the storage of profile 'pg' cannot be opened: connection failed",
        ),
    ],
    ids=["setup-no-crystal", "setup-no-properties", "jobs-bad-status", "jobs-unknown-profile",
         "import-unknown-profile", "jobs-no-database", "import-no-database"],
)
def test_bad_input_is_one_line_and_an_exit_code(tmp_path, args, exit_code, message):
    env = dict(
        os.environ,
        AIIDA_PATH=str(tmp_path / "aiida"),
        CRYSTAL_ATOMATE_CRYSTAL_CMD="no-such-crystal",
    )
    env.pop("AIIDA_PROFILE", None)
    _broken_postgres_profile(env)
    ui_db = _tui_db(
        tmp_path / "ui.db", [("MgO scf", str(tmp_path), "COMPLETED", "2024-03-01 10:00:00", -1.0)]
    )
    before = _snapshot(tmp_path)
    result = _cli(env, *(arg.format(ui_db=ui_db) for arg in args))
    assert result.returncode == exit_code, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith(message), result.stderr
    assert len(lines) <= 2 and all(line.startswith(("error: ", "hint: ")) for line in lines), (
        result.stderr
    )
    assert _snapshot(tmp_path) == before


def test_setup_without_crystal_names_the_three_fixes(tmp_path):
    env = dict(os.environ, AIIDA_PATH=str(tmp_path), CRYSTAL_ATOMATE_CRYSTAL_CMD="no-such-crystal")
    env.pop("AIIDA_PROFILE", None)
    result = _cli(env, "setup", "--profile", "new")
    assert result.returncode == 2
    assert result.stderr.splitlines()[1] == (
        "hint: pass --crystal PATH, set CRYSTAL_ATOMATE_CRYSTAL_CMD, or use --replay (the recorded "
        "demo runs)"
    )
    assert not (tmp_path / ".aiida" / "config.json").exists()


def _mgo_deck() -> str:
    return (reference_dir() / "mgo_scf_band_doss_b3lyp_crystal17" / "INPUT.d12").read_text()


def _set_status(db, name: str, status: str, energy: float | None) -> None:
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute(
            "UPDATE jobs SET status = ?, final_energy = ? WHERE name = ?", (status, energy, name)
        )


def _imported(db, name: str) -> orm.CalcJobNode:
    (node,) = orm.QueryBuilder().append(
        orm.CalcJobNode, filters={"label": name, "extras.tui_job.db": str(db.resolve())}
    ).all(flat=True)
    return node


def test_migration_carries_deck_structure_results_and_follows_running_jobs(aiida_profile, tmp_path):
    db = _tui_db(
        tmp_path / "migrate.db",
        [
            (
                "MgO static",
                str(tmp_path / "mgo"),
                "COMPLETED",
                "2024-05-01 10:00:00",
                -275.4485911374,
            ),
            ("MgO later", str(tmp_path / "later"), "RUNNING", "2024-05-02 10:00:00", None),
        ],
    )
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute(
            "UPDATE jobs SET input_file = ?, key_results = ?", (_mgo_deck(), '{"band_gap_ev": 7.2}')
        )
    db.chmod(0o444)
    content = db.read_bytes()
    assert import_tui_jobs(db) == ImportSummary(imported=2, updated=0, unchanged=0, ours=0)
    done = _imported(db, "MgO static")
    assert done.is_sealed and done.is_finished_ok
    assert done.inputs.deck.get_content() == _mgo_deck()
    structure = done.inputs.structure.get_pymatgen()
    assert (
        structure.composition.reduced_formula == "MgO"
        and structure.lattice.a == pytest.approx(4.217, abs=1e-6)
        and len(structure) == 8
    )
    assert done.outputs.output_parameters.get_dict() == {
        "band_gap_ev": 7.2, "energy_hartree": -275.4485911374, "state": "completed"
    }
    running = _imported(db, "MgO later")
    assert (
        running.process_state is None and not running.is_sealed
    )  # no daemon owns it: verdi process ignores it
    assert {row.label: row.status for row in list_crystal_jobs()}["MgO later"] == "RUNNING"
    assert db.read_bytes() == content

    db.chmod(0o644)
    _set_status(db, "MgO later", "COMPLETED", -275.5)
    assert import_tui_jobs(db) == ImportSummary(imported=0, updated=1, unchanged=1, ours=0)
    finished = _imported(db, "MgO later")
    assert finished.uuid == running.uuid and finished.is_sealed and finished.is_finished_ok
    assert finished.outputs.output_parameters["energy_hartree"] == -275.5
    assert import_tui_jobs(db) == ImportSummary(imported=0, updated=0, unchanged=2, ours=0)


def test_migration_skips_jobs_we_ran_through_aiida(aiida_profile, tmp_path):
    ours = orm.CalcJobNode(process_type=CRYSTAL_PROCESS_TYPES[0])
    ours.base.extras.set_many(
        {"jobflow_directory": str(tmp_path / "ours"), "jobflow_uuid": "feed-beef"}
    )
    ours.store()
    db = _tui_db(tmp_path / "mixed.db", [
        ("run by us", str(tmp_path / "ours"), "COMPLETED", "2024-06-01 10:00:00", -1.0),
        ("run by the UI", str(tmp_path / "theirs"), "COMPLETED", "2024-06-01 11:00:00", -2.0),
    ])
    assert import_tui_jobs(db) == ImportSummary(imported=1, updated=0, unchanged=0, ours=1)
    assert import_tui_jobs(db) == ImportSummary(imported=0, updated=0, unchanged=1, ours=1)
