"""Upgrading UI databases created at versions 1..9 keeps every row; stores/schema.sql is in sync."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from crystal_atomate.stores import CrystalMathJobStore
from crystal_atomate.stores.tui_schema import (
    UI_MIGRATIONS,
    UI_V1_LEGACY_SQL,
    render_schema_sql,
    ui_schema_version,
)

REPO = Path(__file__).resolve().parents[2]

# Rows each table can hold from the version that introduced it (and its columns then).
SEED = {
    1: ["INSERT INTO jobs(name, work_dir, status, final_energy, key_results) VALUES "
        "('old1', '/runs/old1', 'COMPLETED', -275.1, '{\"e\": 1}')",
        "INSERT INTO jobs(name, work_dir, status) VALUES ('old2', '/runs/old2', 'FAILED')"],
    2: ["INSERT INTO clusters(name, type, hostname, username, connection_config) VALUES "
        "('hpc', 'slurm', 'login', 'me', '{}')",
        "INSERT INTO remote_jobs(job_id, cluster_id, remote_handle, working_directory) VALUES "
        "(1, 1, '4242', '/scratch/old1')",
        "INSERT INTO job_dependencies(job_id, depends_on_job_id, dependency_type) VALUES "
        "(2, 1, 'after_ok')"],
    5: ["INSERT INTO job_results(job_id, convergence_status, scf_cycles) VALUES (2, 'no', 3)"],
    6: ["INSERT INTO materials_cache(source, cache_key, query_json, response_json) VALUES "
        "('mp', 'k', '{}', '{}')",
        "INSERT INTO materials_structures(source, material_id, structure_json) VALUES "
        "('mp', 'mp-1265', '{}')",
        "INSERT INTO mpcontribs_cache(project, data_json) VALUES ('p', '{}')"],
}
TABLES = ["jobs", "clusters", "remote_jobs", "job_dependencies", "job_results",
          "materials_cache", "materials_structures", "mpcontribs_cache"]


def build_ui_db(path: Path, version: int) -> None:
    """A file as the UI left it at ``version``: the legacy v1 DDL, then the UI's steps, with
    rows added as tables appear; the UI's own connection settings (foreign keys ON)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys=ON")
    conn.executescript(UI_V1_LEGACY_SQL)
    conn.execute("INSERT INTO schema_version(version) VALUES (1)")
    for stmt in SEED[1]:
        conn.execute(stmt)
    for v in range(2, version + 1):
        conn.execute("PRAGMA foreign_keys=OFF")
        UI_MIGRATIONS[v](conn)
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("INSERT INTO schema_version(version) VALUES (?)", (v,))
        for stmt in SEED.get(v, []):
            conn.execute(stmt)
    conn.close()


def snapshot(path: Path) -> dict:
    conn = sqlite3.connect(path)
    present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    out = {}
    for table in TABLES:
        if table in present:
            cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
            out[table] = {
                row[0]: dict(zip(cols, row, strict=True))
                for row in conn.execute(f"SELECT * FROM {table}")
            }
    return out


@pytest.mark.parametrize("version", range(1, 10))
def test_upgrade_keeps_every_row(tmp_path, version):
    db = tmp_path / ".crystal_tui.db"
    build_ui_db(db, version)
    before = snapshot(db)
    store = CrystalMathJobStore(db)
    store.connect()
    conn = sqlite3.connect(db, isolation_level=None)
    assert ui_schema_version(conn) == 9
    after = snapshot(db)
    for table, rows in before.items():
        assert set(after[table]) == set(rows), table
        for rid, row in rows.items():
            for col, value in row.items():
                assert after[table][rid][col] == value, (table, rid, col)
    jobs_sql = conn.execute("SELECT sql FROM sqlite_master WHERE name='jobs'").fetchone()[0]
    assert "'CANCELLED'" in jobs_sql and "UNIQUE" in jobs_sql
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    cols = {r[1] for r in conn.execute("PRAGMA table_info(jobs)")}
    assert {"workflow_id", "dft_code", "cluster_id"} <= cols
    conn.execute("UPDATE jobs SET status='CANCELLED' WHERE name='old2'")
    store.docs_store.update({"uuid": "u", "index": 1, "name": "new", "output": {}})
    assert conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 3
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY version")]
    assert versions == list(range(1, 10))


def test_ui_constraints_kept(tmp_path):
    store = CrystalMathJobStore(tmp_path / "n.db")
    store.connect()
    conn = sqlite3.connect(store.db_file)
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO jobs(name, work_dir, status) VALUES ('x', '/a', 'BOGUS')")
    conn.execute("INSERT INTO jobs(name, work_dir, status) VALUES ('x', '/a', 'PENDING')")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO jobs(name, work_dir, status) VALUES ('y', '/a', 'PENDING')")


def test_schema_sql_in_sync():
    assert (REPO / "stores" / "schema.sql").read_text() == render_schema_sql()


def test_new_file_matches_schema_sql(tmp_path):
    store = CrystalMathJobStore(tmp_path / "fresh.db")
    store.connect()
    conn = sqlite3.connect(store.db_file)
    got = {r[0] for r in conn.execute(
        "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'")}
    text = (REPO / "stores" / "schema.sql").read_text()
    assert all(sql in text for sql in got)


def test_why_v4_runs_with_foreign_keys_off(tmp_path):
    """The UI's own v4 step, run with foreign keys ON as the UI does, loses remote_jobs rows."""
    db = tmp_path / "v3.db"
    build_ui_db(db, 3)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA foreign_keys=ON")
    assert conn.execute("SELECT COUNT(*) FROM remote_jobs").fetchone()[0] == 1
    UI_MIGRATIONS[4](conn)
    assert conn.execute("SELECT COUNT(*) FROM remote_jobs").fetchone()[0] == 0
