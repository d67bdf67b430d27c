"""Locate the real recorded CRYSTAL runs used by the demo, the replay executable and the tests.

The recordings live in this package, in ``crystal_atomate/testing/recordings/<folder>`` (provenance
and licences in its ``MANIFEST.md`` and ``LICENSES/``). A checkout holds all of them; the wheel and
the sdist carry only the ones the demo replays (``[tool.setuptools.package-data]``), so the large
and copyleft-licensed rest never leaves the repository. ``CRYSTAL_ATOMATE_REFERENCE_DIR`` points
everything at another folder of the same layout instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from crystal_atomate.settings import CrystalAtomateSettings

if TYPE_CHECKING:
    from crystal_atomate.io.d12 import CrystalInput

__all__ = [
    "PACKAGE_RECORDINGS",
    "ReferenceDataMissing",
    "recorded_input",
    "recording_dir",
    "reference_dir",
    "reference_file",
]

#: The recordings shipped with (or, in a checkout, kept beside) this module.
PACKAGE_RECORDINGS = Path(__file__).resolve().with_name("recordings")


class ReferenceDataMissing(FileNotFoundError):
    """A recorded CRYSTAL run is not where the settings say."""


def reference_dir() -> Path:
    """Return the folder of recorded runs: ``CRYSTAL_ATOMATE_REFERENCE_DIR`` if set, else ours.

    Returns
    -------
    Path
        A folder holding ``MANIFEST.md`` and one sub-folder per recording.

    Raises
    ------
    ReferenceDataMissing
        The folder has no ``MANIFEST.md`` (a mistyped override, or a broken installation).
    """
    path = CrystalAtomateSettings().REFERENCE_DIR or PACKAGE_RECORDINGS
    if not (path / "MANIFEST.md").is_file():
        raise ReferenceDataMissing(
            f"No recorded CRYSTAL runs at {path}: CRYSTAL_ATOMATE_REFERENCE_DIR must name a folder "
            f"laid out like {PACKAGE_RECORDINGS} (MANIFEST.md and one folder per recording)."
        )
    return path


def recording_dir(folder: str) -> Path:
    """Return the folder of one recorded run, e.g. ``recording_dir("mgo_opt_b3lyp_crystal22")``.

    Parameters
    ----------
    folder
        The recording's folder name, as listed in ``MANIFEST.md``.

    Returns
    -------
    Path
        The existing folder.

    Raises
    ------
    ReferenceDataMissing
        No such recording; an installed package carries only the demo's, so the message says where
        the others are.
    """
    root = reference_dir()
    path = root / folder
    if not path.is_dir():
        raise ReferenceDataMissing(
            f"No recording {folder!r} in {root}. Installed packages carry only the demo's "
            "recordings; the full set is in a checkout's crystal_atomate/testing/recordings "
            "(point CRYSTAL_ATOMATE_REFERENCE_DIR at it)."
        )
    return path


def reference_file(folder: str, name: str) -> Path:
    """Return one file of one recorded run.

    For example ``reference_file("mgo_opt_b3lyp_crystal22", "OUTPUT.out")``.

    Raises
    ------
    ReferenceDataMissing
        The recording, or that file of it, does not exist.
    """
    path = recording_dir(folder) / name
    if not path.is_file():
        raise ReferenceDataMissing(f"{path} does not exist in the recording {folder!r}")
    return path


def recorded_input(folder: str) -> CrystalInput:
    """Parse the recorded ``INPUT.d12`` of ``folder``.

    Recipes reuse its basis and geometry so the replay accepts the decks they write.
    """
    from crystal_atomate.io.d12 import CrystalInput

    return CrystalInput.from_file(reference_file(folder, "INPUT.d12"))
