"""The clusters the CrystalMath UI defined (its ``clusters`` table), read-only.

A user who set a cluster up in the UI should not type it again for AiiDA, jobflow-remote or
FireWorks: the engines turn a :class:`UICluster` into their own configuration. The UI owns the rows;
they are only ever read here, through a read-only connection.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from crystal_atomate.errors import InputError
from crystal_atomate.stores.ui_queries import open_readonly

__all__ = ["UICluster", "UIClusterMissing", "load_cluster_file", "read_ui_cluster"]


class UIClusterMissing(InputError, LookupError):
    """The UI's database has no cluster of that name (or no ``clusters`` table, or no file)."""


@dataclass(frozen=True)
class UICluster:
    """One row of the UI's ``clusters`` table, its JSON columns decoded.

    Attributes
    ----------
    name, kind, hostname, port, username
        The UI's columns (``kind`` is its ``type``: ``ssh`` or ``slurm``).
    key_file
        ``connection_config.key_file``; ``None`` when the UI relies on the SSH agent or config.
    slurm
        ``connection_config.slurm`` (partition, account, qos, time ...), as the UI keeps it.
    cry23_root
        Where CRYSTAL23 is installed on the cluster (its ``bin/`` holds ``crystal``/``Pcrystal``).
    setup_commands
        Shell lines a job runs first (``module load ...``).
    """

    name: str
    kind: str
    hostname: str
    port: int
    username: str
    key_file: str | None = None
    slurm: dict[str, Any] = field(default_factory=dict)
    cry23_root: str | None = None
    setup_commands: tuple[str, ...] = ()


def read_ui_cluster(db_file: str | Path, name: str) -> UICluster:
    """Read the UI's cluster ``name``.

    Parameters
    ----------
    db_file
        The shared database (``.crystal_tui.db``).
    name
        The cluster's name in the UI.

    Returns
    -------
    UICluster
        The row, decoded.

    Raises
    ------
    UIClusterMissing
        No such cluster; the message lists the ones there are.
    """
    if not Path(db_file).is_file():
        raise UIClusterMissing(
            f"no UI database at {db_file}", hint="pass the UI's .crystal_tui.db with --db"
        )
    with closing(open_readonly(db_file)) as conn:
        conn.row_factory = _dict_row
        try:
            row = conn.execute("SELECT * FROM clusters WHERE name = ?", (name,)).fetchone()
            names = [r["name"] for r in conn.execute("SELECT name FROM clusters ORDER BY name")]
        except sqlite3.OperationalError as exc:  # a database the UI never migrated to clusters
            raise UIClusterMissing(f"{db_file} has no clusters table: {exc}") from exc
    if row is None:
        raise UIClusterMissing(
            f"no cluster {name!r} in {db_file} (clusters: {', '.join(names) or 'none'})"
        )
    config = json.loads(row.get("connection_config") or "{}")
    return UICluster(
        name=row["name"],
        kind=row["type"],
        hostname=row["hostname"],
        port=int(row["port"]),
        username=row["username"],
        key_file=config.get("key_file"),
        slurm=dict(config.get("slurm") or {}),
        cry23_root=row.get("cry23_root"),
        setup_commands=tuple(json.loads(row.get("setup_commands") or "[]")),
    )


def load_cluster_file(path: str | Path) -> UICluster:
    """Load a cluster described in a YAML file with the UI's fields (``stores/clusters/*.yaml``).

    Parameters
    ----------
    path
        The file: ``name``, ``type`` (``slurm`` or ``ssh``), ``hostname``, ``port``, ``username``,
        ``key_file``, ``slurm`` (partition, account ...), ``cry23_root``, ``setup_commands``.

    Returns
    -------
    UICluster
        The description, as if the UI had stored it.

    Raises
    ------
    InputError
        The file is missing, or a field is missing or unknown (named in the message).
    """
    if not Path(path).is_file():
        raise InputError(
            f"no cluster file at {path}", hint="see stores/clusters/loopback-slurm.yaml"
        )
    data = yaml.safe_load(Path(path).read_text()) or {}
    required = {"name", "type", "hostname", "username"}
    known = required | {"port", "key_file", "slurm", "cry23_root", "setup_commands"}
    if missing := sorted(required - set(data)):
        raise InputError(f"{path}: missing {', '.join(missing)}")
    if unknown := sorted(set(data) - known):
        raise InputError(
            f"{path}: unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )
    return UICluster(
        name=data["name"],
        kind=data["type"],
        hostname=data["hostname"],
        port=int(data.get("port", 22)),
        username=data["username"],
        key_file=data.get("key_file"),
        slurm=dict(data.get("slurm") or {}),
        cry23_root=data.get("cry23_root"),
        setup_commands=tuple(data.get("setup_commands") or ()),
    )


def _dict_row(cursor: Any, row: tuple) -> dict[str, Any]:
    """Rows as dicts keyed by column name (``sqlite3.Row`` has no ``get``)."""
    return {col[0]: value for col, value in zip(cursor.description, row, strict=True)}
