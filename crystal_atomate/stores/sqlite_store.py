"""A maggma ``Store`` kept in one SQLite file, so jobflow results need no database server.

Each collection is a table ``jobflow_docs_<collection>(id INTEGER PRIMARY KEY, doc TEXT)`` of
JSON documents, queried with SQLite's JSON1 functions through :mod:`.query`, which accepts the
MongoDB filters jobflow, atomate2 and maggma builders write. The store knows nothing of what else
the file holds: whoever shares the file passes hooks (``on_connect`` runs when the store connects,
``on_update`` inside the very transaction that writes documents), as
:class:`~crystal_atomate.stores.jobstore.CrystalMathJobStore` does to mirror jobs into the
terminal UI's tables.

Connections come from :mod:`.sqlite_db`: one per file and process, shared by every store on the
file, so documents of several collections can be written in one transaction
(:meth:`SQLiteStore.transaction` nests). Each write is one short ``BEGIN IMMEDIATE`` transaction;
a writer waits for another program's lock with backoff up to ``timeout`` seconds, then raises
:class:`~crystal_atomate.stores.sqlite_db.DatabaseLockedError`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from bson import ObjectId
from maggma.core import DateTimeFormat, Sort, Store, StoreError
from maggma.core.validator import Validator
from monty.json import jsanitize
from pydash import get, has, set_

from crystal_atomate.stores.query import (
    Compiler,
    InvalidFieldError,
    check_shape,
    check_value,
    decode_document,
    encode_scalar,
    path_literal,
    split_field,
    validate_limit_skip,
)
from crystal_atomate.stores.sqlite_db import DEFAULT_LOCK_DEADLINE, SQLiteDatabase

__all__ = [
    "DEFAULT_INDEXES",
    "EncodedDocument",
    "SQLiteStore",
    "create_collection",
    "docs_table",
    "encode_document",
]

#: Fields jobflow looks documents up by; each gets an expression index in every collection.
#: ``index`` (the run number, nearly always 1) is indexed together with ``uuid``: on its own it
#: would be a useless index that SQLite's planner, without statistics, may still prefer.
#: ``completed_at`` serves jobflow's "latest jobs" queries (sorted on it).
DEFAULT_INDEXES = (
    (("uuid", 1),),
    (("uuid", 1), ("index", 1)),
    (("blob_uuid", 1),),
    (("job_uuid", 1),),
    (("completed_at", -1),),
)
_COLLECTION_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_PLAIN_PART = re.compile(r"^[A-Za-z0-9_@-]+$")

#: ``on_connect(conn)``: runs once per :meth:`SQLiteStore.connect`, before the store's tables exist.
ConnectHook = Callable[[sqlite3.Connection], None]
#: ``on_update(conn, docs)``: runs inside the transaction that wrote ``docs``.
UpdateHook = Callable[[sqlite3.Connection, list[dict]], None]


def docs_table(collection_name: str) -> str:
    """Table holding a collection; names are validated because table names cannot be bound.

    Parameters
    ----------
    collection_name
        Letters, digits and underscores, at most 64.

    Returns
    -------
    str
        ``jobflow_docs_<collection_name>``.

    Raises
    ------
    ValueError
        The name has other characters.
    """
    if not _COLLECTION_NAME.match(collection_name or ""):
        raise ValueError(
            f"collection_name must match {_COLLECTION_NAME.pattern}, got {collection_name!r}"
        )
    return f"jobflow_docs_{collection_name}"


def _arrays_table(collection_name: str) -> str:
    return f"jobflow_arrays_{collection_name}"


class _Foreign(Exception):
    """A value JSON cannot hold as is (a pydantic model, an MSONable, numpy...): sanitise first."""


_NATIVE = frozenset({str, int, bool, type(None)})
_isfinite = math.isfinite  # a global name, not an attribute look-up per leaf


def _encode_doc(value: Any, path: str, arrays: set[str]) -> Any:
    """Make a document JSON-safe and note every dotted path that holds a list.

    Datetimes and non-finite floats become tagged strings, ``ObjectId`` its hex string; any other
    non-JSON value raises :class:`_Foreign`, so plain documents (jobflow's are already sanitised)
    are walked once, and only the others go through ``jsanitize``. Leaves are checked inline
    (most nodes of a document are leaves) and lists copied at once, then patched.
    """
    kind = type(value)
    if kind is dict:
        out = {}
        for k, v in value.items():
            key = k if type(k) is str else str(k)
            leaf = type(v)
            if leaf in _NATIVE or (leaf is float and _isfinite(v)):
                out[key] = v
            else:
                out[key] = _encode_doc(v, f"{path}.{key}" if path else key, arrays)
        return out
    if kind is list or kind is tuple:
        arrays.add(path)
        items = list(value)
        for i, v in enumerate(items):
            leaf = type(v)
            if not (leaf in _NATIVE or (leaf is float and _isfinite(v))):
                items[i] = _encode_doc(v, path, arrays)
        return items
    if kind in _NATIVE:
        return value
    if kind is float:
        return value if _isfinite(value) else encode_scalar(value)
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, datetime):
        return encode_scalar(value)
    raise _Foreign(kind.__name__)


def _dumps(doc: Any) -> str:
    try:
        return orjson.dumps(doc).decode()
    except TypeError:  # integers beyond 64 bits: the stdlib writes them, SQLite stores them as real
        return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _plain_filter(criteria: Any) -> Any:
    """Check a filter's depth before anything recurses into it; return it with ObjectIds as text."""
    check_shape(criteria)
    return _plain(criteria)


def _plain(value: Any) -> Any:
    """Replace each ``ObjectId`` in a filter or key value by its hex string, as stored."""
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _lookup(doc: Any, field: str) -> tuple[bool, Any]:
    """``(present, value)`` of a dotted field: a plain dict lookup for a top-level one."""
    if "." not in field and isinstance(doc, dict):
        return field in doc, doc.get(field)
    return has(doc, field), get(doc, field)


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


#: A projection tree: each key maps to ``True`` (the whole value) or to the tree of its fields.
Projection = dict[str, Any]


def _projection_tree(fields: list[str]) -> Projection:
    """Merge dotted inclusion fields into one tree, so fields inside one list are picked together.

    A field and one of its parents (``a`` and ``a.x``) is a path collision, which MongoDB 4.4+
    refuses; the parent wins here, whatever the order, as on older MongoDB.
    """
    tree: Projection = {}
    for field in fields:
        *parents, last = field.split(".")
        node = tree
        for part in parents:
            child = node.setdefault(part, {})
            if child is True:
                break
            node = child
        else:
            node[last] = True
    return tree


def _project_value(value: Any, tree: Projection) -> Any:
    """Apply a projection tree below a field, reaching through lists as MongoDB does.

    A sub-document keeps the projected fields it has (maybe none); a list keeps, in order, its
    projected sub-documents and nested lists and drops its scalars; a scalar is left out
    (returned as ``_MISSING``).
    """
    if isinstance(value, dict):
        out = {}
        for key, sub in tree.items():
            if key in value:
                picked = value[key] if sub is True else _project_value(value[key], sub)
                if picked is not _MISSING:
                    out[key] = picked
        return out
    if isinstance(value, list):
        picked = (_project_value(item, tree) for item in value)
        return [item for item in picked if item is not _MISSING]
    return _MISSING


_MISSING = object()


def project(doc: dict, properties: dict | list | None) -> dict:
    """Apply a Mongo projection (inclusion of dotted fields, or exclusion) to a document."""
    include, exclude = _projection(properties)
    if include:
        return _project_value(doc, _projection_tree(include))
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
    """Return a hashable, type-aware stand-in used to deduplicate and order mixed values."""
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

    Parameters
    ----------
    db_file
        The SQLite file (created if missing).
    collection_name
        The collection, stored in table ``jobflow_docs_<collection_name>``.
    key
        The default key ``update`` upserts on.
    last_updated_field, last_updated_type, validator
        As for every maggma Store.
    timeout
        Seconds a writer waits for another program's write lock before
        :class:`~crystal_atomate.stores.sqlite_db.DatabaseLockedError`.
    on_connect
        Called with the connection when the store connects (e.g. to create other tables).
    on_update
        Called with the connection and the written documents inside their transaction.
        Hooks are not serialised: a store that needs them across processes is a subclass that
        passes them (as :class:`~crystal_atomate.stores.jobstore.UIDocsStore` does).
    """

    def __init__(
        self,
        db_file: str | Path,
        collection_name: str = "outputs",
        key: str = "task_id",
        last_updated_field: str = "last_updated",
        last_updated_type: DateTimeFormat = DateTimeFormat.DateTime,
        validator: Validator | None = None,
        timeout: float = DEFAULT_LOCK_DEADLINE,
        on_connect: ConnectHook | None = None,
        on_update: UpdateHook | None = None,
    ) -> None:
        self.db_file = str(db_file)
        self.collection_name = collection_name
        self.table = docs_table(collection_name)
        self.timeout = timeout
        self.on_connect = on_connect
        self.on_update = on_update
        self._database: tuple[int, SQLiteDatabase] | None = None
        self._array_paths: set[str] = set()
        self._data_version: tuple[int, int, int] | None = None
        self._key_sql: dict[tuple, str] = {}
        self._key_sql_paths: frozenset[str] = frozenset()
        super().__init__(
            key=key,
            last_updated_field=last_updated_field,
            last_updated_type=last_updated_type,
            validator=validator,
        )

    # -- connection -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """``sqlite://<file>/<collection>``."""
        return f"sqlite://{self.db_file}/{self.collection_name}"

    @property
    def database(self) -> SQLiteDatabase:
        """The file's shared connection in this process; :class:`StoreError` before connecting."""
        if self._database is None:
            raise StoreError("Must connect SQLiteStore before attempting to use it")
        pid, database = self._database
        if pid != os.getpid():
            database = SQLiteDatabase.shared(database.path)
            self._database = (os.getpid(), database)
        return database

    @property
    def connected(self) -> bool:
        """Whether :meth:`connect` was called (a closed store reopens on its next use)."""
        return self._database is not None

    def connect(self, force_reset: bool = False) -> None:
        """Open the file, run ``on_connect``, create our tables and default indexes.

        Parameters
        ----------
        force_reset
            Reopen the connection; it never deletes data (the file is shared).
        """
        if self._database is not None and not force_reset and self._database[0] == os.getpid():
            return
        database = SQLiteDatabase.shared(Path(self.db_file).expanduser())
        if force_reset:
            database.close()
        with database.lock:
            if self.on_connect is not None:
                self.on_connect(database.connection(self.timeout))
            with database.transaction(self.timeout, f"the tables of {self.name}") as conn:
                create_collection(conn, self.collection_name, self.key)
        self._database = (os.getpid(), database)

    def close(self) -> None:
        """Close the connection; the store stays usable (the next call reopens it).

        This is what maggma's ``MemoryStore`` does after ``Builder.run()`` closed it.
        """
        if self._database is not None:
            self.database.close()

    @property
    def _collection(self) -> SQLiteCollection:
        """A pymongo-like handle, for code (jobflow-remote, maggma tests) that reaches for one."""
        if self._database is None:
            raise StoreError("Must connect SQLiteStore before attempting to use it")
        return SQLiteCollection(self)

    @contextmanager
    def transaction(self, what: str | None = None) -> Iterator[sqlite3.Connection]:
        """Open a write transaction on this store's file; one opened inside another joins it.

        Parameters
        ----------
        what
            What is being written, for the error raised if the lock never comes.

        Yields
        ------
        sqlite3.Connection
            The connection, inside the transaction.
        """
        with self.database.transaction(self.timeout, what or f"a write to {self.name}") as conn:
            yield conn

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """Hold the connection for reading (no other thread of this process uses it meanwhile).

        Yields
        ------
        sqlite3.Connection
            The shared connection.
        """
        database = self.database
        with database.lock:
            yield database.connection(self.timeout)

    def _compiler(self, conn: sqlite3.Connection) -> Compiler:
        """Return a query compiler knowing every path that has held an array, in any process.

        ``PRAGMA data_version`` changes when another connection commits, which is when the
        list of array paths has to be re-read; a stale superset would only cost speed.
        """
        database = self.database  # a new connection (reopened, or forked) restarts data_version
        version = (
            id(database),
            database.generation,
            conn.execute("PRAGMA data_version").fetchone()[0],
        )
        if version != self._data_version:
            rows = conn.execute(f"SELECT path FROM {_arrays_table(self.collection_name)}")
            self._array_paths |= {r[0] for r in rows}
            self._data_version = version
        return Compiler(frozenset(self._array_paths))

    # -- reading ----------------------------------------------------------------------------

    def _select(self, what: str, criteria: dict | None, tail: str = "", tail_params=()) -> list:
        with self.reading() as conn:
            compiler = self._compiler(conn)
            where = compiler.where(_plain_filter(criteria))
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
        """Documents matching a Mongo filter.

        Rows are fetched at once and decoded lazily, so no read transaction stays open while
        the caller works.

        Parameters
        ----------
        criteria, properties, sort, skip, limit
            As for every maggma Store.

        Yields
        ------
        dict
            Each matching document, projected.
        """
        limit, skip = validate_limit_skip(limit, skip)
        tail = f"ORDER BY {_sort_clause(sort)} LIMIT ? OFFSET ?"
        rows = self._select("doc", criteria, tail, (limit or -1, skip))
        for (text,) in rows:
            yield project(decode_document(text), properties)

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
        """Count the documents matching ``criteria``.

        Parameters
        ----------
        criteria
            A Mongo filter.

        Returns
        -------
        int
            The count.
        """
        return self._select("COUNT(*)", criteria)[0][0]

    def distinct(self, field: str, criteria: dict | None = None, all_exist: bool = False) -> list:
        """Distinct values of ``field``; list values are unrolled, as Mongo does.

        Parameters
        ----------
        field, criteria, all_exist
            As for every maggma Store.

        Returns
        -------
        list
            The values, in first-seen order.
        """
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
        """Group documents having every key, as maggma's MemoryStore does.

        Parameters
        ----------
        keys, criteria, properties, sort, skip, limit
            As for every maggma Store.

        Yields
        ------
        tuple of (dict, list of dict)
            The key values and the documents of each group.
        """
        limit, skip = validate_limit_skip(limit, skip)
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
        """Upsert documents on ``key`` (one field or several) in one short transaction.

        ``on_update`` runs inside that transaction, so what it writes commits with the documents
        or not at all.

        Parameters
        ----------
        docs
            One document or several.
        key
            Field(s) identifying a document; default the store's key.

        Raises
        ------
        KeyError
            A document lacks a key field.
        DatabaseLockedError
            Another program kept the write lock past ``timeout``; nothing was written.
        """
        docs = docs if isinstance(docs, list) else [docs]
        arrays: set[str] = set()
        views, stored = [], []
        for raw in docs:
            view, encoded = _prepare(raw, arrays)
            views.append(view)
            stored.append(encoded)
        self._write(views, stored, arrays, key)

    def update_encoded(self, docs: list[EncodedDocument], key: list | str | None = None) -> None:
        """Upsert documents built in their stored form, without walking them again.

        For writers that build documents JSON-safe as they go (the import of the UI's own runs):
        :meth:`update` would walk each document once more to encode it. The documents are
        written as given, and the validator and ``on_update`` see them in that form.

        Parameters
        ----------
        docs
            The documents with their list paths.
        key
            Field(s) identifying a document; default the store's key.

        Raises
        ------
        KeyError
            A document lacks a key field.
        DatabaseLockedError
            Another program kept the write lock past ``timeout``; nothing was written.
        """
        views = [d.doc for d in docs]
        self._write(views, views, set().union(*(d.arrays for d in docs)), key)

    def _write(
        self, views: list[Any], stored: list[Any], arrays: set[str], key: list | str | None
    ) -> None:
        """Validate, then upsert and run ``on_update`` in one transaction (see :meth:`update`)."""
        key = key or self.key
        keys = [key] if isinstance(key, str) else list(key)
        kept, encoded = [], []
        for doc, text in zip(views, stored, strict=True):
            if self.validator and not self.validator.is_valid(doc):
                if self.validator.strict:
                    raise ValueError(self.validator.validation_errors(doc))
                self.logger.error(self.validator.validation_errors(doc))
                continue
            missing = [k for k in keys if not _lookup(doc, k)[0]]
            if missing:
                raise KeyError(f"document has no key field {missing[0]!r}")
            kept.append(doc)
            encoded.append(text)
        if not kept:
            return
        with self.transaction(_describe(self.name, kept, keys)) as conn:
            self._note_arrays(conn, arrays)
            self._upsert(conn, kept, encoded, keys)
            if self.on_update is not None:
                self.on_update(conn, kept)

    def _note_arrays(self, conn: sqlite3.Connection, arrays: set[str]) -> None:
        """Record paths that now hold a list, so queries on them get array semantics."""
        new = arrays - self._array_paths
        if new:
            conn.executemany(
                f"INSERT OR IGNORE INTO {_arrays_table(self.collection_name)}(path) VALUES (?)",
                [(p,) for p in sorted(new)],
            )
            self._array_paths |= new

    def _key_filter(
        self, array_paths: frozenset[str], keys: list[str], values: list[Any]
    ) -> tuple[str, list[Any]]:
        """Compile the filter finding a document by its key values: ``(where, params)``.

        Keys of text and integers (uuid, index: every job document) on paths that never held a
        list compile to the same SQL, binding each value once, whatever the values; that SQL is
        compiled once per key fields, value types and known list paths, and only the values are
        checked and bound. Other keys are compiled each time.
        """
        kinds = tuple(type(v) for v in values)
        cacheable = all(kind is str or kind is int for kind in kinds)
        if cacheable:
            if array_paths != self._key_sql_paths:
                self._key_sql, self._key_sql_paths = {}, array_paths
            where = self._key_sql.get((tuple(keys), kinds))
            if where is not None:
                for value in values:
                    check_value(value)
                return where, values
        compiler = Compiler(array_paths)
        where = compiler.where(_plain(dict(zip(keys, values, strict=True))))
        if cacheable and compiler.params == values:
            self._key_sql[(tuple(keys), kinds)] = where
        return where, compiler.params

    def _upsert(
        self, conn: sqlite3.Connection, docs: list[dict], encoded: list[dict], keys: list[str]
    ) -> None:
        """Insert or replace each document; a replaced one keeps its ``_id``, as in MongoDB."""
        array_paths = self._compiler(conn).array_paths
        for doc, stored in zip(docs, encoded, strict=True):
            where, params = self._key_filter(array_paths, keys, [_lookup(doc, k)[1] for k in keys])
            row = conn.execute(
                f"SELECT id, json_extract(doc, '$._id') FROM {self.table} WHERE {where} LIMIT 1",
                params,
            ).fetchone()
            if "_id" not in stored:
                _id = row[1] if row is not None and row[1] is not None else str(ObjectId())
                stored = {**stored, "_id": _id}
            text = _dumps(stored)
            if row is None:
                conn.execute(f"INSERT INTO {self.table}(doc) VALUES (?)", (text,))
            else:
                conn.execute(f"UPDATE {self.table} SET doc = ? WHERE id = ?", (text, row[0]))

    def insert_raw(self, docs: list[dict]) -> None:
        """Insert documents without an upsert key (pymongo ``insert_many``).

        Parameters
        ----------
        docs
            The documents; each gets an ``_id`` if it has none.
        """
        arrays: set[str] = set()
        encoded = [_prepare(d, arrays)[1] for d in docs]
        for stored in encoded:
            stored.setdefault("_id", str(ObjectId()))
        with self.transaction(f"{len(encoded)} document(s) of {self.name}") as conn:
            self._note_arrays(conn, arrays)
            conn.executemany(
                f"INSERT INTO {self.table}(doc) VALUES (?)", [(_dumps(e),) for e in encoded]
            )

    def remove_docs(self, criteria: dict) -> None:
        """Delete the documents matching ``criteria``.

        Parameters
        ----------
        criteria
            A Mongo filter.
        """
        with self.transaction(f"removal from {self.name}") as conn:
            compiler = self._compiler(conn)
            where = compiler.where(_plain_filter(criteria))
            conn.execute(f"DELETE FROM {self.table} WHERE {where}", compiler.params)

    # -- indexes ----------------------------------------------------------------------------

    def ensure_index(self, key: str, unique: bool = False) -> bool:
        """Create an expression index on ``json_extract(doc, <path of key>)``; False if impossible.

        Only plain dotted names (letters, digits, ``_``, ``@``, ``-``) are indexed: an index
        changes the schema other programs read too, so odd names are refused rather than quoted.
        Duplicates under ``unique`` also give False.

        Parameters
        ----------
        key
            A dotted field name.
        unique
            Make it a unique index.

        Returns
        -------
        bool
            Whether the index exists now.
        """
        if not isinstance(key, str) or not all(_PLAIN_PART.match(p) for p in key.split(".")):
            return False
        try:
            self.create_index([(key, 1)], unique=unique)
        except (InvalidFieldError, sqlite3.IntegrityError, sqlite3.OperationalError):
            return False
        return True

    def create_index(self, fields: list[tuple[str, int]], unique: bool = False) -> str:
        """Create an expression index over ``fields`` (dotted name, 1 or -1 for the direction).

        Parameters
        ----------
        fields
            The indexed fields, in order.
        unique
            Make it a unique index.

        Returns
        -------
        str
            The index's name.
        """
        with self.transaction(f"an index on {self.name}") as conn:
            return create_json_index(conn, self.table, fields, unique)

    def index_names(self) -> list[str]:
        """Our indexes on this collection (for tests and diagnostics).

        Returns
        -------
        list of str
            Index names.
        """
        with self.reading() as conn:
            rows = conn.execute(
                "SELECT name FROM sqlite_master WHERE type='index' AND tbl_name=? "
                "AND name LIKE 'ix_%'",
                (self.table,),
            ).fetchall()
        return [r[0] for r in rows]

    def drop_indexes(self) -> None:
        """Drop this collection's indexes; the default ones come back on the next connect."""
        names = self.index_names()
        with self.transaction(f"dropping the indexes of {self.name}") as conn:
            for name in names:
                conn.execute(f"DROP INDEX IF EXISTS {name}")

    def drop(self) -> None:
        """Delete every document of the collection."""
        with self.transaction(f"emptying {self.name}") as conn:
            conn.execute(f"DELETE FROM {self.table}")

    # -- identity ---------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        """Compare stores: equal when file, collection and ``last_updated_field`` are the same."""
        if not isinstance(other, SQLiteStore):
            return False
        return (
            Path(self.db_file).expanduser().resolve() == Path(other.db_file).expanduser().resolve()
            and self.collection_name == other.collection_name
            and self.last_updated_field == other.last_updated_field
        )

    def __hash__(self) -> int:
        """Hash of the file and collection."""
        return hash((str(Path(self.db_file).expanduser().resolve()), self.collection_name))


def _prepare(raw: Any, arrays: set[str], path: str = "") -> tuple[Any, Any]:
    """Return (the document as the validator and hooks see it, its encoded form to store)."""
    try:
        return raw, _encode_doc(raw, path, arrays)
    except _Foreign:
        doc = jsanitize(raw, allow_bson=True, recursive_msonable=True)
        return doc, _encode_doc(doc, path, arrays)


def encode_document(value: Any, path: str = "", arrays: set[str] | None = None) -> Any:
    """Return a value as a store keeps it: JSON-safe, in one walk; note the paths holding lists.

    Datetimes and non-finite floats become tagged strings (which read back as they were),
    ``ObjectId`` its hex string; anything else JSON cannot hold (MSONable, numpy...) goes through
    ``jsanitize`` first.

    Parameters
    ----------
    value
        A document, or a part of one.
    path
        The dotted path of ``value`` in its document (empty for a whole document).
    arrays
        Receives the dotted path of every list met (indexes are not part of a path).

    Returns
    -------
    Any
        The encoded value, sharing nothing mutable with ``value``.
    """
    return _prepare(value, set() if arrays is None else arrays, path)[1]


@dataclass(frozen=True)
class EncodedDocument:
    """A document in its stored form, for :meth:`SQLiteStore.update_encoded`.

    Parameters
    ----------
    doc
        JSON-safe as :func:`encode_document` returns it (no datetime, non-finite float or
        foreign object); the store neither copies nor walks it again.
    arrays
        Every dotted path of ``doc`` that holds a list (a superset only costs query speed; a
        missing path makes queries through that list miss).
    """

    doc: dict
    arrays: frozenset[str]


def _describe(name: str, docs: list[dict], keys: list[str]) -> str:
    """Describe what an update writes, for the lock error: the collection and the first keys."""
    shown = ", ".join(
        "/".join(f"{k}={get(d, k)}" for k in keys) for d in docs[:3]
    )
    more = f" and {len(docs) - 3} more" if len(docs) > 3 else ""
    return f"{len(docs)} document(s) of {name} ({shown}{more})"


def create_collection(conn: sqlite3.Connection, collection_name: str, key: str) -> None:
    """Create the tables of one collection and its default indexes, if missing.

    The tables hold the documents and the paths that ever held an array; the indexes cover
    jobflow's lookup fields (:data:`DEFAULT_INDEXES`) and the store key.

    Parameters
    ----------
    conn
        A connection inside a write transaction.
    collection_name
        The collection.
    key
        The store's key field.
    """
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
    """``CREATE INDEX`` on ``json_extract(doc, <path>)`` for each field.

    The path text is the one :mod:`.query` generates, which is what lets SQLite use the index
    for those queries. The name is a digest, so no field name ever appears as an identifier.

    Parameters
    ----------
    conn
        A connection inside a write transaction.
    table
        The collection's table.
    fields
        (dotted name, 1 or -1) pairs.
    unique
        Make it a unique index.

    Returns
    -------
    str
        The index's name.
    """
    exprs = [
        f"json_extract(doc, {path_literal(split_field(f))}) {'DESC' if d == -1 else 'ASC'}"
        for f, d in fields
    ]
    digest = hashlib.sha1(repr((fields, unique)).encode()).hexdigest()[:12]
    name = f"ix_{table}_{'u' if unique else 'n'}{digest}"
    conn.execute(
        f"CREATE {'UNIQUE ' if unique else ''}INDEX IF NOT EXISTS {name} ON "
        f"{table}({', '.join(exprs)})"
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

    def create_index(
        self, keys: str | list[tuple[str, int]], unique: bool = False, **_: Any
    ) -> str:
        fields = [(keys, 1)] if isinstance(keys, str) else [(k, int(d)) for k, d in keys]
        return self._store.create_index(fields, unique)

    def drop_indexes(self) -> None:
        """Drop secondary indexes; the jobflow lookup indexes come back on the next connect."""
        self._store.drop_indexes()

    def drop(self) -> None:
        self._store.drop()
