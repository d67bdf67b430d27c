"""``crystal-atomate check``: one error line per broken deck, exit 2; exit 0 when all are valid."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from crystal_atomate.cli.check import app


def _run(*args: str):
    return CliRunner().invoke(app, [*args])


def test_all_reference_decks_are_valid(ref_dir: Path) -> None:
    decks = sorted(str(p) for p in [*ref_dir.glob("*/INPUT.d12"), *ref_dir.rglob("*.d3")])
    assert len(decks) == 23
    result = _run(*decks)
    assert result.exit_code == 0, result.output
    assert result.output.count("ok: ") == 23


def test_broken_decks_report_file_line_and_hint(ref_dir: Path, tmp_path: Path) -> None:
    good = ref_dir / "mgo_opt_b3lyp_crystal22/INPUT.d12"
    typo = tmp_path / "typo.d12"
    typo.write_text(good.read_text().replace("SHRINK", "SHRIMK"))
    no_endfreq = tmp_path / "INPUT"
    para = ref_dir / "paracetamol_phonon_dispersion_large_crystal22/INPUT.d12"
    no_endfreq.write_text(para.read_text().replace("ENDFREQ\n", ""))
    d3 = tmp_path / "bad.d3"
    d3.write_text("NEWK\n12 24\n1 0\nDOS\n1 100 1 10 2 10 0\nEND\n")
    result = _run(str(good), str(typo), str(no_endfreq), str(d3), str(tmp_path / "missing.d12"))
    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert lines[0] == f"ok: {good}"
    assert (
        lines[1]
        == f"error: {typo}:59: expected a keyword of the Hamiltonian/SCF block, got 'SHRIMK'"
    )
    assert lines[2] == "hint: did you mean SHRINK?"
    assert (
        lines[3]
        == f"error: {no_endfreq}:26: expected a keyword of the FREQCALC block, got 'BASISSET'"
    )
    assert lines[4].startswith(
        "hint: BASISSET belongs to the geometry block: FREQCALC opened on line 7 is not closed"
    )
    assert lines[5] == f"error: {d3}:4: unknown properties keyword 'DOS'"
    assert lines[6] == "hint: did you mean DOSS?"
    assert lines[7].startswith(f"error: {tmp_path / 'missing.d12'}: cannot read")
    assert len(lines) == 8


def test_allow_lets_an_unknown_keyword_through(ref_dir: Path, tmp_path: Path) -> None:
    deck = tmp_path / "new.d12"
    deck.write_text(
        (ref_dir / "mgo_opt_b3lyp_crystal22/INPUT.d12")
        .read_text()
        .replace("DIIS\n", "NEWKEY23\nDIIS\n")
    )
    assert _run(str(deck)).exit_code == 2
    result = _run(str(deck), "--allow", "NEWKEY23")
    assert result.exit_code == 0 and result.output == f"ok: {deck}\n"
