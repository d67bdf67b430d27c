"""Property: whatever is done to a real output, parse_output gives a result or CrystalParseError."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crystal_atomate.io.errors import CrystalErrorKind, CrystalParseError
from crystal_atomate.io.outputs import CrystalOutput, parse_output
from crystal_atomate.testing.reference import reference_dir

FOLDERS = [
    "mgo_opt_onelog_crystal22",
    "nio_scf_uhf_afm_crystal17",
    "elastcon_3d_pbe0_crystal17",
    "dryice_freq_ir_b3lypd3_crystal22",
    "s2_molecule_opt_hse06_crystal17",
    "mackinawite_opt_failed_crystal17",
    "graphene_elastcon_2d_crystal22",
]
_CACHE: dict[str, bytes] = {}


def _raw(folder: str) -> bytes:
    if folder not in _CACHE:
        _CACHE[folder] = (reference_dir() / folder / "OUTPUT.out").read_bytes()
    return _CACHE[folder]


def _parse_bytes(data: bytes, tmp_path: Path) -> CrystalOutput | None:
    """Parse from a file (no companions); None means a clean CrystalParseError."""
    path = tmp_path / "OUTPUT.out"
    path.write_bytes(data)
    try:
        out = parse_output(path, discover=False)
    except CrystalParseError:
        return None
    assert isinstance(out, CrystalOutput)
    out.model_dump_json()
    return out


_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@_SETTINGS
@given(folder=st.sampled_from(FOLDERS), fraction=st.floats(min_value=0.0, max_value=0.999))
def test_truncated_outputs(folder: str, fraction: float, tmp_path: Path) -> None:
    data = _raw(folder)
    cut = data[: int(len(data) * fraction)]
    out = _parse_bytes(cut, tmp_path)
    if out is not None and b" EEEEEEEEEE TERMINATION" not in cut:
        assert out.state == "failed"
        assert out.terminated is False
        assert out.error_kinds, "a truncated run must say why it failed"


@_SETTINGS
@given(
    folder=st.sampled_from(FOLDERS),
    edits=st.lists(
        st.tuples(st.floats(min_value=0.0, max_value=0.999), st.binary(min_size=0, max_size=80)),
        min_size=1,
        max_size=8,
    ),
)
def test_corrupted_lines(folder: str, edits: list[tuple[float, bytes]], tmp_path: Path) -> None:
    lines = _raw(folder).split(b"\n")
    for where, garbage in edits:
        lines[int(len(lines) * where)] = garbage
    _parse_bytes(b"\n".join(lines), tmp_path)


@_SETTINGS
@given(
    folder=st.sampled_from(FOLDERS),
    where=st.floats(min_value=0.0, max_value=0.999),
    text=st.text(
        alphabet=st.sampled_from(" 0123456789.-E*=|()ABCDEFGHIJKLMNOPRSTUVXYZ:\n"), max_size=200
    ),
)
def test_plausible_garbage_inserted(folder: str, where: float, text: str, tmp_path: Path) -> None:
    """Text made of the characters CRYSTAL uses stresses the landmark regexes more than bytes do."""
    lines = _raw(folder).split(b"\n")
    position = int(len(lines) * where)
    lines[position:position] = [(" " + text).encode()]
    _parse_bytes(b"\n".join(lines), tmp_path)


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_line_boundary_of_the_head(folder: str, tmp_path: Path) -> None:
    """Cut after each of the first 400 lines: the header part is where IndexErrors would hide."""
    lines = _raw(folder).split(b"\n")
    for count in range(0, min(400, len(lines)), 7):
        out = _parse_bytes(b"\n".join(lines[:count]), tmp_path)
        if out is not None:
            assert CrystalErrorKind.TRUNCATED in out.error_kinds or out.errors
