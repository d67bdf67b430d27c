"""A maggma ``Store`` kept in one SQLite file, so jobflow results need no database server.

Each collection is a table ``jobflow_docs_<collection>(id INTEGER PRIMARY KEY, doc TEXT)`` of
JSON documents, queried with SQLite's JSON1 functions through :mod:`.query`, which accepts the
MongoDB filters jobflow, atomate2 and maggma builders write. The same file can be the terminal
UI's ``.crystal_tui.db``: with ``tui_mirror=True`` the store creates/upgrades the UI schema when
it connects and mirrors every written job document into the UI's ``jobs`` table inside the very
transaction that stores the document (see :mod:`.tui_mirror`).

Connections follow what the UI expects of every writer: WAL, ``busy_timeout=10000``,
``synchronous=NORMAL``, ``foreign_keys=ON``; each write is one short ``BEGIN IMMEDIATE``
transaction, so concurrent writers queue on the lock instead of failing, and a reader never
blocks them.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
from maggma.core import DateTimeFormat, Sort, Store, StoreError
from maggma.core.validator import Validator
from monty.json import jsanitize
from pydash import get, has, set_

from crystal_atomate.stores.query import (
    Compiler,
    InvalidFieldError,
    decode_scalar,
    encode_scalar,
    path_literal,
    split_field,
)

__all__ = [
    "SQLiteStore",
    "DEFAULT_INDEXES",
    "connect_sqlite",
    "create_collection",
    "docs_table",
    "write_transaction",
]

#: Fields jobflow looks documents up by; each gets an expression index in every collection.
#: ``index`` (the run number, nearly always 1) is indexed together with ``uuid``: on its own it
#: would be a useless index that SQLite's planner, without statistics, may still prefer.
DEFAULT_INDEXES = ((("uuid", 1),), (("uuid", 1), ("index", 1)), (("blob_uuid", 1),), (("job_uuid", 1),))
_COLLECTION_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_TAG_MARK = "\\u0001"
_PLAIN_PART = re.compile(r"^[A-Za-z0-9_@-]+$")


def docs_table(collection_name: str) -> str:
    """Table holding a collection; names are validated because table names cannot be bound."""
    if not _COLLECTION_NAME.match(collection_name or ""):
        raise ValueError(
            f"collection_name must match {_COLLECTION_NAME.pattern}, got {collection_name!r}"
        )
    return f"jobflow_docs_{collection_name}"


def _arrays_table(collection_name: str) -> str:
    return f"jobflow_arrays_{collection_name}"


@lru_cache(maxsize=256)
def _compiled(pattern: str, flags: int) -> re.Pattern:
    return re.compile(pattern, flags)


def _regexp(pattern: str, flags: int, value: Any) -> bool:
    """``$regex`` as Mongo does it: a search, not a full match."""
    return isinstance(value, str) and _compiled(pattern, flags).search(value) is not None


def connect_sqlite(path: str | Path, timeout: float = 10.0) -> sqlite3.Connection:
    """Open a connection configured as the terminal UI configures its own."""
    conn = sqlite3.connect(
        str(path), timeout=timeout, isolation_level=None, check_same_thread=False
    )
    conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.create_function("crystal_regexp", 3, _regexp, deterministic=True)
    return conn


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One short ``BEGIN IMMEDIATE`` transaction: take the write lock up front, so two writers
    never both read and then both try to upgrade (the classic SQLITE_BUSY deadlock)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _encode_doc(value: Any, path: str, arrays: set[str]) -> Any:
    """Make a document JSON-safe and note every dotted path that holds a list."""
    if isinstance(value, Mapping):
        return {
            str(k): _encode_doc(v, f"{path}.{k}" if path else str(k), arrays)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        arrays.add(path)
        return [_encode_doc(v, path, arrays) for v in value]
    if type(value).__name__ == "ObjectId":
        return str(value)
    return encode_scalar(value)


def _decode_tags(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _decode_tags(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_tags(v) for v in value]
    if isinstance(value, str) and value.startswith("\x01"):
        return decode_scalar(value)
    return value


def _dumps(doc: Any) -> str:
    try:
        return orjson.dumps(doc).decode()
    except TypeError:  # integers beyond 64 bits: the stdlib writes them, SQLite stores them as real
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _loads(text: str) -> dict:
    doc = orjson.loads(text)
    return _decode_tags(doc) if _TAG_MARK in text else doc


def _sort_clause(sort: Mapping[str, Sort | int] | None) -> str:
    terms = []
    for field, direction in (sort or {}).items():
        value = direction.value if isinstance(direction, Sort) else int(direction)
        terms.append(f"json_extract(doc, {path_literal(split_field(field))}) "
                     f"{'DESC' if value < 0 else 'ASC'}")
    terms.append("id ASC")
    return ", ".join(terms)


def _projection(properties: dict | list | None) -> tuple[list[str], list[str]]:
    """(included, excluded) dotted fields of a Mongo projection."""
    if properties is None:
        return [], []
    if isinstance(properties, (list, tuple)):
        return list(properties), []
    include = [k for k, v in properties.items() if v]
    exclude = [k for k, v in properties.items() if not v]
    return include, exclude


def _pick(source: Any, parts: list[str], target: dict) -> None:
    """Copy ``parts`` of ``source`` into ``target``, reaching through lists as Mongo does."""
    head, rest = parts[0], parts[1:]
    if not isinstance(source, dict) or head not in source:
        return
    value = source[head]
    if not rest:
        target[head] = value
    elif isinstance(value, dict):
        _pick(value, rest, target.setdefault(head, {}))
    elif isinstance(value, list):
        picked = target.setdefault(head, [{} if isinstance(v, dict) else None for v in value])
        for item, out in zip(value, picked):
            if isinstance(item, dict):
                _pick(item, rest, out)
        target[head] = [p for p in picked if p is not None]


def project(doc: dict, properties: dict | list | None) -> dict:
    """Apply a Mongo projection (inclusion of dotted fields, or exclusion) to a document."""
    include, exclude = _projection(properties)
    if include:
        out: dict = {}
        for field in include:
            _pick(doc, field.split("."), out)
        return out
    for field in exclude:
        *parents, last = field.split(".")
        holder = get(doc, parents) if parents else doc
        if isinstance(holder, dict):
            holder.pop(last, None)
    return doc


def values_at(doc: Any, parts: list[str]) -> Iterator[Any]:
    """Every value at a dotted path, with lists unrolled as Mongo's ``distinct`` does."""
    if not parts:
        if isinstance(doc, list):
            yield from doc
        else:
            yield doc
        return
    if isinstance(doc, list):
        for item in doc:
            yield from values_at(item, parts)
    elif isinstance(doc, dict) and parts[0] in doc:
        yield from values_at(doc[parts[0]], parts[1:])


