"""Structures from the Materials Project through the real ``mp-api`` client.

``MPRester`` does the HTTP; this module adds what a CRYSTAL user needs around it: the key and the
endpoint from the environment (``MP_API_KEY``, ``MP_API_ENDPOINT``), each failure turned into the
typed exception of :mod:`crystal_atomate.mp.errors`, a bounded exponential back-off on rate
limiting on top of mp-api's own quick retries, and every structure tagged with a
:class:`StructureOrigin` (material id, database version) that task documents can embed.

``mp_api`` takes seconds to import, so it is imported only when a request is really made: a
cache hit or ``--help`` never pays for it.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pymatgen.core import Structure

from crystal_atomate.mp.errors import (
    MPAuthError,
    MPError,
    MPInvalidIdError,
    MPKeyMissingError,
    MPNotFoundError,
    MPOfflineError,
    MPRateLimitError,
    MPRequestError,
)

if TYPE_CHECKING:
    from mp_api.client import MPRester

__all__ = [
    "KEY_ENV",
    "ENDPOINT_ENV",
    "DEFAULT_ENDPOINT",
    "StructureOrigin",
    "MPStructure",
    "MPQuery",
    "RetryPolicy",
    "MPClient",
    "resolve_endpoint",
    "normalise_material_id",
]

KEY_ENV = "MP_API_KEY"
ENDPOINT_ENV = "MP_API_ENDPOINT"
DEFAULT_ENDPOINT = "https://api.materialsproject.org/"
#: Fields asked of ``/materials/summary/``; asking only these keeps a search small.
SUMMARY_FIELDS = [
    "material_id",
    "formula_pretty",
    "structure",
    "band_gap",
    "energy_above_hull",
    "is_stable",
]

_MATERIAL_ID = re.compile(r"^[a-z]+-\d+$")
_STATUS = re.compile(r"status code (\d{3})")
_KEY_URL = "https://next-gen.materialsproject.org/api"

log = logging.getLogger(__name__)
T = TypeVar("T")


class StructureOrigin(BaseModel):
    """Where a structure came from, small enough for a task document to embed.

    atomate2 keeps a structure's history beside it (transformations, metadata); this is the
    source part: which material, from which database release, through which endpoint. For an
    OPTIMADE entry ``material_id`` is ``provider:id`` (as the UI names it) and ``provider``,
    ``entry_id`` and ``url`` say where to find it again.
    """

    model_config = ConfigDict(frozen=True)

    source: Literal["mp", "optimade", "mpcontribs"] = "mp"
    material_id: str
    provider: str | None = Field(None, description="OPTIMADE provider name or base URL.")
    entry_id: str | None = Field(None, description="The entry's id at the provider.")
    url: str | None = Field(None, description="The entry's own URL at the provider.")
    db_version: str | None = Field(None, description="MP database release, e.g. '2025.09.25'.")
    endpoint: str | None = Field(
        None, description="API endpoint the structure came from; unknown for rows the UI wrote."
    )
    retrieved_at: datetime | None = Field(
        None, description="When it was fetched from the API (UTC); unknown for rows the UI wrote."
    )


@dataclass(frozen=True)
class MPStructure:
    """One material: its structure, its origin and, from a search, its headline properties."""

    material_id: str
    formula: str
    structure: Structure
    origin: StructureOrigin
    band_gap: float | None = None
    energy_above_hull: float | None = None
    is_stable: bool | None = None
    from_cache: bool = False

    @property
    def nsites(self) -> int:
        """Number of sites in the (primitive, as MP stores it) cell."""
        return len(self.structure)


class MPQuery(BaseModel):
    """A structure search; its canonical JSON is also the search's cache key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    formula: str | None = Field(None, description="Reduced formula or wildcard, e.g. 'MgO'.")
    chemsys: str | None = Field(None, description="Chemical system, e.g. 'Si-O'.")
    band_gap_min: float | None = Field(None, ge=0, description="Lowest band gap (eV).")
    band_gap_max: float | None = Field(None, ge=0, description="Highest band gap (eV).")
    stable: bool = Field(False, description="Only materials on the convex hull.")
    energy_above_hull_max: float | None = Field(None, ge=0, description="eV/atom.")
    max_sites: int | None = Field(None, ge=1, description="Most sites in the cell.")
    #: 50 as the UI's ``MaterialsService.search_by_formula``: the limit is part of the shared
    #: cache key, so a default formula search here and in the UI finds the other's answer.
    limit: int = Field(50, ge=1, le=1000, description="Most materials returned.")

    def describe(self) -> str:
        """Describe the criteria that were set, for messages: 'formula=MgO, stable=True'."""
        fields = self.model_dump(exclude_defaults=True)
        return ", ".join(f"{k}={v}" for k, v in fields.items()) or "all materials"

    def summary_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``MPRester.materials.summary.search``."""
        kwargs: dict[str, Any] = {
            "formula": self.formula,
            "chemsys": self.chemsys,
            "deprecated": False,
        }
        if self.band_gap_min is not None or self.band_gap_max is not None:
            kwargs["band_gap"] = (self.band_gap_min, self.band_gap_max)
        if self.energy_above_hull_max is not None:
            kwargs["energy_above_hull"] = (0.0, self.energy_above_hull_max)
        if self.max_sites is not None:
            kwargs["num_sites"] = (1, self.max_sites)
        kwargs["is_stable"] = True if self.stable else None
        return {k: v for k, v in kwargs.items() if v is not None}


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying through HTTP 429 once mp-api's own retries are spent.

    MPRester's session already retries a 429 a few times within about a second (urllib3,
    honouring ``Retry-After``). A batch of hundreds of look-ups can outlast that, so the whole
    call is retried after pauses that double from ``base_delay`` up to ``max_delay``, at most
    ``attempts`` times in all; then :class:`MPRateLimitError` is raised.
    """

    attempts: int = 4
    base_delay: float = 2.0
    max_delay: float = 30.0

    def delays(self) -> Iterator[float]:
        """Return the pauses between attempts (one fewer than ``attempts``)."""
        for attempt in range(self.attempts - 1):
            yield min(self.base_delay * 2**attempt, self.max_delay)


