"""MPContribs: a project's contributions through ``mpcontribs-client``, and ours to submit.

A project's contributions (data and structures) are read, and a CRYSTAL result is prepared as the
contribution a user would submit.

:class:`MPContribs` reads contributions with the client's own swagger operations
(``contributions.queryContributions``, ``Client.get_structure``) and caches them in the shared
database with source ``mpcontribs``: by material under the UI's ``get_contributions`` key
(``{"material_id", "project"}``, the UI's ``MaterialsService.get_contributions``), a whole project
under ``project_contributions`` (a call the UI does not make). A cached response is
``{"contributions": [ContributionRecord.to_dict()]}`` with each structure as a UI material record.

:func:`contribution_document` turns a CRYSTAL task document into the dictionary
``Client.submit_contributions`` takes; nothing here sends anything.

The client sleeps 30 s three times when its server does not answer its health check, and fails on
a ``KeyError`` when the key is refused, so the server is probed once with a short timeout first.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pymatgen.core import Structure

from crystal_atomate.mp.cache import (
    STRUCTURE_TTL,
    Cached,
    MPCache,
    cache_first,
    record_from_ui,
    record_to_ui,
    ui_cache_key,
)
from crystal_atomate.mp.client import MPStructure, StructureOrigin
from crystal_atomate.mp.errors import MPContribsError, MPContribsOfflineError, MPError

if TYPE_CHECKING:
    from mpcontribs.client import Client

    from crystal_atomate.schemas.task import CrystalTaskDoc

__all__ = [
    "DEFAULT_HOST",
    "HOST_ENV",
    "SOURCE",
    "Contribution",
    "MPContribs",
    "contribution_document",
]

SOURCE = "mpcontribs"
HOST_ENV = "MPCONTRIBS_API_HOST"
DEFAULT_HOST = "contribs-api.materialsproject.org"
#: Where the client (and the UI) look for the key, in order.
KEY_ENVS = ("MPCONTRIBS_API_KEY", "MP_API_KEY")
_FIELDS = ["id", "project", "identifier", "formula", "data", "structures"]


@dataclass(frozen=True)
class Contribution:
    """One contribution: its project, identifier (usually a material id), data and structures."""

    contribution_id: str
    project: str
    identifier: str | None
    formula: str | None
    data: dict[str, Any]
    structures: list[MPStructure]

    def to_ui(self) -> dict[str, Any]:
        """Return the UI's ``ContributionRecord.to_dict()``; structures as UI material records."""
        material_id = self.identifier if (self.identifier or "").startswith("mp-") else None
        return {
            "contribution_id": self.contribution_id,
            "project": self.project,
            "material_id": material_id,
            "identifier": self.identifier,
            "formula": self.formula,
            "data": self.data,
            "tables": [],
            "structures": [record_to_ui(s) for s in self.structures],
        }

    @classmethod
    def from_ui(cls, data: dict[str, Any]) -> Contribution:
        """Back from :meth:`to_ui` (structures without a readable structure are left out)."""
        structures = []
        for item in data.get("structures", []):
            try:
                structures.append(record_from_ui(item))
            except (KeyError, TypeError, ValueError):
                continue
        return cls(
            contribution_id=data["contribution_id"],
            project=data["project"],
            identifier=data.get("identifier"),
            formula=data.get("formula"),
            data=data.get("data") or {},
            structures=structures,
        )


