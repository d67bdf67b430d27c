"""OPTIMADE: the real ``OptimadeClient`` against the ``optimade`` package's own reference server."""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
from pathlib import Path
from types import ModuleType

import pytest

from crystal_atomate.mp.cache import MaterialsProject, ui_cache_key
from crystal_atomate.mp.client import MPClient, RetryPolicy
from crystal_atomate.mp.errors import (
    MPOfflineError,
    OptimadeFilterError,
    OptimadeOfflineError,
    OptimadeProviderError,
    OptimadeRequestError,
)
from crystal_atomate.mp.optimade import Optimade, OptimadeQuery, optimade_formula, search_optimade
from crystal_atomate.mp.search import find_by_formula
from crystal_atomate.testing.mp_server import MPServer
from crystal_atomate.testing.optimade_server import OptimadeServer

CLOSED = "http://127.0.0.1:9"


def query(server: OptimadeServer, **kwargs) -> OptimadeQuery:
    return OptimadeQuery(providers=(server.url,), **kwargs)


@pytest.mark.parametrize(
    ("formula", "reduced"),
    [("Fe2O3", "Fe2O3"), ("O3Fe2", "Fe2O3"), ("Fe4O6", "Fe2O3"), ("SiO2", "O2Si")],
)
def test_formula_is_optimades(formula: str, reduced: str) -> None:
    assert optimade_formula(formula) == reduced


def test_formula_search_gives_structures_with_provenance(optimade_server: OptimadeServer) -> None:
    [record] = search_optimade(query(optimade_server, formula="Fe2O3"))

    host = optimade_server.url.removeprefix("http://")
    assert (record.material_id, record.formula, record.nsites) == (
        f"{host}:hematite-1",
        "Fe2O3",
        10,
    )
    assert record.structure.get_space_group_info() == ("R-3c", 167)
    rhombohedral_a = math.sqrt(5.0356**2 / 3 + 13.7489**2 / 9)  # from hexagonal a, c
    assert record.structure.lattice.abc == pytest.approx((rhombohedral_a,) * 3, abs=1e-8)
    origin = record.origin
    assert (origin.source, origin.provider, origin.entry_id) == (
        "optimade",
        optimade_server.url,
        "hematite-1",
    )
    assert origin.url == f"{optimade_server.url}/v1/structures/hematite-1"
    assert "/v1/structures" in optimade_server.paths


def test_raw_filter(optimade_server: OptimadeServer) -> None:
    records = search_optimade(query(optimade_server, filter='elements HAS "O" AND nsites>=10'))
    assert sorted(r.formula for r in records) == ["Al2O3", "Fe2O3"]


def test_nothing_found_is_empty(optimade_server: OptimadeServer) -> None:
    assert search_optimade(query(optimade_server, formula="NaCl")) == []


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"formula": "Fe2O3", "providers": ("nomad2",)},
            OptimadeProviderError,
            "'nomad2' is not an OPTIMADE provider.",
        ),
        (
            {"filter": "nelements=", "providers": (CLOSED,)},
            OptimadeFilterError,
            "'nelements=' is not a valid OPTIMADE filter (Unexpected end-of-input).",
        ),
        (
            {"formula": "Xx2O3", "providers": (CLOSED,)},
            OptimadeFilterError,
            "'Xx2O3' is not a chemical formula.",
        ),
        (
            {"formula": "MgO", "filter": "nsites=2"},
            OptimadeFilterError,
            "Give either a formula or an OPTIMADE filter",
        ),
    ],
)
def test_bad_input_is_refused_before_any_request(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error) as raised:
        search_optimade(OptimadeQuery(**kwargs))
    assert str(raised.value).startswith(message)
    assert raised.value.usage and "\n" not in str(raised.value)


def test_server_error_is_one_line(optimade_server: OptimadeServer) -> None:
    optimade_server.fail(500)
    with pytest.raises(OptimadeRequestError) as raised:
        search_optimade(query(optimade_server, formula="MgO"), attempts=1)
    assert str(raised.value) == (
        f"OPTIMADE search for MgO at {optimade_server.url} failed "
        f"({optimade_server.url}: HTTP 500 (scripted))."
    )