def _freeze(value: Any) -> Any:
    """A hashable, type-aware stand-in used to deduplicate and order mixed values."""
    if isinstance(value, (dict, list)):
        return (4, orjson.dumps(value, option=orjson.OPT_SORT_KEYS))
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (5, value)
    if isinstance(value, (int, float)):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    return (3, str(value))


class SQLiteStore(Store):
    """A maggma Store over one table of JSON documents in a SQLite file.

    Args:
        db_file: the SQLite file (created if missing).
        collection_name: the collection, stored in table ``jobflow_docs_<collection_name>``.
        key: the default key ``update`` upserts on.
        last_updated_field, last_updated_type, validator: as for every maggma Store.
        tui_mirror: this file is the terminal UI's database: create/upgrade the UI schema on
            connect and mirror job documents into its ``jobs`` and ``job_results`` tables.
        timeout: seconds a writer waits for the lock (also the SQLite busy timeout).
    """

    def __init__(
        self,
        db_file: str | Path,
        collection_name: str = "outputs",
        key: str = "task_id",
        last_updated_field: str = "last_updated",
        last_updated_type: DateTimeFormat = DateTimeFormat.DateTime,
        validator: Validator | None = None,
        tui_mirror: bool = False,
        timeout: float = 10.0,
    ) -> None:
        self.db_file = str(db_file)
        self.collection_name = collection_name
        self.table = docs_table(collection_name)
        self.tui_mirror = tui_mirror
        self.timeout = timeout
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._lock = threading.RLock()
        self._array_paths: set[str] = set()
        self._data_version: int | None = None
        super().__init__(
            key=key,
            last_updated_field=last_updated_field,
            last_updated_type=last_updated_type,
            validator=validator,
        )

    # -- connection -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return f"sqlite://{self.db_file}/{self.collection_name}"

    def connect(self, force_reset: bool = False) -> None:
        """Open the file, create our tables and default indexes (and the UI schema if mirroring).

        ``force_reset`` reopens the connection; it never deletes data (the file is shared).
        """
        with self._lock:
            if self._conn is not None and not force_reset and self._pid == os.getpid():
                return
            self._drop_connection()
            Path(self.db_file).expanduser().parent.mkdir(parents=True, exist_ok=True)
            conn = connect_sqlite(Path(self.db_file).expanduser(), self.timeout)
            if self.tui_mirror:
                from crystal_atomate.stores.tui_schema import ensure_ui_schema

                ensure_ui_schema(conn)
            with write_transaction(conn):
                create_collection(conn, self.collection_name, self.key)
            self._conn, self._pid = conn, os.getpid()
            self._data_version = None

    def _drop_connection(self) -> None:
        """Close our connection; a connection inherited across ``fork`` is dropped, not used."""
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None

    def close(self) -> None:
        with self._lock:
            self._drop_connection()

    @property
    def _collection(self) -> SQLiteCollection:
        """A pymongo-like handle, for code (jobflow-remote, maggma tests) that reaches for one."""
        self._connection()
        return SQLiteCollection(self)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("Must connect SQLiteStore before attempting to use it")
        if self._pid != os.getpid():
            self.connect(force_reset=True)
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            with write_transaction(self._connection()) as conn:
                yield conn

    def _compiler(self, conn: sqlite3.Connection) -> Compiler:
        """A query compiler knowing every path that has held an array, in any process.

        ``PRAGMA data_version`` changes when another connection commits, which is when the
        list of array paths has to be re-read; a stale superset would only cost speed.
        """
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if version != self._data_version:
            rows = conn.execute(f"SELECT path FROM {_arrays_table(self.collection_name)}")
            self._array_paths |= {r[0] for r in rows}
            self._data_version = version
        return Compiler(frozenset(self._array_paths))

    # -- reading ----------------------------------------------------------------------------

    def _select(self, what: str, criteria: dict | None, tail: str = "", tail_params=()) -> list:
        with self._lock:
            conn = self._connection()
            compiler = self._compiler(conn)
            where = compiler.where(criteria)
            sql = f"SELECT {what} FROM {self.table} WHERE {where} {tail}"
            return conn.execute(sql, [*compiler.params, *tail_params]).fetchall()

    def query(
        self,
        criteria: dict | None = None,
        properties: dict | list | None = None,
        sort: dict[str, Sort | int] | None = None,
        skip: int = 0,
        limit: int = 0,
    ) -> Iterator[dict]:
        """Documents matching a Mongo filter; rows are fetched at once, decoded lazily, so no
        read transaction stays open while the caller works."""
        tail = f"ORDER BY {_sort_clause(sort)} LIMIT ? OFFSET ?"
        rows = self._select("doc", criteria, tail, (limit or -1, skip or 0))
        for (text,) in rows:
            yield project(_loads(text), properties)

    @property
    def last_updated(self) -> datetime:
        """Newest ``last_updated_field`` value; a store with documents lacking it is an error.

        Overridden because the base class relies on Mongo returning ``_id`` with any projection
        to tell "no documents" from "documents without the field"; we read the document whole.
        """
        field = self.last_updated_field
        doc = next(self.query(sort={field: -1}, limit=1), None)
        if doc is None:
            return datetime.min
        if not has(doc, field):
            raise StoreError(
                f"No field '{field}' in store document. Please ensure Store.last_updated_field "
                "is a datetime field in your store that represents the time of last update."
            )
        value = get(doc, field)
        return datetime.min if value is None else self._lu_func[0](value)

    def count(self, criteria: dict | None = None) -> int:
        return self._select("COUNT(*)", criteria)[0][0]

    def distinct(self, field: str, criteria: dict | None = None, all_exist: bool = False) -> list:
        """Distinct values of ``field``; list values are unrolled, as Mongo does."""
        parts = list(split_field(field))
        seen: dict[Any, Any] = {}
        for doc in self.query(criteria, properties=[field]):
            for value in values_at(doc, parts):
                seen.setdefault(_freeze(value), value)
        return list(seen.values())

    def groupby(
        self,
        keys: list[str] | str,
        criteria: dict | None = None,
        properties: dict | list | None = None,
        sort: dict[str, Sort | int] | None = None,
        skip: int = 0,
        limit: int = 0,
    ) -> Iterator[tuple[dict, list[dict]]]:
        """Group documents having every key, as maggma's MemoryStore does."""
        keys = [keys] if isinstance(keys, str) else list(keys)
        props = list(properties.keys()) if isinstance(properties, dict) else list(properties or [])
        docs = [
            d
            for d in self.query(criteria, properties=keys + props if props else None, sort=sort)
            if all(has(d, k) for k in keys)
        ]

        def grouping(doc: dict) -> tuple:
            return tuple(_freeze(get(doc, k)) for k in keys)

        groups = itertools.groupby(sorted(docs, key=grouping), key=grouping)
        for _, members in itertools.islice(groups, skip, (skip + limit) if limit else None):
            members = list(members)
            key_doc: dict = {}
            for k in keys:
                set_(key_doc, k, get(members[0], k))
            yield key_doc, members

    # -- writing ----------------------------------------------------------------------------

    def update(self, docs: list[dict] | dict, key: list | str | None = None) -> None:
        """Upsert documents on ``key`` (one field or several) in one short transaction."""
        docs = docs if isinstance(docs, list) else [docs]
        key = key or self.key
        keys = [key] if isinstance(key, str) else list(key)
        prepared = []
        for raw in docs:
            doc = jsanitize(raw, allow_bson=True, recursive_msonable=True)
            if self.validator and not self.validator.is_valid(doc):
                if self.validator.strict:
                    raise ValueError(self.validator.validation_errors(doc))
                self.logger.error(self.validator.validation_errors(doc))
                continue
            missing = [k for k in keys if not has(doc, k)]
            if missing:
                raise KeyError(f"document has no key field {missing[0]!r}")
            prepared.append(doc)
        if not prepared:
            return
        with self._write() as conn:
            self._upsert(conn, prepared, keys)
            if self.tui_mirror:
                from crystal_atomate.stores.tui_mirror import mirror_documents

                mirror_documents(conn, prepared)

    def _encode_rows(self, conn: sqlite3.Connection, docs: list[dict]) -> list[str]:
        arrays: set[str] = set()
        texts = [_dumps(_encode_doc(d, "", arrays)) for d in docs]
        new = arrays - self._array_paths
        if new:
            conn.executemany(
                f"INSERT OR IGNORE INTO {_arrays_table(self.collection_name)}(path) VALUES (?)",
                [(p,) for p in sorted(new)],
            )
            self._array_paths |= new
        return texts

    def _upsert(self, conn: sqlite3.Connection, docs: list[dict], keys: list[str]) -> None:
        texts = self._encode_rows(conn, docs)
        compiler_paths = self._compiler(conn).array_paths
        for doc, text in zip(docs, texts):
            compiler = Compiler(compiler_paths)
            where = compiler.where({k: get(doc, k) for k in keys})
            row = conn.execute(
                f"SELECT id FROM {self.table} WHERE {where} LIMIT 1", compiler.params
            ).fetchone()
            if row is None:
                conn.execute(f"INSERT INTO {self.table}(doc) VALUES (?)", (text,))
            else:
                conn.execute(f"UPDATE {self.table} SET doc = ? WHERE id = ?", (text, row[0]))

    def insert_raw(self, docs: list[dict]) -> None:
        """Insert documents without an upsert key (pymongo ``insert_many``)."""
        with self._write() as conn:
            texts = self._encode_rows(conn, [jsanitize(d, allow_bson=True) for d in docs])
            conn.executemany(f"INSERT INTO {self.table}(doc) VALUES (?)", [(t,) for t in texts])

    def remove_docs(self, criteria: dict) -> None:
        with self._write() as conn:
            compiler = self._compiler(conn)
            where = compiler.where(criteria)
            conn.execute(f"DELETE FROM {self.table} WHERE {where}", compiler.params)

    # -- indexes ----------------------------------------------------------------------------

    def ensure_index(self, key: str, unique: bool = False) -> bool:
        """An expression index on ``json_extract(doc, <path of key>)``; False if impossible.

        Only plain dotted names (letters, digits, ``_``, ``@``, ``-``) are indexed: an index
        changes the schema the UI also reads, so odd names are refused rather than quoted.
        Duplicates under ``unique`` also give False.
        """
        if not isinstance(key, str) or not all(_PLAIN_PART.match(p) for p in key.split(".")):
            return False
        try:
            with self._write() as conn:
                self._create_index(conn, [(key, 1)], unique=unique)
        except (InvalidFieldError, sqlite3.IntegrityError, sqlite3.OperationalError):
            return False
        return True

    def _create_index(self, conn: sqlite3.Connection, fields: list[tuple[str, int]], unique: bool) -> str:
        return create_json_index(conn, self.table, fields, unique)

    def index_names(self) -> list[str]:
        """Our indexes on this collection (for tests and the UI's diagnostics)."""
        rows = self._connection().execute(
            "SELECT name FROM sqlite_master WHERE type='index' AND tbl_name=? AND name LIKE 'ix_%'",
            (self.table,),
        )
        return [r[0] for r in rows]

    # -- identity ---------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SQLiteStore):
            return False
        return (
            Path(self.db_file).expanduser().resolve() == Path(other.db_file).expanduser().resolve()
            and self.collection_name == other.collection_name
            and self.last_updated_field == other.last_updated_field
        )

    def __hash__(self) -> int:
        return hash((str(Path(self.db_file).expanduser().resolve()), self.collection_name))


