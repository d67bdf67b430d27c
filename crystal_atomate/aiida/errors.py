"""The user errors of the AiiDA layer: each one message and, where a fix exists, one hint.

``crystal-atomate aiida ...`` prints them as ``error: ...`` / ``hint: ...`` and exits with
:attr:`AiidaUserError.exit_code`; library callers catch :class:`AiidaUserError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from crystal_atomate.errors import EXIT_FAILED, EXIT_USAGE, CrystalAtomateError

__all__ = [
    "AiidaUserError",
    "CodeMismatch",
    "CodeNotFound",
    "CrystalNotFound",
    "ProfileNotFound",
    "StorageUnavailable",
    "ensure_loaded",
    "load_profile_or_fail",
    "resolve_code",
    "resolved_code_label",
    "storage_errors",
]


class AiidaUserError(CrystalAtomateError, ValueError):
    """A problem the user can fix.

    ``hint`` says how, ``exit_code`` is what the CLI exits with (2: the command line names something
    that does not exist, 1: an operation failed).

    One of the project's errors, so every command (``ht submit`` with a bad code included) prints
    it as one ``error:`` line.
    """

    exit_code: ClassVar[int] = EXIT_FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)


class CrystalNotFound(AiidaUserError, FileNotFoundError):
    """The executable a code should run is not on this machine."""

    exit_code: ClassVar[int] = EXIT_USAGE


class CodeMismatch(AiidaUserError):
    """A code with this label exists but runs another executable (codes are immutable in AiiDA)."""


class CodeNotFound(AiidaUserError):
    """No code with this label, or several (a label is ambiguous across computers)."""

    exit_code: ClassVar[int] = EXIT_USAGE


class ProfileNotFound(AiidaUserError):
    """No AiiDA profile of this name (or no default profile)."""

    exit_code: ClassVar[int] = EXIT_USAGE


class StorageUnavailable(AiidaUserError):
    """The profile exists but its storage cannot be opened.

    PostgreSQL down, database missing, schema of another AiiDA version.
    """


def load_profile_or_fail(name: str | None = None) -> Any:
    """Load profile ``name`` (AiiDA's default profile when None) and open its storage.

    Raises
    ------
    ProfileNotFound
        No such profile, or none given and no default set.
    StorageUnavailable
        The storage cannot be reached or has another schema version.
    """
    from aiida import load_profile
    from aiida.common.exceptions import ConfigurationError, ProfileConfigurationError
    from aiida.manage import get_manager

    try:
        profile = load_profile(name, allow_switch=True)
    except (ProfileConfigurationError, ConfigurationError) as error:
        raise ProfileNotFound(
            f"no AiiDA profile {name!r}" if name else f"no default AiiDA profile ({error})",
            hint="create one with 'crystal-atomate aiida setup --profile NAME', list them with "
                 "'verdi profile list'",
        ) from None
    with storage_errors(profile.name):
        get_manager().get_profile_storage()
    return profile


def ensure_loaded(profile: str | None = None) -> None:
    """Load ``profile`` (AiiDA's default when None) unless a profile is loaded already.

    The errors of :func:`load_profile_or_fail`.
    """
    from aiida.manage import get_manager

    if get_manager().get_profile() is None:
        load_profile_or_fail(profile)


def resolve_code(label: str) -> Any:
    """Return the code ``label`` (``crystal`` or ``crystal@computer``).

    Raises
    ------
    CodeNotFound
        No code has this label, or several do (one per computer): the message lists them.
    """
    from aiida import orm
    from aiida.common.exceptions import MultipleObjectsError, NotExistent

    try:
        return orm.load_code(label)
    except MultipleObjectsError:
        name = label.split("@")[0]
        found = sorted(code.full_label for code in orm.QueryBuilder().append(
            orm.InstalledCode, filters={"label": name}).all(flat=True))
        raise CodeNotFound(
            f"{len(found)} codes are labelled {label!r}: {', '.join(found)}",
            hint="name one with --code LABEL@COMPUTER",
        ) from None
    except NotExistent:
        raise CodeNotFound(
            f"no AiiDA code {label!r}",
            hint="create it with 'crystal-atomate aiida setup', list codes with 'verdi code list'",
        ) from None


def resolved_code_label(code: str | None = None, profile: str | None = None) -> str:
    """Return ``LABEL@COMPUTER`` of the CRYSTAL code ``code`` on ``profile``.

    ``code`` defaults to ``crystal``, as setup makes it. Checked before a batch starts, so a bad
    profile or code fails with the errors of :func:`ensure_loaded` and :func:`resolve_code`.
    """
    ensure_loaded(profile)
    return resolve_code(code or "crystal").full_label


@contextmanager
def storage_errors(profile: str) -> Iterator[None]:
    """Turn a failure to open ``profile``'s storage into :class:`StorageUnavailable`."""
    from aiida.common.exceptions import (
        CorruptStorage,
        IncompatibleStorageSchema,
        StorageMigrationError,
        UnreachableStorage,
    )

    try:
        yield
    except (
        UnreachableStorage,
        IncompatibleStorageSchema,
        CorruptStorage,
        StorageMigrationError,
    ) as error:
        raise StorageUnavailable(
            f"the storage of profile {profile!r} cannot be opened: {_reason(error)}",
            hint="start the database server, or create the database (see docs/aiida.md, "
                 "PostgreSQL)",
        ) from None


def _reason(error: Exception) -> str:
    """Return the line of an AiiDA storage error that says what failed.

    The driver's, without its class.
    """
    lines = [
        line.strip()
        for line in str(error).splitlines()
        if line.strip() and not line.startswith("(Background")
    ]
    if not lines:
        return type(error).__name__
    line = lines[1] if lines[0].endswith(":") and len(lines) > 1 else lines[0]
    return re.sub(r"^.*?\([\w.]+Error\)\s*", "", line)

