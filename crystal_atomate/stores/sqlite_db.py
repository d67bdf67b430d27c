"""SQLite connections and write transactions, as every writer of the shared file needs them.

One place opens connections the way the terminal UI opens its own (WAL, ``synchronous=NORMAL``,
``foreign_keys=ON``), takes the write lock up front (``BEGIN IMMEDIATE``) and waits for it with
backoff up to a deadline, then raises :class:`DatabaseLockedError` naming the file, the processes
that have it open and what was not written. Nothing here knows what the tables hold: the generic
store (:mod:`.sqlite_store`), the UI schema (:mod:`.tui_schema`) and the Materials Project cache
all build on it.

:class:`SQLiteDatabase` is one file's connection in this process, shared by every store on that
file, so that several collections (job documents and their data blobs) can be written in one
transaction: a transaction opened inside another on the same database joins it.
"""

from __future__ import annotations

import atexit
import os
import random
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from crystal_atomate.errors import OperationFailed

__all__ = [
    "DEFAULT_LOCK_DEADLINE",
    "DatabaseLockedError",
    "SQLiteDatabase",
    "connect_sqlite",
    "retry_locked",
    "write_transaction",
]

#: Seconds a writer waits for another program's write lock before giving up.
DEFAULT_LOCK_DEADLINE = 60.0
#: Longest single wait inside SQLite's own busy handler; our loop retries until the deadline.
_BUSY_SLICE_MS = 250
_T = TypeVar("_T")


class DatabaseLockedError(OperationFailed, RuntimeError):
    """Another program held the database's write lock for longer than our deadline.

    Parameters
    ----------
    path
        The SQLite file.
    waited
        Seconds we waited.
    what
        What was not written (e.g. "job document abc…").
    """

    def __init__(self, path: str | Path, waited: float, what: str) -> None:
        self.path = str(path)
        self.waited = waited
        self.what = what
        holders = _holders(self.path)
        held_by = f" (open in: {', '.join(holders)})" if holders else ""
        super().__init__(
            f"database is locked: {self.path}{held_by} kept its write lock for {waited:.1f} s; "
            f"not written: {what}",
            hint="retry when the other program has finished writing, or raise "
                 "CRYSTAL_ATOMATE_DB_LOCK_DEADLINE",
        )