def create_collection(conn: sqlite3.Connection, collection_name: str, key: str) -> None:
    """Tables of one collection (documents, and the paths that ever held an array) and the
    expression indexes on jobflow's lookup fields and the store key."""
    table = docs_table(collection_name)
    conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY, doc TEXT NOT NULL)")
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {_arrays_table(collection_name)} (path TEXT PRIMARY KEY)"
    )
    for fields in dict.fromkeys((*DEFAULT_INDEXES, ((key, 1),))):
        create_json_index(conn, table, list(fields), unique=False)


def create_json_index(
    conn: sqlite3.Connection, table: str, fields: list[tuple[str, int]], unique: bool
) -> str:
    """``CREATE INDEX`` on ``json_extract(doc, <path>)`` for each field; the path text is the
    one :mod:`.query` generates, which is what lets SQLite use the index for those queries.
    The name is a digest, so no field name ever appears as an identifier."""
    exprs = [
        f"json_extract(doc, {path_literal(split_field(f))}) {'DESC' if d == -1 else 'ASC'}"
        for f, d in fields
    ]
    digest = hashlib.sha1(repr((fields, unique)).encode()).hexdigest()[:12]
    name = f"ix_{table}_{'u' if unique else 'n'}{digest}"
    conn.execute(
        f"CREATE {'UNIQUE ' if unique else ''}INDEX IF NOT EXISTS {name} ON {table}({', '.join(exprs)})"
    )
    return name


