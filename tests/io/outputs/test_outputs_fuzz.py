"""Bounded fuzz of ``parse_output`` over real outputs (issue 18: the CI-sized run, seconds).

Truncations and mutations of recorded CRYSTAL outputs must either parse (state "converged" or
"failed") or raise :class:`CrystalParseError` - never another exception, never a hang. A file cut
before its TERMINATION line is never "converged". The seeds are fixed, so a failure reproduces;
``docs/reliability.md`` gives the larger run and its figures.
"""

from __future__ import annotations

import io
import random

import pytest

from crystal_atomate.io.errors import CrystalParseError
from crystal_atomate.io.outputs import CrystalOutput, parse_output
from crystal_atomate.testing.reference import reference_file

FOLDERS = [
    "mgo_opt_onelog_crystal22",
    "s2_molecule_opt_hse06_crystal17",
    "nio_scf_too_many_cycles_crystal17",
    "hTaAs_eos_lda_ecp_crystal23",
    "elastcon_3d_pbe0_crystal17",
]
TRUNCATIONS = 12
MUTATIONS = 24


def _parse(text: str) -> CrystalOutput | None:
    """The parse result, or None when it refused the text with our typed error."""
    try:
        out = parse_output(io.StringIO(text))
    except CrystalParseError:
        return None
    assert out.state in ("converged", "failed")
    return out


def _glue_numbers(lines: list[str], rng: random.Random) -> list[str]:
    """Delete the blanks of a few lines, so numbers and labels run together."""
    for index in rng.sample(range(len(lines)), k=min(20, len(lines))):
        lines[index] = " " + lines[index].replace(" ", "")
    return lines


def _mutate(lines: list[str], rng: random.Random) -> list[str]:
    """One of: glue, swap digits, drop/duplicate lines, a hostile line, flipped characters."""
    lines = list(lines)
    choice = rng.randrange(6)
    at = rng.randrange(len(lines))
    if choice == 0:
        return _glue_numbers(lines, rng)
    if choice == 1:
        for index in rng.sample(range(len(lines)), k=min(50, len(lines))):
            lines[index] = lines[index].translate(str.maketrans("0123456789", "9876543210"))
        return lines
    if choice == 2:
        del lines[at : at + rng.randrange(1, 200)]
        return lines
    if choice == 3:
        return lines[:at] + lines[at : at + 300] * 3 + lines[at:]
    if choice == 4:
        hostile = rng.choice(
            ["1.11" * 500, " " * 20000 + "x", "-1.0" * 300, "*" * 5000, "\x00\x01"]
        )
        return [*lines[:at], " " + hostile + "\n", *lines[at:]]
    for index in rng.sample(range(len(lines)), k=min(30, len(lines))):
        line = lines[index]
        if len(line) > 2:
            spot = rng.randrange(len(line) - 1)
            lines[index] = line[:spot] + rng.choice("-.E*|()0 9") + line[spot + 1 :]
    return lines


@pytest.mark.timeout(120)
@pytest.mark.parametrize("folder", FOLDERS)
def test_truncated_outputs_are_never_converged(folder: str) -> None:
    text = reference_file(folder, "OUTPUT.out").read_text(encoding="utf-8", errors="replace")
    end = text.rfind(" EEEEEEEEEE TERMINATION")
    rng = random.Random(f"truncate-{folder}")
    cuts = sorted(rng.randrange(1, end if end > 0 else len(text)) for _ in range(TRUNCATIONS))
    for cut in cuts:
        out = _parse(text[:cut])
        assert out is None or out.state == "failed", (
            f"cut at {cut} of {len(text)} reported converged"
        )


@pytest.mark.timeout(120)
@pytest.mark.parametrize("folder", FOLDERS)
def test_mutated_outputs_parse_or_raise_our_error(folder: str) -> None:
    lines = (
        reference_file(folder, "OUTPUT.out")
        .read_text(encoding="utf-8", errors="replace")
        .splitlines(True)
    )
    rng = random.Random(f"mutate-{folder}")
    outcomes = [_parse("".join(_mutate(lines, rng))) for _ in range(MUTATIONS)]
    assert any(out is not None for out in outcomes)