def test_timeout_and_refused_are_offline(optimade_server: OptimadeServer) -> None:
    optimade_server.fail(delay=2.0)
    with pytest.raises(OptimadeOfflineError, match=r"no answer within 0\.3 s\) for MgO"):
        search_optimade(query(optimade_server, formula="MgO"), timeout=0.3, attempts=1)
    with pytest.raises(
        OptimadeOfflineError, match=r"\(http://127\.0\.0\.1:9: connection refused\)"
    ):
        search_optimade(OptimadeQuery(formula="MgO", providers=(CLOSED,)), attempts=1)


def test_one_provider_down_is_a_warning(
    optimade_server: OptimadeServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        records = search_optimade(
            OptimadeQuery(formula="MgO", providers=(optimade_server.url, CLOSED)), attempts=1
        )
    assert [r.formula for r in records] == ["MgO"]
    assert f"OPTIMADE provider {CLOSED} failed (connection refused)" in caplog.text


def test_search_is_cached_under_the_uis_key(
    optimade_server: OptimadeServer, db_file: Path, ui_materials: ModuleType
) -> None:
    q = query(optimade_server, formula="MgO", limit=5)
    Optimade(db_file).search(q)
    optimade_server.fail(500)

    cached = Optimade(db_file).search(q)

    assert [(r.formula, r.from_cache, r.origin.entry_id) for r in cached] == [
        ("MgO", True, "rocksalt-MgO-1")
    ]
    key = ui_materials.generate_cache_key(
        {"formula": "MgO", "providers": [optimade_server.url], "limit": 5}, prefix="search_optimade"
    )
    assert key == ui_cache_key(*reversed(q.cache_params()))

    async def ui_reads() -> dict:
        async with ui_materials.CacheRepository(db_file) as cache:
            return await cache.get(key)

    response = asyncio.run(ui_reads())
    [record] = [ui_materials.MaterialRecord.from_dict(r) for r in response["records"]]
    assert (record.source, record.formula, record.structure.num_sites) == ("optimade", "MgO", 2)
    assert record.metadata["provider"] == optimade_server.url
    conn = sqlite3.connect(db_file)
    assert conn.execute("SELECT source, material_id FROM materials_structures").fetchall() == [
        ("optimade", f"{optimade_server.url.removeprefix('http://')}:rocksalt-MgO-1")
    ]
    conn.close()


def test_offline_search_with_nothing_cached(db_file: Path) -> None:
    with pytest.raises(MPOfflineError, match=r"Nothing is cached for the OPTIMADE search \(MgO at"):
        Optimade(db_file, attempts=1).search(OptimadeQuery(formula="MgO", providers=(CLOSED,)))
    assert not db_file.exists()


def _mp(db_file: Path) -> MaterialsProject:
    return MaterialsProject(db_file, client=MPClient(retry=RetryPolicy(attempts=1)))


def test_fallback_when_mp_has_nothing(
    mp_server: MPServer, optimade_server: OptimadeServer, db_file: Path
) -> None:
    found = find_by_formula("Fe2O3", _mp(db_file), Optimade(db_file), (optimade_server.url,))

    assert (found.source, [r.formula for r in found.records]) == ("optimade", ["Fe2O3"])
    assert found.note == (
        f"the Materials Project has no Fe2O3; OPTIMADE ({optimade_server.url}) found 1."
    )


def test_no_fallback_when_mp_answers(
    mp_server: MPServer, optimade_server: OptimadeServer, db_file: Path
) -> None:
    found = find_by_formula("MgO", _mp(db_file), Optimade(db_file), (optimade_server.url,))

    assert (found.source, [r.material_id for r in found.records], found.note) == (
        "mp",
        ["mp-1265"],
        None,
    )
    assert optimade_server.paths == []


def test_fallback_when_mp_is_unreachable(optimade_server: OptimadeServer, db_file: Path) -> None:
    found = find_by_formula("MgO", _mp(db_file), Optimade(db_file), (optimade_server.url,))

    assert found.source == "optimade" and [r.formula for r in found.records] == ["MgO"]
    assert found.note.startswith(
        "the Materials Project is unavailable (Cannot reach the Materials Project at "
        "http://127.0.0.1:9/"
    )
    assert "\n" not in found.note