class SQLiteCollection:
    """The slice of pymongo's ``Collection`` that jobflow-remote and maggma's tests call."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store
        self.name = store.collection_name
        self.full_name = store.name

    def find(self, filter: dict | None = None, projection=None, sort=None, skip: int = 0,
             limit: int = 0, **_: Any) -> Iterator[dict]:
        sort_map = dict(sort) if sort else None
        return self._store.query(filter, projection, sort_map, skip, limit)

    def find_one(self, filter: dict | None = None, projection=None, **kwargs: Any) -> dict | None:
        return next(self.find(filter, projection, limit=1, **kwargs), None)

    def insert_one(self, document: dict) -> None:
        self._store.insert_raw([document])

    def insert_many(self, documents: list[dict], **_: Any) -> None:
        self._store.insert_raw(list(documents))

    def count_documents(self, filter: dict | None = None, **_: Any) -> int:
        return self._store.count(filter)

    def estimated_document_count(self) -> int:
        return self._store.count()

    def distinct(self, key: str, filter: dict | None = None) -> list:
        return self._store.distinct(key, filter)

    def delete_many(self, filter: dict) -> None:
        self._store.remove_docs(filter)

    def create_index(self, keys: str | list[tuple[str, int]], unique: bool = False, **_: Any) -> str:
        fields = [(keys, 1)] if isinstance(keys, str) else [(k, int(d)) for k, d in keys]
        with self._store._write() as conn:
            return self._store._create_index(conn, fields, unique)

    def drop_indexes(self) -> None:
        """Drop secondary indexes; the jobflow lookup indexes come back on the next connect."""
        with self._store._write() as conn:
            for name in self._store.index_names():
                conn.execute(f"DROP INDEX IF EXISTS {name}")

    def drop(self) -> None:
        with self._store._write() as conn:
            conn.execute(f"DELETE FROM {self._store.table}")