def resolve_endpoint(endpoint: str | None = None) -> str:
    """Return the API endpoint: the argument, else ``MP_API_ENDPOINT``, else MP's; ending in '/'.

    mp-api appends paths ("heartbeat") to it by plain concatenation, hence the slash.
    """
    url = endpoint or os.environ.get(ENDPOINT_ENV) or DEFAULT_ENDPOINT
    return url if url.endswith("/") else url + "/"


def normalise_material_id(material_id: str) -> str:
    """'MP-149 ' -> 'mp-149'; anything not shaped like an id is refused before any request.

    mp-api would otherwise decode arbitrary text as a new-style id ('foo' becomes '3758') and
    ask the server for a different material than the user typed.
    """
    candidate = material_id.strip().lower()
    if not _MATERIAL_ID.match(candidate):
        raise MPInvalidIdError(
            f"{material_id!r} is not a Materials Project id.",
            hint="an id is a prefix, a dash and a number, e.g. mp-149 or mvc-11.",
        )
    return candidate


class MPClient:
    """Structures by id or by search through one lazily opened ``MPRester``.

    The key is read from ``MP_API_KEY`` unless given, kept in memory only and never put in a
    message, a log line or ``repr``.
    """

    def __init__(
        self,
        api_key: str | None = None,
        endpoint: str | None = None,
        retry: RetryPolicy = RetryPolicy(),
    ) -> None:
        self.endpoint = resolve_endpoint(endpoint)
        self._api_key = api_key if api_key is not None else os.environ.get(KEY_ENV, "")
        self._retry = retry
        self._rester: MPRester | None = None

    def __repr__(self) -> str:
        """Name the endpoint, never the API key."""
        return f"MPClient(endpoint={self.endpoint!r})"

    @property
    def db_version(self) -> str | None:
        """The database release the open rester reported at ``/heartbeat``; None before any call."""
        return (self._rester.db_version or None) if self._rester is not None else None

    def get_structure(self, material_id: str) -> MPStructure:
        """Fetch the final structure of one material (``MPRester.get_structure_by_material_id``)."""
        mid = normalise_material_id(material_id)
        structure = self._call(lambda rester: rester.get_structure_by_material_id(mid), mid)
        if structure is None:
            raise MPNotFoundError(
                f"{mid} is not in the Materials Project database at {self.endpoint} "
                "(or it is deprecated)."
            )
        return self._record(mid, structure)

    def search_structures(self, query: MPQuery) -> list[MPStructure]:
        """Materials matching ``query`` from ``/materials/summary/``, at most ``query.limit``."""
        docs = self._call(
            lambda rester: rester.materials.summary.search(
                **query.summary_kwargs(),
                fields=SUMMARY_FIELDS,
                num_chunks=1,
                chunk_size=query.limit,
            ),
            f"the search ({query.describe()})",
        )
        return [
            self._record(
                str(doc.material_id),
                doc.structure,
                band_gap=doc.band_gap,
                energy_above_hull=doc.energy_above_hull,
                is_stable=doc.is_stable,
            )
            for doc in docs
        ]

    def _record(self, material_id: str, structure: Structure, **properties: Any) -> MPStructure:
        origin = StructureOrigin(
            material_id=material_id,
            db_version=self.db_version,
            endpoint=self.endpoint,
            retrieved_at=datetime.now(UTC),
        )
        return MPStructure(
            material_id=material_id,
            formula=structure.composition.reduced_formula,
            structure=structure,
            origin=origin,
            **properties,
        )

    def _call(self, request: Callable[[MPRester], T], what: str) -> T:
        """Run ``request`` on the rester, backing off on rate limits as ``RetryPolicy`` says."""
        delays = self._retry.delays()
        while True:
            try:
                with _translated_errors(self.endpoint, what):
                    return request(self._open())
            except MPRateLimitError:
                delay = next(delays, None)
                if delay is None:
                    raise
                log.warning("Rate limited by %s; retrying %s in %.1f s", self.endpoint, what, delay)
                time.sleep(delay)

    def _open(self) -> MPRester:
        """Open the rester on first use: its constructor already calls ``/heartbeat``."""
        if self._rester is None:
            if not self._api_key:
                raise MPKeyMissingError(
                    f"No Materials Project API key: set {KEY_ENV} (get a key at {_KEY_URL})."
                )
            from mp_api.client import MPRester

            log.debug("Opening MPRester on %s", self.endpoint)
            self._rester = MPRester(
                api_key=self._api_key, endpoint=self.endpoint, mute_progress_bars=True
            )
        return self._rester


