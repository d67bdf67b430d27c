"""The failures a Materials Project user meets, one typed exception each.

``MPRester`` reports almost everything as a single ``MPRestError`` with the HTTP status inside its
text, or lets a bare ``requests`` exception escape when its start-up heartbeat cannot connect. A
user needs to tell "set your key" from "you are offline" from "that id does not exist", and the
cache needs to know which failures it may answer from a stale row, so each gets its own class.
None of them carries the API key: messages name the endpoint, the id or the query only.
"""

from __future__ import annotations

__all__ = [
    "MPError",
    "MPKeyMissingError",
    "MPAuthError",
    "MPNotFoundError",
    "MPInvalidIdError",
    "MPRateLimitError",
    "MPOfflineError",
    "MPRequestError",
]


class MPError(Exception):
    """Base class: anything that stopped a Materials Project look-up."""


class MPKeyMissingError(MPError):
    """No API key in ``MP_API_KEY`` and nothing usable in the cache."""


class MPAuthError(MPError):
    """The server refused the key (HTTP 401 or 403)."""


class MPNotFoundError(MPError):
    """The material id does not exist in the database (empty answer or HTTP 404)."""


class MPInvalidIdError(MPError, ValueError):
    """The text is not shaped like a Materials Project id, so it is never sent."""


class MPRateLimitError(MPError):
    """HTTP 429 persisted through every retry and back-off."""


class MPOfflineError(MPError):
    """The endpoint cannot be reached and the cache holds nothing for this id or query."""


class MPRequestError(MPError):
    """Any other failure the server or the client reported; the message keeps their text."""
