"""A file-backed, MongoDB-compatible database for FireWorks and jobflow-remote, without MongoDB.

Why a server: FireWorks' ``lpad``/``rlaunch`` and jobflow-remote's ``jf`` runner are separate
processes that only speak pymongo, and every in-process file database we measured (litemongo,
montydb, mongomock-persistence; see ``docs/embedded-database.md``) lets two processes claim the same
document with ``find_one_and_update``. So one small server process per database directory owns the
files: it speaks enough of the MongoDB wire protocol for unmodified pymongo clients, listens on a
Unix socket inside the directory (no network port at all), runs every command one at a time (which
makes ``find_one_and_update`` atomic across all clients) and stores documents with litemongo's
SQLite engine (one commit per write, WAL journal: a killed client or server loses nothing already
acknowledged).

Lifecycle: :func:`ensure_server` starts the server on first use (idempotent, race-free through a
lock file), :func:`stop_server` stops it; ``python -m crystal_atomate.engines.embedded_db
start|stop|status DIR`` does the same from a shell. The server runs until stopped, like ``mongod``.
"""
from __future__ import annotations

import argparse
import datetime
import fcntl
import hashlib
import itertools
import logging
import os
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import bson
import litemongo
from bson.int64 import Int64
from pymongo import MongoClient, ReturnDocument
from pymongo.errors import CollectionInvalid, DuplicateKeyError, OperationFailure

from crystal_atomate.engines.remote_exec import lock_holder

__all__ = [
    "EmbeddedDatabaseError",
    "connect",
    "ensure_server",
    "is_running",
    "mongodb_uri",
    "serve",
    "server_pid",
    "socket_path",
    "stop_server",
]

# Spelled out: under ``python -m`` this module's ``__name__`` is ``__main__``.
_MODULE = "crystal_atomate.engines.embedded_db"
LOG = logging.getLogger(_MODULE)

_SOCKET_NAME = "mongod.sock"
_LOCK_NAME = "server.lock"
_LOG_NAME = "server.log"
_DATA_NAME = "data"
# Linux limits a Unix socket path to 108 bytes.
_MAX_SOCKET_PATH = 100

_OP_REPLY = 1
_OP_QUERY = 2004
_OP_MSG = 2013
_MSG_CHECKSUM_PRESENT = 1
_MSG_MORE_TO_COME = 2
_HEADER = struct.Struct("<iiii")

_MAX_BSON_SIZE = 16 * 1024 * 1024
_MAX_MESSAGE_SIZE = 48_000_000
_BATCH_BYTES = 8 * 1024 * 1024
# MongoDB's default first batch: a large result comes in getMore batches, never in one reply.
_FIRST_BATCH = 101
# Documents fetched per round trip to SQLite while a cursor is filled.
_FETCH_CHUNK = 500
# MongoDB 6.0: new enough for every pymongo 4 feature our engines use. Hello carries no
# topologyVersion, so clients poll rather than stream server monitoring.
_WIRE_VERSION = 17
_SERVER_VERSION = "6.0.0"
# Hello says "mongos" with logical sessions: the one topology pymongo retries writes on besides a
# replica set (which would make clients look for the set's other members). A write interrupted by
# a server kill is then sent again once the server is back, and answered from
# ``config.transactions`` if it had been applied.
_SESSION_TIMEOUT_MINUTES = 30
_CURSOR_TIMEOUT_SECONDS = 600
_TRANSACTIONS = ("config", "transactions")

Document = dict[str, Any]


class EmbeddedDatabaseError(RuntimeError):
    """The embedded database server could not be started or stopped."""


# --------------------------------------------------------------------------- paths and lifecycle


