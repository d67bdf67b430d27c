"""Materials Project look-ups cached in the terminal UI's shared database.

Structures go to ``materials_structures`` (30 days), searches to ``materials_cache`` (7 days),
written the way the CRYSTAL-TOOLS UI writes them itself (its ``materials_api/cache.py``), so each
program reads the other's rows:

* ``structure_json`` holds the UI's ``MaterialRecord.to_dict()`` (material id, formula,
  properties, metadata, and the pymatgen structure under ``"structure"``), not a bare structure;
* a search's ``response_json`` is ``{"records": [...], "total_count": n}`` of the same records,
  keyed by ``prefix:sha256(query)[:16]`` as the UI's ``generate_cache_key`` does;
* times are naive local ISO strings: the UI compares them with ``datetime.now()``, and an aware
  time there would raise.

A fresh row answers without any network (and without importing mp-api). A stale row is refetched;
if the endpoint cannot be reached it is served anyway, with a warning. Nothing here deletes a
row: an error leaves the cache as it was.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Generic, TypeVar

from pymatgen.core import Structure

from crystal_atomate.mp.client import (
    MPClient,
    MPQuery,
    MPStructure,
    StructureOrigin,
    normalise_material_id,
)
from crystal_atomate.mp.errors import MPOfflineError
from crystal_atomate.stores.sqlite_db import connect_sqlite, write_transaction
from crystal_atomate.stores.tui_schema import ensure_ui_schema

__all__ = [
    "SOURCE",
    "STRUCTURE_TTL",
    "SEARCH_TTL",
    "SEARCH_KEY_PREFIX",
    "D12Writer",
    "default_d12",
    "Cached",
    "MPCache",
    "MaterialsProject",
    "search_cache_key",
]

SOURCE = "mp"
STRUCTURE_TTL = timedelta(days=30)
SEARCH_TTL = timedelta(days=7)
SEARCH_KEY_PREFIX = "summary_search"

D12Writer = Callable[[Structure], str]
T = TypeVar("T")
log = logging.getLogger(__name__)


def default_d12(structure: Structure) -> str:
    """The ``INPUT`` deck the default input set (``StaticSetGenerator()``) writes for ``structure``.

    As in a real run its geometry is ``EXTERNAL`` (the fort.34 written beside it); the row's
    ``cif_text`` and ``structure_json`` carry the geometry. The sets are imported here, on use,
    because they cost most of a second and a cache hit never needs them.
    """
    from crystal_atomate.sets.core import StaticSetGenerator

    return StaticSetGenerator().get_input_set(structure)["INPUT"]


def search_cache_key(query: MPQuery) -> str:
    """``summary_search:<16 hex>``: the UI's key scheme, over the query's canonical JSON."""
    serialized = json.dumps(query.model_dump(), sort_keys=True, separators=(",", ":"))
    return f"{SEARCH_KEY_PREFIX}:{hashlib.sha256(serialized.encode()).hexdigest()[:16]}"


def _record_to_ui(record: MPStructure) -> dict[str, Any]:
    """The UI's ``MaterialRecord.to_dict()`` shape; our origin rides in its ``metadata``."""
    properties = {
        "band_gap": record.band_gap,
        "energy_above_hull": record.energy_above_hull,
        "is_stable": record.is_stable,
    }
    return {
        "material_id": record.material_id,
        "source": SOURCE,
        "formula": record.formula,
        "formula_pretty": record.formula,
        "properties": {k: v for k, v in properties.items() if v is not None},
        "metadata": {"origin": record.origin.model_dump(mode="json")},
        "structure": record.structure.as_dict(),
    }


def _record_from_ui(data: dict[str, Any]) -> MPStructure:
    """Back from the UI shape; a row the UI wrote has no origin, so one is rebuilt from the row."""
    origin = data.get("metadata", {}).get("origin") or {"material_id": data["material_id"]}
    properties = data.get("properties", {})
    return MPStructure(
        material_id=data["material_id"],
        formula=data.get("formula_pretty") or data["formula"],
        structure=Structure.from_dict(data["structure"]),
        origin=StructureOrigin.model_validate(origin),
        band_gap=properties.get("band_gap"),
        energy_above_hull=properties.get("energy_above_hull"),
        is_stable=properties.get("is_stable"),
        from_cache=True,
    )


