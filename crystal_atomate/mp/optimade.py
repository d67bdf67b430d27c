"""Structures from the OPTIMADE federation through the ``optimade`` package's own client.

:class:`OptimadeQuery` names a formula (or a raw OPTIMADE filter) and the providers to ask: a name
the UI knows (``mp``, ``oqmd``, ``aflow``, ``cod``, ``mc3d``, ``mc2d``) or any ``http(s)://`` base
URL. :func:`search_optimade` checks the filter with the package's own grammar before any request,
asks every provider through ``optimade.client.OptimadeClient`` and turns each entry into a pymatgen
structure with its provenance (provider, entry id, entry URL) in a :class:`StructureOrigin`.
:class:`Optimade` caches the searches in the shared database under the UI's
``search_optimade`` key (source ``optimade``), as the UI's ``MaterialsService.search_optimade``
does, so each program serves the other's searches offline.

The client prints provider errors on the terminal itself; here they are captured and become one
typed exception (or, when other providers answered, a warning naming them).
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pymatgen.core import Composition, Element, Structure

from crystal_atomate.mp.cache import (
    STRUCTURE_TTL,
    MPCache,
    cache_first,
    ui_cache_key,
)
from crystal_atomate.mp.client import MPStructure, StructureOrigin
from crystal_atomate.mp.errors import (
    OptimadeFilterError,
    OptimadeOfflineError,
    OptimadeProviderError,
    OptimadeRequestError,
)

__all__ = [
    "PROVIDERS",
    "SOURCE",
    "Optimade",
    "OptimadeQuery",
    "optimade_formula",
    "resolve_provider",
    "search_optimade",
]

SOURCE = "optimade"
#: The providers the UI's OPTIMADE client knows by name, with their base URLs.
PROVIDERS = {
    "mp": "https://optimade.materialsproject.org",
    "oqmd": "https://oqmd.org/optimade",
    "aflow": "https://aflow.org/API/optimade",
    "cod": "https://www.crystallography.net/cod/optimade",
    "mc3d": "https://aiida.materialscloud.org/mc3d/optimade",
    "mc2d": "https://aiida.materialscloud.org/mc2d/optimade",
}
#: Error classes (as the client names them) that mean "could not reach the provider".
_OFFLINE = ("ConnectionError", "ConnectTimeout", "ReadTimeout", "Timeout", "ConnectError")
_TIMEOUTS = ("ConnectTimeout", "ReadTimeout", "Timeout")
_HTTP_STATUS = re.compile(r"^RuntimeError: (\d{3}) - ")
_TITLE = re.compile(r'"(?:title|detail)": ?"([^"]+)"')

log = logging.getLogger(__name__)


def resolve_provider(provider: str) -> str:
    """Return the base URL of ``provider``: a known name, or a URL as given (without a final '/').

    Raises
    ------
    OptimadeProviderError
        Neither a known name nor an ``http(s)://`` URL.
    """
    if provider in PROVIDERS:
        return PROVIDERS[provider]
    if provider.startswith(("http://", "https://")):
        return provider.rstrip("/")
    raise OptimadeProviderError(
        f"{provider!r} is not an OPTIMADE provider.",
        hint=f"use one of {', '.join(PROVIDERS)} or a base URL such as https://host/optimade.",
    )


def optimade_formula(formula: str) -> str:
    """'Fe2O3' or 'O3Fe2' -> 'Fe2O3': OPTIMADE's reduced formula, elements in alphabetical order.

    Raises
    ------
    OptimadeFilterError
        ``formula`` is not a chemical formula.
    """
    try:
        composition = Composition(formula).reduced_composition
    except (ValueError, KeyError) as exc:
        raise OptimadeFilterError(f"{formula!r} is not a chemical formula.") from exc
    if not composition.elements or not all(
        Element.is_valid_symbol(str(element)) for element in composition.elements
    ):
        raise OptimadeFilterError(f"{formula!r} is not a chemical formula.")
    amounts = composition.get_el_amt_dict()
    return "".join(
        f"{element}{'' if amount == 1 else int(amount)}"
        for element, amount in sorted(amounts.items())
    )


def _check_filter(text: str) -> None:
    """Parse ``text`` with the package's own OPTIMADE grammar; the first error line on failure."""
    from optimade.exceptions import BadRequest
    from optimade.filterparser import LarkParser

    try:
        LarkParser().parse(text)
    except BadRequest as exc:
        lines = [line.strip() for line in str(exc.detail).splitlines()[1:] if line.strip()]
        reason = lines[0].split(". Expected")[0].rstrip(".:") if lines else ""
        raise OptimadeFilterError(
            f"{text!r} is not a valid OPTIMADE filter ({reason or 'syntax error'}).",
            hint='e.g. chemical_formula_reduced="Fe2O3" AND nsites<=10',
        ) from exc


