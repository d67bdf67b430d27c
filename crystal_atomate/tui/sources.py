"""Where the job browser reads its jobs: the protocol, and the shared SQLite database behind it.

The browser only lists, details and polls, so a backend is three questions (:class:`JobSource`).
:class:`SqliteJobs` asks them of the UI's file through read-only connections; the AiiDA one
(:mod:`crystal_atomate.aiida.job_source`) asks a profile and is imported only when chosen, so the
SQLite browser never loads aiida.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Protocol

from crystal_atomate.errors import CrystalAtomateError
from crystal_atomate.stores.ui_queries import (
    JobDetail,
    JobRow,
    change_token,
    job_detail,
    list_jobs,
    open_readonly,
)

__all__ = ["JobSource", "SourceUnavailable", "SqliteJobs"]


class SourceUnavailable(CrystalAtomateError):
    """The backend cannot be read now (no database yet, a broken file); the message says which."""


class JobSource(Protocol):
    """What the browser asks of a backend."""

    #: Shown under the title: which database or profile this is.
    label: str

    def change_token(self) -> Hashable:
        """Return a cheap fingerprint of the job list; the browser reloads only when it changes."""

    def list_jobs(
        self,
        *,
        statuses: Sequence[str] = (),
        name: str | None = None,
        sort: str = "created",
        descending: bool = True,
        limit: int | None = None,
    ) -> list[JobRow]:
        """Return the job list, filtered by UI status and name text, sorted by a column.

        The sort keys are :data:`~crystal_atomate.stores.ui_queries.SORT_COLUMNS`; jobs without a
        value for the column come last.

        Raises
        ------
        SourceUnavailable
            Nothing can be read now.
        """

    def job_detail(self, job_id: int) -> JobDetail | None:
        """Return one job's detail, or None when there is no such job (or nothing to read)."""

    def close(self) -> None:
        """Release what the source holds open."""


class SqliteJobs:
    """The shared SQLite database (the UI's ``.crystal_tui.db``), read-only.

    The connection opens once the file exists (an engine creates it), so a browser started first
    waits for it instead of creating a file at a mistyped path.

    Parameters
    ----------
    db_file
        The database file.
    """

    def __init__(self, db_file: str | Path) -> None:
        self.db_file = Path(db_file).expanduser().absolute()
        self.label = str(self.db_file)
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection | None:
        if self._conn is None and self.db_file.is_file():
            self._conn = open_readonly(self.db_file)
        return self._conn

    def close(self) -> None:
        """Close the read-only connection, leaving no handle on the shared file."""
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    def change_token(self) -> Hashable:
        """Return the file's fingerprint, None while there is no file or it cannot be read.

        The fingerprint is :func:`~crystal_atomate.stores.ui_queries.change_token`'s.
        """
        try:
            conn = self._connection()
            return change_token(conn) if conn is not None else None
        except sqlite3.DatabaseError:
            self.close()
            return None

    def list_jobs(
        self,
        *,
        statuses: Sequence[str] = (),
        name: str | None = None,
        sort: str = "created",
        descending: bool = True,
        limit: int | None = None,
    ) -> list[JobRow]:
        """Return the UI's ``jobs`` rows (:func:`~crystal_atomate.stores.ui_queries.list_jobs`).

        Raises
        ------
        SourceUnavailable
            There is no file yet, or it is not a database SQLite can read.
        """
        try:
            conn = self._connection()
            if conn is None:
                raise SourceUnavailable(f"No database at {self.db_file} yet.")
            return list_jobs(
                conn, statuses=statuses, name=name, sort=sort, descending=descending, limit=limit
            )
        except sqlite3.DatabaseError as exc:
            self.close()
            raise SourceUnavailable(f"Cannot read {self.db_file}: {exc}") from exc

    def job_detail(self, job_id: int) -> JobDetail | None:
        """Return one job's row, results and task documents (None: no such job or file)."""
        try:
            conn = self._connection()
            return job_detail(conn, job_id) if conn is not None else None
        except sqlite3.DatabaseError:
            self.close()
            return None
