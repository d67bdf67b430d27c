"""The project's error types: what a user did wrong, or what failed, in one clear message.

Every layer raises these (or subclasses of them) for anything a user can cause or fix, so the
command line can report each as one ``error:`` line, an optional ``hint:`` line naming the fix,
and an exit code a script can test, without a traceback. The exit codes are part of the command
line's contract (``docs/index.md``):

====  ==========================================================================
0     success
1     a calculation or an operation failed (a job failed, a service is unreachable)
2     usage or bad input (unknown option or name, missing or unreadable file)
130   interrupted (Ctrl-C)
====  ==========================================================================

This module imports nothing beyond the standard library: the command line imports it on start-up.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import ClassVar

__all__ = [
    "EXIT_FAILED",
    "EXIT_USAGE",
    "CrystalAtomateError",
    "InputError",
    "OperationFailed",
    "UnknownNameError",
    "closest",
]

EXIT_FAILED = 1
EXIT_USAGE = 2


class CrystalAtomateError(Exception):
    """Base of every error the project reports to a user.

    Parameters
    ----------
    message
        One sentence saying what is wrong, naming the file, key or value at fault.
    hint
        One sentence naming the fix (an option, an environment variable, a command), if there is
        one.
    """

    #: The command line's exit code for this kind of error.
    exit_code: ClassVar[int] = EXIT_FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


class InputError(CrystalAtomateError, ValueError):
    """Bad input from the user: an unknown name, a malformed value, a missing or garbage file.

    A ``ValueError`` too, so callers that guard library calls with ``except ValueError`` keep
    working.
    """

    exit_code: ClassVar[int] = EXIT_USAGE


class OperationFailed(CrystalAtomateError):
    """The input was fine but the work failed: a calculation, a missing program, a service."""

    exit_code: ClassVar[int] = EXIT_FAILED


def closest(name: str, choices: Iterable[str]) -> str | None:
    """Return the valid choice nearest to a misspelt ``name`` (case-insensitive), or None.

    Parameters
    ----------
    name
        What the user typed.
    choices
        The valid names.

    Returns
    -------
    str or None
        The best match by :func:`difflib.get_close_matches` with its default cutoff.
    """
    by_folded = {choice.casefold(): choice for choice in choices}
    found = difflib.get_close_matches(name.casefold(), list(by_folded), n=1)
    return by_folded[found[0]] if found else None


class UnknownNameError(InputError):
    """A name (flow, functional, setting key, engine, ...) that is not one of the valid ones.

    Parameters
    ----------
    kind
        What the name names, for the message ("flow", "functional", "setting").
    name
        What the user gave.
    choices
        The valid names; the closest one is suggested and all are listed in the hint.
    """

    def __init__(self, kind: str, name: str, choices: Iterable[str]) -> None:
        valid = sorted(choices)
        suggestion = closest(name, valid)
        guess = f"; did you mean {suggestion!r}?" if suggestion else ""
        super().__init__(f"unknown {kind} {name!r}{guess}", hint=f"valid: {', '.join(valid)}")
        self.kind = kind
        self.name = name
        self.suggestion = suggestion