@dataclass(frozen=True)
class OptimadeQuery:
    """A formula or a raw filter, asked of ``providers`` (names or URLs), ``limit`` per provider."""

    formula: str | None = None
    filter: str | None = None
    providers: tuple[str, ...] = ("mp",)
    limit: int = 50

    def __post_init__(self) -> None:
        """Refuse a query that cannot be sent: both or neither of formula and filter, no provider.

        Raises
        ------
        OptimadeFilterError
            Both a formula and a filter were given, or neither.
        OptimadeProviderError
            No provider was given.
        """
        if (self.formula is None) == (self.filter is None):
            raise OptimadeFilterError(
                "Give either a formula or an OPTIMADE filter, not both or none."
            )
        if not self.providers:
            raise OptimadeProviderError(
                "No OPTIMADE provider given.", hint=f"e.g. {next(iter(PROVIDERS))}."
            )

    def filter_text(self) -> str:
        """Return the OPTIMADE filter sent to every provider."""
        if self.formula is not None:
            return f'chemical_formula_reduced="{optimade_formula(self.formula)}"'
        return str(self.filter)

    def describe(self) -> str:
        """'Fe2O3 at mp, cod' for messages."""
        what = self.formula if self.formula is not None else f"filter {self.filter}"
        return f"{what} at {', '.join(self.providers)}"

    def cache_params(self) -> tuple[str, dict[str, Any]]:
        """Return the cache key parameters, as the UI builds them.

        The UI's ``search_optimade`` parameters for a formula; ``search_optimade_filter`` (a call
        the UI does not make) for a raw filter.
        """
        providers = sorted(self.providers)
        if self.formula is not None:
            return "search_optimade", {
                "formula": self.formula,
                "providers": providers,
                "limit": self.limit,
            }
        return "search_optimade_filter", {
            "filter": self.filter,
            "providers": providers,
            "limit": self.limit,
        }


@dataclass
class _Answers:
    """Records from every provider that answered, and the one-line error of each that did not."""

    records: list[MPStructure] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


def search_optimade(
    query: OptimadeQuery, timeout: float = 30.0, attempts: int = 3
) -> list[MPStructure]:
    """Structures matching ``query`` from every provider, in provider order.

    Raises
    ------
    OptimadeProviderError, OptimadeFilterError
        Bad input, found before any request.
    OptimadeOfflineError
        No provider could be reached (the cache may then answer).
    OptimadeRequestError
        No provider answered and at least one reported an error (HTTP 500, rejected query, ...).
    """
    urls = {provider: resolve_provider(provider) for provider in query.providers}
    text = query.filter_text()
    _check_filter(text)
    answers = _ask(urls, text, query.limit, timeout, attempts)
    if answers.errors and not answers.records:
        offline = all(error.startswith(_OFFLINE) for error in answers.errors.values())
        detail = "; ".join(
            f"{name}: {_reason(error, timeout)}" for name, error in answers.errors.items()
        )
        if offline:
            raise OptimadeOfflineError(f"Cannot reach OPTIMADE ({detail}) for {query.describe()}.")
        raise OptimadeRequestError(f"OPTIMADE search for {query.describe()} failed ({detail}).")
    for name, error in answers.errors.items():
        log.warning(
            "OPTIMADE provider %s failed (%s); results are from the others",
            name,
            _reason(error, timeout),
        )
    return answers.records