def socket_path(db_dir: str | Path) -> Path:
    """Return where the server of ``db_dir`` listens: inside the directory if the path fits.

    A path too long for a Unix socket goes to a per-user temporary folder, under a name derived from
    the directory.
    """
    db_dir = Path(db_dir).expanduser().absolute()
    inside = db_dir / _SOCKET_NAME
    if len(str(inside)) <= _MAX_SOCKET_PATH:
        return inside
    digest = hashlib.sha1(str(db_dir).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"crystal-atomate-{os.getuid()}" / f"{digest}.sock"


def mongodb_uri(db_dir: str | Path, database: str | None = None) -> str:
    """Return the ``mongodb://`` URI pymongo clients (and FireWorks' ``uri_mode``) connect with."""
    uri = "mongodb://" + quote(str(socket_path(db_dir)), safe="")
    return f"{uri}/{database}" if database else uri


def is_running(db_dir: str | Path) -> bool:
    """Whether a server accepts connections for ``db_dir``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(socket_path(db_dir)))
        except OSError:
            return False
    return True


def ensure_server(db_dir: str | Path, timeout: float = 20.0) -> str:
    """Start the server of ``db_dir`` unless one is running; return its URI.

    Safe to call from many processes at once: the server itself takes the directory's lock, so
    extra copies exit at once and every caller waits for the one that won.
    """
    db_dir = Path(db_dir).expanduser().absolute()
    if is_running(db_dir):
        return mongodb_uri(db_dir)
    db_dir.mkdir(parents=True, exist_ok=True)
    with open(db_dir / _LOG_NAME, "ab") as log:
        subprocess.Popen(
            [sys.executable, "-m", _MODULE, "serve", str(db_dir)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # outlives the caller, e.g. a killed launcher or runner
            close_fds=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_running(db_dir):
            return mongodb_uri(db_dir)
        time.sleep(0.05)
    raise EmbeddedDatabaseError(
        f"embedded database server for {db_dir} did not start within {timeout:.0f} s; "
        f"see {db_dir / _LOG_NAME}"
    )


def stop_server(db_dir: str | Path, timeout: float = 20.0) -> bool:
    """Stop the server of ``db_dir`` (SIGTERM, then wait for its lock to be released).

    Returns False if no server was running.
    """
    db_dir = Path(db_dir).expanduser().absolute()
    pid = server_pid(db_dir)
    if pid is None:
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server_pid(db_dir) is None:
            return True
        time.sleep(0.05)
    raise EmbeddedDatabaseError(f"embedded database server {pid} for {db_dir} did not stop")


def connect(db_dir: str | Path, **client_kwargs: Any) -> MongoClient:
    """Connect a pymongo client to the database in ``db_dir``, starting its server if needed."""
    client_kwargs.setdefault("serverSelectionTimeoutMS", 20_000)
    return MongoClient(ensure_server(db_dir), **client_kwargs)


def server_pid(db_dir: str | Path) -> int | None:
    """Return the pid of the server of ``db_dir`` (holding its lock); None if none runs."""
    return lock_holder(str(Path(db_dir).expanduser().absolute() / _LOCK_NAME))


# --------------------------------------------------------------------------- commands


def _error(message: str, code: int, code_name: str) -> Document:
    return {"ok": 0.0, "errmsg": message, "code": code, "codeName": code_name}


def _is_replacement(update: Any) -> bool:
    return isinstance(update, dict) and not any(key.startswith("$") for key in update)


def _sort_spec(sort: Document | None) -> list[tuple[str, Any]] | None:
    return list(sort.items()) if sort else None


def _write_reply(n: int, errors: list[Document], **extra: Any) -> Document:
    reply: Document = {"n": n, **extra}
    if errors:
        reply["writeErrors"] = errors
    return reply


def _write_error(index: int, exc: Exception) -> Document:
    code = 11000 if isinstance(exc, DuplicateKeyError) else getattr(exc, "code", None) or 2
    return {"index": index, "code": code, "errmsg": str(exc)}


Handler = Callable[["_Commands", Any, Any, Document], Document]


def _id_key(value: Any) -> bytes:
    """Return a hashable key for any ``_id`` (an embedded document too)."""
    return bson.encode({"_id": value})


class _Cursor:
    """An open cursor: a key for every result still to send, turned into documents on demand.

    A find's keys are the results' ``_id``, so a find over a large collection holds a few bytes
    per result between batches instead of every document (``aggregate`` results, computed whole by
    mongomock, are their own keys).
    """

    def __init__(
        self, ns: str, pending: Iterator[Any], fetch: Callable[[list[Any]], list[Document]]
    ) -> None:
        self.ns = ns
        self._pending = pending
        self._fetch = fetch
        self._next: list[Any] = []
        self.last_use = time.monotonic()

    def batch(self, size: int) -> list[Document]:
        """Up to ``size`` results (0: as many as fit in about 8 MiB)."""
        self.last_use = time.monotonic()
        batch: list[Document] = []
        used = 0
        while not size or len(batch) < size:
            want = min(_FETCH_CHUNK, size - len(batch)) if size else _FETCH_CHUNK
            docs = self._take(want)
            if not docs:
                break
            for position, doc in enumerate(docs):
                used += len(bson.encode(doc))
                if used > _BATCH_BYTES and batch:
                    self._next = docs[position:] + self._next
                    return batch
                batch.append(doc)
        return batch

    def _take(self, count: int) -> list[Document]:
        ready, self._next = self._next[:count], self._next[count:]
        keys = list(itertools.islice(self._pending, count - len(ready)))
        return ready + (self._fetch(keys) if keys else [])

    @property
    def exhausted(self) -> bool:
        """Whether every result has been sent."""
        if self._next:
            return False
        following = list(itertools.islice(self._pending, 1))
        if not following:
            return True
        self._pending = itertools.chain(following, self._pending)
        return False


def _documents_by_id(
    collection: Any, projection: Document | None
) -> Callable[[list[Any]], list[Document]]:
    """Fetch documents of ``collection`` by ``_id`` in the given order, projected.

    The projection is litemongo's own, with ``_id`` kept for the ordering and removed again if the
    projection drops it.
    """
    drops_id = bool(projection) and not projection.get("_id", True)
    others = {key: value for key, value in (projection or {}).items() if key != "_id"}
    fetch_projection = {**others, "_id": 1} if others else None

    def fetch(ids: list[Any]) -> list[Document]:
        found = {
            _id_key(doc["_id"]): doc
            for doc in collection.find({"_id": {"$in": ids}}, fetch_projection)
        }
        docs = [found[key] for key in map(_id_key, ids) if key in found]
        if drops_id:
            for doc in docs:
                doc.pop("_id", None)
        return docs

    return fetch


class _Commands:
    """MongoDB commands executed on litemongo (mongomock's query engine over SQLite files).

    Only one thread ever calls :meth:`run`, so each command is atomic with respect to every client.
    A retryable write (one carrying ``lsid`` and ``txnNumber``) is recorded with its reply in
    ``config.transactions``; the same write sent again after a lost connection gets that reply
    instead of being applied twice.
    """

    def __init__(self, data_dir: Path) -> None:
        self._client = litemongo.connect(str(data_dir))
        self._scratch = litemongo.connect("embedded-db-scratch?engine=memory")
        self._cursors: dict[int, _Cursor] = {}
        self._cursor_ids = itertools.count(1)
        self._forget_old_sessions()

    def close(self) -> None:
        self._client.close()

    def run(self, db_name: str, command: Document) -> Document:
        name = next(iter(command))
        handler = _HANDLERS.get(name.lower())
        if handler is None:
            return _error(f"no such command: '{name}'", 59, "CommandNotFound")
        if "startTransaction" in command or "autocommit" in command:
            return _error(
                "the embedded database has no multi-document transactions", 20, "IllegalOperation"
            )
        session, txn_number = command.get("lsid"), command.get("txnNumber")
        if session is not None and txn_number is not None:
            return self._retryable(session["id"], int(txn_number), handler, db_name, name, command)
        return self._execute(handler, db_name, name, command)

    def _execute(self, handler: Handler, db_name: str, name: str, command: Document) -> Document:
        try:
            return {**handler(self, self._client[db_name], command[name], command), "ok": 1.0}
        except DuplicateKeyError as exc:
            return _error(str(exc), 11000, "DuplicateKey")
        except CollectionInvalid as exc:
            return _error(str(exc), 48, "NamespaceExists")
        except OperationFailure as exc:
            return _error(str(exc), exc.code or 2, "BadValue")
        except Exception as exc:  # a client must get an answer, never a dropped connection
            LOG.exception("command %s failed", name)
            return _error(f"{type(exc).__name__}: {exc}", 1, "InternalError")

    def _retryable(
        self,
        session: Any,
        txn_number: int,
        handler: Handler,
        db_name: str,
        name: str,
        command: Document,
    ) -> Document:
        """Run a retryable write once per (session, transaction number), as MongoDB does.

        A retry of a write already applied gets the recorded reply. The record commits just after
        the write; a server killed between the two commits applies the retried write again.
        """
        records = self._client[_TRANSACTIONS[0]][_TRANSACTIONS[1]]
        record = records.find_one({"_id": session})
        if record is not None and record["txnNumber"] == txn_number:
            LOG.info(
                "retried %s (txnNumber %d) was applied before: answered from its record",
                name,
                txn_number,
            )
            return record["reply"]
        if record is not None and record["txnNumber"] > txn_number:
            return _error(
                f"txnNumber {txn_number} is older than the session's {record['txnNumber']}",
                225,
                "TransactionTooOld",
            )
        reply = self._execute(handler, db_name, name, command)
        if reply["ok"]:
            now = datetime.datetime.now(datetime.UTC)
            entry = {"txnNumber": Int64(txn_number), "reply": reply, "lastWriteDate": now}
            records.replace_one({"_id": session}, entry, upsert=True)
        return reply

    def _forget_old_sessions(self) -> None:
        """Drop the retry records of sessions idle longer than their timeout.

        This runs on start-up: no client retries a write that old.
        """
        horizon = datetime.timedelta(minutes=_SESSION_TIMEOUT_MINUTES)
        cutoff = datetime.datetime.now(datetime.UTC) - horizon
        self._client[_TRANSACTIONS[0]][_TRANSACTIONS[1]].delete_many(
            {"lastWriteDate": {"$lt": cutoff}}
        )

    def _open_cursor(self, cursor: _Cursor, batch_size: int, single: bool) -> Document:
        """Answer a command that returns a cursor: the first batch, the rest left for ``getMore``.

        The first batch holds at most ``batch_size`` documents, by default MongoDB's 101.
        """
        self._expire_cursors()
        batch = cursor.batch(batch_size or _FIRST_BATCH)
        cursor_id = 0
        if not single and not cursor.exhausted:
            cursor_id = next(self._cursor_ids)
            self._cursors[cursor_id] = cursor
        return {"cursor": {"id": Int64(cursor_id), "ns": cursor.ns, "firstBatch": batch}}

    def _expire_cursors(self) -> None:
        """Forget cursors nobody asked for in 10 minutes (MongoDB's idle cursor timeout)."""
        cutoff = time.monotonic() - _CURSOR_TIMEOUT_SECONDS
        for cursor_id in [key for key, cursor in self._cursors.items() if cursor.last_use < cutoff]:
            del self._cursors[cursor_id]

    def _cursor(self, ns: str, docs: list[Document], batch_size: int, single: bool) -> Document:
        """Open a cursor over documents already computed (aggregations, listings)."""
        return self._open_cursor(_Cursor(ns, iter(docs), list), batch_size, single)

    # handshake and administration

    def hello(self, db: Any, target: Any, command: Document) -> Document:
        return {
            "helloOk": True,
            "isWritablePrimary": True,
            "ismaster": True,
            "maxBsonObjectSize": _MAX_BSON_SIZE,
            "maxMessageSizeBytes": _MAX_MESSAGE_SIZE,
            "maxWriteBatchSize": 100_000,
            "localTime": datetime.datetime.now(datetime.UTC),
            "minWireVersion": 0,
            "maxWireVersion": _WIRE_VERSION,
            "readOnly": False,
            "msg": "isdbgrid",
            "logicalSessionTimeoutMinutes": _SESSION_TIMEOUT_MINUTES,
        }

    def build_info(self, db: Any, target: Any, command: Document) -> Document:
        return {
            "version": _SERVER_VERSION,
            "versionArray": [int(part) for part in _SERVER_VERSION.split(".")] + [0],
            "gitVersion": "crystal-atomate-embedded",
            "maxBsonObjectSize": _MAX_BSON_SIZE,
        }

    def nothing(self, db: Any, target: Any, command: Document) -> Document:
        return {}

    def list_databases(self, db: Any, target: Any, command: Document) -> Document:
        names = self._client.list_database_names()
        entries = [{"name": name, "sizeOnDisk": 0, "empty": False} for name in names]
        return {"databases": entries, "totalSize": 0}

    def drop_database(self, db: Any, target: Any, command: Document) -> Document:
        self._client.drop_database(db.name)
        return {"dropped": db.name}

    def list_collections(self, db: Any, target: Any, command: Document) -> Document:
        entries = [
            {"name": name, "type": "collection", "options": {}, "info": {"readOnly": False}}
            for name in db.list_collection_names()
        ]
        entries = self._matching(entries, command.get("filter") or {})
        ns = f"{db.name}.$cmd.listCollections"
        return self._cursor(ns, entries, 0, single=True)

    def _matching(self, entries: list[Document], query: Document) -> list[Document]:
        """Select the ``entries`` matching ``query``, by the same query engine as the data."""
        if not query:
            return entries
        scratch = self._scratch.listing.entries
        scratch.delete_many({})
        scratch.insert_many([{"_id": position, **entry} for position, entry in enumerate(entries)])
        matched = [doc["_id"] for doc in scratch.find(query, {"_id": 1}, sort=[("_id", 1)])]
        return [entries[position] for position in matched]

    def create(self, db: Any, target: str, command: Document) -> Document:
        db.create_collection(target)
        return {}

    def drop(self, db: Any, target: str, command: Document) -> Document:
        db.drop_collection(target)
        return {"ns": f"{db.name}.{target}"}

    def rename_collection(self, db: Any, target: str, command: Document) -> Document:
        source_db, source = target.split(".", 1)
        dest_db, dest = command["to"].split(".", 1)
        if source_db != dest_db:
            raise OperationFailure("renaming across databases is not supported", 20)
        database = self._client[source_db]
        database.rename_collection(source, dest, dropTarget=bool(command.get("dropTarget")))
        return {}

    # indexes

    def create_indexes(self, db: Any, target: str, command: Document) -> Document:
        collection = db[target]
        for spec in command["indexes"]:
            options = {k: v for k, v in spec.items() if k not in ("key", "v", "background", "ns")}
            collection.create_index(list(spec["key"].items()), **options)
        return {}

    def list_indexes(self, db: Any, target: str, command: Document) -> Document:
        entries = []
        for name, info in db[target].index_information().items():
            spec = dict(info)
            spec["key"] = dict(spec["key"])
            entries.append({**spec, "name": name})
        return self._cursor(f"{db.name}.{target}", entries, 0, single=True)

    def drop_indexes(self, db: Any, target: str, command: Document) -> Document:
        """Drop indexes one by one, ``"*"`` too.

        The bulk ``drop_indexes`` of litemongo's mongomock swaps the collection's stored index table
        for an in-memory dict, so every index made after it (``jf admin reset`` and ``lpad reset``
        drop, then rebuild) was lost, unique ones included, when the server restarted.
        """
        collection = db[target]
        index = command["index"]
        if index == "*":
            names = [name for name in collection.index_information() if name != "_id_"]
        else:
            names = index if isinstance(index, list) else [index]
        for name in names:
            collection.drop_index(list(name.items()) if isinstance(name, dict) else name)
        return {}

    # reads

    def find(self, db: Any, target: str, command: Document) -> Document:
        """Select the ``_id`` of every result now, fetch the documents batch by batch.

        The memory held for a large result is so its ids, not its documents.
        """
        limit = command.get("limit", 0)
        collection = db[target]
        ids = collection.find(
            command.get("filter") or {},
            {"_id": 1},
            skip=command.get("skip", 0),
            limit=abs(limit),
            sort=_sort_spec(command.get("sort")),
        )
        pending = (doc["_id"] for doc in ids)
        cursor = _Cursor(
            f"{db.name}.{target}", pending, _documents_by_id(collection, command.get("projection"))
        )
        single = bool(command.get("singleBatch")) or limit < 0
        return self._open_cursor(cursor, command.get("batchSize", 0), single)

    def aggregate(self, db: Any, target: Any, command: Document) -> Document:
        if not isinstance(target, str):
            raise OperationFailure("database-level aggregation is not supported", 20)
        docs = list(db[target].aggregate(command["pipeline"]))
        batch_size = (command.get("cursor") or {}).get("batchSize", 0)
        return self._cursor(f"{db.name}.{target}", docs, batch_size, single=False)

    def get_more(self, db: Any, target: Any, command: Document) -> Document:
        cursor_id = int(target)
        cursor = self._cursors.pop(cursor_id, None)
        if cursor is None:
            raise OperationFailure(f"cursor id {cursor_id} not found", 43)
        batch = cursor.batch(command.get("batchSize", 0))
        reply_id = 0 if cursor.exhausted else cursor_id
        if reply_id:
            self._cursors[cursor_id] = cursor
        return {"cursor": {"id": Int64(reply_id), "ns": cursor.ns, "nextBatch": batch}}

    def kill_cursors(self, db: Any, target: Any, command: Document) -> Document:
        ids = [int(cursor_id) for cursor_id in command.get("cursors", [])]
        killed = [Int64(i) for i in ids if self._cursors.pop(i, None) is not None]
        return {"cursorsKilled": killed, "cursorsNotFound": [], "cursorsAlive": []}

    def count(self, db: Any, target: str, command: Document) -> Document:
        options = {k: command[k] for k in ("skip", "limit") if command.get(k)}
        return {"n": db[target].count_documents(command.get("query") or {}, **options)}

    def distinct(self, db: Any, target: str, command: Document) -> Document:
        return {"values": db[target].distinct(command["key"], command.get("query") or None)}

    # writes

    def insert(self, db: Any, target: str, command: Document) -> Document:
        collection = db[target]
        inserted, errors = 0, []
        for index, doc in enumerate(command.get("documents", [])):
            try:
                collection.insert_one(doc)
                inserted += 1
            except OperationFailure as exc:
                errors.append(_write_error(index, exc))
                if command.get("ordered", True):
                    break
        return _write_reply(inserted, errors)

    def update(self, db: Any, target: str, command: Document) -> Document:
        collection = db[target]
        matched, modified, upserted, errors = 0, 0, [], []
        for index, spec in enumerate(command.get("updates", [])):
            try:
                result = self._update_one_spec(collection, spec)
            except OperationFailure as exc:
                errors.append(_write_error(index, exc))
                if command.get("ordered", True):
                    break
                continue
            matched += result.matched_count
            modified += result.modified_count
            if result.upserted_id is not None:
                matched += 1
                upserted.append({"index": index, "_id": result.upserted_id})
        extra: Document = {"nModified": modified}
        if upserted:
            extra["upserted"] = upserted
        return _write_reply(matched, errors, **extra)

    @staticmethod
    def _update_one_spec(collection: Any, spec: Document) -> Any:
        query, update, upsert = spec["q"], spec["u"], bool(spec.get("upsert"))
        if _is_replacement(update):
            return collection.replace_one(query, update, upsert=upsert)
        options = {"array_filters": spec["arrayFilters"]} if spec.get("arrayFilters") else {}
        method = collection.update_many if spec.get("multi") else collection.update_one
        return method(query, update, upsert=upsert, **options)

    def delete(self, db: Any, target: str, command: Document) -> Document:
        collection = db[target]
        deleted, errors = 0, []
        for index, spec in enumerate(command.get("deletes", [])):
            try:
                method = collection.delete_one if spec.get("limit") == 1 else collection.delete_many
                deleted += method(spec["q"]).deleted_count
            except OperationFailure as exc:
                errors.append(_write_error(index, exc))
                if command.get("ordered", True):
                    break
        return _write_reply(deleted, errors)

    def find_and_modify(self, db: Any, target: str, command: Document) -> Document:
        collection = db[target]
        query = command.get("query") or {}
        sort = _sort_spec(command.get("sort"))
        fields = command.get("fields") or None
        existing = collection.find_one(query, {"_id": 1}, sort=sort)
        if command.get("remove"):
            value = collection.find_one_and_delete(query, fields, sort=sort)
            return {"lastErrorObject": {"n": int(existing is not None)}, "value": value}
        update, upsert = command["update"], bool(command.get("upsert"))
        returned = ReturnDocument.AFTER if command.get("new") else ReturnDocument.BEFORE
        method = (
            collection.find_one_and_replace
            if _is_replacement(update)
            else collection.find_one_and_update
        )
        value = method(query, update, fields, sort=sort, upsert=upsert, return_document=returned)
        status = {"n": int(existing is not None or upsert), "updatedExisting": existing is not None}
        return {"lastErrorObject": status, "value": value}


_HANDLERS: dict[str, Handler] = {
    "hello": _Commands.hello,
    "ismaster": _Commands.hello,
    "buildinfo": _Commands.build_info,
    "ping": _Commands.nothing,
    "endsessions": _Commands.nothing,
    "listdatabases": _Commands.list_databases,
    "dropdatabase": _Commands.drop_database,
    "listcollections": _Commands.list_collections,
    "create": _Commands.create,
    "drop": _Commands.drop,
    "renamecollection": _Commands.rename_collection,
    "createindexes": _Commands.create_indexes,
    "listindexes": _Commands.list_indexes,
    "dropindexes": _Commands.drop_indexes,
    "find": _Commands.find,
    "aggregate": _Commands.aggregate,
    "getmore": _Commands.get_more,
    "killcursors": _Commands.kill_cursors,
    "count": _Commands.count,
    "distinct": _Commands.distinct,
    "insert": _Commands.insert,
    "update": _Commands.update,
    "delete": _Commands.delete,
    "findandmodify": _Commands.find_and_modify,
}


# --------------------------------------------------------------------------- wire protocol


def _read_exact(stream: Any, size: int) -> bytes | None:
    data = stream.read(size)
    return data if data is not None and len(data) == size else None


def _parse_op_msg(body: bytes) -> tuple[Document, int]:
    """Return the command of an OP_MSG (document sequences folded in) and its flag bits."""
    (flags,) = struct.unpack_from("<I", body)
    end = len(body) - (4 if flags & _MSG_CHECKSUM_PRESENT else 0)
    position, command, sequences = 4, None, {}
    while position < end:
        kind = body[position]
        position += 1
        (size,) = struct.unpack_from("<i", body, position)
        if kind == 0:
            command = bson.decode(body[position : position + size])
        else:
            name_end = body.index(b"\x00", position + 4)
            name = body[position + 4 : name_end].decode()
            sequences[name] = bson.decode_all(body[name_end + 1 : position + size])
        position += size
    if command is None:
        raise ValueError("OP_MSG without a command document")
    command.update(sequences)
    return command, flags


def _parse_op_query(body: bytes) -> tuple[str, Document]:
    """Parse the handshake before OP_MSG is known: ``(database, command)`` of a legacy OP_QUERY."""
    name_end = body.index(b"\x00", 4)
    database = body[4:name_end].decode().split(".", 1)[0]
    position = name_end + 1 + 8
    (size,) = struct.unpack_from("<i", body, position)
    query = bson.decode(body[position : position + size])
    return database, query.get("$query", query)


def _reply(request_id: int, op_code: int, payload: bytes) -> bytes:
    header = _HEADER.pack(_HEADER.size + len(payload), 0, request_id, op_code)
    return header + payload


class _RequestHandler(socketserver.StreamRequestHandler):
    """One client connection: read messages, run their commands on the database thread, answer."""

    server: _Server

    def handle(self) -> None:
        while True:
            header = _read_exact(self.rfile, _HEADER.size)
            if header is None:
                return
            length, request_id, _, op_code = _HEADER.unpack(header)
            body = _read_exact(self.rfile, length - _HEADER.size)
            if body is None:
                return
            answer = self._answer(request_id, op_code, body)
            if answer:
                self.wfile.write(answer)
                self.wfile.flush()

    def _answer(self, request_id: int, op_code: int, body: bytes) -> bytes | None:
        if op_code == _OP_MSG:
            command, flags = _parse_op_msg(body)
            database = command.pop("$db", "admin")
            result = self.server.execute(database, command)
            if flags & _MSG_MORE_TO_COME:
                return None
            return _reply(request_id, _OP_MSG, b"\x00\x00\x00\x00\x00" + bson.encode(result))
        if op_code == _OP_QUERY:
            database, command = _parse_op_query(body)
            result = self.server.execute(database, command)
            reply = struct.pack("<iqii", 0, 0, 0, 1) + bson.encode(result)
            return _reply(request_id, _OP_REPLY, reply)
        LOG.warning("unsupported wire operation %d", op_code)
        return None


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """Threads only move bytes; every command runs on the single database thread."""

    daemon_threads = True

    def __init__(self, address: str, data_dir: Path) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedded-db")
        self._commands = self._executor.submit(_Commands, data_dir).result()
        super().__init__(address, _RequestHandler)

    def execute(self, database: str, command: Document) -> Document:
        return self._executor.submit(self._commands.run, database, command).result()

    def server_close(self) -> None:
        super().server_close()
        self._executor.submit(self._commands.close).result()
        self._executor.shutdown()


def serve(db_dir: str | Path) -> None:
    """Run the server of ``db_dir`` in this process until SIGTERM/SIGINT.

    Exit at once if another process already serves it.
    """
    db_dir = Path(db_dir).expanduser().absolute()
    db_dir.mkdir(parents=True, exist_ok=True)
    lock = open(db_dir / _LOCK_NAME, "a+")  # held (so open) for the life of the process
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        LOG.info("%s is already served by another process", db_dir)
        return
    lock.truncate(0)
    lock.write(str(os.getpid()))
    lock.flush()
    address = socket_path(db_dir)
    address.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    address.unlink(missing_ok=True)
    server = _Server(str(address), db_dir / _DATA_NAME)
    os.chmod(address, 0o600)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    signal.signal(signal.SIGINT, lambda *_: threading.Thread(target=server.shutdown).start())
    LOG.info("serving %s on %s (pid %d)", db_dir, address, os.getpid())
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        address.unlink(missing_ok=True)
        server.server_close()
        lock.close()
        LOG.info("stopped serving %s", db_dir)


def main(argv: list[str] | None = None) -> int:
    """``python -m crystal_atomate.engines.embedded_db {start,stop,status,serve} DIR``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop", "status", "serve"])
    parser.add_argument("db_dir", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.action == "serve":
        serve(args.db_dir)
    elif args.action == "start":
        print(ensure_server(args.db_dir))
    elif args.action == "stop":
        print("stopped" if stop_server(args.db_dir) else "not running")
    else:
        running = is_running(args.db_dir)
        print(f"running at {mongodb_uri(args.db_dir)}" if running else "not running")
        return 0 if running else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
