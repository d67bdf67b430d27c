"""Create or upgrade the CRYSTAL-TOOLS terminal UI's schema (v9) in a shared SQLite file.

The steps replay the UI's own migrations (``Database.SCHEMA_V1`` and ``MIGRATION_Vn_TO_Vn+1`` of
the Textual app, ``tui/src/core/database.py`` in TheFermiSea/CrystalMath, found through the public
code corpus), so a file we upgrade is indistinguishable from one the UI upgraded:

====  ==========================================================================================
v1    ``jobs`` (status CHECK without CANCELLED in the first releases), its two indexes,
      ``schema_version``
v2    ``jobs`` gains cluster_id, runner_type, parallelism_config, queue_time, start_time,
      end_time; ``clusters``, ``remote_jobs``, ``job_dependencies`` and their indexes
v3    ``jobs.dft_code``
v4    ``jobs`` rebuilt so its status CHECK admits CANCELLED (skipped when it already does)
v5    ``job_results``, filled from ``jobs.key_results``
v6    ``materials_cache``, ``materials_structures``, ``mpcontribs_cache``
v7    ``expires_at`` on ``materials_structures`` and ``mpcontribs_cache``
v8    ``clusters`` gains cry23_root, vasp_root, setup_commands
v9    ``jobs.workflow_id``
====  ==========================================================================================

Two deliberate differences, both about not losing rows:

* the v4 rebuild runs with ``foreign_keys=OFF`` (as SQLite's documented table-rebuild procedure
  requires). The UI runs it with foreign keys ON, where ``DROP TABLE jobs`` deletes the
  ``remote_jobs``, ``job_dependencies`` rows pointing at jobs through ``ON DELETE CASCADE``;
* the rebuild copies columns by name, not ``SELECT *``.

All steps run in one ``BEGIN IMMEDIATE`` transaction, re-reading the version inside it, so two
processes opening an old file at once upgrade it once. Our own tables are prefixed ``jobflow_``
and never touch the UI's tables or their constraints.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from crystal_atomate.stores.sqlite_db import write_transaction
from crystal_atomate.stores.sqlite_store import create_collection

__all__ = [
    "UI_SCHEMA_VERSION",
    "UI_V1_SQL",
    "UI_V1_LEGACY_SQL",
    "UI_MIGRATIONS",
    "LINKS_DDL",
    "WAITS_TABLE",
    "ensure_ui_schema",
    "ui_schema_version",
    "render_schema_sql",
]

UI_SCHEMA_VERSION = 9
#: (collection, key) pairs CrystalMathJobStore creates: job documents, and data blobs.
DEFAULT_COLLECTIONS = (("outputs", "uuid"), ("outputs_blobs", "blob_uuid"))

_JOBS_V1_COLUMNS = """
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    work_dir TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL CHECK(status IN ({statuses})),
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    started_at TIMESTAMP,
    completed_at TIMESTAMP,
    pid INTEGER,
    input_file TEXT,
    final_energy REAL,
    key_results TEXT"""

_STATUSES = "'PENDING', 'QUEUED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED'"
_LEGACY_STATUSES = "'PENDING', 'QUEUED', 'RUNNING', 'COMPLETED', 'FAILED'"

_V1_TEMPLATE = """
CREATE TABLE IF NOT EXISTS jobs ({columns}
);
CREATE INDEX IF NOT EXISTS idx_jobs_status ON jobs (status);
CREATE INDEX IF NOT EXISTS idx_jobs_created ON jobs (created_at DESC);
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY,
    applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
