"""The output scanner: no regular expression backtracks super-linearly, chunks change nothing.

Every pattern of ``crystal_atomate`` - module-level compiled ones, the error catalogue's, and
literal patterns written inline in a call such as ``re.fullmatch(r"...", text)`` - is fed
adversarial lines: numbers run together, long blank runs, repeated label fragments, each after
the pattern's literal prefix and after the starts of real lines it matches in the reference
outputs. The battery runs in a child process because a regex stuck in the C engine cannot be
interrupted from Python; the child prints each pattern before trying it, so a hang names its
pattern. Exponential or quadratic patterns take seconds to hours on these 4,000-character
lines; linear ones take milliseconds, so the bound below is generous.

The scanner reads files in chunks of bytes; the same outputs read at any chunk size, with CRLF
line ends or from a stream, must give the same result.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import crystal_atomate
from crystal_atomate.io.outputs import parse_output, scanner
from crystal_atomate.testing.reference import reference_file

PACKAGE = Path(crystal_atomate.__file__).parent
REAL_OUTPUTS = [
    ("mgo_opt_b3lyp_crystal22", "OUTPUT.out"),
    ("s2_molecule_opt_hse06_crystal17", "OUTPUT.out"),
    ("hTaAs_eos_lda_ecp_crystal23", "OUTPUT.out"),
    ("quartz_freq_raman_hf_crystal23", "OUTPUT.out"),
    ("elastcon_3d_pbe0_crystal17", "OUTPUT.out"),
    ("nio_opt_walltime_killed_crystal17", "OUTPUT.out"),
    ("mgo_scf_band_doss_b3lyp_crystal17", "BAND.outp"),
]
_RE_CALLS = {
    "compile",
    "match",
    "search",
    "fullmatch",
    "findall",
    "finditer",
    "sub",
    "subn",
    "split",
}
#: Seconds for the whole battery; one super-linear pattern alone exceeds it.
BOUND_S = 120
#: Seconds any one pattern may take over all its ~300 inputs (linear ones: about 1 s at most
#: on a loaded 2-core machine; a quadratic one takes 30 s or more, an exponential one hours).
PER_PATTERN_S = 10.0

CHILD = r'''
import importlib, json, re, sys, time
from re import _parser as sre_parse

modules, inline, searched, real_lines = json.loads(sys.stdin.read())
searched = set(searched)
patterns = {}  # name -> (pattern, also searched)
for name in modules:
    module = importlib.import_module(name)
    for attr, value in vars(module).items():
        if isinstance(value, re.Pattern):
            patterns[f"{name}.{attr}"] = (value, attr in searched)
        elif (
            isinstance(value, tuple | list)
            and value
            and all(isinstance(v, re.Pattern) for v in value)
        ):
            for index, item in enumerate(value):
                patterns[f"{name}.{attr}[{index}]"] = (item, True)
from crystal_atomate.io.errors import CrystalErrorKind
for kind in CrystalErrorKind:
    if kind.pattern is not None:
        patterns[f"CrystalErrorKind.{kind.name}"] = (kind.pattern, False)
for where, source, how in inline:
    patterns[f"{where}: {source}"] = (re.compile(source), how != "match")

def as_subject(pattern, text):
    """The text in the pattern's own type (the scanner searches bytes, the rest text)."""
    return text.encode() if isinstance(pattern.pattern, bytes) else text

def literal_prefix(pattern):
    """The text a match must start with, blanks as one space (empty when it starts otherwise)."""
    out = []
    source = pattern.pattern
    source = source.decode() if isinstance(source, bytes) else source
    for op, arg in sre_parse.parse(source):
        if op is sre_parse.LITERAL:
            out.append(chr(arg))
        elif op is sre_parse.AT:
            continue
        elif op in (sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT, sre_parse.POSSESSIVE_REPEAT):
            low, _high, item = arg
            if low and len(item) == 1 and item[0][0] is sre_parse.LITERAL:
                out.append(chr(item[0][1]) * low)
            elif low:
                break
            else:
                out.append(" ")
        else:
            break
    return "".join(out)

