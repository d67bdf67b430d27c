"""The Materials Project cache in the shared database, with the real MPRester, a local server."""

from __future__ import annotations

import json
import logging
import math
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from pymatgen.core import Structure

from crystal_atomate.mp.cache import MaterialsProject, search_cache_key
from crystal_atomate.mp.client import MPClient, MPQuery, RetryPolicy
from crystal_atomate.mp.errors import (
    MPAuthError,
    MPError,
    MPNotFoundError,
    MPOfflineError,
    MPRateLimitError,
)
from crystal_atomate.stores.sqlite_db import connect_sqlite
from crystal_atomate.stores.tui_schema import ensure_ui_schema
from crystal_atomate.testing.mp_server import CORE, DATA, SUMMARY, VALID_KEY, MPServer

FAST = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02)


def service(db_file: Path, **kwargs) -> MaterialsProject:
    return MaterialsProject(db_file, client=MPClient(retry=FAST), **kwargs)


def rows(db_file: Path, table: str) -> list[dict]:
    conn = sqlite3.connect(db_file)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY id")]
    finally:
        conn.close()


def searches(db_file: Path) -> list[dict]:
    """The search rows of ``materials_cache`` (each structure also has a ``get_structure`` row)."""
    return [r for r in rows(db_file, "materials_cache") if not r["cache_key"].startswith("get_")]


def expire(db_file: Path, *tables: str) -> None:
    """Make every row of ``tables`` (default: both cache tables) stale, as time passing would."""
    past = (datetime.now() - timedelta(minutes=1)).isoformat()
    with sqlite3.connect(db_file) as conn:
        for table in tables or ("materials_structures", "materials_cache"):
            conn.execute(f"UPDATE {table} SET expires_at = ?", (past,))
    conn.close()


def test_structure_row_as_the_ui_defines_it(mp_server: MPServer, db_file: Path) -> None:
    mp = service(db_file)
    mp.get_structure("mp-1265")
    mp.close()

    [row] = rows(db_file, "materials_structures")
    assert (row["source"], row["material_id"], row["formula"], row["d12_text"]) == (
        "mp", "mp-1265", "MgO", None,
    )
    stored = json.loads(row["structure_json"])
    assert (stored["material_id"], stored["source"], stored["formula"]) == ("mp-1265", "mp", "MgO")
    assert stored["metadata"]["origin"]["db_version"] == "2025.09.25"
    structure = Structure.from_dict(stored["structure"])
    assert structure.lattice.a == pytest.approx(4.25 / math.sqrt(2), abs=1e-6)
    assert "_cell_length_a   3.00520382" in row["cif_text"]
    fetched = datetime.fromisoformat(row["fetched_at"])
    assert row["updated_at"] == row["fetched_at"]
    assert datetime.fromisoformat(row["expires_at"]) - fetched == timedelta(days=30)
    assert abs(datetime.now() - fetched) < timedelta(minutes=1)


def test_schema_comes_from_the_shared_upgrade(mp_server: MPServer, db_file: Path) -> None:
    service(db_file).get_structure("mp-149")
    conn = sqlite3.connect(db_file)
    assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone() == (9,)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


def test_fresh_row_needs_no_network(mp_server: MPServer, db_file: Path) -> None:
    service(db_file).get_structure("mp-149")
    mp_server.stop()

    record = service(db_file).get_structure("mp-149")

    assert record.from_cache and record.formula == "Si" and record.nsites == 2
    assert record.origin.db_version == "2025.09.25"
    assert mp_server.hits(CORE) == 1


def test_refresh_bypasses_the_cache(mp_server: MPServer, db_file: Path) -> None:
    mp = service(db_file)
    mp.get_structure("mp-149")
    first = rows(db_file, "materials_structures")[0]["fetched_at"]

    record = mp.get_structure("mp-149", refresh=True)

    assert not record.from_cache and mp_server.hits(CORE) == 2
    [row] = rows(db_file, "materials_structures")
    assert row["fetched_at"] > first


def test_stale_row_is_refetched(mp_server: MPServer, db_file: Path) -> None:
    service(db_file).get_structure("mp-149")
    expire(db_file)

    record = service(db_file).get_structure("mp-149")

    assert not record.from_cache and mp_server.hits(CORE) == 2
    [row] = rows(db_file, "materials_structures")
    assert datetime.fromisoformat(row["expires_at"]) > datetime.now() + timedelta(days=29)


