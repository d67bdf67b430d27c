"""Locate the real recorded CRYSTAL runs (``shared/crystal-reference``) used by tests and the replay."""

from __future__ import annotations

from pathlib import Path

from crystal_atomate.settings import CrystalAtomateSettings

__all__ = ["ReferenceDataMissing", "reference_dir", "reference_file"]


class ReferenceDataMissing(FileNotFoundError):
    """The recorded CRYSTAL runs are not where the settings say."""


def reference_dir() -> Path:
    """The reference directory; raises :class:`ReferenceDataMissing` naming the setting to fix."""
    path = CrystalAtomateSettings().REFERENCE_DIR
    if not (path / "MANIFEST.md").is_file():
        raise ReferenceDataMissing(
            f"No recorded CRYSTAL runs at {path}: set CRYSTAL_ATOMATE_REFERENCE_DIR to the "
            "shared/crystal-reference folder."
        )
    return path


def reference_file(folder: str, name: str) -> Path:
    """One file of one recorded run, e.g. ``reference_file("mgo_opt_b3lyp_crystal22", "OUTPUT.out")``."""
    path = reference_dir() / folder / name
    if not path.is_file():
        raise ReferenceDataMissing(f"{path} does not exist in the reference set")
    return path
