"""Structure look-ups cached in the terminal UI's shared database, under the UI's own keys.

The UI's ``MaterialsService`` caches every call in ``materials_cache`` under
``generate_cache_key(params, prefix=...)`` (its ``materials_api/cache.py``) and reads it back
through ``CacheRepository.get``, which tries the sources ``mp``, ``optimade``, ``mpcontribs`` in
that order and skips expired rows. We write and read the same rows, so each program serves the
other's fetches offline:

=========================  ========================================================  ==========
call                       key parameters                                            source
=========================  ========================================================  ==========
structure by id            ``get_structure`` {material_id}                           mp/optimade
formula search (MP)        ``search_formula`` {formula, include_contributions, limit}  mp
other MP searches          ``summary_search`` {all :class:`MPQuery` fields}           mp
OPTIMADE formula search    ``search_optimade`` {formula, providers, limit}           optimade
MPContribs by material     ``get_contributions`` {material_id, project}              mpcontribs
=========================  ========================================================  ==========

(``summary_search`` and the OPTIMADE raw-filter and MPContribs project keys of
:mod:`crystal_atomate.mp.optimade` / :mod:`crystal_atomate.mp.mpcontribs` are calls the UI does
not make; they use the same key function.) A response is the UI's JSON: a record is
``MaterialRecord.to_dict()`` (id, source, formula, properties, metadata with our origin, the
pymatgen structure), a search is ``{"records": [...], "total_count": n}``. Each structure is also
written to ``materials_structures`` (the record and its CIF), the row ``CacheRepository``'s
``get_material_record`` reads: it reads ``structure_json`` only, so no ``.d12`` deck is rendered
for the cache (``d12_text`` stays NULL, as the UI's own ``set_material_record`` leaves it). Times
are naive local ISO strings, as the UI compares them with ``datetime.now()``.

A fresh row answers without any network (and without importing a client). A stale row is
refetched; if the endpoint cannot be reached it is served anyway, with a warning. Reading never
creates the database file, and nothing here deletes a row: an error leaves the cache as it was.
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
    "SEARCH_KEY_PREFIX",
    "SEARCH_TTL",
    "SOURCE",
    "STRUCTURE_TTL",
    "UI_SOURCES",
    "Cached",
    "MPCache",
    "MaterialsProject",
    "cache_first",
    "record_from_ui",
    "record_to_ui",
    "search_cache_key",
    "structure_cache_key",
    "ui_cache_key",
]

SOURCE = "mp"
#: The sources the UI's ``CacheRepository.get`` tries for a key, in its order.
UI_SOURCES = ("mp", "optimade", "mpcontribs")
#: The UI's default ``cache_ttl_days``.
STRUCTURE_TTL = timedelta(days=30)
SEARCH_TTL = timedelta(days=7)
SEARCH_KEY_PREFIX = "summary_search"

T = TypeVar("T")
log = logging.getLogger(__name__)


def ui_cache_key(params: dict[str, Any], prefix: str) -> str:
    """``prefix:<16 hex>``: the UI's ``generate_cache_key``, byte for byte.

    SHA-256 of the parameters' JSON with sorted keys, compact separators and ``str`` for anything
    JSON cannot encode; the UI's own function is not imported, so the package does not need it.
    """
    serialized = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return f"{prefix}:{hashlib.sha256(serialized.encode('utf-8')).hexdigest()[:16]}"


def structure_cache_key(material_id: str) -> str:
    """Return the key of the UI's ``MaterialsService.get_structure(material_id)``."""
    return ui_cache_key({"material_id": material_id}, "get_structure")


def _search_params(query: MPQuery) -> tuple[str, dict[str, Any]]:
    """Return the UI's ``search_by_formula`` key for a formula-only query, ours for any other."""
    if query.model_dump(exclude_defaults=True, exclude={"limit"}).keys() == {"formula"}:
        params = {"formula": query.formula, "include_contributions": False, "limit": query.limit}
        return "search_formula", params
    return SEARCH_KEY_PREFIX, query.model_dump()


def search_cache_key(query: MPQuery) -> str:
    """``search_formula:...`` (the UI's formula search) or ``summary_search:...`` for ``query``."""
    prefix, params = _search_params(query)
    return ui_cache_key(params, prefix)


def record_to_ui(record: MPStructure) -> dict[str, Any]:
    """Return the UI's ``MaterialRecord.to_dict()`` shape; our origin rides in its ``metadata``."""
    properties = {
        "band_gap": record.band_gap,
        "energy_above_hull": record.energy_above_hull,
        "is_stable": record.is_stable,
    }
    metadata: dict[str, Any] = {"origin": record.origin.model_dump(mode="json")}
    if record.origin.provider is not None:
        metadata["provider"] = record.origin.provider
    return {
        "material_id": record.material_id,
        "source": record.origin.source,
        "formula": record.formula,
        "formula_pretty": record.formula,
        "properties": {k: v for k, v in properties.items() if v is not None},
        "metadata": metadata,
        "structure": record.structure.as_dict(),
    }