def test_stale_row_served_offline(
    mp_server: MPServer, db_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    service(db_file).get_structure("mp-1265")
    expire(db_file)
    before = rows(db_file, "materials_structures")
    mp_server.stop()

    with caplog.at_level(logging.WARNING):
        record = service(db_file).get_structure("mp-1265")

    assert record.from_cache and record.formula == "MgO"
    assert "Offline: serving mp-1265 cached on" in caplog.text
    assert rows(db_file, "materials_structures") == before


def test_refresh_offline_keeps_the_row(mp_server: MPServer, db_file: Path) -> None:
    service(db_file).get_structure("mp-1265")
    before = rows(db_file, "materials_structures")
    mp_server.stop()

    with pytest.raises(MPOfflineError, match="A copy cached on .* exists") as raised:
        service(db_file).get_structure("mp-1265", refresh=True)
    assert raised.value.hint == "run without --refresh to use it."
    assert rows(db_file, "materials_structures") == before


def test_offline_with_nothing_cached(mp_server: MPServer, db_file: Path) -> None:
    mp_server.stop()
    with pytest.raises(MPOfflineError, match="for mp-149. Nothing is cached for mp-149"):
        service(db_file).get_structure("mp-149")
    with pytest.raises(MPOfflineError, match=r"Nothing is cached for the search \(chemsys=Si\)"):
        service(db_file).search_structures(MPQuery(chemsys="Si"))
    assert not db_file.exists()


def test_search_row_as_the_ui_defines_it(mp_server: MPServer, db_file: Path) -> None:
    query = MPQuery(formula="Si", max_sites=4)
    records = service(db_file).search_structures(query)

    assert [r.material_id for r in records] == ["mp-149", "mp-165"]
    [row] = searches(db_file)
    assert (row["source"], row["base_url"], row["etag"]) == ("mp", mp_server.url, None)
    assert row["cache_key"] == search_cache_key(query)
    assert row["cache_key"].startswith("summary_search:") and len(row["cache_key"]) == 31
    assert json.loads(row["query_json"]) == query.model_dump()
    response = json.loads(row["response_json"])
    assert response["total_count"] == 2
    assert [(r["material_id"], r["properties"]) for r in response["records"]] == [
        ("mp-149", {"band_gap": 0.61, "energy_above_hull": 0.0, "is_stable": True}),
        ("mp-165", {"band_gap": 0.43, "energy_above_hull": 0.011, "is_stable": False}),
    ]
    fetched = datetime.fromisoformat(row["fetched_at"])
    assert datetime.fromisoformat(row["expires_at"]) - fetched == timedelta(days=7)
    structures = rows(db_file, "materials_structures")
    assert [(s["material_id"], s["formula"]) for s in structures] == [
        ("mp-149", "Si"),
        ("mp-165", "Si"),
    ]


def test_search_served_from_cache(mp_server: MPServer, db_file: Path) -> None:
    query = MPQuery(chemsys="Si", stable=True)
    service(db_file).search_structures(query)
    mp_server.stop()

    records = service(db_file).search_structures(query)
    by_id = service(db_file).get_structure("mp-149")

    assert [(r.material_id, r.band_gap, r.from_cache) for r in records] == [("mp-149", 0.61, True)]
    assert by_id.from_cache and by_id.is_stable
    assert mp_server.hits(SUMMARY) == 1 and mp_server.hits(CORE) == 0


def test_different_queries_are_different_rows(mp_server: MPServer, db_file: Path) -> None:
    mp = service(db_file)
    mp.search_structures(MPQuery(formula="Si"))
    mp.search_structures(MPQuery(formula="Si", stable=True))
    mp.search_structures(MPQuery(formula="Si"))

    assert len(searches(db_file)) == 2
    assert mp_server.hits(SUMMARY) == 2


def test_stale_search_is_repeated(mp_server: MPServer, db_file: Path) -> None:
    service(db_file).search_structures(MPQuery(formula="MgO"))
    expire(db_file)

    records = service(db_file).search_structures(MPQuery(formula="MgO"))

    assert [r.material_id for r in records] == ["mp-1265"] and not records[0].from_cache
    assert mp_server.hits(SUMMARY) == 2


def test_a_cache_miss_renders_no_deck(mp_server: MPServer, db_file: Path) -> None:
    """The UI reads ``structure_json`` only: the structure of ``crystal-atomate run mp-1265`` is
    fetched and cached without building an input set for the cache row."""
    from crystal_atomate.cli.flows import load_structure_with_origin

    structure, origin = load_structure_with_origin("mp-1265")

    assert (structure.composition.reduced_formula, origin.material_id) == ("MgO", "mp-1265")
    [row] = rows(db_file, "materials_structures")
    assert (row["material_id"], row["d12_text"]) == ("mp-1265", None)
    assert "_cell_length_a   3.00520382" in row["cif_text"]


def test_a_refetch_clears_a_deck_an_older_version_stored(
    mp_server: MPServer, db_file: Path
) -> None:
    service(db_file).get_structure("mp-1265")
    with sqlite3.connect(db_file) as conn:
        conn.execute("UPDATE materials_structures SET d12_text = 'MgO\nEXTERNAL\n'")
    conn.close()

    service(db_file).get_structure("mp-1265", refresh=True)

    [row] = rows(db_file, "materials_structures")
    assert (row["material_id"], row["formula"], row["d12_text"]) == ("mp-1265", "MgO", None)


def insert_ui_row(db_file: Path, record: dict) -> None:
    """A ``materials_structures`` row as the UI's ``set_material_record`` writes it."""
    conn = connect_sqlite(db_file)
    ensure_ui_schema(conn)
    now = datetime.now()
    conn.execute(
        "INSERT INTO materials_structures (material_id, source, formula, structure_json,"
        " fetched_at, updated_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (record["material_id"], "mp", record["formula"], json.dumps(record), now.isoformat(),
         now.isoformat(), (now + timedelta(days=30)).isoformat()),
    )
    conn.close()


