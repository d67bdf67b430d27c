"""Engine parity: how two task documents of the same job are compared, whatever ran them.

The engine parity matrix (``tests/aiida/test_engine_parity.py``) and the cluster tests compare
each engine's documents with ``run_locally``'s: the fields that carry the science with their
tolerances (:data:`FIELDS`), then everything else exactly, except the bookkeeping fields engines
legitimately fill differently (:data:`BOOKKEEPING`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from pymatgen.core import Structure

from crystal_atomate.io.units import HARTREE_TO_EV

__all__ = [
    "BOOKKEEPING",
    "FIELDS",
    "TOL_ANGSTROM",
    "TOL_HARTREE",
    "all_keys",
    "close",
    "differences",
    "field_differences",
    "get_path",
    "job_differences",
]

#: Fields engines legitimately fill differently (skipped wherever they occur in a document), and
#: why.
BOOKKEEPING: dict[str, str] = {
    "_id": "the store's own document id, new in every store",
    "uuid": "each engine runs freshly built flows, so job uuids differ",
    "hosts": "the flow uuids that contain the job",
    "completed_at": "wall-clock time the job (or calculation) finished",
    "last_updated": "wall-clock time the task document was built",
    "dir_name": "the engine's run folder (job_*, launcher_*, the worker's, ...)",
    "from_dir": "a restart's previous run folder, an engine's folder too",
    "prev_dir": "the folder a band structure or DOS job read the SCF from, likewise",
    "run": "how CRYSTAL was started: command, executor, wall time, AiiDA node uuid",
    "fw_id": "FireWorks' id of the Firework that ran the job (in the job's metadata)",
    "db_id": "jobflow-remote's queue id of the job (in the job's metadata)",
}

TOL_HARTREE = 1e-8
TOL_ANGSTROM = 1e-6


def _same_structure(ours: dict | None, theirs: dict | None) -> bool:
    """Lattice, species and fractional coordinates within 1e-6."""
    if ours is None or theirs is None:
        return ours is theirs
    a, b = Structure.from_dict(ours), Structure.from_dict(theirs)
    return (
        a.species == b.species
        and np.allclose(a.lattice.matrix, b.lattice.matrix, rtol=0, atol=TOL_ANGSTROM)
        and np.allclose(a.frac_coords, b.frac_coords, rtol=0, atol=TOL_ANGSTROM)
    )


def close(tolerance: float) -> Callable[[Any, Any], bool]:
    """Equal, numbers within ``tolerance``, through nested dicts and lists (EOS fits, energies)."""

    def close(ours: Any, theirs: Any) -> bool:
        if isinstance(ours, dict) and isinstance(theirs, dict):
            return ours.keys() == theirs.keys() and all(close(ours[k], theirs[k]) for k in ours)
        if isinstance(ours, list) and isinstance(theirs, list):
            return len(ours) == len(theirs) and all(map(close, ours, theirs))
        if isinstance(ours, float) and isinstance(theirs, float):
            return math.isclose(ours, theirs, rel_tol=0, abs_tol=tolerance)
        return ours == theirs

    return close


def _restart_history(ours: list[dict] | None, theirs: list[dict] | None) -> bool:
    """Compare each restart's errors, action, input updates, wavefunction and geometry source.

    A restart's previous folder is bookkeeping.
    """

    def history(restarts: list[dict] | None) -> list[dict]:
        return [
            {k: v for k, v in restart.items() if k not in BOOKKEEPING} for restart in restarts or []
        ]

    return history(ours) == history(theirs)


_equal = close(0)

#: Fields compared with their own rule, by path in the task document (the job's ``output``).
FIELDS: dict[str, Callable[[Any, Any], bool]] = {
    "state": _equal,
    "task_type": _equal,
    "errors": _equal,
    "output.energy_hartree": close(TOL_HARTREE),
    "output.energy": close(TOL_HARTREE * HARTREE_TO_EV),
    "output.bandgap": close(TOL_HARTREE),
    "structure": _same_structure,
    "output.eos": close(TOL_HARTREE * HARTREE_TO_EV),
    "restarts": _restart_history,
    "input.d12": _equal,
}


def get_path(doc: dict, path: str) -> Any:
    """Return the value at dotted ``path`` in ``doc`` (None where a key is missing)."""
    for key in path.split("."):
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc


def differences(ours: Any, theirs: Any, path: str = "") -> Iterator[str]:
    """Paths where two documents differ, skipping :data:`BOOKKEEPING` and the :data:`FIELDS`."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for key in sorted(ours.keys() | theirs.keys()):
            where = f"{path}.{key}" if path else key
            if key in BOOKKEEPING or where.removeprefix("output.") in FIELDS:
                continue
            if key not in ours or key not in theirs:
                yield f"{where}: only in {'run_locally' if key in ours else 'the engine'}"
            else:
                yield from differences(ours[key], theirs[key], where)
    elif isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        for index, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            yield from differences(a, b, f"{path}[{index}]")
    elif ours != theirs:
        yield f"{path}: {str(ours)[:80]!r} != {str(theirs)[:80]!r}"


def all_keys(doc: Any) -> Iterator[str]:
    """Yield every key of a nested document."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield key
            yield from all_keys(value)
    elif isinstance(doc, list):
        for item in doc:
            yield from all_keys(item)


def field_differences(ours: dict, theirs: dict) -> dict[str, tuple[Any, Any]]:
    """Return the :data:`FIELDS` on which two job outputs disagree, with both values.

    Parameters
    ----------
    ours, theirs
        The ``output`` of the same job from two engines.

    Returns
    -------
    dict
        Path -> (ours, theirs) for each field outside its tolerance; empty when they agree.
    """
    return {
        path: (get_path(ours, path), get_path(theirs, path))
        for path, same in FIELDS.items()
        if not same(get_path(ours, path), get_path(theirs, path))
    }


def job_differences(ours: dict, theirs: dict) -> list[str]:
    """List every way two documents of the same job differ, bookkeeping aside.

    Parameters
    ----------
    ours, theirs
        Whole jobflow job documents (``uuid``, ``output`` ...) from two engines.

    Returns
    -------
    list of str
        The science fields out of tolerance, then every other differing path; empty when the
        engines agree.
    """
    named = [
        f"output.{path}: {a!r} != {b!r}"
        for path, (a, b) in field_differences(ours["output"], theirs["output"]).items()
    ]
    return named + list(differences(ours, theirs))
