"""Reading CRYSTAL input decks line by line, and the errors every deck reader raises.

The ``.d12`` deck, its basis block and its geometry block are read with one :class:`LineCursor`
over :func:`clean_lines`, so every error names the line it is about. Every error a deck reader
raises is a :class:`DeckError` carrying that line number and, when the likely fix is known, a
``hint`` ("did you mean SHRINK?"): ``crystal-atomate check`` prints both.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

__all__ = [
    "CountMismatchError",
    "D12ParseError",
    "DeckError",
    "Line",
    "LineCursor",
    "MissingTerminatorError",
    "UnknownKeywordError",
    "allowed_keywords",
    "clean_lines",
    "did_you_mean",
    "is_argument_line",
    "parse_real",
]

Line = tuple[int, str]


class DeckError(ValueError):
    """A CRYSTAL input CRYSTAL would reject or misread; names the line and, if known, the fix.

    Parameters
    ----------
    reason
        What is wrong, without the line number.
    line
        1-based line number in the deck (None when the whole deck is concerned).
    hint
        The likely fix, e.g. ``did you mean SHRINK?``.
    """

    def __init__(self, reason: str, *, line: int | None = None, hint: str | None = None) -> None:
        self.reason = reason
        self.line = line
        self.hint = hint
        text = reason if line is None else f"line {line}: {reason}"
        super().__init__(text if hint is None else f"{text} ({hint})")


class D12ParseError(DeckError):
    """A malformed ``.d12`` deck; the message names the line number and the offending text."""


class UnknownKeywordError(D12ParseError):
    """A keyword CRYSTAL23 does not know in this block (misspelt, or out of place)."""


class CountMismatchError(D12ParseError):
    """A count (atoms, basis shells, primitives) that does not match the lines that follow it."""


class MissingTerminatorError(D12ParseError):
    """A block (OPTGEOM, FREQCALC, DFT, the deck itself ...) that is not closed where it must be."""


def clean_lines(text: str) -> list[Line]:
    """Numbered, non-empty lines with ``#`` comments and surrounding blanks removed.

    Real decks carry inline ``#`` comments and blank lines; CRYSTAL ignores neither reliably,
    so writers drop them and readers must skip them.

    Parameters
    ----------
    text
        The deck text.

    Returns
    -------
    list of (int, str)
        1-based line number and stripped text of every line that holds something.
    """
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if line:
            lines.append((number, line))
    return lines


def parse_real(token: str) -> float:
    """Read a Fortran real: ``D`` exponents (``0.2224D-03``) and a bare trailing dot (``2.``) too.

    Parameters
    ----------
    token
        One whitespace-free token.

    Returns
    -------
    float
        Its value.

    Raises
    ------
    ValueError
        When the token is not a number.
    """
    return float(token.replace("D", "E").replace("d", "e"))


def is_argument_line(line: str) -> bool:
    """Tell whether a line holds numbers (arguments, atoms, basis data) rather than a keyword.

    CRYSTAL keywords start with a letter; argument records start with a digit, a sign or a dot.
    """
    return not line[:1].isalpha()


def allowed_keywords(allow_unknown: bool | str | Iterable[str]) -> frozenset[str]:
    """Return the upper-cased keywords an ``allow_unknown`` names (``True``/``False``: none).

    Parameters
    ----------
    allow_unknown
        A keyword, several, or a boolean (handled by the caller).

    Returns
    -------
    frozenset of str
        The keywords.
    """
    if isinstance(allow_unknown, bool):
        return frozenset()
    if isinstance(allow_unknown, str):
        return frozenset({allow_unknown.upper()})
    return frozenset(keyword.upper() for keyword in allow_unknown)


def did_you_mean(word: str, known: Iterable[str]) -> str | None:
    """``did you mean X?`` for the closest known keyword, or None when nothing is close.

    Parameters
    ----------
    word
        The unknown keyword, upper case.
    known
        The keywords that would be accepted at that place.

    Returns
    -------
    str or None
        The hint text.
    """
    close = difflib.get_close_matches(word, sorted(known), n=1, cutoff=0.75)
    return f"did you mean {close[0]}?" if close else None


class LineCursor:
    """Walks cleaned deck lines (see :func:`clean_lines`); every error names the line and its text.

    Shared by the basis, geometry and deck parsers so that a malformed input always reports
    where it is, with the exception type the caller chose.

    Parameters
    ----------
    lines
        Numbered lines, as :func:`clean_lines` returns them.
    error
        The :class:`DeckError` subclass raised by :meth:`error`.
    """

    def __init__(self, lines: Sequence[Line], error: type[DeckError] = D12ParseError) -> None:
        self.lines = lines
        self.index = 0
        self.error_type = error

    def at_end(self) -> bool:
        """Tell whether every line has been consumed."""
        return self.index >= len(self.lines)

    def peek(self) -> str | None:
        """Return the current line without consuming it (None at the end)."""
        return None if self.at_end() else self.lines[self.index][1]

    def peek_keyword(self) -> str | None:
        """Return the upper-cased first word of the current line (None at the end)."""
        line = self.peek()
        return None if line is None else line.split()[0].upper()

    def number(self, offset: int = 0) -> int:
        """Return the number of the line ``offset`` lines on (the last line past the end)."""
        if not self.lines:
            return 1
        return self.lines[min(self.index + offset, len(self.lines) - 1)][0]

    def error(
        self, what: str, *, hint: str | None = None, error: type[DeckError] | None = None
    ) -> DeckError:
        """Build an error about the current line (or the end of the input).

        Parameters
        ----------
        what
            What was expected there.
        hint
            The likely fix, if known.
        error
            A more specific error type; used only when it is a subclass of this cursor's type,
            so that e.g. a standalone basis file still raises its own error type.

        Returns
        -------
        DeckError
            The error, to be raised by the caller.
        """
        kind = (
            error if error is not None and issubclass(error, self.error_type) else self.error_type
        )
        if self.at_end():
            return kind(f"unexpected end of input, expected {what}", line=self.number(), hint=hint)
        number, line = self.lines[self.index]
        return kind(f"expected {what}, got {line!r}", line=number, hint=hint)

    def line(self, what: str) -> str:
        """Consume and return the current line."""
        if self.at_end():
            raise self.error(what)
        self.index += 1
        return self.lines[self.index - 1][1]

    def numbers(self, kind: type, count: int | None, what: str) -> list:
        """Consume a line and read its first ``count`` numbers (all tokens when None).

        Extra tokens after them are ignored, as CRYSTAL does (``6 0.49 0.64 0.27 Biso 1.0 C``).
        """
        if self.at_end():
            raise self.error(what)
        tokens = self.lines[self.index][1].split()
        tokens = tokens if count is None else tokens[:count]
        convert = parse_real if kind is float else int
        try:
            values = [convert(token) for token in tokens]
        except ValueError:
            raise self.error(what) from None
        if count is not None and len(values) < count:
            raise self.error(what)
        self.index += 1
        return values

    def ints(self, count: int | None, what: str) -> list[int]:
        """Consume a line of integers (see :meth:`numbers`)."""
        return self.numbers(int, count, what)

    def reals(self, count: int | None, what: str) -> list[float]:
        """Consume a line of reals (see :meth:`numbers`)."""
        return self.numbers(float, count, what)