def record_from_ui(data: dict[str, Any]) -> MPStructure:
    """Back from the UI shape; a row the UI wrote has no origin, so one is rebuilt from the row.

    Raises
    ------
    KeyError, TypeError, ValueError
        The record has no structure, or one pymatgen cannot read.
    """
    metadata = data.get("metadata") or {}
    origin = metadata.get("origin") or {
        "material_id": data["material_id"],
        "source": data.get("source", SOURCE),
        "provider": metadata.get("provider"),
    }
    properties = data.get("properties") or {}
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


def _records(response: dict[str, Any]) -> list[MPStructure]:
    return [record_from_ui(r) for r in response["records"]]


class MPCache:
    """The shared file's cache tables, opened (and the schema ensured) on the first write.

    A read of a file that does not exist yet answers "not cached" without creating it, so a
    command that fails leaves no database behind.
    """

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

    def _read(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Rows of ``sql``; none when the file does not exist (it is not created for a read)."""
        if self._conn is None and not self.db_file.exists():
            return []
        return self._db().execute(sql, params).fetchall()

    def response(self, cache_key: str) -> Cached[dict[str, Any]] | None:
        """Return the response cached under ``cache_key``, as ``CacheRepository.get`` picks it.

        The first unexpired row in the UI's source order wins; with none fresh, the newest stale
        row (the caller may serve it offline); None if the key was never cached.
        """
        rows = self._read(
            "SELECT source, response_json, fetched_at, expires_at FROM materials_cache "
            "WHERE cache_key = ?",
            (cache_key,),
        )
        entries = sorted(
            ((UI_SOURCES.index(r[0]) if r[0] in UI_SOURCES else len(UI_SOURCES), r) for r in rows),
        )
        cached = [
            (source, Cached(json.loads(r[1]), _parse_time(r[2]), _parse_time(r[3])))
            for source, r in entries
        ]
        fresh = [c for _, c in cached if not c.expired]
        stale = sorted((c for _, c in cached), key=lambda c: c.fetched_at or datetime.min)
        return fresh[0] if fresh else (stale[-1] if stale else None)

    def put_response(
        self,
        cache_key: str,
        source: str,
        params: dict[str, Any],
        response: dict[str, Any],
        ttl: timedelta,
        base_url: str | None,
    ) -> None:
        """Insert or replace one ``materials_cache`` row, as the UI's ``set_cached_response``."""
        self.put_responses([(cache_key, source, params, response)], ttl, base_url)

    def put_responses(
        self,
        entries: list[tuple[str, str, dict[str, Any], dict[str, Any]]],
        ttl: timedelta,
        base_url: str | None,
    ) -> None:
        """Insert or replace ``(cache_key, source, params, response)`` rows in one transaction."""
        now, expires = _times(ttl)
        values = [
            (
                source,
                key,
                json.dumps(params, sort_keys=True, default=str),
                json.dumps(response),
                base_url,
                now,
                expires,
            )
            for key, source, params, response in entries
        ]
        with write_transaction(self._db()) as conn:
            conn.executemany(
                "INSERT INTO materials_cache (source, cache_key, query_json, response_json,"
                " base_url, etag, fetched_at, expires_at) VALUES (?, ?, ?, ?, ?, NULL, ?, ?)"
                " ON CONFLICT(source, cache_key) DO UPDATE SET query_json = excluded.query_json,"
                " response_json = excluded.response_json, base_url = excluded.base_url,"
                " etag = excluded.etag, fetched_at = excluded.fetched_at,"
                " expires_at = excluded.expires_at",
                values,
            )

    def structure(self, material_id: str) -> Cached[MPStructure] | None:
        """Return the cached structure of ``material_id``, fresh or not; None if never cached.

        The UI's ``get_structure`` row in ``materials_cache`` first, else the parsed record of
        ``materials_structures`` (what ``CacheRepository.set_material_record`` writes). A record
        without a structure (or one we cannot read) counts as absent, and the next fetch
        replaces it with a complete one.
        """
        for cached in (self._structure_response(material_id), self._structure_row(material_id)):
            if cached is None:
                continue
            try:
                return Cached(record_from_ui(cached.value), cached.fetched_at, cached.expires_at)
            except (KeyError, TypeError, ValueError):
                log.info("Cached row of %s has no usable structure; fetching it again", material_id)
        return None

    def _structure_response(self, material_id: str) -> Cached[dict[str, Any]] | None:
        return self.response(structure_cache_key(material_id))

    def _structure_row(self, material_id: str) -> Cached[dict[str, Any]] | None:
        rows = self._read(
            "SELECT structure_json, fetched_at, expires_at FROM materials_structures "
            "WHERE material_id = ? ORDER BY source = 'mp' DESC",
            (material_id,),
        )
        if not rows:
            return None
        row = rows[0]
        return Cached(json.loads(row[0]), _parse_time(row[1]), _parse_time(row[2]))

    def put_structures(self, records: list[MPStructure], base_url: str | None) -> None:
        """Cache each record.

        The UI's ``get_structure`` row and the parsed record, both with a new 30-day expiry.
        ``d12_text`` is left NULL (a deck an older version stored is cleared with the structure it
        was made from).
        """
        now, expires = _times(STRUCTURE_TTL)
        values = [
            (
                record.origin.source,
                record.material_id,
                record.formula,
                json.dumps(record_to_ui(record)),
                record.structure.to(fmt="cif"),
                now,
                now,
                expires,
            )
            for record in records
        ]
        self.put_responses(
            [
                (
                    structure_cache_key(record.material_id),
                    record.origin.source,
                    {"material_id": record.material_id},
                    record_to_ui(record),
                )
                for record in records
            ],
            STRUCTURE_TTL,
            base_url,
        )
        with write_transaction(self._db()) as conn:
            conn.executemany(
                "INSERT INTO materials_structures (source, material_id, formula, structure_json,"
                " cif_text, d12_text, fetched_at, updated_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, NULL, ?, ?, ?)"
                " ON CONFLICT(source, material_id) DO UPDATE SET formula = excluded.formula,"
                " structure_json = excluded.structure_json, cif_text = excluded.cif_text,"
                " d12_text = excluded.d12_text, fetched_at = excluded.fetched_at,"
                " updated_at = excluded.updated_at, expires_at = excluded.expires_at",
                values,
            )

    def search(self, query: MPQuery) -> Cached[list[MPStructure]] | None:
        """Return the cached results of ``query``, fresh or not; None if never cached."""
        return self.records(search_cache_key(query))

    def records(self, cache_key: str) -> Cached[list[MPStructure]] | None:
        """Return the structures of a search response cached under ``cache_key``.

        None if never cached.
        """
        cached = self.response(cache_key)
        if cached is None:
            return None
        return Cached(_records(cached.value), cached.fetched_at, cached.expires_at)

    def put_search(self, query: MPQuery, records: list[MPStructure], base_url: str) -> None:
        """Insert or replace the results of ``query`` with a new 7-day expiry."""
        prefix, params = _search_params(query)
        self.put_records(
            ui_cache_key(params, prefix), SOURCE, params, records, SEARCH_TTL, base_url
        )

    def put_records(
        self,
        cache_key: str,
        source: str,
        params: dict[str, Any],
        records: list[MPStructure],
        ttl: timedelta,
        base_url: str | None,
    ) -> None:
        """Return a search response ``{"records", "total_count"}`` under ``cache_key``."""
        response = {"records": [record_to_ui(r) for r in records], "total_count": len(records)}
        self.put_response(cache_key, source, params, response, ttl, base_url)


def cache_first(
    cached: Cached[T] | None,
    fetch: Callable[[], T],
    store: Callable[[T], None],
    refresh: bool,
    what: str,
) -> T:
    """Serve a fresh row, else fetch and store; offline, fall back to a stale row if any.

    With ``refresh`` the user asked for the server's answer, so being offline is an error even
    when a row exists (the message says so); the row is kept either way.

    Raises
    ------
    MPOfflineError
        The source cannot be reached and nothing (or, with ``refresh``, something) is cached.
    """
    if cached is not None and not refresh and not cached.expired:
        return cached.value
    try:
        value = fetch()
    except MPOfflineError as exc:
        if cached is None:
            raise type(exc)(f"{exc} Nothing is cached for {what}.", hint=exc.hint) from exc
        if refresh:
            raise type(exc)(
                f"{exc} A copy cached on {cached.fetched_label} exists.",
                hint="run without --refresh to use it.",
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


class MaterialsProject:
    """Cache-first Materials Project look-ups: what ``crystal-atomate mp`` and workflows call."""

    def __init__(self, db_file: str | Path, client: MPClient | None = None) -> None:
        self.cache = MPCache(db_file)
        self.client = client or MPClient()

    def close(self) -> None:
        """Close the database connection."""
        self.cache.close()

    def get_structure(self, material_id: str, refresh: bool = False) -> MPStructure:
        """One material's structure: cached if fresh, else fetched and cached."""
        mid = normalise_material_id(material_id)
        return cache_first(
            self.cache.structure(mid),
            lambda: self.client.get_structure(mid),
            lambda record: self._store_structures([record]),
            refresh,
            mid,
        )

    def search_structures(self, query: MPQuery, refresh: bool = False) -> list[MPStructure]:
        """Return the structures matching ``query``: cached if fresh, else searched and cached."""
        return cache_first(
            self.cache.search(query),
            lambda: self.client.search_structures(query),
            lambda records: self._store_search(query, records),
            refresh,
            f"the search ({query.describe()})",
        )

    def _store_structures(self, records: list[MPStructure]) -> None:
        self.cache.put_structures(records, self.client.endpoint)

    def _store_search(self, query: MPQuery, records: list[MPStructure]) -> None:
        self._store_structures(records)
        self.cache.put_search(query, records, self.client.endpoint)
