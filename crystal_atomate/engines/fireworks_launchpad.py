"""FireWorks LaunchPads on the embedded database, for Python and for ``lpad``/``rlaunch``.

FireWorks builds its own ``pymongo.MongoClient`` from the LaunchPad settings, so the hook is its
supported ``uri_mode``: the host is the ``mongodb://`` URI of the embedded server's Unix socket,
and no FireWorks code is patched. The same settings written as YAML serve ``lpad -l`` and
``rlaunch -l`` in any process; only the server has to be running (``embedded_launchpad`` starts
it, and so does ``python -m crystal_atomate.engines.embedded_db start DIR``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from fireworks import LaunchPad

from crystal_atomate.engines.embedded_db import ensure_server, mongodb_uri

__all__ = ["embedded_launchpad", "launchpad_settings", "write_launchpad_yaml"]

DEFAULT_DATABASE = "fireworks"


def launchpad_settings(db_dir: str | Path, name: str = DEFAULT_DATABASE, **extra: Any) -> dict:
    """``LaunchPad.from_dict`` settings for the embedded database in ``db_dir``.

    ``extra`` adds LaunchPad options such as ``logdir`` or ``strm_lvl``. A short server selection
    timeout makes a launcher fail within seconds, not FireWorks' minutes, if the server is down.
    """
    return {
        "host": mongodb_uri(db_dir),
        "uri_mode": True,
        "name": name,
        "mongoclient_kwargs": {"serverSelectionTimeoutMS": 20_000},
        **extra,
    }


def embedded_launchpad(db_dir: str | Path, name: str = DEFAULT_DATABASE, **extra: Any) -> LaunchPad:
    """Open a LaunchPad on the embedded database in ``db_dir``, starting its server if needed."""
    ensure_server(db_dir)
    return LaunchPad.from_dict(launchpad_settings(db_dir, name, **extra))


def write_launchpad_yaml(
    db_dir: str | Path, yaml_path: str | Path, name: str = DEFAULT_DATABASE, **extra: Any
) -> Path:
    """Write ``my_launchpad.yaml`` for the embedded database in ``db_dir``.

    ``lpad -l``/``rlaunch -l`` read it (or ``FW_CONFIG_FILE``'s ``LAUNCHPAD_LOC``).
    """
    yaml_path = Path(yaml_path)
    yaml_path.parent.mkdir(parents=True, exist_ok=True)
    yaml_path.write_text(yaml.safe_dump(launchpad_settings(db_dir, name, **extra), sort_keys=False))
    return yaml_path
