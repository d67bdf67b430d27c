"""The deck line reader and the errors every deck reader raises."""

from __future__ import annotations

import pytest

from crystal_atomate.io.basis import BasisParseError, BasisSet
from crystal_atomate.io.deck_lines import (
    CountMismatchError,
    D12ParseError,
    DeckError,
    LineCursor,
    allowed_keywords,
    clean_lines,
    did_you_mean,
    is_argument_line,
)


def test_error_names_line_and_hint() -> None:
    error = D12ParseError("expected SHRINK", line=12, hint="did you mean SHRINK?")
    assert str(error) == "line 12: expected SHRINK (did you mean SHRINK?)"
    assert (error.reason, error.line, error.hint) == ("expected SHRINK", 12, "did you mean SHRINK?")
    assert isinstance(error, ValueError) and str(DeckError("empty")) == "empty"


def test_suggestions_and_argument_lines() -> None:
    assert did_you_mean("SHRIMK", ["SHRINK", "TOLINTEG"]) == "did you mean SHRINK?"
    assert did_you_mean("QWERTY", ["SHRINK", "TOLINTEG"]) is None
    assert allowed_keywords("newkey") == {"NEWKEY"} and allowed_keywords(["a", "B"]) == {"A", "B"}
    assert allowed_keywords(True) == allowed_keywords(False) == frozenset()
    assert [is_argument_line(x) for x in ("8 8", "-1 2", ".5", "SHRINK", "def2-mSVP")] == [
        True
    ] * 3 + [False] * 2


def test_cursor_errors_keep_the_callers_type() -> None:
    cursor = LineCursor(clean_lines("A\n\n# note\nB 1 # x\n"))
    assert cursor.lines == [(1, "A"), (4, "B 1")]
    cursor.line("A")
    error = cursor.error("C", error=CountMismatchError)
    assert (
        isinstance(error, CountMismatchError)
        and error.line == 4
        and str(error) == "line 4: expected C, got 'B 1'"
    )
    standalone = LineCursor(cursor.lines, error=BasisParseError)
    assert type(standalone.error("x", error=CountMismatchError)) is BasisParseError
    cursor.line("B")
    assert (
        cursor.error("D").reason == "unexpected end of input, expected D"
        and cursor.error("D").line == 4
    )


def test_standalone_basis_count_errors() -> None:
    with pytest.raises(BasisParseError, match="NAT=8 on line 1 declares NSHL=2 shells, 1 follow"):
        BasisSet.from_string("8 2\n0 0 1 2.0 1.0\n1.0 1.0\n99 0\n")
    with pytest.raises(BasisParseError, match="declares NG=2 primitives, 1 follow"):
        BasisSet.from_string("8 2\n0 0 2 2.0 1.0\n1.0 1.0\n0 1 1 0.0 1.0\n0.5 1.0 1.0\n99 0\n")
