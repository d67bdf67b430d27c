"""The CrystalMath UI's own data layer, for tests that open our database with the UI's code.

The UI's code is not ours to ship: it is found at ``$CRYSTALMATH_CLIENT_DIR`` (default
``shared/crystalmath-client/tui`` in the folder that holds the checkout), and tests that need it
skip, with the reason, where it is absent. CI has it.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["UIClientMissing", "ui_client_dir", "ui_module"]

_DEFAULT = Path(__file__).resolve().parents[2].parent / "shared" / "crystalmath-client" / "tui"


class UIClientMissing(ImportError):
    """The UI's code is not on this machine."""


def ui_client_dir() -> Path:
    """Return the folder holding the UI's ``src`` package.

    Returns
    -------
    Path
        ``$CRYSTALMATH_CLIENT_DIR`` or the default beside the checkout.

    Raises
    ------
    UIClientMissing
        The folder has no ``src/core/database.py``.
    """
    path = Path(os.environ.get("CRYSTALMATH_CLIENT_DIR") or _DEFAULT)
    if not (path / "src" / "core" / "database.py").is_file():
        raise UIClientMissing(
            f"the CrystalMath UI client is not at {path}: set CRYSTALMATH_CLIENT_DIR to its 'tui' "
            "folder"
        )
    return path


def ui_module(name: str) -> ModuleType:
    """Import one of the UI's modules, e.g. ``ui_module("src.core.database")``.

    Parameters
    ----------
    name
        The module's dotted name inside the UI's ``tui`` folder.

    Returns
    -------
    ModuleType
        The imported module.
    """
    folder = str(ui_client_dir())
    if folder not in sys.path:
        sys.path.append(folder)
    return importlib.import_module(name)
