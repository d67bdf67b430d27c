"""The failures a structure-source user meets, one typed exception each.

The sources are the Materials Project, OPTIMADE and MPContribs.

``MPRester`` reports almost everything as a single ``MPRestError`` with the HTTP status inside its
text, or lets a bare ``requests`` exception escape when its start-up heartbeat cannot connect. A
user needs to tell "set your key" from "you are offline" from "that id does not exist", and the
cache needs to know which failures it may answer from a stale row, so each gets its own class.
None of them carries the API key: messages name the endpoint, the id or the query only.
"""

from __future__ import annotations

__all__ = [
    "MPAuthError",
    "MPContribsError",
    "MPContribsOfflineError",
    "MPError",
    "MPInvalidIdError",
    "MPKeyMissingError",
    "MPNotFoundError",
    "MPOfflineError",
    "MPRateLimitError",
    "MPRequestError",
    "OptimadeError",
    "OptimadeFilterError",
    "OptimadeOfflineError",
    "OptimadeProviderError",
    "OptimadeRequestError",
]


class MPError(Exception):
    """Base class: anything that stopped a look-up of a structure source.

    ``usage`` marks bad input (the command line exits 2 for it, 1 for every other failure) and
    ``hint`` is the one line that names the fix, when there is one.
    """

    usage: bool = False

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class MPKeyMissingError(MPError):
    """No API key in ``MP_API_KEY`` and nothing usable in the cache."""


class MPAuthError(MPError):
    """The server refused the key (HTTP 401 or 403)."""


class MPNotFoundError(MPError):
    """The material id does not exist in the database (empty answer or HTTP 404)."""


class MPInvalidIdError(MPError, ValueError):
    """The text is not shaped like a Materials Project id, so it is never sent."""

    usage = True


class MPRateLimitError(MPError):
    """HTTP 429 persisted through every retry and back-off."""


class MPOfflineError(MPError):
    """The endpoint cannot be reached and the cache holds nothing for this id or query."""


class MPRequestError(MPError):
    """Any other failure the server or the client reported; the message keeps their text."""


class OptimadeError(MPError):
    """Base class of the OPTIMADE failures."""


class OptimadeProviderError(OptimadeError, ValueError):
    """A provider name that is neither a known OPTIMADE database nor an http(s) URL."""

    usage = True


class OptimadeFilterError(OptimadeError, ValueError):
    """A filter the OPTIMADE grammar rejects (checked before any request) or a bad formula."""

    usage = True


class OptimadeOfflineError(OptimadeError, MPOfflineError):
    """No provider could be reached (refused connection or timeout) and nothing is cached."""


class OptimadeRequestError(OptimadeError):
    """A provider answered with an error (HTTP 500, a rejected query, ...)."""


class MPContribsError(MPError):
    """An MPContribs look-up failed: unknown project, unreachable server, refused key, ..."""


class MPContribsOfflineError(MPContribsError, MPOfflineError):
    """The MPContribs server cannot be reached and nothing is cached for the query."""