class MPContribs:
    """Cache-first MPContribs reads in the shared database.

    ``host`` is the API host (``MPCONTRIBS_API_HOST``, default the public one), the key is read
    from ``MPCONTRIBS_API_KEY`` or ``MP_API_KEY`` unless given and never put in a message.
    """

    def __init__(
        self,
        db_file: str | Path,
        api_key: str | None = None,
        host: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.cache = MPCache(db_file)
        self.host = host or os.environ.get(HOST_ENV) or DEFAULT_HOST
        self._api_key = api_key or next((os.environ[k] for k in KEY_ENVS if os.environ.get(k)), "")
        self.timeout = timeout
        self._client: Client | None = None

    def __repr__(self) -> str:
        """Name the host, never the API key."""
        return f"MPContribs(host={self.host!r})"

    @property
    def url(self) -> str:
        """The API's base URL (http for a local host, https for the public ones)."""
        local = not self.host.endswith(".materialsproject.org")
        return f"{'http' if local else 'https'}://{self.host}"

    def close(self) -> None:
        """Close the database connection."""
        self.cache.close()

    def contributions(
        self,
        project: str,
        identifier: str | None = None,
        limit: int = 50,
        refresh: bool = False,
    ) -> list[Contribution]:
        """Return a project's contributions with their structures; cached 30 days.

        Only those of one material when ``identifier`` is given.

        Raises
        ------
        MPContribsError
            No key, a refused key, a server error; ``MPContribsOfflineError`` when the server
            cannot be reached and nothing is cached.
        """
        if identifier is not None:
            prefix, params = "get_contributions", {"material_id": identifier, "project": project}
        else:
            prefix, params = "project_contributions", {"project": project, "limit": limit}
        key = ui_cache_key(params, prefix)
        cached = self.cache.response(key)
        return cache_first(
            None if cached is None else _contributions_of(cached),
            lambda: self._fetch(project, identifier, limit),
            lambda found: self.cache.put_response(
                key,
                SOURCE,
                params,
                {"contributions": [c.to_ui() for c in found]},
                STRUCTURE_TTL,
                self.url,
            ),
            refresh,
            f"the contributions of {project}" + (f" for {identifier}" if identifier else ""),
        )

    def structures(
        self, project: str, identifier: str | None = None, limit: int = 50, refresh: bool = False
    ) -> list[MPStructure]:
        """Return every structure of the project's contributions, in order.

        This is what seeds a batch (``[Candidate.from_mp(s) for s in ...]``).
        """
        found = self.contributions(project, identifier=identifier, limit=limit, refresh=refresh)
        return [structure for contribution in found for structure in contribution.structures]

    def _fetch(self, project: str, identifier: str | None, limit: int) -> list[Contribution]:
        client = self._open()
        query: dict[str, Any] = {"project": project, "_fields": _FIELDS, "per_page": limit}
        if identifier is not None:
            query["identifier"] = identifier
        with self._translated(f"the contributions of {project}"):
            docs = client.contributions.queryContributions(**query).result()["data"]
            return [self._contribution(client, doc) for doc in docs[:limit]]

    def _contribution(self, client: Client, doc: dict[str, Any]) -> Contribution:
        retrieved = datetime.now(UTC)
        structures = []
        for ref in doc.get("structures") or []:
            # The client's own Structure subclass serialises under its module: keep pymatgen's.
            structure = Structure.from_dict(client.get_structure(ref["id"]).as_dict())
            origin = StructureOrigin(
                source=SOURCE,
                material_id=f"mpcontribs:{ref['id']}",
                provider=doc["project"] if isinstance(doc.get("project"), str) else None,
                entry_id=ref["id"],
                url=f"{self.url}/structures/{ref['id']}/",
                endpoint=self.url,
                retrieved_at=retrieved,
            )
            structures.append(
                MPStructure(
                    material_id=origin.material_id,
                    formula=structure.composition.reduced_formula,
                    structure=structure,
                    origin=origin,
                )
            )
        return Contribution(
            contribution_id=str(doc["id"]),
            project=str(doc.get("project", "")),
            identifier=doc.get("identifier"),
            formula=doc.get("formula"),
            data=doc.get("data") or {},
            structures=structures,
        )

    def _open(self) -> Client:
        """Return the client, built from the server's spec once a quick probe says it will work."""
        if self._client is not None:
            return self._client
        if not self._api_key:
            raise MPContribsError(
                "No MPContribs API key.", hint="set MPCONTRIBS_API_KEY or MP_API_KEY."
            )
        self._probe()
        from mpcontribs.client import Client

        with self._translated("the connection"):
            self._client = Client(apikey=self._api_key, host=self.host)
        return self._client

    def _probe(self) -> None:
        """Ask ``/projects/`` with the key and a short timeout before the client does.

        The client sleeps 30 s three times on an unreachable server, and fails on a ``KeyError``
        when the key is refused; this says either in one line at once.
        """
        import requests

        try:
            answer = requests.get(
                f"{self.url}/projects/",
                params={"_fields": "name"},
                headers={"x-api-key": self._api_key},
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            raise MPContribsOfflineError(f"Cannot reach MPContribs at {self.url}.") from exc
        if answer.status_code in (401, 403):
            raise MPContribsError(
                f"MPContribs at {self.url} refused the API key (HTTP {answer.status_code}).",
                hint="check MPCONTRIBS_API_KEY (or MP_API_KEY).",
            )
        if answer.status_code != 200:
            raise MPContribsError(f"MPContribs at {self.url} answered HTTP {answer.status_code}.")

    @contextmanager
    def _translated(self, what: str) -> Iterator[None]:
        """Turn the client's and bravado's exceptions into :class:`MPContribsError` (one line)."""
        import requests
        from bravado.exception import HTTPError

        try:
            yield
        except MPError:
            raise
        except requests.ConnectionError as exc:
            raise MPContribsOfflineError(
                f"Cannot reach MPContribs at {self.url} for {what}."
            ) from exc
        except HTTPError as exc:
            status = exc.status_code
            hint = "check MPCONTRIBS_API_KEY (or MP_API_KEY)." if status in (401, 403) else None
            raise MPContribsError(
                f"MPContribs at {self.url} answered HTTP {status} for {what}.", hint=hint
            ) from exc
        except Exception as exc:
            if type(exc).__name__ != "MPContribsClientError":
                raise
            raise MPContribsError(f"MPContribs refused {what}: {exc}") from exc


def _contributions_of(cached: Cached[dict[str, Any]]) -> Cached[list[Contribution]]:
    """Read a cached response as contributions, keeping its times."""
    return Cached(
        [Contribution.from_ui(c) for c in cached.value["contributions"]],
        cached.fetched_at,
        cached.expires_at,
    )


def contribution_document(
    task: CrystalTaskDoc, project: str, identifier: str | None = None
) -> dict[str, Any]:
    """Build the contribution a user would submit for a CRYSTAL result.

    The document is what ``Client.submit_contributions`` takes. ``identifier`` defaults to the
    Materials Project id the structure came from (the task's ``metadata``), else the formula. Values
    carry their units as MPContribs parses them (``"-3747.669 eV"``); the final structure goes under
    ``structures``.

    Raises
    ------
    MPContribsError
        The task has no energy or no structure: there is nothing to contribute.
    """
    output = task.output
    structure = output.structure or task.structure
    if output.energy is None or structure is None:
        raise MPContribsError(
            f"The CRYSTAL result in {task.dir_name} has no final energy or structure to contribute."
        )
    formula = structure.composition.reduced_formula
    data: dict[str, Any] = {
        "code": f"CRYSTAL{task.crystal_version}" if task.crystal_version else "CRYSTAL",
        "task": task.task_type.value,
        "energy": f"{output.energy:.8g} eV",
        "energy_per_atom": f"{output.energy / len(structure):.8g} eV",
    }
    if output.bandgap is not None:
        data["bandgap"] = f"{output.bandgap:.6g} eV"
    if task.input.basis:
        data["basis"] = task.input.basis
    return {
        "project": project,
        "identifier": identifier or task.metadata.get("material_id") or formula,
        "formula": formula,
        "is_public": False,
        "data": data,
        "structures": [structure],
    }
