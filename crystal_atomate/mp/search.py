"""A formula's structures from the Materials Project, else from OPTIMADE: the fallback the UI makes.

The Materials Project is asked first (through the cache). When it has nothing for the formula, or
cannot be used (no key, refused key, unreachable, rate limited), the OPTIMADE providers are asked
instead and :attr:`Found.note` says why in one line, so a user knows which database answered.
"""

from __future__ import annotations

from dataclasses import dataclass

from crystal_atomate.mp.cache import MaterialsProject
from crystal_atomate.mp.client import MPQuery, MPStructure
from crystal_atomate.mp.errors import (
    MPAuthError,
    MPKeyMissingError,
    MPOfflineError,
    MPRateLimitError,
    MPRequestError,
)
from crystal_atomate.mp.optimade import Optimade, OptimadeQuery

__all__ = ["Found", "find_by_formula"]

#: Failures after which OPTIMADE is asked instead (a bad formula is not one of them).
_UNAVAILABLE = (MPKeyMissingError, MPAuthError, MPOfflineError, MPRateLimitError, MPRequestError)


@dataclass(frozen=True)
class Found:
    """The structures found, which source gave them, and why the Materials Project did not."""

    records: list[MPStructure]
    source: str
    note: str | None = None


def find_by_formula(
    formula: str,
    mp: MaterialsProject,
    optimade: Optimade,
    providers: tuple[str, ...] = ("mp",),
    limit: int = 50,
    refresh: bool = False,
) -> Found:
    """Search the Materials Project for ``formula``, else the OPTIMADE providers.

    Raises
    ------
    MPError
        OPTIMADE failed too (its error says how), or the input is bad.
    """
    try:
        records = mp.search_structures(MPQuery(formula=formula, limit=limit), refresh=refresh)
    except _UNAVAILABLE as exc:
        reason = f"the Materials Project is unavailable ({exc})"
    else:
        if records:
            return Found(records, "mp")
        reason = f"the Materials Project has no {formula}"
    query = OptimadeQuery(formula=formula, providers=providers, limit=limit)
    records = optimade.search(query, refresh=refresh)
    note = f"{reason}; OPTIMADE ({', '.join(providers)}) found {len(records)}."
    return Found(records, "optimade", note)
