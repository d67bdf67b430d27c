"""Seeded mutations of real CRYSTAL decks, for the strict-reader tests and larger offline runs.

Each mutation is what a hand edit gets wrong: a misspelt keyword (``SHRIMK``), a dropped line
(one atom too few, an argument lost) or a dropped block terminator (``ENDFREQ``). The reader
must either read the mutated deck to a deck that writes back to itself, or raise a
:class:`~crystal_atomate.io.deck_lines.DeckError` naming a line; never accept it silently.

A larger run than the test suite's::

    python -m crystal_atomate.testing.deck_mutations 5000
"""

from __future__ import annotations

import random
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from crystal_atomate.io.d12 import CrystalInput, is_end
from crystal_atomate.io.d12_keywords import blocks_knowing
from crystal_atomate.io.deck_lines import DeckError, is_argument_line
from crystal_atomate.testing.reference import reference_dir

__all__ = ["Mutation", "MutationKind", "mutate", "mutations", "outcome", "reference_decks"]

MutationKind = Literal["misspell", "drop_line", "drop_terminator"]
Mutation = tuple[MutationKind, Path, str, str]


def reference_decks() -> list[Path]:
    """Every ``.d12`` deck of the reference set that CRYSTAL ran (30 today)."""
    root = reference_dir()
    return sorted([*root.glob("*/INPUT.d12"), *root.glob("gui_geometry_examples_crystal17/*.d12")])


def _misspell(word: str, rng: random.Random) -> str:
    """One typing slip: a letter replaced, dropped, doubled, or two neighbours swapped."""
    i = rng.randrange(len(word))
    letter = rng.choice("ABCDEFGHIKLMNOPRSTUVXYZ")
    slips = [
        word[:i] + letter + word[i + 1 :],
        word[:i] + word[i + 1 :],
        word[:i] + word[i] + word[i:],
    ]
    if i + 1 < len(word):
        slips.append(word[:i] + word[i + 1] + word[i] + word[i + 2:])
    candidates = [slip for slip in slips if slip and slip != word]
    return rng.choice(candidates) if candidates else word + letter


def mutate(text: str, kind: MutationKind, rng: random.Random) -> tuple[str, str]:
    """Apply one mutation of ``kind`` to a deck.

    Parameters
    ----------
    text
        A valid deck.
    kind
        What to break.
    rng
        The seeded random source.

    Returns
    -------
    tuple of str
        The mutated deck and a description (``"line 12: SHRINK -> SHRIMK"``).
    """
    lines = text.splitlines()
    body = [i for i in range(1, len(lines)) if lines[i].strip()]
    keywords = [i for i in body if not is_argument_line(lines[i].strip())]
    if kind == "misspell":
        i = rng.choice(keywords)
        word = lines[i].split()[0]
        slip = _misspell(word.upper(), rng)
        lines[i] = lines[i].replace(word, slip, 1)
        return "\n".join(lines) + "\n", f"line {i + 1}: {word} -> {slip}"
    if kind == "drop_terminator":
        ends = [i for i in keywords if is_end(lines[i].split()[0].upper())] or keywords
        i = rng.choice(ends)
    else:
        i = rng.choice(body)
    dropped = lines.pop(i)
    return "\n".join(lines) + "\n", f"line {i + 1} dropped: {dropped.strip()!r}"


def mutations(count: int, seed: int = 0) -> Iterator[Mutation]:
    """``count`` seeded mutations of the reference decks, kinds in turn."""
    rng = random.Random(seed)
    decks = [(path, path.read_text()) for path in reference_decks()]
    kinds: list[MutationKind] = ["misspell", "drop_line", "drop_terminator"]
    for n in range(count):
        path, text = rng.choice(decks)
        kind = kinds[n % len(kinds)]
        mutated, what = mutate(text, kind, rng)
        yield kind, path, mutated, what


def outcome(original: str, mutated: str, kind: MutationKind, what: str) -> str:
    """Classify one mutated deck: ``error``, ``same`` or ``read``.

    ``error``: a typed error with a line; ``same``: it reads to the original deck; ``read``: it
    reads to another valid deck that writes back to itself.

    Raises
    ------
    AssertionError
        When the reader fails the contract: a non-typed exception, an error without a line, a
        deck that does not write back to itself, or a misspelt word accepted although no block
        knows it.
    """
    try:
        deck = CrystalInput.from_string(mutated)
    except DeckError as exc:
        assert exc.line is not None, f"{what}: error without a line: {exc}"
        return "error"
    assert CrystalInput.from_string(deck.to_string()) == deck, (
        f"{what}: does not write back to itself"
    )
    if deck == CrystalInput.from_string(original):
        return "same"
    if kind == "misspell":
        slip = what.rsplit(" -> ", 1)[1]
        assert is_end(slip) or blocks_knowing(slip), f"{what}: unknown keyword accepted silently"
    return "read"


def main(count: int) -> Counter:
    """Run ``count`` mutations and count the outcomes per kind (printed)."""
    originals = {path: path.read_text() for path in reference_decks()}
    tally: Counter = Counter()
    for kind, path, mutated, what in mutations(count):
        tally[kind, outcome(originals[path], mutated, kind, what)] += 1
    for (kind, result), number in sorted(tally.items()):
        print(f"{kind:16} {result:6} {number}")
    return tally


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