N = 4000
TAILS = [
    "1" * N, "1.11" * (N // 4), "10.1243571" * (N // 10), "-1.0" * (N // 4), "1.0-" * (N // 4),
    " " * N + "x", "\t " * (N // 2) + "x", "1 " * (N // 2) + "x", "1.0 " * (N // 4) + "x",
    "A " * (N // 2) + "1", "AB1 " * (N // 4) + ".", ")[" * (N // 2), "( " * (N // 2),
    "* " * (N // 2), "*" * N, "| " * (N // 2), "1E1" * (N // 3), "E(AU) 1 " * (N // 8),
    "ERROR **** " * (N // 11), "T" * N + " x", "MG 12 " * (N // 6), "0-" * (N // 2) + "x",
]

def prefixes(name, pattern):
    found = {"", literal_prefix(pattern)}
    hits = [line for line in real_lines if pattern.search(as_subject(pattern, line))][:2]
    for line in hits:
        cuts = [i for i in range(1, len(line)) if line[i - 1] != " " and line[i] == " "]
        found.update(line[:i] for i in cuts[:12])
        found.add(line.rstrip("\n"))
    return sorted(found)

timings = {}
for name, (pattern, search) in sorted(patterns.items()):
    print("PATTERN", name, flush=True, file=sys.stderr)
    start = time.perf_counter()
    for head in prefixes(name, pattern):
        for tail in TAILS:
            text = as_subject(pattern, head + tail)
            pattern.match(text)
            if search:
                pattern.search(text)
    timings[name] = time.perf_counter() - start
print(json.dumps(timings))
'''


_SEARCHES = {"search", "findall", "finditer", "sub", "subn", "split"}


def _regex_sites() -> tuple[list[str], list[tuple[str, str, str]], list[str]]:
    """Modules that use ``re``, the literal patterns passed inline to ``re`` functions (with the
    function), and the names patterns are searched through (``NAME.search(...)``).

    A pattern used only with ``match`` is tried only with ``match``: a search for a pattern that
    starts with a repeat (``\\s*``, ``\\d+``) restarts at every character and is quadratic by
    construction, which matters only where the package does search with it.
    """
    modules: list[str] = []
    inline: list[tuple[str, str, str]] = []
    searched: set[str] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in _SEARCHES
            ):
                target = node.func.value
                if isinstance(target, ast.Name) and target.id != "re":
                    searched.add(target.id)
                elif isinstance(target, ast.Attribute):
                    searched.add(target.attr)
        calls = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "re"
            and node.func.attr in _RE_CALLS
        ]
        if not calls:
            continue
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        modules.append(".".join(relative.parts).removesuffix(".__init__"))
        for call in calls:
            first = call.args[0] if call.args else None
            inline_call = (
                call.func.attr != "compile"
            )  # compiled ones are found as module attributes
            if inline_call and isinstance(first, ast.Constant) and isinstance(first.value, str):
                inline.append((f"{relative}:{call.lineno}", first.value, call.func.attr))
    return modules, inline, sorted(searched)


def _real_lines() -> list[str]:
    lines: list[str] = []
    for folder, name in REAL_OUTPUTS:
        with reference_file(folder, name).open(encoding="utf-8", errors="replace") as handle:
            lines.extend(handle)
    return lines


def test_the_audit_sees_every_regex_site() -> None:
    """The audit finds the scanner's table and inline patterns (a blind audit passes anything)."""
    modules, inline, searched = _regex_sites()
    assert "crystal_atomate.io.outputs.scanner" in modules
    assert "crystal_atomate.io.errors" in modules
    assert any(source == r"\S+" for _where, source, _how in inline)
    assert {"_FOREIGN_TRIGGER", "_FIXED_DECIMAL", "pattern"} <= set(searched)


@pytest.mark.timeout(BOUND_S + 30)
def test_no_pattern_backtracks_super_linearly() -> None:
    modules, inline, searched = _regex_sites()
    payload = json.dumps([modules, inline, searched, _real_lines()])
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD],
            input=payload,
            capture_output=True,
            text=True,
            timeout=BOUND_S,
            check=False,
        )
    except subprocess.TimeoutExpired as stuck:
        tried = (
            (stuck.stderr or b"").decode()
            if isinstance(stuck.stderr, bytes)
            else (stuck.stderr or "")
        )
        last = [line for line in tried.splitlines() if line.startswith("PATTERN")][-1:]
        pytest.fail(f"the regex battery did not finish in {BOUND_S} s; stuck in {last}")
    assert done.returncode == 0, done.stderr[-2000:]
    timings: dict[str, float] = json.loads(done.stdout)
    assert len(timings) > 60
    slow = {name: round(seconds, 2) for name, seconds in timings.items() if seconds > PER_PATTERN_S}
    assert not slow, f"super-linear patterns: {slow}"


def test_the_old_floats_only_pattern_is_caught() -> None:
    """The battery's inputs do trip the pattern the issue measured (15-21 s on a 62-byte row)."""
    number = r"[-+]?(?:\d+\.\d*|\.\d+)(?:[EeDd][-+]?\d+)?"
    old = rf"\s*(?:{number}\s*)+$"
    probe = "import re, sys; re.compile(sys.argv[1]).match('1.11' * 20 + 'x')"
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run([sys.executable, "-c", probe, old], timeout=3, check=False)


#: Real outputs of every kind the scanner reads in chunks: optimisation (ONELOG), spin
#: polarised SCF with charges and spins, frequencies, elastic constants, EOS, a molecule, a
#: conducting smeared spin run, a truncated run and a failed optimisation.
CHUNKED = [
    "mgo_opt_onelog_crystal22",
    "nio_scf_uhf_afm_crystal17",
    "mgo_scf_spin_band_crystal17",
    "dryice_freq_ir_b3lypd3_crystal22",
    "elastcon_3d_pbe0_crystal17",
    "hTaAs_eos_lda_ecp_crystal23",
    "s2_molecule_opt_hse06_crystal17",
    "graphene_vacancy_scf_spin_smear_crystal17",
    "be_scf_truncated_crystal17",
    "mackinawite_opt_failed_crystal17",
]


def _document(path: Path) -> dict[str, object]:
    """Everything the parser reports, as JSON data (the path itself left out)."""
    document = parse_output(path, discover=False).model_dump(mode="json")
    document.pop("source_path")
    return document


@pytest.mark.parametrize("chunk_bytes", [1, 97, 4099])
@pytest.mark.parametrize("folder", CHUNKED)
def test_chunk_boundaries_change_nothing(
    folder: str, chunk_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tables, SCFs and last-wins geometry split at any byte read as from one chunk."""
    path = reference_file(folder, "OUTPUT.out")
    whole = _document(path)
    assert whole["state"] in {"converged", "failed"} and whole["crystal_version"]
    monkeypatch.setattr(scanner, "_CHUNK_BYTES", chunk_bytes)
    assert _document(path) == whole


def test_crlf_and_missing_final_newline_read_the_same(tmp_path: Path) -> None:
    """A Windows-edited output (CRLF) and one cut without its last line end read the same."""
    path = reference_file("nio_scf_uhf_afm_crystal17", "OUTPUT.out")
    text = path.read_bytes()
    crlf = tmp_path / "crlf.out"
    crlf.write_bytes(text.replace(b"\n", b"\r\n"))
    unended = tmp_path / "unended.out"
    unended.write_bytes(text.rstrip(b"\n"))
    whole = _document(path)
    assert _document(crlf) == whole
    assert _document(unended) == whole
    assert whole["scf_cycles"] == 13
    assert whole["mulliken"]["spins"] == [3.057, -3.057, -0.072, 0.072]


def test_stream_and_path_read_the_same() -> None:
    """Lines from a text stream go through the same chunk reader as a file (big and small)."""
    path = reference_file("mgo_opt_onelog_crystal22", "OUTPUT.out")
    with path.open(encoding="utf-8") as handle:
        from_stream = parse_output(handle).model_dump(mode="json")
    from_stream.pop("source_path")
    assert from_stream == _document(path)
    assert len(from_stream["scf"]) == 4 and from_stream["opt_points"] == 4


def _long_scf(path: Path, cycles: int) -> Path:
    """The ONELOG MgO output with its first SCF grown to ``cycles`` cycles (a valid output).

    The fourth cycle's lines (``CYC`` to the next ``CYC``) are repeated, renumbered.
    """
    lines = reference_file("mgo_opt_onelog_crystal22", "OUTPUT.out").read_text().splitlines(True)
    starts = [i for i, line in enumerate(lines) if line.startswith(" CYC ")]
    head, cycle, tail = lines[: starts[3]], lines[starts[3] : starts[4]], lines[starts[4] :]
    with path.open("w") as handle:
        handle.writelines(head)
        for number in range(3, 3 + cycles):
            handle.write(cycle[0].replace(" CYC   3", f" CYC{number:4d}", 1))
            handle.writelines(cycle[1:])
        handle.writelines(tail)
    return path


def test_memory_stays_flat_in_the_file_size(tmp_path: Path) -> None:
    """Issue 18: 205,001 cycles of a 200 MB output took 179 MB; reading holds one chunk.

    An output whose first SCF has 24,000 cycles (~26 MB): the peak of the parser's own
    allocations stays near one chunk, and the result keeps 24 bytes a cycle.
    """
    import tracemalloc

    path = _long_scf(tmp_path / "OUTPUT.out", 24_000)
    assert path.stat().st_size > 6 * scanner._CHUNK_BYTES
    tracemalloc.start()
    try:
        out = parse_output(path, discover=False)
        retained, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    first = out.scf[0]
    assert first.cycle_count == 3 + 24_000 + 4 and max(first.cycle_numbers) == 24_002
    assert out.energy_ha == pytest.approx(-275.4486980727, abs=1e-8)
    assert peak < 4 * scanner._CHUNK_BYTES
    assert retained < 24 * 24_007 + 2_000_000
