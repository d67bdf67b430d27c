"""``CrystalMathJobStore``: jobflow's JobStore in the SQLite file the terminal UI shares.

``CrystalMathJobStore("path/.crystal_tui.db")`` is the whole setup: job documents go to a
:class:`UIDocsStore` (a :class:`SQLiteStore` whose hooks create the UI schema and mirror each
document into the UI's ``jobs`` table), and large objects (band structures, DOS, trajectories)
to a second collection of the same file, the ``data`` additional store (a :class:`UIBlobStore`).
A job document, its data blobs and its UI row are written in one transaction. A job store
rebuilt from these two stores (jobflow-remote's) writes them separately; a UI row still changes
only once the document's blobs are stored (:mod:`~crystal_atomate.stores.tui_completion`).
Engines report states as jobs move (:meth:`CrystalMathJobStore.mark_job_state`), and
calculations the UI ran by itself can be turned into job documents
(:meth:`CrystalMathJobStore.import_tui_jobs`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jobflow import JobStore

from crystal_atomate.settings import CrystalAtomateSettings
from crystal_atomate.stores.sqlite_store import EncodedDocument, SQLiteStore
from crystal_atomate.stores.tui_completion import complete_waiting_jobs, mirror_stored_documents
from crystal_atomate.stores.tui_mirror import mark_job_state
from crystal_atomate.stores.tui_schema import ensure_ui_schema
from crystal_atomate.stores.ui_import import find_output, imported_document, tui_job_uuid
from crystal_atomate.stores.ui_read import read_ui_jobs

__all__ = ["CrystalMathJobStore", "UIBlobStore", "UIDocsStore", "tui_job_uuid"]

#: Imported documents written per transaction: memory stays flat in the number of UI jobs.
_IMPORT_BATCH = 50


def _settings() -> CrystalAtomateSettings:
    """Load this machine's settings (database file, lock deadline)."""
    return CrystalAtomateSettings()


def _shared_file(timeout: float | None, on_update: Callable[..., None]) -> dict[str, Any]:
    """Options of a store in the UI's file: its schema on connect, its hook, the lock deadline."""
    return {
        "timeout": timeout or _settings().DB_LOCK_DEADLINE,
        "on_connect": ensure_ui_schema,
        "on_update": on_update,
    }


def _default_parser() -> Callable[[Path], Any]:
    """Import the CRYSTAL output parser, only when it is needed."""
    from crystal_atomate.io.outputs import parse_output

    return parse_output


class UIDocsStore(SQLiteStore):
    """The job documents' store of a file shared with the terminal UI.

    A :class:`SQLiteStore` whose hooks create (or upgrade) the UI schema when it connects and
    mirror every written job document into the UI's ``jobs`` and ``job_results`` tables in the
    same transaction; a document whose ``data`` blobs are not all stored yet waits for them
    (:class:`UIBlobStore` mirrors it when they come). A class of its own, rather than hooks
    passed at run time, so that a serialised job store (jobflow-remote's project file) mirrors
    too.

    Parameters
    ----------
    db_file
        The shared SQLite file.
    collection_name
        The collection of job documents.
    key
        The store key.
    timeout
        Seconds a writer waits for another program's write lock.
    blobs_collection_name
        The collection of the ``data`` blobs, in the same file.
    """

    #: Marks a store that mirrors into the UI's tables (engines check it).
    tui_mirror = True

    def __init__(
        self,
        db_file: str | Path,
        collection_name: str = "outputs",
        key: str = "uuid",
        timeout: float | None = None,
        blobs_collection_name: str = "outputs_blobs",
    ) -> None:
        self.blobs_collection_name = blobs_collection_name
        super().__init__(db_file, collection_name, key=key, **_shared_file(timeout, self._mirror))

    def _mirror(self, conn: sqlite3.Connection, docs: list[dict]) -> None:
        """Mirror the documents just written whose blobs are stored (the ``on_update`` hook)."""
        mirror_stored_documents(conn, docs, self.collection_name, self.blobs_collection_name)


class UIBlobStore(SQLiteStore):
    """The ``data`` blobs' store of a file shared with the terminal UI.

    A :class:`SQLiteStore` whose hook mirrors, in the transaction that stores a job's last
    missing blob, the job document that waited for it: a writer that stores a document before
    its blobs (jobflow's ``JobStore.update`` on a store rebuilt from a project file) never leaves
    a finished UI row whose output cannot load.

    Parameters
    ----------
    db_file
        The shared SQLite file.
    collection_name
        The collection of blobs.
    key
        The store key.
    timeout
        Seconds a writer waits for another program's write lock.
    """

    def __init__(
        self,
        db_file: str | Path,
        collection_name: str = "outputs_blobs",
        key: str = "blob_uuid",
        timeout: float | None = None,
    ) -> None:
        super().__init__(
            db_file, collection_name, key=key, **_shared_file(timeout, complete_waiting_jobs)
        )


