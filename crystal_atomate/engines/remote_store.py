"""A maggma ``MongoStore`` on the embedded database, for jobflow-remote's queue and job store.

jobflow-remote insists on a ``MongoStore`` subclass for its queue (it runs ``find_one_and_update``
locks, ``$lookup`` aggregations and so on directly on ``store._collection``), and its ``jf`` runner
rebuilds every store from the project YAML in its own daemon processes. So the store is an ordinary
``MongoStore`` whose host is the embedded server's URI, that starts the server on ``connect`` (a
runner restarted after a crash finds it again, or starts it), and that serialises to
``{"@module": ..., "@class": "EmbeddedMongoStore", "db_dir": ...}`` for the project file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jobflow import JobStore
from maggma.stores import MongoStore

from crystal_atomate.engines.embedded_db import ensure_server, mongodb_uri

__all__ = ["DEFAULT_DATABASE", "EmbeddedMongoStore", "project_store_config"]

DEFAULT_DATABASE = "crystal_atomate"


class EmbeddedMongoStore(MongoStore):
    """A ``MongoStore`` on the embedded database in ``db_dir`` (see ``embedded_db``)."""

    def __init__(
        self,
        db_dir: str | Path,
        database: str = DEFAULT_DATABASE,
        collection_name: str = "jobs",
        **kwargs: Any,
    ) -> None:
        """Open the store of ``db_dir`` with the usual ``MongoStore``/``Store`` options.

        ``kwargs`` are those options (``key``, ``last_updated_field``, ...); host, port and
        credentials come from ``db_dir``.
        """
        self.db_dir = str(Path(db_dir).expanduser().absolute())
        super().__init__(
            database=database,
            collection_name=collection_name,
            host=mongodb_uri(self.db_dir),
            **kwargs,
        )

    def connect(self, force_reset: bool = False) -> None:
        """Connect, starting the database server first if it is not running."""
        if self._coll is None or force_reset:
            ensure_server(self.db_dir)
        super().connect(force_reset=force_reset)


def project_store_config(
    db_dir: str | Path,
    database: str = DEFAULT_DATABASE,
    jobs_collection: str = "jobs",
    outputs_collection: str = "outputs",
) -> dict[str, Any]:
    """Build the ``queue`` and ``jobstore`` sections of a jobflow-remote project on ``db_dir``.

    Both use the monty ``@module``/``@class`` form: jobflow-remote's ``type: Name`` form only finds
    store classes that happen to be imported already, so it cannot name ours reliably.
    """
    queue_store = EmbeddedMongoStore(db_dir, database, jobs_collection)
    outputs = EmbeddedMongoStore(db_dir, database, outputs_collection)
    return {
        "queue": {"store": queue_store.as_dict()},
        "jobstore": JobStore(outputs).as_dict(),
    }