@dataclass(frozen=True)
class Cached(Generic[T]):
    """A value read from the cache with its times (naive local, as the UI writes them)."""

    value: T
    fetched_at: datetime | None
    expires_at: datetime | None

    @property
    def fetched_label(self) -> str:
        """'2026-11-23 11:40' for messages."""
        return f"{self.fetched_at:%Y-%m-%d %H:%M}" if self.fetched_at else "an unknown date"

    @property
    def expired(self) -> bool:
        """Past ``expires_at``; a row without one never expires, as in the UI."""
        return self.expires_at is not None and datetime.now() >= self.expires_at


def _times(ttl: timedelta) -> tuple[str, str]:
    now = datetime.now()
    return now.isoformat(), (now + ttl).isoformat()


def _parse_time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


class MPCache:
    """The two tables of the shared file, opened (and the schema ensured) on first use."""

    def __init__(self, db_file: str | Path) -> None:
        self.db_file = Path(db_file)
        self._conn: sqlite3.Connection | None = None

    def close(self) -> None:
        """Close the connection; the next call reopens it."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self.db_file.parent.mkdir(parents=True, exist_ok=True)
            self._conn = connect_sqlite(self.db_file)
            ensure_ui_schema(self._conn)
        return self._conn

    def structure(self, material_id: str) -> Cached[MPStructure] | None:
        """The cached structure of ``material_id``, fresh or not; None if never cached.

        The UI may store a record without a structure (or one we cannot read): that row counts as
        absent, and the next fetch replaces it with a complete one.
        """
        row = self._db().execute(
            "SELECT structure_json, fetched_at, expires_at FROM materials_structures "
            "WHERE source = ? AND material_id = ?",
            (SOURCE, material_id),
        ).fetchone()
        if row is None:
            return None
        try:
            record = _record_from_ui(json.loads(row[0]))
        except (KeyError, TypeError, ValueError):
            log.info("Cached row of %s has no usable structure; fetching it again", material_id)
            return None
        return Cached(record, _parse_time(row[1]), _parse_time(row[2]))

    def put_structures(self, rows: list[tuple[MPStructure, str | None]]) -> None:
        """Insert or replace one row per (record, d12 text), all with a new 30-day expiry."""
        now, expires = _times(STRUCTURE_TTL)
        values = [
            (
                SOURCE,
                record.material_id,
                record.formula,
                json.dumps(_record_to_ui(record)),
                record.structure.to(fmt="cif"),
                d12_text,
                now,
                now,
                expires,
            )
            for record, d12_text in rows
        ]
        with write_transaction(self._db()) as conn:
            conn.executemany(
                "INSERT INTO materials_structures (source, material_id, formula, structure_json,"
                " cif_text, d12_text, fetched_at, updated_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(source, material_id) DO UPDATE SET formula = excluded.formula,"
                " structure_json = excluded.structure_json, cif_text = excluded.cif_text,"
                " d12_text = excluded.d12_text, fetched_at = excluded.fetched_at,"
                " updated_at = excluded.updated_at, expires_at = excluded.expires_at",
                values,
            )

    def search(self, query: MPQuery) -> Cached[list[MPStructure]] | None:
        """The cached results of ``query``, fresh or not; None if never cached."""
        row = self._db().execute(
            "SELECT response_json, fetched_at, expires_at FROM materials_cache "
            "WHERE source = ? AND cache_key = ?",
            (SOURCE, search_cache_key(query)),
        ).fetchone()
        if row is None:
            return None
        records = [_record_from_ui(r) for r in json.loads(row[0])["records"]]
        return Cached(records, _parse_time(row[1]), _parse_time(row[2]))

    def put_search(self, query: MPQuery, records: list[MPStructure], base_url: str) -> None:
        """Insert or replace the results of ``query`` with a new 7-day expiry."""
        now, expires = _times(SEARCH_TTL)
        response = {"records": [_record_to_ui(r) for r in records], "total_count": len(records)}
        with write_transaction(self._db()) as conn:
            conn.execute(
                "INSERT INTO materials_cache (source, cache_key, query_json, response_json,"
                " base_url, etag, fetched_at, expires_at) VALUES (?, ?, ?, ?, ?, NULL, ?, ?)"
                " ON CONFLICT(source, cache_key) DO UPDATE SET query_json = excluded.query_json,"
                " response_json = excluded.response_json, base_url = excluded.base_url,"
                " etag = excluded.etag, fetched_at = excluded.fetched_at,"
                " expires_at = excluded.expires_at",
                (
                    SOURCE,
                    search_cache_key(query),
                    json.dumps(query.model_dump(exclude_defaults=True), sort_keys=True),
                    json.dumps(response),
                    base_url,
                    now,
                    expires,
                ),
            )


class MaterialsProject:
    """Cache-first Materials Project look-ups: what ``crystal-atomate mp`` and workflows call.

    ``d12_writer`` renders the ``.d12`` the default input set would write for a structure, stored
    in ``materials_structures.d12_text`` so the UI can show it; without one the column stays NULL.
    """

    def __init__(
        self,
        db_file: str | Path,
        client: MPClient | None = None,
        d12_writer: D12Writer | None = None,
    ) -> None:
        self.cache = MPCache(db_file)
        self.client = client or MPClient()
        self._d12_writer = d12_writer

    def close(self) -> None:
        """Close the database connection."""
        self.cache.close()

    def get_structure(self, material_id: str, refresh: bool = False) -> MPStructure:
        """One material's structure: cached if fresh, else fetched and cached."""
        mid = normalise_material_id(material_id)
        return self._cache_first(
            self.cache.structure(mid),
            lambda: self.client.get_structure(mid),
            lambda record: self._store_structures([record]),
            refresh,
            mid,
        )

    def search_structures(self, query: MPQuery, refresh: bool = False) -> list[MPStructure]:
        """Structures matching ``query``: cached if fresh, else searched, each structure cached too."""
        return self._cache_first(
            self.cache.search(query),
            lambda: self.client.search_structures(query),
            lambda records: self._store_search(query, records),
            refresh,
            f"the search ({query.describe()})",
        )

    def _store_structures(self, records: list[MPStructure]) -> None:
        self.cache.put_structures([(record, self._d12(record)) for record in records])

    def _store_search(self, query: MPQuery, records: list[MPStructure]) -> None:
        self._store_structures(records)
        self.cache.put_search(query, records, self.client.endpoint)

    def _d12(self, record: MPStructure) -> str | None:
        """The writer's deck, or None: a failing writer must not cost the user the structure."""
        if self._d12_writer is None:
            return None
        try:
            return self._d12_writer(record.structure)
        except Exception:
            log.warning("No .d12 for %s: the input writer failed", record.material_id, exc_info=True)
            return None

    def _cache_first(
        self,
        cached: Cached[T] | None,
        fetch: Callable[[], T],
        store: Callable[[T], None],
        refresh: bool,
        what: str,
    ) -> T:
        """Serve a fresh row, else fetch and store; offline, fall back to a stale row if any.

        With ``refresh`` the user asked for the server's answer, so being offline is an error
        even when a row exists (the message says so); the row is kept either way.
        """
        if cached is not None and not refresh and not cached.expired:
            return cached.value
        try:
            value = fetch()
        except MPOfflineError as exc:
            if cached is None:
                raise MPOfflineError(f"{exc} Nothing is cached for {what}.") from exc
            if refresh:
                raise MPOfflineError(
                    f"{exc} A copy cached on {cached.fetched_label} exists: "
                    "run without --refresh to use it."
                ) from exc
            log.warning(
                "Offline: serving %s cached on %s (expired %s)",
                what,
                cached.fetched_label,
                cached.expires_at,
            )
            return cached.value
        store(value)
        return value