def _ask(urls: dict[str, str], text: str, limit: int, timeout: float, attempts: int) -> _Answers:
    """One ``OptimadeClient.get`` over all providers; its own printing is captured, not shown."""
    from optimade.client import OptimadeClient

    client = OptimadeClient(
        base_urls=list(urls.values()),
        max_results_per_provider=limit,
        http_timeout=timeout,
        max_attempts=attempts,
        use_async=False,
        silent=True,
    )
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        results = client.get(text, endpoint="structures")["structures"][text]
    answers = _Answers()
    retrieved = datetime.now(UTC)
    for name, url in urls.items():
        result = results.get(url, {"data": [], "errors": ["no answer"]})
        if result["errors"]:
            answers.errors[name] = str(result["errors"][0])
            continue
        answers.records.extend(_records(name, url, result["data"][:limit], retrieved))
    return answers


def _reason(error: str, timeout: float) -> str:
    """Say the client's error text in a few words.

    'ReadTimeout: HTTPConnectionPool(...)' or 'RuntimeError: 500 - url: body' become 'no answer
    within 5 s', 'connection refused', 'HTTP 500 (title)'.
    """
    if error.startswith(_TIMEOUTS):
        return f"no answer within {timeout:g} s"
    if error.startswith(_OFFLINE):
        return "connection refused" if "refused" in error.lower() else "cannot connect"
    if match := _HTTP_STATUS.match(error):
        title = _TITLE.search(error)
        return f"HTTP {match.group(1)}" + (f" ({title.group(1)})" if title else "")
    line = error.strip().splitlines()[0] if error.strip() else "unknown error"
    return line if len(line) <= 160 else line[:157] + "..."


def _records(
    provider: str, base_url: str, entries: list[dict[str, Any]], retrieved: datetime
) -> list[MPStructure]:
    """Return the entries pymatgen reads as periodic structures; others are logged and skipped."""
    label = provider if provider in PROVIDERS else urlsplit(base_url).netloc
    records = []
    for entry in entries:
        structure = _structure(entry)
        if structure is None:
            log.info(
                "OPTIMADE entry %s of %s is not a periodic structure; skipped",
                entry.get("id"),
                provider,
            )
            continue
        entry_id = str(entry["id"])
        origin = StructureOrigin(
            source=SOURCE,
            material_id=f"{label}:{entry_id}",
            provider=provider,
            entry_id=entry_id,
            url=f"{base_url}/v1/structures/{entry_id}",
            endpoint=base_url,
            retrieved_at=retrieved,
        )
        records.append(
            MPStructure(
                material_id=origin.material_id,
                formula=structure.composition.reduced_formula,
                structure=structure,
                origin=origin,
            )
        )
    return records


def _structure(entry: dict[str, Any]) -> Structure | None:
    """Convert the entry to a pymatgen ``Structure`` (the package's own adapter), or None."""
    from optimade.adapters.structures.pymatgen import get_pymatgen
    from optimade.models import StructureResource

    try:
        converted = get_pymatgen(StructureResource(**entry))
    except (ValueError, TypeError, KeyError) as exc:
        log.debug("Cannot convert OPTIMADE entry %s: %s", entry.get("id"), exc)
        return None
    return converted if isinstance(converted, Structure) else None


class Optimade:
    """Cache-first OPTIMADE searches in the shared database (the UI's keys, source ``optimade``).

    ``timeout`` (seconds) and ``attempts`` go to the client for each provider.
    """

    def __init__(
        self,
        db_file: str | Path,
        timeout: float = 30.0,
        attempts: int = 3,
    ) -> None:
        self.cache = MPCache(db_file)
        self.timeout = timeout
        self.attempts = attempts

    def close(self) -> None:
        """Close the database connection."""
        self.cache.close()

    def search(self, query: OptimadeQuery, refresh: bool = False) -> list[MPStructure]:
        """Structures matching ``query``: cached if fresh (30 days, as the UI), else searched."""
        prefix, params = query.cache_params()
        key = ui_cache_key(params, prefix)
        return cache_first(
            self.cache.records(key),
            lambda: search_optimade(query, self.timeout, self.attempts),
            lambda records: self._store(key, params, query.providers, records),
            refresh,
            f"the OPTIMADE search ({query.describe()})",
        )

    def _store(
        self, key: str, params: dict[str, Any], providers: Iterable[str], records: list[MPStructure]
    ) -> None:
        base_url = " ".join(resolve_provider(p) for p in providers)
        self.cache.put_structures(records, base_url)
        self.cache.put_records(key, SOURCE, params, records, STRUCTURE_TTL, base_url)
