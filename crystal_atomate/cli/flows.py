"""Structures for the commands that run flows: a file or a Materials Project id in, a structure out.

The flows themselves are named in :mod:`crystal_atomate.flows.registry`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from pymatgen.core import Structure

from crystal_atomate.errors import InputError
from crystal_atomate.highthroughput import read_structure

if TYPE_CHECKING:
    from crystal_atomate.mp.client import StructureOrigin

__all__ = ["load_structure", "load_structure_with_origin"]

_MATERIAL_ID = re.compile(r"^(mp|mvc)-[a-z0-9]+$", re.IGNORECASE)


def load_structure(source: str) -> Structure:
    """Read a structure from a CIF, POSCAR or pymatgen JSON file, or a Materials Project id."""
    return load_structure_with_origin(source)[0]


def load_structure_with_origin(source: str) -> tuple[Structure, StructureOrigin | None]:
    """Return the structure and, for a Materials Project id (``mp-1265``, ``mvc-...``), its origin.

    A file of that name wins. An id goes through the shared database's cache, so repeated runs
    ask the API once per material and work offline once it is cached.
    """
    path = Path(source)
    if path.is_file():
        return read_structure(path), None
    if not _MATERIAL_ID.match(source.strip()):
        raise InputError(
            f"no structure file {source!r} (nor a Materials Project id)",
            hint="give a CIF, POSCAR or pymatgen JSON file, or a Materials Project id like mp-1265",
        )
    from crystal_atomate.mp.cache import MaterialsProject
    from crystal_atomate.settings import CrystalAtomateSettings

    materials_project = MaterialsProject(CrystalAtomateSettings().DB_FILE)
    try:
        record = materials_project.get_structure(source)
    finally:
        materials_project.close()
    return record.structure, record.origin
