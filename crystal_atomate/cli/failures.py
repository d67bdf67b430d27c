"""How the command line reports an exception: one ``error:`` line, maybe a ``hint:``, an exit code.

The project's own errors (:class:`crystal_atomate.errors.CrystalAtomateError`) carry their message,
hint and exit code. A few others a user meets every day are mapped here too: click's usage
errors, a missing or unreadable file, a pydantic validation error, and the typed errors of lower
layers that predate the common base (a ``ValueError`` among them is bad input). Anything else is
a bug: it is still one line, with a hint to rerun with ``--debug`` for the traceback.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

import typer
from typer._click import exceptions as click  # the click Typer vendors (typer >= 0.29)

from crystal_atomate.errors import EXIT_FAILED, EXIT_USAGE, CrystalAtomateError

__all__ = ["DEBUG_ENV", "EXIT_INTERRUPTED", "Failure", "debug_requested", "describe", "report"]

#: Set to 1 (or pass ``--debug``) to print the traceback before the error line.
DEBUG_ENV = "CRYSTAL_ATOMATE_DEBUG"
EXIT_INTERRUPTED = 130
_DEBUG_HINT = f"rerun with --debug (or {DEBUG_ENV}=1) for the traceback"
#: Typed errors of lower layers that mean "bad input" without being ValueErrors.
_BAD_INPUT = ("crystal_atomate.io.errors.CrystalParseError",)


@dataclass(frozen=True)
class Failure:
    """What the user is told about an exception."""

    exit_code: int
    message: str
    hint: str | None = None


def _one_line(text: str) -> str:
    """Collapse a message that spans lines (pydantic, subprocess output) into one line."""
    return " ".join(text.split()) or "(no message)"


def _qualified_names(exc: BaseException) -> set[str]:
    return {f"{cls.__module__}.{cls.__qualname__}" for cls in type(exc).__mro__}


def _validation(exc: Exception) -> Failure:
    """Describe a pydantic ``ValidationError``: its first problem, and how many more there are."""
    problems = exc.errors()  # type: ignore[attr-defined]
    first = problems[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or type(exc).__name__
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return Failure(EXIT_USAGE, _one_line(f"{where}: {first.get('msg', '')}{more}"))


def _os_error(exc: OSError) -> Failure:
    if exc.filename is not None and exc.strerror:
        return Failure(EXIT_USAGE, f"{exc.strerror}: {exc.filename}")
    return Failure(EXIT_USAGE, _one_line(str(exc)))


def describe(exc: BaseException) -> Failure:
    """Return the message, hint and exit code for ``exc``.

    Parameters
    ----------
    exc
        Whatever ended the command.

    Returns
    -------
    Failure
        Exit code 2 for usage errors and bad input, 1 for failures, 130 for an interruption.
    """
    if isinstance(exc, CrystalAtomateError):
        return Failure(exc.exit_code, _one_line(str(exc)), exc.hint)
    if isinstance(exc, click.UsageError):
        path = exc.ctx.command_path if exc.ctx is not None else "crystal-atomate"
        return Failure(exc.exit_code, _one_line(exc.format_message()), f"see '{path} --help'")
    if isinstance(exc, click.ClickException):
        return Failure(exc.exit_code, _one_line(exc.format_message()))
    if isinstance(exc, (typer.Abort, KeyboardInterrupt)):
        return Failure(EXIT_INTERRUPTED, "interrupted")
    if isinstance(exc, (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)):
        return _os_error(exc)
    names = _qualified_names(exc)
    if "pydantic_core._pydantic_core.ValidationError" in names:
        return _validation(exc)  # type: ignore[arg-type]
    if type(exc).__module__.startswith("crystal_atomate."):
        bad_input = isinstance(exc, ValueError) or not names.isdisjoint(_BAD_INPUT)
        return Failure(EXIT_USAGE if bad_input else EXIT_FAILED, _one_line(str(exc)))
    return Failure(EXIT_FAILED, _one_line(f"{type(exc).__name__}: {exc}"), _DEBUG_HINT)


def debug_requested(args: Sequence[str]) -> bool:
    """``--debug`` among the options before the command, or ``CRYSTAL_ATOMATE_DEBUG`` set to 1."""
    if os.environ.get(DEBUG_ENV, "").strip().lower() in {"1", "true", "yes", "on"}:
        return True
    for arg in args:
        if not arg.startswith("-"):
            return False
        if arg == "--debug":
            return True
    return False


def report(exc: BaseException, *, debug: bool, stream: TextIO | None = None) -> int:
    """Print ``exc`` as the command line reports errors and return its exit code.

    Parameters
    ----------
    exc
        Whatever ended the command.
    debug
        Print the traceback first.
    stream
        Where to write; standard error by default.

    Returns
    -------
    int
        The exit code for ``exc`` (see :func:`describe`).
    """
    out = stream or sys.stderr
    failure = describe(exc)
    if debug:
        traceback.print_exception(exc, file=out)
    print(f"error: {failure.message}", file=out)
    if failure.hint:
        print(f"hint: {failure.hint}", file=out)
    return failure.exit_code