def test_row_written_by_the_ui_is_read(db_file: Path) -> None:
    """A row in the UI's own format (no origin, its timestamps) answers without any server."""
    structure = json.loads((DATA / "materials_core.json").read_text())[0]["structure"]
    insert_ui_row(db_file, {
        "material_id": "mp-2534", "source": "mp", "formula": "GaAs", "formula_pretty": "GaAs",
        "properties": {"band_gap": 0.19}, "metadata": {}, "structure": structure,
    })

    record = service(db_file).get_structure("mp-2534")

    assert (record.material_id, record.formula, record.band_gap) == ("mp-2534", "GaAs", 0.19)
    assert record.nsites == 2 and record.from_cache
    assert record.origin.material_id == "mp-2534"
    assert (record.origin.db_version, record.origin.endpoint, record.origin.retrieved_at) == (
        None,
    ) * 3


def test_ui_row_without_structure_is_completed(mp_server: MPServer, db_file: Path) -> None:
    insert_ui_row(db_file, {
        "material_id": "mp-149", "source": "mp", "formula": "Si", "formula_pretty": "Si",
        "properties": {}, "metadata": {},
    })

    record = service(db_file).get_structure("mp-149")

    assert not record.from_cache and record.nsites == 2
    [row] = rows(db_file, "materials_structures")
    assert Structure.from_dict(json.loads(row["structure_json"])["structure"]).num_sites == 2


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, MPAuthError), (404, MPNotFoundError), (429, MPRateLimitError), (None, MPOfflineError)],
)
def test_errors_keep_the_cache(
    mp_server: MPServer, db_file: Path, status: int | None, error: type[MPError]
) -> None:
    mp = service(db_file)
    mp.get_structure("mp-1265")
    mp.search_structures(MPQuery(formula="Si"))
    before = (rows(db_file, "materials_structures"), rows(db_file, "materials_cache"))
    if status is None:
        mp_server.stop()
    else:
        mp_server.fail(CORE, status)
        mp_server.fail(SUMMARY, status)

    with pytest.raises(error):
        service(db_file).get_structure("mp-1265", refresh=True)
    with pytest.raises(error):
        service(db_file).search_structures(MPQuery(formula="MgO"))

    assert (rows(db_file, "materials_structures"), rows(db_file, "materials_cache")) == before
    assert service(db_file).get_structure("mp-1265").from_cache


def test_key_never_stored(mp_server: MPServer, db_file: Path) -> None:
    mp = service(db_file)
    mp.get_structure("mp-1265")
    mp.search_structures(MPQuery(chemsys="Si"))
    mp.close()

    for table in ("materials_structures", "materials_cache"):
        assert VALID_KEY not in json.dumps(rows(db_file, table))
    for path in db_file.parent.iterdir():
        assert VALID_KEY.encode() not in path.read_bytes()