class CrystalMathJobStore(JobStore):
    """A JobStore whose documents and data blobs live in the UI's SQLite database.

    Parameters
    ----------
    db_file
        The shared database; default ``CrystalAtomateSettings().DB_FILE`` (which honours
        ``CRYSTAL_TUI_DB``). Stored as an absolute path so a serialised store (FireWorks,
        jobflow-remote) opens the same file from any working directory.
    collection_name
        Collection of job documents.
    data_collection_name
        Collection of the ``data`` additional store.
    save, load
        As for :class:`jobflow.JobStore`.
    timeout
        Seconds a writer waits for another program's write lock; default
        ``CrystalAtomateSettings().DB_LOCK_DEADLINE``.
    """

    def __init__(
        self,
        db_file: str | Path | None = None,
        collection_name: str = "outputs",
        data_collection_name: str = "outputs_blobs",
        save: dict | None = None,
        load: bool | dict = False,
        timeout: float | None = None,
    ) -> None:
        self.db_file = str(Path(db_file or _settings().DB_FILE).expanduser().absolute())
        self.collection_name = collection_name
        self.data_collection_name = data_collection_name
        self.timeout = timeout
        deadline = timeout or _settings().DB_LOCK_DEADLINE
        docs = UIDocsStore(
            self.db_file, collection_name, timeout=deadline,
            blobs_collection_name=data_collection_name,
        )
        data = UIBlobStore(self.db_file, data_collection_name, timeout=deadline)
        super().__init__(docs, additional_stores={"data": data}, save=save, load=load)

    def _ensure_connected(self) -> None:
        if not (self.docs_store.connected and self.additional_stores["data"].connected):
            self.connect()

    def update(
        self,
        docs: list[dict] | dict | Any,
        key: list | str | None = None,
        save: bool | dict | None = None,
    ) -> None:
        """Store job documents, their data blobs and their UI rows in one transaction.

        Both collections and the UI's tables live in one file, so a process killed half way
        leaves all of a result or none of it (never a COMPLETED row whose blob is missing).

        Parameters
        ----------
        docs, key, save
            As for :meth:`jobflow.JobStore.update`.

        Raises
        ------
        DatabaseLockedError
            Another program kept the write lock past the deadline; nothing was written.
        """
        self._ensure_connected()
        listed = docs if isinstance(docs, list) else [docs]
        uuids = ", ".join(str(_field(d, "uuid")) for d in listed[:3])
        more = f" and {len(listed) - 3} more" if len(listed) > 3 else ""
        what = f"job document(s) {uuids}{more} with their data blobs and UI rows"
        with self.docs_store.transaction(what):
            super().update(docs, key=key, save=save)

    def mark_job_state(
        self,
        uuid: str,
        state: str,
        work_dir: str | None = None,
        name: str | None = None,
        workflow_id: str | None = None,
    ) -> int:
        """Record a job's state in the UI's ``jobs`` table, creating its row if needed.

        Parameters
        ----------
        uuid
            The jobflow job uuid.
        state
            PENDING, QUEUED, RUNNING, COMPLETED, FAILED or CANCELLED.
        work_dir, name, workflow_id
            Filled in when given.

        Returns
        -------
        int
            The UI job id.
        """
        self._ensure_connected()
        with self.docs_store.transaction(f"state {state} of job {uuid}") as conn:
            return mark_job_state(conn, uuid, state, work_dir, name, workflow_id)

    def tui_job_id(self, uuid: str) -> int | None:
        """Return the UI's job number for a jobflow job uuid, if mirrored.

        Parameters
        ----------
        uuid
            The jobflow job uuid.

        Returns
        -------
        int or None
            The ``jobs.id`` linked to it.
        """
        self._ensure_connected()
        with self.docs_store.reading() as conn:
            row = conn.execute(
                "SELECT tui_job_id FROM jobflow_job_links WHERE job_uuid = ?", (uuid,)
            ).fetchone()
        return row[0] if row else None

    def import_tui_jobs(self, parse: Callable[[Path], Any] | None = None) -> list[str]:
        """Turn jobs the UI ran by itself into job documents, without touching the UI's rows.

        Rows already linked to a jobflow document (ours, or imported before) and rows without
        an output file in their ``work_dir`` are skipped, so importing twice adds nothing. The
        documents are linked to their rows in our own table; the rows themselves are only read.

        Parameters
        ----------
        parse
            Reads a CRYSTAL output file into a pydantic model (default:
            ``crystal_atomate.io.outputs.parse_output``); the headline values land where our
            task documents keep them, the whole result under ``output.parsed``.

        Returns
        -------
        list of str
            The uuids of the new documents.
        """
        self._ensure_connected()
        parse = parse or _default_parser()
        imported: list[str] = []
        batch: list[EncodedDocument] = []
        for job in read_ui_jobs(self.db_file, statuses=("COMPLETED", "FAILED"), unlinked=True):
            output_file = find_output(job.work_dir, job.name)
            if output_file is not None:
                batch.append(imported_document(job, parse(output_file)))
            if len(batch) == _IMPORT_BATCH:
                imported += self._store_imported(batch)
                batch = []
        return imported + self._store_imported(batch)

    def _store_imported(self, docs: list[EncodedDocument]) -> list[str]:
        """Write one batch of imported documents (one transaction; few documents held at once)."""
        if docs:
            self.docs_store.update_encoded(docs, key=["uuid", "index"])
        return [doc.doc["uuid"] for doc in docs]


def _field(doc: Any, name: str) -> Any:
    """Get a field of a job document given as a dict or a pydantic model."""
    return doc.get(name) if isinstance(doc, dict) else getattr(doc, name, None)
