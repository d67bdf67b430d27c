"""A job's UI row is finished only once its document and every data blob it names are stored.

Two writers store a finished job in separate transactions on a job store rebuilt from a
jobflow-remote project file (a plain ``JobStore`` over :class:`UIDocsStore` and
:class:`UIBlobStore`): jobflow-remote's runner (``update_store``) copies the blobs one by one and
then the document; jobflow's own ``JobStore.update`` (``run_locally`` or any jobflow code given
that store) writes the document and then the blobs. A process killed in between must not leave a
COMPLETED row whose ``get_output(uuid, load=True)`` raises ``KeyError`` for the blob.

So the mirror waits for the blobs: a job document that names a blob not stored yet leaves its UI
row as it is and notes the missing blobs in ``jobflow_blob_waits`` (created with the UI schema);
the data store's hook (:func:`complete_waiting_jobs`), inside the transaction that stores the last
of them, mirrors the document. Whatever the order of the writes and wherever a process dies,
the row (what the UI and ``crystal-atomate jobs`` read) says COMPLETED or FAILED only when the
whole output loads. The stores are in :mod:`crystal_atomate.stores.jobstore`; this module holds
their hooks.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

from crystal_atomate.stores.query import decode_document, path_literal
from crystal_atomate.stores.sqlite_store import docs_table
from crystal_atomate.stores.tui_mirror import IMPORTED_FROM_UI, mirror_document
from crystal_atomate.stores.tui_schema import WAITS_TABLE

__all__ = [
    "BLOB_STORE",
    "blob_references",
    "complete_waiting_jobs",
    "mirror_stored_documents",
]

#: The additional store whose blobs a UI row waits for (the one ``CrystalMathJobStore`` has).
BLOB_STORE = "data"
_BLOB_UUID = path_literal(("blob_uuid",))


def blob_references(doc: Mapping[str, Any], store: str = BLOB_STORE) -> set[str]:
    """Return the uuids of the blobs of additional store ``store`` that a job document names.

    jobflow replaces each object it saves elsewhere by ``{"blob_uuid": ..., "store": name, ...}``.

    Parameters
    ----------
    doc
        A jobflow job document.
    store
        The additional store's name.

    Returns
    -------
    set of str
        The blob uuids.
    """
    found: set[str] = set()
    pending: list[Any] = [doc]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            blob = node.get("blob_uuid")
            if isinstance(blob, str) and node.get("store") == store:
                found.add(blob)
            else:
                pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return found


def _table_exists(conn: sqlite3.Connection, table: str) -> bool:
    return conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).fetchone() is not None


def _missing_blobs(conn: sqlite3.Connection, blobs_table: str, blobs: Iterable[str]) -> list[str]:
    """Return the blobs not in ``blobs_table`` (all of them when the collection does not exist)."""
    wanted = sorted(blobs)
    if not wanted or not _table_exists(conn, blobs_table):
        return wanted
    rows = conn.execute(
        f"SELECT value FROM json_each(?) WHERE NOT EXISTS (SELECT 1 FROM {blobs_table} "
        f"WHERE json_extract(doc, {_BLOB_UUID}) = value)",
        (json.dumps(wanted),),
    )
    return [row[0] for row in rows]


def mirror_stored_documents(
    conn: sqlite3.Connection,
    docs: list[Mapping[str, Any]],
    docs_collection: str,
    blobs_collection: str,
) -> None:
    """Mirror each job document whose blobs are all stored; note the others as waiting.

    The ``on_update`` hook of the job documents' store. A new run of a job (a higher ``index``)
    supersedes what earlier runs waited for.

    Parameters
    ----------
    conn
        A connection inside the write transaction of the documents.
    docs
        The documents just written.
    docs_collection
        Their collection (where the blob hook reads a document back).
    blobs_collection
        The collection of the ``data`` store, in the same file.
    """
    blobs_table = docs_table(blobs_collection)
    for doc in docs:
        uuid, index = doc.get("uuid"), doc.get("index")
        if (
            not isinstance(uuid, str)
            or not isinstance(index, int)
            or (doc.get("metadata") or {}).get("imported_from") == IMPORTED_FROM_UI
        ):
            mirror_document(conn, doc)
            continue
        conn.execute(
            f"DELETE FROM {WAITS_TABLE} WHERE job_uuid = ? AND job_index <= ?", (uuid, index)
        )
        missing = _missing_blobs(conn, blobs_table, blob_references(doc))
        if not missing:
            mirror_document(conn, doc)
            continue
        conn.executemany(
            f"INSERT INTO {WAITS_TABLE}(blob_uuid, job_uuid, job_index, docs_collection) "
            "VALUES (?, ?, ?, ?)",
            [(blob, uuid, index, docs_collection) for blob in missing],
        )


def _stored_document(
    conn: sqlite3.Connection, docs_collection: str, uuid: str, index: int
) -> dict | None:
    row = conn.execute(
        f"SELECT doc FROM {docs_table(docs_collection)} WHERE json_extract(doc, "
        f"{path_literal(('uuid',))}) = ? AND json_extract(doc, {path_literal(('index',))}) = ? "
        "LIMIT 1",
        (uuid, index),
    ).fetchone()
    return None if row is None else decode_document(row[0])


def complete_waiting_jobs(conn: sqlite3.Connection, blobs: list[Mapping[str, Any]]) -> None:
    """Mirror the job documents that were waiting only for the blobs just stored.

    The ``on_update`` hook of the ``data`` store; with nothing waiting it costs one indexed read.

    Parameters
    ----------
    conn
        A connection inside the write transaction of the blobs.
    blobs
        The blob documents just written.
    """
    stored = json.dumps([b["blob_uuid"] for b in blobs if isinstance(b.get("blob_uuid"), str)])
    arrived = "blob_uuid IN (SELECT value FROM json_each(?))"
    jobs = conn.execute(
        f"SELECT DISTINCT job_uuid, job_index, docs_collection FROM {WAITS_TABLE} WHERE {arrived}",
        (stored,),
    ).fetchall()
    if not jobs:
        return
    conn.execute(f"DELETE FROM {WAITS_TABLE} WHERE {arrived}", (stored,))
    for uuid, index, docs_collection in jobs:
        still_waiting = conn.execute(
            f"SELECT 1 FROM {WAITS_TABLE} WHERE job_uuid = ? AND job_index = ? LIMIT 1",
            (uuid, index),
        ).fetchone()
        doc = None if still_waiting else _stored_document(conn, docs_collection, uuid, index)
        if doc is not None:
            mirror_document(conn, doc)