"""

#: What the UI creates for a new file today (CANCELLED already allowed).
UI_V1_SQL = _V1_TEMPLATE.format(columns=_JOBS_V1_COLUMNS.format(statuses=_STATUSES))
#: What the first UI releases created (no CANCELLED); the v4 step exists for these files.
UI_V1_LEGACY_SQL = _V1_TEMPLATE.format(columns=_JOBS_V1_COLUMNS.format(statuses=_LEGACY_STATUSES))

_V2_SQL = """
ALTER TABLE jobs ADD COLUMN cluster_id INTEGER REFERENCES clusters(id) ON DELETE SET NULL;
ALTER TABLE jobs ADD COLUMN runner_type TEXT DEFAULT 'local' CHECK(runner_type IN ('local', 'ssh', 'slurm'));
ALTER TABLE jobs ADD COLUMN parallelism_config TEXT;
ALTER TABLE jobs ADD COLUMN queue_time TIMESTAMP;
ALTER TABLE jobs ADD COLUMN start_time TIMESTAMP;
ALTER TABLE jobs ADD COLUMN end_time TIMESTAMP;
CREATE TABLE IF NOT EXISTS clusters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL CHECK(type IN ('ssh', 'slurm')),
    hostname TEXT NOT NULL,
    port INTEGER NOT NULL DEFAULT 22,
    username TEXT NOT NULL,
    connection_config TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'active' CHECK(status IN ('active', 'inactive', 'error')),
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_clusters_status ON clusters (status);
CREATE INDEX IF NOT EXISTS idx_clusters_type ON clusters (type);
CREATE TABLE IF NOT EXISTS remote_jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL,
    cluster_id INTEGER NOT NULL,
    remote_handle TEXT NOT NULL,
    submission_time TIMESTAMP,
    queue_name TEXT,
    node_list TEXT,
    working_directory TEXT NOT NULL,
    stdout_path TEXT,
    stderr_path TEXT,
    metadata TEXT,
    FOREIGN KEY (job_id) REFERENCES jobs(id) ON DELETE CASCADE,
    FOREIGN KEY (cluster_id) REFERENCES clusters(id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS idx_remote_jobs_job_id ON remote_jobs (job_id);
CREATE INDEX IF NOT EXISTS idx_remote_jobs_cluster_id ON remote_jobs (cluster_id);
CREATE INDEX IF NOT EXISTS idx_remote_jobs_handle ON remote_jobs (remote_handle);
CREATE TABLE IF NOT EXISTS job_dependencies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL,
    depends_on_job_id INTEGER NOT NULL,
    dependency_type TEXT NOT NULL CHECK(dependency_type IN ('after_ok', 'after_any', 'after_failed')),
    FOREIGN KEY (job_id) REFERENCES jobs(id) ON DELETE CASCADE,
    FOREIGN KEY (depends_on_job_id) REFERENCES jobs(id) ON DELETE CASCADE,
    UNIQUE(job_id, depends_on_job_id)
);
CREATE INDEX IF NOT EXISTS idx_dependencies_job_id ON job_dependencies (job_id);
CREATE INDEX IF NOT EXISTS idx_dependencies_depends_on ON job_dependencies (depends_on_job_id);
"""  # noqa: E501 - the UI's migration SQL verbatim: sqlite_master keeps its text

_V3_SQL = """
ALTER TABLE jobs ADD COLUMN dft_code TEXT DEFAULT 'crystal' CHECK(dft_code IN ('crystal', 'quantum_espresso', 'vasp'));
"""  # noqa: E501 - the UI's migration SQL verbatim: sqlite_master keeps its text

_JOBS_V4_COLUMNS = (
    "id, name, work_dir, status, created_at, started_at, completed_at, pid, input_file, "
    "final_energy, key_results, cluster_id, runner_type, parallelism_config, queue_time, "
    "start_time, end_time, dft_code"
)

_V4_SQL = f"""
CREATE TABLE jobs_new ({_JOBS_V1_COLUMNS.format(statuses=_STATUSES)},
    cluster_id INTEGER REFERENCES clusters(id) ON DELETE SET NULL,
    runner_type TEXT DEFAULT 'local' CHECK(runner_type IN ('local', 'ssh', 'slurm')),
    parallelism_config TEXT,
    queue_time TIMESTAMP,
    start_time TIMESTAMP,
    end_time TIMESTAMP,
    dft_code TEXT DEFAULT 'crystal' CHECK(dft_code IN ('crystal', 'quantum_espresso', 'vasp'))
);
INSERT INTO jobs_new ({_JOBS_V4_COLUMNS}) SELECT {_JOBS_V4_COLUMNS} FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_new RENAME TO jobs;
CREATE INDEX IF NOT EXISTS idx_jobs_status ON jobs (status);
CREATE INDEX IF NOT EXISTS idx_jobs_created ON jobs (created_at DESC);
"""

_V5_SQL = """
CREATE TABLE IF NOT EXISTS job_results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL UNIQUE,
    key_results TEXT,
    convergence_status TEXT,
    scf_cycles INTEGER,
    cpu_time_seconds REAL,
    wall_time_seconds REAL,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    FOREIGN KEY (job_id) REFERENCES jobs(id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS idx_job_results_job_id ON job_results (job_id);
INSERT OR IGNORE INTO job_results (job_id, key_results, created_at)
    SELECT id, key_results, CURRENT_TIMESTAMP FROM jobs WHERE key_results IS NOT NULL;
"""

_V6_SQL = """
CREATE TABLE IF NOT EXISTS materials_cache (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL CHECK(source IN ('mp', 'mpcontribs', 'optimade')),
    cache_key TEXT NOT NULL,
    query_json TEXT NOT NULL,
    response_json TEXT NOT NULL,
    base_url TEXT,
    etag TEXT,
    fetched_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    expires_at TIMESTAMP
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_materials_cache_key ON materials_cache (source, cache_key);
CREATE TABLE IF NOT EXISTS materials_structures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL CHECK(source IN ('mp', 'mpcontribs', 'optimade')),
    material_id TEXT NOT NULL,
    formula TEXT,
    structure_json TEXT NOT NULL,
    cif_text TEXT,
    d12_text TEXT,
    fetched_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_materials_structures_unique ON materials_structures (source, material_id);
CREATE TABLE IF NOT EXISTS mpcontribs_cache (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project TEXT NOT NULL,
    contribution_id TEXT,
    material_id TEXT,
    data_json TEXT NOT NULL,
    fetched_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_mpcontribs_project ON mpcontribs_cache (project);
"""  # noqa: E501 - the UI's migration SQL verbatim: sqlite_master keeps its text

_V7_SQL = """
ALTER TABLE materials_structures ADD COLUMN expires_at TEXT;
ALTER TABLE mpcontribs_cache ADD COLUMN expires_at TEXT;
"""

_V8_SQL = """
ALTER TABLE clusters ADD COLUMN cry23_root TEXT;
ALTER TABLE clusters ADD COLUMN vasp_root TEXT;
ALTER TABLE clusters ADD COLUMN setup_commands TEXT;
"""

_V9_SQL = """
ALTER TABLE jobs ADD COLUMN workflow_id TEXT;
"""

#: Links a jobflow job uuid to the UI's job row it is mirrored into (ours, prefixed).
#: Blobs a stored job document names that are not stored yet (stores/tui_completion.py).
WAITS_TABLE = "jobflow_blob_waits"
LINKS_DDL = [
    """CREATE TABLE IF NOT EXISTS jobflow_job_links (
    job_uuid TEXT PRIMARY KEY,
    tui_job_id INTEGER NOT NULL UNIQUE REFERENCES jobs(id) ON DELETE CASCADE
)""",
    f"""CREATE TABLE IF NOT EXISTS {WAITS_TABLE} (
    blob_uuid TEXT NOT NULL,
    job_uuid TEXT NOT NULL,
    job_index INTEGER NOT NULL,
    docs_collection TEXT NOT NULL,
    PRIMARY KEY (blob_uuid, job_uuid, job_index)
)""",
    f"CREATE INDEX IF NOT EXISTS ix_{WAITS_TABLE}_job ON {WAITS_TABLE} (job_uuid, job_index)",
]


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def _run(script: str) -> Callable[[sqlite3.Connection], None]:
    """Make a step whose ``ADD COLUMN`` statements are skipped when the column is already there.

    The UI tolerates partially applied steps the same way, via 'duplicate column name'.
    """

    def step(conn: sqlite3.Connection) -> None:
        for statement in _statements(script):
            words = statement.split()
            if words[:2] == ["ALTER", "TABLE"] and words[3:5] == ["ADD", "COLUMN"]:
                if words[5] in _columns(conn, words[2]):
                    continue
            conn.execute(statement)

    return step


def _v4(conn: sqlite3.Connection) -> None:
    """Rebuild ``jobs`` only if its status CHECK lacks CANCELLED, as the UI does."""
    sql = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type='table' AND name='jobs'"
    ).fetchone()
    if sql and "'CANCELLED'" in sql[0]:
        return
    _run(_V4_SQL)(conn)


#: Step n brings a file from version n-1 to n.
UI_MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    2: _run(_V2_SQL),
    3: _run(_V3_SQL),
    4: _v4,
    5: _run(_V5_SQL),
    6: _run(_V6_SQL),
    7: _run(_V7_SQL),
    8: _run(_V8_SQL),
    9: _run(_V9_SQL),
}


def ui_schema_version(conn: sqlite3.Connection) -> int:
    """``MAX(version)`` of ``schema_version``; 0 for a file the UI never touched."""
    try:
        row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    except sqlite3.OperationalError:
        return 0
    return row[0] or 0


def _our_tables_present(conn: sqlite3.Connection) -> bool:
    found = conn.execute(
        "SELECT COUNT(*) FROM sqlite_master WHERE type='table' AND name IN (?, ?)",
        ("jobflow_job_links", WAITS_TABLE),
    ).fetchone()[0]
    return found == 2


def _upgrade(conn: sqlite3.Connection) -> int:
    version = ui_schema_version(conn)
    if version == 0:
        # A new file, or a jobs table from before versioning: both start as v1, as in the UI.
        _run(UI_V1_SQL)(conn)
        conn.execute("INSERT INTO schema_version (version) VALUES (1)")
        version = 1
    for target in range(version + 1, UI_SCHEMA_VERSION + 1):
        UI_MIGRATIONS[target](conn)
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (target,))
    for statement in LINKS_DDL:
        conn.execute(statement)
    return version


def ensure_ui_schema(conn: sqlite3.Connection) -> int:
    """Bring the UI schema to v9 and add our tables (links, blob waits); returns the version found.

    A file already at v9 (or newer: a later UI we do not know, left alone) costs two reads.
    Foreign keys are switched off around the upgrade because SQLite forbids changing them
    inside a transaction and the v4 table rebuild must not cascade.
    """
    version = ui_schema_version(conn)
    if version >= UI_SCHEMA_VERSION and _our_tables_present(conn):
        return version
    conn.execute("PRAGMA foreign_keys=OFF")
    try:
        with write_transaction(conn):
            found = ui_schema_version(conn)
            if found >= UI_SCHEMA_VERSION:
                for statement in LINKS_DDL:
                    conn.execute(statement)
            else:
                found = _upgrade(conn)
    finally:
        conn.execute("PRAGMA foreign_keys=ON")
    return found


def render_schema_sql(collections: tuple[tuple[str, str], ...] = DEFAULT_COLLECTIONS) -> str:
    """Render the schema of a new shared file (UI v9 plus our tables), as ``stores/schema.sql``."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    ensure_ui_schema(conn)
    with write_transaction(conn):
        for name, key in collections:
            create_collection(conn, name, key)
    rows = conn.execute(
        "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' "
        "ORDER BY rowid"
    ).fetchall()
    header = (
        "-- Schema of a new shared .crystal_tui.db: the CRYSTAL-TOOLS UI schema v9 plus\n"
        "-- crystal_atomate's own tables (prefixed jobflow_). Generated by\n"
        "-- crystal_atomate.stores.tui_schema.render_schema_sql(); a test keeps it in sync.\n\n"
    )
    return header + "".join(f"{sql};\n\n" for (sql,) in rows).rstrip() + "\n"