@contextmanager
def _translated_errors(endpoint: str, what: str) -> Iterator[None]:
    """Turn mp-api's and requests' exceptions into the typed errors of this package."""
    try:
        yield
    except MPError:
        raise
    except Exception as exc:
        translated = _translate(exc, endpoint, what)
        if translated is None:
            raise
        raise translated from exc


def _translate(exc: Exception, endpoint: str, what: str) -> MPError | None:
    """Return the typed error for ``exc``, or None when it is not a request failure at all.

    mp-api re-raises ``requests`` failures as ``MPRestError(str(error))`` inside the handler, so
    the original is its ``__context__``; HTTP errors carry the status only in their text.
    """
    import requests
    from mp_api.client.core.exceptions import MPRestError

    cause = exc.__context__ if isinstance(exc, MPRestError) and exc.__context__ else exc
    if isinstance(cause, requests.exceptions.RetryError) and "429" in str(cause):
        return MPRateLimitError(f"{endpoint} kept answering 429 (rate limited) for {what}.")
    if isinstance(cause, (requests.ConnectionError, requests.Timeout)):
        return MPOfflineError(f"Cannot reach the Materials Project at {endpoint} for {what}.")
    if isinstance(cause, requests.RequestException):
        return MPRequestError(f"Request to {endpoint} for {what} failed: {cause}")
    if not isinstance(exc, MPRestError):
        return None
    status = int(match.group(1)) if (match := _STATUS.search(str(exc))) else None
    if status in (401, 403):
        return MPAuthError(
            f"The Materials Project at {endpoint} refused the API key in {KEY_ENV} "
            f"(HTTP {status}); check it at {_KEY_URL}."
        )
    if status == 404:
        return MPNotFoundError(f"{what} was not found at {endpoint} (HTTP 404).")
    if status == 429:
        return MPRateLimitError(f"{endpoint} answered 429 (rate limited) for {what}.")
    return MPRequestError(f"The Materials Project request for {what} failed: {exc}")
