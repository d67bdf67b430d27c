"""One cache with the UI: its own ``MaterialsService``/``CacheRepository`` read what we wrote, and
we serve what it cached, offline (the local Materials Project server, the UI's code from
``CRYSTALMATH_CLIENT_DIR``)."""

from __future__ import annotations

import asyncio
import inspect
import json
import sqlite3
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pymatgen.core import Structure

from crystal_atomate.mp.cache import (
    MaterialsProject,
    search_cache_key,
    structure_cache_key,
    ui_cache_key,
)
from crystal_atomate.mp.client import MPClient, MPQuery, RetryPolicy
from crystal_atomate.testing.mp_server import CORE, DATA, MPServer

FAST = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02)


def service(db_file: Path) -> MaterialsProject:
    return MaterialsProject(db_file, client=MPClient(retry=FAST))


async def _ui_get_structure(ui: ModuleType, db_file: Path, material_id: str) -> Any:
    async with ui.MaterialsService(db_path=db_file) as materials:
        return await materials.get_structure(material_id, fallback_to_optimade=False)


async def _ui_cached(ui: ModuleType, db_file: Path, key: str, source: str) -> Any:
    async with ui.CacheRepository(db_file) as cache:
        return await cache.get_cached_response(key, source)


@pytest.mark.parametrize(
    ("params", "prefix"),
    [
        ({"material_id": "mp-149"}, "get_structure"),
        ({"formula": "MgO", "include_contributions": False, "limit": 50}, "search_formula"),
        ({"formula": "Fe2O3", "providers": ["cod", "mp"], "limit": 5}, "search_optimade"),
        ({"material_id": "mp-149", "project": None}, "get_contributions"),
    ],
)
def test_keys_are_the_uis(ui_materials: ModuleType, params: dict, prefix: str) -> None:
    assert ui_cache_key(params, prefix) == ui_materials.generate_cache_key(params, prefix=prefix)


def test_search_keys(ui_materials: ModuleType) -> None:
    formula_only = MPQuery(formula="MgO", limit=50)
    assert search_cache_key(formula_only) == ui_materials.generate_cache_key(
        {"formula": "MgO", "include_contributions": False, "limit": 50}, prefix="search_formula"
    )
    other = MPQuery(formula="MgO", stable=True)
    assert search_cache_key(other).startswith("summary_search:")


def test_default_formula_search_shares_the_uis_key(ui_materials: ModuleType) -> None:
    """``mp search --formula MgO`` with no ``--limit`` asks what the UI's default search asks."""
    search = ui_materials.MaterialsService.search_by_formula
    ui_limit = inspect.signature(search).parameters["limit"].default
    assert MPQuery(formula="MgO").limit == ui_limit == 50
    assert search_cache_key(MPQuery(formula="MgO")) == ui_materials.generate_cache_key(
        {"formula": "MgO", "include_contributions": False, "limit": ui_limit},
        prefix="search_formula",
    )


def test_our_fetch_is_a_hit_for_the_ui(
    ui_materials: ModuleType, mp_server: MPServer, db_file: Path
) -> None:
    """What ``mp get`` fetched, the UI's ``MaterialsService.get_structure`` finds offline."""
    service(db_file).get_structure("mp-1265")
    mp_server.stop()

    record = asyncio.run(_ui_get_structure(ui_materials, db_file, "mp-1265"))

    assert (record.material_id, record.source, record.formula) == ("mp-1265", "mp", "MgO")
    assert record.structure.num_sites == 2
    assert record.structure.lattice.a == pytest.approx(3.00520382, abs=1e-6)
    assert record.metadata["origin"]["db_version"] == "2025.09.25"


def test_search_rows_are_the_uis(
    ui_materials: ModuleType, mp_server: MPServer, db_file: Path
) -> None:
    """Every row we write is one the UI's ``CacheRepository`` reads, fresh, with its source."""
    service(db_file).search_structures(MPQuery(formula="Si", limit=50))

    entry = asyncio.run(
        _ui_cached(ui_materials, db_file, search_cache_key(MPQuery(formula="Si", limit=50)), "mp")
    )
    assert entry is not None and not entry.is_expired
    response = entry.get_response()
    assert response["total_count"] == 2
    records = [ui_materials.MaterialRecord.from_dict(r) for r in response["records"]]
    assert [(r.material_id, r.band_gap, r.structure.num_sites) for r in records] == [
        ("mp-149", 0.61, 2),
        ("mp-165", 0.43, 4),
    ]
    for mid in ("mp-149", "mp-165"):
        assert asyncio.run(_ui_cached(ui_materials, db_file, structure_cache_key(mid), "mp"))


async def _ui_caches(ui: ModuleType, db_file: Path, record: Any) -> None:
    async with ui.MaterialsService(db_path=db_file) as materials:
        key = materials._generate_cache_key("get_structure", material_id=record.material_id)
        await materials._store_cache(key, record.to_dict(), record.source)


def test_the_uis_fetch_is_served_offline(ui_materials: ModuleType, db_file: Path) -> None:
    """A structure the UI's service cached (its key, its record) answers us with no server."""
    from crystal_atomate.stores.sqlite_db import connect_sqlite
    from crystal_atomate.stores.tui_schema import ensure_ui_schema

    conn = connect_sqlite(db_file)
    ensure_ui_schema(conn)
    conn.close()
    structure = Structure.from_dict(
        json.loads((DATA / "materials_core.json").read_text())[0]["structure"]
    )
    record = ui_materials.MaterialRecord(
        material_id="mp-2534",
        source="mp",
        formula="GaAs",
        formula_pretty="GaAs",
        structure=structure,
        properties={"band_gap": 0.19},
        metadata={},
    )
    asyncio.run(_ui_caches(ui_materials, db_file, record))

    ours = service(db_file).get_structure("mp-2534")

    assert (ours.material_id, ours.formula, ours.band_gap, ours.from_cache) == (
        "mp-2534",
        "GaAs",
        0.19,
        True,
    )
    assert ours.nsites == structure.num_sites
    assert ours.origin.endpoint is None


def test_expired_ui_row_is_refetched(
    ui_materials: ModuleType, mp_server: MPServer, db_file: Path
) -> None:
    service(db_file).get_structure("mp-149")
    with sqlite3.connect(db_file) as conn:
        conn.execute("UPDATE materials_cache SET expires_at = '2000-01-01T00:00:00'")
        conn.execute("UPDATE materials_structures SET expires_at = '2000-01-01T00:00:00'")
    conn.close()

    assert not service(db_file).get_structure("mp-149").from_cache
    assert mp_server.hits(CORE) == 2
    entry = asyncio.run(_ui_cached(ui_materials, db_file, structure_cache_key("mp-149"), "mp"))
    assert not entry.is_expired