def _holders(path: str) -> list[str]:
    """Other processes that have ``path`` (or its WAL) open, read from ``/proc`` (Linux only).

    SQLite does not say who holds a lock; the processes with the file open are the candidates.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    wanted = {os.path.realpath(path), os.path.realpath(path) + "-wal"}
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            fds = [os.readlink(fd) for fd in (entry / "fd").iterdir()]
            if wanted & set(fds):
                name = (entry / "comm").read_text().strip()
                found.append(f"pid {entry.name} ({name})")
        except OSError:
            continue
    return found


def _is_locked(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def retry_locked(action: Callable[[], _T], path: str | Path, deadline: float, what: str) -> _T:
    """Run ``action``, retrying with jittered exponential backoff while the file is locked.

    Parameters
    ----------
    action
        The SQLite call to make (one statement, or opening the file).
    path
        The file, for the error message.
    deadline
        Seconds to keep retrying.
    what
        What the action writes, for the error message.

    Returns
    -------
    Any
        What ``action`` returned.

    Raises
    ------
    DatabaseLockedError
        The file stayed locked for ``deadline`` seconds.
    """
    start = time.monotonic()
    delay = 0.01
    while True:
        try:
            return action()
        except sqlite3.OperationalError as exc:
            if not _is_locked(exc):
                raise
            waited = time.monotonic() - start
            if waited >= deadline:
                raise DatabaseLockedError(path, waited, what) from exc
            time.sleep(min(delay * (0.5 + random.random()), max(deadline - waited, 0.0)))
            delay = min(delay * 2, 0.5)


@lru_cache(maxsize=256)
def _compiled(pattern: str, flags: int) -> re.Pattern:
    return re.compile(pattern, flags)


def _regexp(pattern: str, flags: int, value: Any) -> bool:
    """``$regex`` as Mongo does it: a search, not a full match."""
    return isinstance(value, str) and _compiled(pattern, flags).search(value) is not None


def _configure(conn: sqlite3.Connection) -> None:
    conn.execute(f"PRAGMA busy_timeout={_BUSY_SLICE_MS}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")


def connect_sqlite(path: str | Path, deadline: float = DEFAULT_LOCK_DEADLINE) -> sqlite3.Connection:
    """Open a connection configured as the terminal UI configures its own.

    Switching a brand-new file to WAL takes a lock; when several processes open the file at the
    same instant, the losers retry until ``deadline`` instead of failing.

    Parameters
    ----------
    path
        The SQLite file (created if missing).
    deadline
        Seconds to wait for other processes' locks.

    Returns
    -------
    sqlite3.Connection
        In autocommit mode (``isolation_level=None``): transactions are explicit.
    """
    conn = sqlite3.connect(str(path), timeout=_BUSY_SLICE_MS / 1000, isolation_level=None,
                           check_same_thread=False)
    try:
        retry_locked(lambda: _configure(conn), path, deadline, "opening the database")
    except BaseException:
        conn.close()
        raise
    conn.create_function("crystal_regexp", 3, _regexp, deterministic=True)
    return conn


@contextmanager
def write_transaction(
    conn: sqlite3.Connection, path: str | Path = "", deadline: float = DEFAULT_LOCK_DEADLINE,
    what: str = "a write",
) -> Iterator[sqlite3.Connection]:
    """One ``BEGIN IMMEDIATE`` transaction; inside an open transaction, join it instead.

    Taking the write lock up front means two writers never both read and then both try to
    upgrade (the classic SQLITE_BUSY deadlock); waiting for it is retried up to ``deadline``.

    Parameters
    ----------
    conn
        A connection in autocommit mode (see :func:`connect_sqlite`).
    path, deadline, what
        As for :func:`retry_locked`.

    Yields
    ------
    sqlite3.Connection
        ``conn``, inside the transaction.

    Raises
    ------
    DatabaseLockedError
        The write lock stayed with another program for ``deadline`` seconds.
    """
    if conn.in_transaction:
        yield conn
        return
    path = path or conn.execute("PRAGMA database_list").fetchone()[2]
    retry_locked(lambda: conn.execute("BEGIN IMMEDIATE"), path, deadline, what)
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class SQLiteDatabase:
    """One SQLite file's connection in this process, shared by every store on that file.

    Obtain it with :meth:`shared`; the connection opens on first use, again after :meth:`close`
    and in a forked child (a connection inherited across ``fork`` is never used).

    Parameters
    ----------
    path
        The SQLite file.
    """

    _registry: ClassVar[dict[tuple[int, str], SQLiteDatabase]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: str | Path) -> None:
        self.path = str(Path(path).expanduser())
        self.lock = threading.RLock()
        self.generation = 0
        self._conn: sqlite3.Connection | None = None

    @classmethod
    def shared(cls, path: str | Path) -> SQLiteDatabase:
        """Return the database object of ``path`` in this process (one per resolved path).

        Parameters
        ----------
        path
            The SQLite file.

        Returns
        -------
        SQLiteDatabase
            The same object for every caller in this process.
        """
        key = (os.getpid(), os.path.realpath(Path(path).expanduser()))
        with cls._registry_lock:
            if key not in cls._registry:
                cls._registry[key] = cls(path)
            return cls._registry[key]

    def connection(self, deadline: float = DEFAULT_LOCK_DEADLINE) -> sqlite3.Connection:
        """Return the open connection, opening the file (and its folder) if needed.

        Parameters
        ----------
        deadline
            Seconds to wait for other processes' locks while opening.

        Returns
        -------
        sqlite3.Connection
            Shared: hold :attr:`lock` while using it from several threads.
        """
        with self.lock:
            if self._conn is None:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                self._conn = connect_sqlite(self.path, deadline)
                self.generation += 1
            return self._conn

    @contextmanager
    def transaction(
        self, deadline: float = DEFAULT_LOCK_DEADLINE, what: str = "a write"
    ) -> Iterator[sqlite3.Connection]:
        """Open a write transaction on the shared connection; nested ones join the outermost.

        Parameters
        ----------
        deadline, what
            As for :func:`write_transaction`.

        Yields
        ------
        sqlite3.Connection
            The connection, inside the transaction.
        """
        with self.lock, write_transaction(
            self.connection(deadline), self.path, deadline, what
        ) as conn:
            yield conn

    def close(self) -> None:
        """Close the connection; the next use reopens it."""
        with self.lock:
            if self._conn is not None:
                self._conn.close()
            self._conn = None

    @classmethod
    def close_all(cls) -> None:
        """Close every connection this process opened.

        Run at exit: the last connection to close checkpoints the WAL, so a clean exit leaves the
        database as one file (no ``-wal``/``-shm`` beside it) for the UI and for backups.
        """
        pid = os.getpid()
        with cls._registry_lock:
            mine = [database for (owner, _), database in cls._registry.items() if owner == pid]
        for database in mine:
            database.close()


atexit.register(SQLiteDatabase.close_all)
