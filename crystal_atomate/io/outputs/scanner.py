"""Single-pass, constant-memory state machine over the lines of a CRYSTAL output.

Speed comes from the pre-filter: CRYSTAL writes every line of its own with one leading blank
(Fortran carriage control), so the first two characters after the indentation pick the
handful of handlers that can possibly apply, and most lines (tables, timings, neighbour lists)
cost one ``lstrip`` and one dictionary miss. Lines that do *not* start with a blank come from
MPI, the Fortran runtime or the job wrapper, and are the only ones checked against the error
catalogue in full. Tables are consumed by small row collectors that hold only the table.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, BinaryIO

import numpy as np
from pymatgen.core import DummySpecies, Element, Lattice, Molecule, Structure

from crystal_atomate.io.errors import CrystalErrorKind, classify_line
from crystal_atomate.io.outputs.model import (
    BandEdges,
    CalculationKind,
    CrystalOutput,
    EosFit,
    EosResult,
    FrequencyMode,
    MullikenAnalysis,
    OptStep,
    ScfRun,
)

__all__ = ["OutputScanner"]

#: One printed real. Atomic (``(?>...)``), so a pattern never re-splits the digits of a number
#: it has read: with numbers run together (``1.1111.111``) a plain repetition of this pattern
#: tries every split and backtracks exponentially.
F = r"(?>[-+]?(?:\d+\.\d*|\.\d+)(?:[EeDd][-+]?\d+)?)"
#: Searched in a row: the look-behind keeps a search from restarting inside a run of digits
#: (each restart would rescan the run: quadratic), possessive digits never re-split.
_FIXED_DECIMAL = re.compile(r"-?(?<![\d.])\d++\.\d++")
#: Default decimals of a glued fixed-point field (``F12.7`` in TOTAL ATOMIC CHARGES/SPINS).
_DEFAULT_DECIMALS = 7
_WHOLE_NUMBER = re.compile(rf"{F}$")

_VERSION = re.compile(r"\*\s+CRYSTAL(\d\d)\s+\*")
_RELEASE = re.compile(r"\*\s+public\s*:\s*([^*]+)\*")
_CYC = re.compile(rf"CYC\s*(\d+)\s*ETOT\(AU\)\s*({F})\s*DETOT\s*({F})")
_SCF_END = re.compile(
    rf"==\s*SCF ENDED - (CONVERGENCE|TOO MANY CYCLES).*?E\(AU\)\s*({F})\s+CYCLES\s*(\d+)"
)
_TOTAL_ENERGY = re.compile(rf"TOTAL ENERGY\((\w+)\)\(AU\)\(\s*\d+\)\s*({F})(\s+DE \(AU\))?")
#: A properties run prints the energy of the wave function it read (fort.9) near its top.
_PROPERTIES_ENERGY = re.compile(rf"TOTAL ENERGY\s*({F})\s+CONVERGENCE ON ENER")
_TOTAL_DISP = re.compile(rf"TOTAL ENERGY \+ DISP(?: \+ GCP)? \(AU\)\s+({F})")
_D3 = re.compile(rf"D3 DISPERSION ENERGY \(AU\)\s+({F})")
_OPT_POINT = re.compile(
    r"((?:COORDINATE AND CELL|COORDINATE|CELL|ATOMIC)) OPTIMIZATION - POINT\s*(\d+)"
)
_OPT_TEST = re.compile(
    rf"(MAX|RMS) (GRADIENT|DISPLAC\.)\s*({F})\s*THRESHOLD\s*{F}\s*CONVERGED\s*(YES|NO)"
)
_OPT_END = re.compile(
    rf"\*\s*OPT END - (CONVERGED|FAILED)\s*\*\s*E\(AU\):\s*({F})\s*POINTS\s*(\d+)"
)
_CENTRAL = re.compile(rf"CENTRAL POINT\s*({F})")
_TIMING = re.compile(rf"T{{10,}}+\s+\S+\s+TELAPSE\s*({F})\s*TCPU\s*({F})")
_COUNT = re.compile(r"(N\. OF ATOMS PER CELL|NUMBER OF AO|N\. OF ELECTRONS PER CELL)\s*(\d+)")
_SHRINK = re.compile(r"SHRINK\. FACT\.\(MONKH\.\)\s*(\d{1,3})\s*(\d{1,3})\s*(\d{1,3})(?!\d)")
_GILAT = re.compile(r"SHRINKING FACTOR\(GILAT NET\)\s*(\d+)")
_CALC_TYPE = re.compile(r"TYPE OF CALCULATION :\s*(.+)")
_FUNCTIONAL = re.compile(r"\(EXCHANGE\)\[CORRELATION\] FUNCTIONAL:\(([^\[\]]*)\)\[([^\[\]]*)\]")
_HYBRID = re.compile(rf"HYBRID EXCHANGE - PERCENTAGE OF FOCK EXCHANGE\s*({F})")
_GAP = re.compile(rf"(DIRECT|INDIRECT) ENERGY BAND GAP:\s*({F})")
_FINAL_GAP = re.compile(rf"(?:(ALPHA|BETA)\s+)?BAND GAP:\s*({F})\s*eV")
_EFERMI = re.compile(rf"POSSIBLY CONDUCTING STATE - EFERMI\(AU\)\s*({F})")
_DIMENSION = re.compile(r"DIMENSIONALITY OF THE SYSTEM\s+(\d)")
_PRESSURE = re.compile(rf"PRESSURE IN GIGAPASCAL:\s*({F})")
_ELASTIC = re.compile(r"SYMMETRIZED ELASTIC CONSTANTS FOR .* CASE, IN (\S+)")
#: Lines between STARTING and the title: MPI chatter, and the star rule properties prints.
_TITLE_NOISE = re.compile(
    r"(PROCESS\s+\d+\s+OF\s+\d+\s+WORKING|\d+\s+PROCESSORS WORKING|INFORMATION \*{4}"
    r"|Default number|\*+$)"
)

_ROW3 = re.compile(rf"\s*({F})\s+({F})\s+({F})\s*$")
_CART_ATOM = re.compile(rf"\s*(\d+)\s+(\d+)\s*([A-Za-z]{{1,2}})\s+({F})\s+({F})\s+({F})\s*$")
_FORCE_ROW = re.compile(rf"\s*(\d+)\s+(\d+)\s+({F})\s+({F})\s+({F})\s*$")
_ASYM_ATOM = re.compile(rf"\s*(\d+)\s*([TF])\s*(\d+)\s*([A-Za-z]{{1,2}})\s+({F})\s+({F})\s+({F})")
_CELL_ROW = re.compile(rf"\s*({F})\s+({F})\s+({F})\s+({F})\s+({F})\s+({F})\s*$")
_MULLIKEN_ATOM = re.compile(r"\s*(\d+)\s*([A-Za-z]{1,2})\s*(\d+)\s+(-?\d+\.\d+)")
_MULLIKEN_STOP = re.compile(r"\s*(ATOM\s+Z\s+CHARGE\s+SHELL|OVERLAP POPULATION|\*{5}|M{5}|TTTTT)")
_FREQ_ROW = re.compile(
    rf"\s*(\d+)-\s*(\d+)\s+{F}\s+({F})\s+{F}\s+\(\s*([^)\s]*+(?:\s++[^)\s]++)*+)\s*\)"
    rf"(?:\s+([AI])\s+\(\s*({F})\s*\)\s+([AI]))?"
)
_ELASTIC_ROW = re.compile(r"\s*\|(.*)\|")
_EOS_POINT = re.compile(rf"\s*({F})\s+({F})\s*$")
#: ``MURNAGHAN 1944  34.7673  -63.71760925  180.21  3.76`` (polynomial rows lack the last column).
_EOS_FIT = re.compile(
    rf"\s*([A-Z][A-Z0-9\-]*+(?: [A-Z0-9\-]++(?![.\d]))*+)\s+({F})\s+({F})\s+({F})(?:\s+({F}))?\s*$"
)
#: Words that can start a catalogue match on an unindented (non-CRYSTAL) line; a directory
#: listing line ending in a file named ERROR is excluded by the catalogue's own anchors.
_FOREIGN_TRIGGER = re.compile(
    r"ERROR|forrtl|MPI_A|TIME LIMIT|oom|io error|Read_int_1d|INPUT DECK|NOT FOUND"
)

#: What a landmark line starts with (after its blanks) -> the handler that reads it. Each
#: handler acts only on lines beginning with one of its prefixes, so these prefixes are all the
#: search needs; the ``TTTT`` timings (a fifth of all lines) are left out: only the last counts.
_HANDLERS: dict[str, str] = {
    "CYC": "_cyc",
    "==": "_scf_end",
    "TOTAL ENERGY": "_total",
    "TOTAL ATOMIC CHARGES": "_total",
    "TOTAL ATOMIC SPINS": "_total",
    "TOO SMALL": "_total",
    "ER": "_error",
    "io": "_error",
    "EE": "_banner_e",
    "* ": "_star",
    "*\t": "_star",
    "MAX ": "_opt_test",
    "RMS ": "_opt_test",
    "DIRECT ENERGY": "_direct",
    "DISTANCE BETWEEN": "_direct",
    "INSULATING STATE": "_in",
    "INDIRECT": "_in",
    "POLYNOMIAL FITTING": "_po",
    "POSSIBLY CONDUCTING": "_po",
    "SPIN LOCKING": "_spin_locking",
    "CELL OPTIMIZATION": "_ce",
    "CENTRAL POINT": "_ce",
    "COORDINATE": "_co",
    "CONVERGENCE TESTS UNSATISFIED": "_co",
    "ATOMIC WAVEFUNCTION": "_atoms",
    "CRYSTAL - ": "_crystal_header",
    "FINAL OPTIMIZED GEOMETRY": "_final_geometry",
    "FREQUENCY CALCULATION": "_frequency_marker",
    "N. OF ": "_counts",
    "NUMBER OF AO": "_counts",
    "SHRINK": "_shrink",
    "TYPE OF CALCULATION": "_calc_type",
    "KOHN-SHAM HAMILTONIAN": "_hamiltonian",
    "HARTREE-FOCK HAMILTONIAN": "_hamiltonian",
    "HYBRID EXCHANGE": "_hybrid",
    "(EXCHANGE)": "_functional",
    "D3 DISPERSION": "_d3",
    "MULLIKEN POPULATION ANALYSIS": "_mulliken",
    "ALPHA": "_spin_label",
    "BETA": "_spin_label",
    "BA": "_band_gap_final",
    "MODES": "_modes",
    "SYMMETRIZED ELASTIC": "_elastic",
    "ELASTIC MODULI": "_compliance",
    "ENERGY CHANGE > 0": "_rejected",
    "GEOMETRY FOR WAVE FUNCTION": "_dimension",
    "EOS": "_eos",
    "SORTING VOLUMES/ENERGIES": "_eos_points",
    "EQUATION OF STATE": "_eos_fits",
    "WA": "_warning",
}
#: Lines every SCF cycle prints: read in bulk between two other landmarks (only the last
#: cycle's band edges and charges count, while every ``CYC`` line is kept).
#: Tables only whose last copy counts (an optimisation prints them at every point): header ->
#: kind. They are read once per chunk (:meth:`OutputScanner._resolve_deferred`). ``STRESS
#: TENSOR`` is printed without the leading blank.
_LAST_WINS = {
    "DIRECT LATTICE VECTORS CARTESIAN": "lattice",
    "CARTESIAN COORDINATES - PRIMITIVE CELL": "cartesian",
    "CARTESIAN FORCES IN HARTREE/BOHR": "forces",
    "PRIMITIVE CELL - CENTRING CODE": "cell",
    "ATOMS IN THE ASYMMETRIC UNIT": "asym",
    "GRADIENT WITH RESPECT TO THE CELL": "cell_gradient",
}
_PER_CYCLE = (
    "CYC",
    "TOTAL ATOMIC CHARGES",
    "TOTAL ATOMIC SPINS",
    "INSULATING STATE",
    "DIRECT ENERGY",
    "INDIRECT",
    "POSSIBLY CONDUCTING",
    "SPIN LOCKING",
)
#: Left out of the landmark search: looked for only near the end of each SCF (the last cycle's).
_BAND_AND_CHARGES = _PER_CYCLE[1:]
_BAND_PREFIXES = _PER_CYCLE[3:]


def _alternation(prefixes: Iterable[str]) -> str:
    return "|".join(re.escape(prefix) for prefix in prefixes)


def _trie(prefixes: Iterable[str]) -> str:
    """Build an alternation of literal prefixes factored by their leading characters.

    ``re`` tries the branches of an alternation one by one at every line; factored, a line is
    turned away after a few character tests instead of one per prefix.
    """
    groups: dict[str, list[str]] = {}
    for prefix in prefixes:
        groups.setdefault(prefix[0], []).append(prefix[1:])
    branches = []
    for first, rests in sorted(groups.items()):
        if "" in rests or len(rests) == 1:
            branches.append(re.escape(first + min(rests, key=len)))
        else:
            branches.append(re.escape(first) + "(?:" + _trie(rests) + ")")
    return "|".join(branches)


#: A landmark line (group 1: its prefix), or a line that does not start with a blank (group 1
#: is None: not CRYSTAL's own, but MPI, the Fortran runtime, a wrapper), searched from the line
#: end before it.
_LANDMARK = re.compile(
    rb"\n(?: [^\S\n]*+("
    + _trie([*(p for p in _HANDLERS if p not in _BAND_AND_CHARGES), *_LAST_WINS]).encode()
    + rb")|[^ \n\r])"
)
#: What makes a foreign line worth decoding (see :meth:`OutputScanner._foreign`).
_FOREIGN_LINE = re.compile(
    rb"STRESS TENSOR|PRESSURE IN GIGAPASCAL|.*?(?:" + _FOREIGN_TRIGGER.pattern.encode() + rb")"
)
_LANDMARK_TEXT = re.compile(r" [^\S\n]*+(" + _alternation([*_HANDLERS, *_LAST_WINS]) + r")")
_LAST_WINS_KIND = {prefix.encode(): kind for prefix, kind in _LAST_WINS.items()}
_BAND_PREFIX_BYTES = tuple(prefix.encode() for prefix in _BAND_PREFIXES)
#: A ``CYC`` line read where the landmark search found it.
_CYC_BYTES = re.compile(_CYC.pattern.replace(r"\s", r"[^\S\n]").encode())
#: The numeric rows after ``TOTAL ATOMIC CHARGES``/``SPINS`` (as :func:`_numeric_line` reads).
_NUMERIC_ROWS = re.compile(rb"(?:\n[^\S\n]*+[-+.\d][^\n]*+)*+")
_TIMING_MARK = b"TTTTTTTTTT"
_NEWLINE = ord("\n")
#: Bytes read at a time: large enough that the per-chunk work vanishes, small next to any output.
_CHUNK_BYTES = 1 << 22


#: Landmarks whose handlers neither read nor change what the per-cycle lines set, nor open
#: a table now: the per-cycle lines before them can wait (None: a foreign line).
_FREE: frozenset[bytes | None] = frozenset(
    {
        None,
        *(
            prefix.encode()
            for prefix in (
                "MAX ",
                "RMS ",
                "TOTAL ENERGY",
                "TOO SMALL",
                "ER",
                "io",
                "* ",
                "*\t",
                "COORDINATE",
                "CONVERGENCE TESTS UNSATISFIED",
                "CELL OPTIMIZATION",
                "CENTRAL POINT",
                "DISTANCE BETWEEN",
                "ENERGY CHANGE > 0",
                "GEOMETRY FOR WAVE FUNCTION",
                "FINAL OPTIMIZED GEOMETRY",
                "FREQUENCY CALCULATION",
                "N. OF ",
                "NUMBER OF AO",
                "SHRINK",
                "TYPE OF CALCULATION",
                "KOHN-SHAM HAMILTONIAN",
                "HARTREE-FOCK HAMILTONIAN",
                "HYBRID EXCHANGE",
                "(EXCHANGE)",
                "D3 DISPERSION",
                "BA",
                "EOS",
                "WA",
                "CRYSTAL - ",
            )
        ),
    }
)
#: Deferred tables by group. The geometry tables read what an earlier table left (the lattice
#: for the Cartesian atoms, the cell for the asymmetric unit, which consumes it): each of those
#: groups is read whole, in order. The others are independent: their last table that reads
#: (``_COMPLETE``) wins, so they are read from the last one back until one does.
_GROUP = {
    "lattice": "cartesian",
    "cartesian": "cartesian",
    "cell": "asym",
    "asym": "asym",
    "forces": "forces",
    "cell_gradient": "cell_gradient",
    "stress": "stress",
}
_READ_WHOLE = frozenset({"cartesian", "asym"})
#: The producer whose state each geometry group's tables read, and the geometry they leave.
_PRODUCER = {"asym": "cell", "cartesian": "lattice"}
_TARGET = {"asym": "cell_block", "cartesian": "cartesian"}
_PENDING = {"cell": "pending_cell", "lattice": "pending_lattice"}
#: Rows an independent table must have read to count.
_COMPLETE = {"forces": 1, "cell_gradient": 3, "stress": 3}


def _band_lines_in(buffer: bytes, start: int, stop: int) -> list[tuple[int, bytes]]:
    """Find the band-edge lines between two offsets, in order: (offset of the prefix, prefix).

    A few literal searches over the short stretch between two cycles, cheaper there than a
    regular expression tried at every line.
    """
    found = []
    for prefix in _BAND_PREFIX_BYTES:
        at = buffer.find(prefix, start, stop)
        while at >= 0:
            if _starts_line(buffer, at):
                found.append((at, prefix))
            at = buffer.find(prefix, at + 1, stop)
    return sorted(found)


def _line_ends(buffer: bytes, start: int = 0, stop: int | None = None) -> int:
    """Count the line ends in ``buffer[start:stop]``, vectorised (``bytes.count`` is 4x slower)."""
    return int(np.count_nonzero(np.frombuffer(buffer, np.uint8)[start:stop] == _NEWLINE))


def _starts_line(buffer: bytes, at: int) -> bool:
    """Whether ``at`` begins a CRYSTAL line's text: one blank, then only blanks before it."""
    start = buffer.rfind(b"\n", 0, at) + 1
    return buffer[start : start + 1] == b" " and not buffer[start:at].strip()


def _float_b(text: bytes) -> float:
    """:func:`_float` for the bytes a chunk search captured."""
    try:
        return float(text)
    except ValueError:
        return _float(text.decode("ascii", "replace"))


def _float(text: str) -> float:
    """Read a number as printed; Fortran ``D`` exponents (rare) take the slow path."""
    try:
        return float(text)
    except ValueError:
        return float(text.replace("D", "E").replace("d", "e"))


@lru_cache(maxsize=8)
def _glued_field(decimals: int) -> re.Pattern[str]:
    """One fixed-point field of ``decimals`` decimals, as Fortran runs them together."""
    return re.compile(rf"[-+]?\d*+\.\d{{{decimals}}}")


def _float_row(line: str) -> list[float] | None:
    """Read a line made of numbers only, also when fixed-width fields ran together.

    A token is read whole when it is one number; otherwise it is split at the fixed count of
    decimals the row's whole tokens show (``10.1243571-109.8756429`` -> two numbers). Linear in
    the line: tokens come from ``str.split`` and every pattern is anchored and atomic.
    """
    tokens = line.split()
    if not tokens:
        return None
    whole = [token for token in tokens if _WHOLE_NUMBER.match(token)]
    decimals = _decimals(whole[0]) if whole else _DEFAULT_DECIMALS
    values: list[float] = []
    for token in tokens:
        if _WHOLE_NUMBER.match(token):
            values.append(_float(token))
            continue
        parts = _split_glued(token, decimals)
        if parts is None:
            return None
        values.extend(parts)
    return values


def _split_glued(token: str, decimals: int) -> list[float] | None:
    """Consecutive fields of ``decimals`` decimals covering the whole token, else None.

    Each field is matched where the previous one ended, so the scan is one pass.
    """
    if not decimals:
        return None
    field_pattern = _glued_field(decimals)
    values: list[float] = []
    position = 0
    while position < len(token):
        found = field_pattern.match(token, position)
        if found is None:
            return None
        values.append(float(found.group()))
        position = found.end()
    return values


#: First characters of a line of numbers (after its blanks).
_NUMERIC_FIRST = frozenset("0123456789-+.")
_LINE_ENDS = frozenset("\n\r")


def _numeric_line(line: str) -> str | None:
    """Return the line if it starts like a row of numbers (cheap: checked on every cycle)."""
    text = line.lstrip()
    return line if text and text[0] in _NUMERIC_FIRST else None


def _rows_floats(rows: list[str]) -> list[float] | None:
    """Read the table rows kept raw (None when there are none or one is not numbers)."""
    if not rows:
        return None
    values: list[float] = []
    for row in rows:
        numbers = _float_row(row)
        if numbers is None:
            return None
        values.extend(numbers)
    return values


def _decimals(token: str) -> int:
    """Digits after the decimal point of a fixed-point token (0 for exponent forms)."""
    fraction = token.partition(".")[2]
    return len(fraction) if fraction.isdigit() else 0


def _matrix(rows: list[re.Match[str]]) -> list[list[float]]:
    """Rows of numbers captured by a table regex, as a matrix."""
    return [[_float(value) for value in row.groups()] for row in rows]


def _true_z(conventional: int) -> int:
    """CRYSTAL's conventional atomic number: Z, or Z+200 with an ECP (``NAT % 100``)."""
    return conventional % 100


def _species(conventional: int) -> Element | DummySpecies:
    """Element of a conventional atomic number; Z = 0 (ghost / removed atom) is a dummy ``X``."""
    z = _true_z(conventional)
    return Element.from_Z(z) if z else DummySpecies("X")


class _RowCollector:
    """Consume a table: skip up to ``max_skip`` header lines, take rows matching ``row``.

    Ends at the first non-row line after a row (or, with ``stop``, at the line matching it,
    skipping everything else), after ``max_rows`` rows, or after ``max_lines`` lines.
    """

    def __init__(
        self,
        row: Callable[[str], Any],
        done: Callable[[list[Any], list[str]], None],
        *,
        max_rows: int | None = None,
        max_skip: int = 4,
        stop: re.Pattern[str] | None = None,
        max_lines: int = 100_000,
    ) -> None:
        self.row = row
        self.done = done
        self.max_rows = max_rows
        self.max_skip = max_skip
        self.stop = stop
        self.max_lines = max_lines
        self.rows: list[Any] = []
        self.skipped: list[str] = []
        self.seen = 0

    def feed(self, line: str) -> bool:
        """Take one line: True if it is the table's, False hands it back to the dispatcher."""
        self.seen += 1
        if self.stop is not None and self.stop.match(line):
            self.done(self.rows, self.skipped)
            return False
        found = self.row(line)
        if found is not None:
            self.rows.append(found)
            if self.max_rows is not None and len(self.rows) >= self.max_rows:
                self.done(self.rows, self.skipped)
                return True
            return True
        if self.seen > self.max_lines:
            self.done(self.rows, self.skipped)
            return False
        if self.stop is not None or (not self.rows and len(self.skipped) < self.max_skip):
            self.skipped.append(line)
            return True
        self.done(self.rows, self.skipped)
        return False


@dataclass
class _Geometry:
    """The latest printed geometry of one kind and the line where it ended."""

    order: int = -1
    lattice: list[list[float]] | None = None
    cell_parameters: list[float] | None = None
    numbers: list[int] = field(default_factory=list)
    coords: list[list[float]] = field(default_factory=list)
    columns: str = ""


class _TitleCatcher:
    """Looks at each line after STARTING for the title, and hands every line back."""

    def __init__(self, scanner: OutputScanner) -> None:
        self.scanner = scanner
        self.rows: list[str] = []
        self.skipped: list[str] = []

    def feed(self, line: str) -> bool:
        """Never consumes the line; ends itself once the title is found."""
        if self.scanner._title(line):
            self.scanner._end_block()
        return False

    def done(self, _rows: list[str], _skipped: list[str]) -> None:
        """Nothing to close: an output may end before its title."""


class OutputScanner:
    """Feed lines in order with :meth:`feed`, then build the result with :meth:`result`."""

    def __init__(self, source: str = "output") -> None:
        self.source = source
        self.out = CrystalOutput()
        self._line_number = 0
        self._line_start = 0
        self._base = self._counted_to = self._counted = self._cycles_from = 0
        self.scf_announced = False
        self.block: _RowCollector | _TitleCatcher | None = None
        self.scf_open: ScfRun | None = None
        self.step: OptStep | None = None
        self.band_closed = True
        self.band_spin: str = "both"
        self.edges: dict[str, dict[str, Any]] = {}
        self.error_keys: set[tuple[str, str | None]] = set()
        self.flags: set[str] = set()
        self.pending_lattice: list[list[float]] | None = None
        self.cartesian = _Geometry()
        self.cell_block = _Geometry()
        self.pending_cell: list[float] | None = None
        self.atomic_guess_seen = False
        self.reference_electrons: list[float] | None = None
        self.last_charges: list[float] | None = None
        self.charge_rows: list[str] = []
        self.spin_rows: list[str] = []
        self.last_spins: list[float] | None = None
        self.mulliken_mode = "total"
        self.mulliken_total: list[re.Match[str]] | None = None
        self.mulliken_spin: list[re.Match[str]] | None = None
        self.frequency_tables = 0
        self.last_timing: str | None = None
        self._buffer: bytes | None = None
        self._line_end = 0
        self.deferred: dict[str, list[tuple[int, str]]] = {}
        self._offset = self._table_order = 0
        self._crossing = (-1, None)
        self.dispatch: dict[bytes, Callable[[str], None]] = {
            prefix.encode(): getattr(self, name) for prefix, name in _HANDLERS.items()
        }

    # ------------------------------------------------------------------ driving
    def feed_file(self, handle: BinaryIO) -> None:
        """Scan a file opened in binary mode, chunk by chunk (memory bounded by the chunk).

        Chunks end at a line end; the partial line after it is carried into the next chunk.
        """
        carry = b""
        while chunk := handle.read(_CHUNK_BYTES):
            cut = chunk.rfind(b"\n") + 1
            if not cut:
                carry += chunk
                continue
            self._feed_chunk(b"".join((b"\n", carry, memoryview(chunk)[:cut])))
            carry = chunk[cut:]
        if carry:
            self._feed_chunk(b"\n" + carry + b"\n")

    def feed_lines(self, lines: Iterable[str]) -> None:
        """Scan an iterable of text lines (a stream), batched into chunks as :meth:`feed_file`."""
        batch: list[str] = []
        size = 0
        for line in lines:
            batch.append(line if line.endswith("\n") else line + "\n")
            size += len(line)
            if size >= _CHUNK_BYTES:
                self._feed_chunk(("\n" + "".join(batch)).encode("utf-8", "surrogateescape"))
                batch, size = [], 0
        if batch:
            self._feed_chunk(("\n" + "".join(batch)).encode("utf-8", "surrogateescape"))

    def _feed_chunk(self, buffer: bytes) -> None:
        """Scan whole lines (``buffer`` starts with a line end): only landmark lines are decoded.

        Most lines cost nothing in Python. The per-cycle lines are only noted, and read in bulk
        (:meth:`_cycle_lines`) when a landmark that depends on them comes (the ``_FREE`` ones
        do not); the tables whose last copy is all that counts (``_LAST_WINS``) are read once
        per chunk (:meth:`_resolve_deferred`); any other table (:attr:`block`) takes the lines
        after its header one by one until it hands one back. Line numbers are counted only
        when a handler asks (:attr:`line_number`).
        """
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        self._buffer, self._base, self._counted_to, self._counted = buffer, self._line_number, 0, 0
        position = 0
        if self.block is not None:
            position = self._feed_block(buffer, 0)
            self._counted_to, self._counted = position + 1, self._line_number - self._base + 1
        cycles: list[re.Match[bytes]] = []
        note_cycle = cycles.append
        self._cycles_from = 0
        find = buffer.find
        dispatch = self.dispatch
        deferred_kind = _LAST_WINS_KIND.get
        for found in _LANDMARK.finditer(buffer) if position >= 0 else ():
            if found.start() < position:
                continue
            prefix = found[1]
            if prefix == b"CYC":
                note_cycle(found)
                continue
            start = found.start() + 1
            if prefix is None:
                if _FOREIGN_LINE.match(buffer, start):
                    position = self._line_end = find(b"\n", start)
                    self._line_start = start
                    self._foreign(buffer[start : position + 1].decode("utf-8", "replace"))
                continue
            position = self._line_end = find(b"\n", start)
            self._line_start = start
            kind = deferred_kind(prefix)
            if kind is not None:
                self._defer(kind)
                continue
            if prefix not in _FREE or (cycles and prefix == b"CRYSTAL - "):
                self._cycle_lines(buffer, cycles, start)
                cycles.clear()
                self._cycles_from = position
            dispatch[prefix](buffer[found.start(1) : position + 1].decode("utf-8", "replace"))
            if self.block is not None:
                position = self._feed_block(buffer, position)
                if position < 0:
                    break
                self._counted_to, self._counted = position + 1, self._line_number - self._base + 1
                self._cycles_from = position
        self._cycle_lines(buffer, cycles, len(buffer))
        self._resolve_deferred(buffer)
        self._last_timing(buffer)
        self._buffer, self._line_start = None, 0
        self._line_number = self._base + _line_ends(buffer) - 1
        self._offset += len(buffer) - 1

    @property
    def line_number(self) -> int:
        """Number of the line being read, counted from the last one counted when asked."""
        if self._line_start:
            assert self._buffer is not None
            self._counted += _line_ends(self._buffer, self._counted_to, self._line_start)
            self._counted_to, self._line_start = self._line_start, 0
            self._line_number = self._base + self._counted
        return self._line_number

    @line_number.setter
    def line_number(self, value: int) -> None:
        self._line_number, self._line_start = value, 0

    def _cycle_lines(self, buffer: bytes, cycles: list[re.Match[bytes]], stop: int) -> None:
        """Read what the SCF cycles printed since the last read (up to ``stop``).

        Every ``CYC`` line is kept. The band edges and charges are looked for near the end
        only: a ``CYC`` line closes the edges read before it (the next edge line starts afresh)
        and the charge tables replace one another, so only the last ones can survive.
        """
        start = self._cycles_from
        if stop <= start:
            return
        read = [
            found for line in cycles if (found := _CYC_BYTES.match(buffer, line.start(1)))
        ]
        if read:
            run = self._scf_for_cycles()
            run.cycle_numbers.extend([int(found[1]) for found in read])
            run.cycle_energies_ha.extend([_float_b(found[2]) for found in read])
            run.cycle_deltas_ha.extend([_float_b(found[3]) for found in read])
        self._band_lines(buffer, [start, *(found.start() - 1 for found in read), stop])
        if self.atomic_guess_seen and self.reference_electrons is None:
            self._charge_table(buffer, start, stop, b"TOTAL ATOMIC CHARGES", first=True)
        self._charge_table(buffer, start, stop, b"TOTAL ATOMIC CHARGES")
        if self.out.spin_polarized is not False:
            self._charge_table(buffer, start, stop, b"TOTAL ATOMIC SPINS")

    def _band_lines(self, buffer: bytes, bounds: list[int]) -> None:
        """Apply the band-edge lines of the last stretch between cycles that has any."""
        last = len(bounds) - 2
        index, lines = last, []
        while index >= 0:
            lines = _band_lines_in(buffer, bounds[index], bounds[index + 1])
            if lines:
                break
            index -= 1
        if lines and index > 0:
            self.band_closed = True
            self.band_spin = "both"
        for at, prefix in lines:
            end = buffer.find(b"\n", at)
            self.dispatch[prefix](buffer[at : end + 1].decode("utf-8", "replace"))
        if last > 0 and (not lines or index < last):
            self.band_closed = True
            self.band_spin = "both"

    def _charge_table(
        self, buffer: bytes, start: int, stop: int, title: bytes, *, first: bool = False
    ) -> None:
        """Read the last (or ``first``) table named ``title`` between ``start`` and ``stop``.

        Rows that run to the chunk end are continued by a table reader in the next chunk.
        """
        find = buffer.find if first else buffer.rfind
        at = find(title, start, stop)
        while at >= 0 and not _starts_line(buffer, at):
            at = buffer.find(title, at + 1, stop) if first else buffer.rfind(title, start, at)
        if at < 0:
            return
        done = self._spins_done if title.endswith(b"SPINS") else self._charges_done
        rows = _NUMERIC_ROWS.match(buffer, buffer.find(b"\n", at))
        assert rows is not None  # the pattern matches the empty string
        lines = rows.group().decode("utf-8", "replace").splitlines(keepends=True)[1:]
        if rows.end() >= len(buffer) - 1:
            self.block = _RowCollector(_numeric_line, done, max_skip=0)
            self.block.rows = lines
            return
        done(lines, [])

    def _feed_block(self, buffer: bytes, position: int) -> int:
        """Hand the open table the lines after ``position`` until it closes.

        Returns where the landmark search resumes (the line end before the next line to
        search), or -1 when the chunk ended with the table still open.
        """
        end = len(buffer) - 1
        number = self.line_number
        while self.block is not None:
            if position >= end:
                return -1
            start = position + 1
            position = buffer.find(b"\n", start)
            number += 1
            self.line_number = number
            self._line_end = position
            line = buffer[start : position + 1].decode("utf-8", "replace")
            if not self.block.feed(line):
                self._dispatch_text(line)
        return position

    def _dispatch_text(self, line: str) -> None:
        """Route one decoded line as the landmark search would (a line a table handed back)."""
        if line[:1] == " ":
            found = _LANDMARK_TEXT.match(line)
            if found is None:
                return
            kind = _LAST_WINS.get(found[1])
            if kind is not None:
                self._defer(kind)
            else:
                self.dispatch[found[1].encode()](line[found.start(1) :])
        elif line[:1] not in _LINE_ENDS:
            self._foreign(line)

    def _last_timing(self, buffer: bytes) -> None:
        """Keep the chunk's last ``TTTT`` timing line; only the file's last one is decoded."""
        end = len(buffer)
        while (found := buffer.rfind(_TIMING_MARK, 0, end)) >= 0:
            start = buffer.rfind(b"\n", 0, found) + 1
            line = buffer[start : buffer.find(b"\n", found)]
            if line[:1] == b" " and line.lstrip().startswith(b"TT"):
                self.last_timing = line.lstrip().decode("utf-8", "replace")
                return
            end = start

    def _start_block(self, collector: _RowCollector | _TitleCatcher) -> None:
        """Later lines go to the collector until it hands one back."""
        self.block = collector

    def _defer(self, kind: str) -> None:
        """Note a ``_LAST_WINS`` table (its header ends at :attr:`_line_end`) for the chunk end."""
        self.deferred.setdefault(_GROUP[kind], []).append((self._line_end, kind))

    def _resolve_deferred(self, buffer: bytes) -> None:
        """Read the deferred tables of this chunk (:meth:`_read_geometry`, last that reads).

        Of each independent group, the last table that reads counts (an earlier one is read
        only when a later one does not). A table still open at the chunk end stays open for
        the next chunk, unless the main scan left a (later) table open.
        """
        if not self.deferred:
            return
        still_open = self.block
        self._crossing: tuple[int, _RowCollector | None] = (-1, None)
        for group, records in self.deferred.items():
            if group in _READ_WHOLE:
                self._read_geometry(buffer, group, records)
                continue
            for position, kind in reversed(records):
                collector = self._run_deferred(buffer, position, kind)
                if self.block is not collector and len(collector.rows) >= _COMPLETE[kind]:
                    break
        self.deferred = {}
        open_at, crossing = self._crossing
        self.block = still_open if still_open is not None else crossing
        if crossing is not None:
            self._table_order = self._offset + open_at

    def _read_geometry(self, buffer: bytes, group: str, records: list[tuple[int, str]]) -> None:
        """Read a geometry group as if every table were read in order, from as few as exact.

        The state is what the tables leave: the producer's (lattice, cell) and the consumer's
        geometry. Reading from the last producer before the last consumer gives the same state
        as reading them all once a consumer in that stretch has its rows (or, with no consumer
        in it, once its producer has); otherwise the stretch doubles back to an earlier
        producer, read from the state the chunk started with (linear in the tables overall).
        """
        producer, target = _PRODUCER[group], _TARGET[group]
        pending = _PENDING[producer]
        saved = (getattr(self, pending), getattr(self, target))
        kinds = [kind for _, kind in records]
        consumers = [index for index, kind in enumerate(kinds) if kind == group]
        last = consumers[-1] if consumers else len(records)
        start = max((i for i in range(last) if kinds[i] == producer), default=0)
        while True:
            setattr(self, pending, saved[0])
            setattr(self, target, saved[1])
            for position, kind in records[start:]:
                self._run_deferred(buffer, position, kind)
            read = getattr(self, target) is not saved[1] or (
                not consumers and getattr(self, pending) is not saved[0]
            )
            if start == 0 or read:
                return
            back = max(0, 2 * start - len(records))
            start = max((i for i in range(back + 1) if kinds[i] == producer), default=0)

    def _run_deferred(self, buffer: bytes, position: int, kind: str) -> _RowCollector:
        """Feed one deferred table (its header ends at ``position``) the lines after it.

        Its place in the file (:attr:`_table_order`, a byte offset) tells which geometry was
        printed last; no line needs counting.
        """
        collector = self._last_wins_table(kind)
        self.block = collector
        self._table_order = self._offset + position
        header, end = position, len(buffer) - 1
        while self.block is collector and position < end:
            start = position + 1
            position = buffer.find(b"\n", start)
            if not collector.feed(buffer[start : position + 1].decode("utf-8", "replace")):
                break
        if self.block is collector and header >= self._crossing[0]:
            self._crossing = (header, collector)
        return collector

    def _last_wins_table(self, kind: str) -> _RowCollector:
        """Build the reader of one ``_LAST_WINS`` table."""
        if kind == "lattice":
            return _RowCollector(_ROW3.match, self._lattice_done, max_rows=3)
        if kind == "cartesian":
            return _RowCollector(_CART_ATOM.match, self._cartesian_done, max_skip=5)
        if kind == "forces":
            return _RowCollector(_FORCE_ROW.match, self._forces_done, max_skip=2)
        if kind == "cell":
            return _RowCollector(_CELL_ROW.match, self._cell_done, max_rows=1, max_skip=1)
        if kind == "asym":
            return _RowCollector(_ASYM_ATOM.match, self._asym_done, max_skip=3)
        if kind == "cell_gradient":
            return _RowCollector(_ROW3.match, self._cell_gradient_done, max_rows=3)
        return _RowCollector(_ROW3.match, self._stress_done, max_rows=3)

    def _end_block(self) -> None:
        self.block = None

    # ------------------------------------------------------------------ errors
    def _add_error(self, text: str) -> None:
        """Record a failure once per kind (per routine+message for unknown ERROR lines)."""
        error = classify_line(text, self.line_number, self.source)
        if error is None:
            return
        key = (
            error.kind.value,
            error.message if error.kind is CrystalErrorKind.UNKNOWN_ERROR else None,
        )
        if key not in self.error_keys:
            self.error_keys.add(key)
            self.out.errors.append(error)

    def _foreign(self, line: str) -> None:
        """Read a line of MPI, the Fortran runtime or a wrapper (or CRYSTAL's bare stress block)."""
        if line.startswith("STRESS TENSOR"):
            self._defer("stress")
        elif line.startswith("PRESSURE IN GIGAPASCAL"):
            found = _PRESSURE.match(line)
            if found:
                self.out.pressure_gpa = _float(found.group(1))
        elif _FOREIGN_TRIGGER.search(line):
            self._add_error(line)

    def _error(self, text: str) -> None:
        self._add_error(text)

    # ------------------------------------------------------------------ header
    def _star(self, text: str) -> None:
        """Banner (version, release), ``* OPT END`` and ``* ELASTCON OPTION``."""
        if text.startswith("* OPT END") or text.startswith("*OPT END"):
            self._opt_end(text)
            return
        if self.out.crystal_version is None:
            found = _VERSION.match(text)
            if found:
                self.out.crystal_version = int(found.group(1))
                return
        if self.out.crystal_release is None and "public" in text:
            found = _RELEASE.match(text)
            if found:
                self.out.crystal_release = found.group(1).strip()
                return
        if "ELASTCON OPTION" in text:
            self.flags.add("elastic")

    def _banner_e(self, text: str) -> None:
        """``EEEEEEEEEE STARTING`` (title follows) and ``EEEEEEEEEE TERMINATION``."""
        rest = text.lstrip("E")
        if rest.startswith(" STARTING"):
            self.flags.add("started")
            if self.out.title is None:
                self._start_block(_TitleCatcher(self))
        elif rest.startswith(" TERMINATION"):
            self.out.terminated = True

    def _title(self, line: str) -> bool:
        """Take the first non-MPI line after STARTING as the title (facts obs. 3); True if found."""
        if (
            self.line_is_blank(line)
            or _TITLE_NOISE.match(line.strip())
            or line.lstrip().startswith("EEEEEEEEEE")
        ):
            return False
        self.out.title = line.strip()
        return True

    @staticmethod
    def line_is_blank(line: str) -> bool:
        """Whitespace only."""
        return not line.strip()

    def _counts(self, text: str) -> None:
        for found in _COUNT.finditer(text):
            name, value = found.group(1), int(found.group(2))
            if name.startswith("N. OF ATOMS") and self.out.n_atoms is None:
                self.out.n_atoms = value
            elif name == "NUMBER OF AO" and self.out.n_ao is None:
                self.out.n_ao = value
            elif name.startswith("N. OF ELECTRONS") and self.out.n_electrons is None:
                self.out.n_electrons = value

    def _shrink(self, text: str) -> None:
        found = _SHRINK.match(text)
        if found and self.out.shrink is None:
            self.out.shrink = [int(found.group(i)) for i in (1, 2, 3)]
            return
        found = _GILAT.match(text)
        if found and self.out.shrink_gilat is None:
            self.out.shrink_gilat = int(found.group(1))

    def _calc_type(self, text: str) -> None:
        found = _CALC_TYPE.match(text)
        if found and self.out.calculation_type is None:
            self.out.calculation_type = found.group(1).rstrip()
            self.out.spin_polarized = self.out.calculation_type.startswith("UNRESTRICTED")

    def _hamiltonian(self, text: str) -> None:
        if text.startswith("KOHN-SHAM HAMILTONIAN"):
            self.out.hamiltonian = "DFT"
        elif text.startswith("HARTREE-FOCK HAMILTONIAN"):
            self.out.hamiltonian = "HF"

    def _functional(self, text: str) -> None:
        found = _FUNCTIONAL.match(text)
        if found:
            self.out.functional_exchange = found.group(1).strip()
            self.out.functional_correlation = found.group(2).strip()

    def _hybrid(self, text: str) -> None:
        found = _HYBRID.match(text)
        if found:
            self.out.hybrid_exchange_percent = _float(found.group(1))

    def _crystal_header(self, text: str) -> None:
        """Open an SCF at ``CRYSTAL - SCF - TYPE OF CALCULATION``; note a PROPERTIES run."""
        if text.startswith("CRYSTAL - SCF"):
            self.scf_announced = True
        elif text.startswith("CRYSTAL - PROPERTIES"):
            self.flags.add("properties")

    def _frequency_marker(self, text: str) -> None:
        if text.startswith("FREQUENCY CALCULATION"):
            self.flags.add("frequency")

    def _eos(self, text: str) -> None:
        if text.startswith("EOS OPTION") or text.startswith("EOSEOSEOS"):
            self.flags.add("eos")

    def _eos_points(self, text: str) -> None:
        """``SORTING VOLUMES/ENERGIES``: every E(V) point, the restart's included, by volume."""
        if text.startswith("SORTING VOLUMES/ENERGIES"):
            self._start_block(_RowCollector(_EOS_POINT.match, self._eos_points_done, max_skip=3))

    def _eos_points_done(self, rows: list[re.Match[str]], _skipped: list[str]) -> None:
        self._end_block()
        if rows:
            self.out.eos = EosResult(
                volumes_a3=[_float(row.group(1)) for row in rows],
                energies_ha=[_float(row.group(2)) for row in rows],
            )

    def _eos_fits(self, text: str) -> None:
        if text.startswith("EQUATION OF STATE") and "BM(GPa)" in text:
            self._start_block(_RowCollector(_EOS_FIT.match, self._eos_fits_done, max_skip=1))

    def _po(self, text: str) -> None:
        """``POSSIBLY CONDUCTING`` (band edges) and the EOS ``POLYNOMIAL FITTING`` table."""
        if text.startswith("POLYNOMIAL FITTING") and "BM(GPa)" in text:
            self._start_block(_RowCollector(_EOS_FIT.match, self._eos_fits_done, max_skip=1))
        else:
            self._conducting(text)

    def _eos_fits_done(self, rows: list[re.Match[str]], _skipped: list[str]) -> None:
        self._end_block()
        if self.out.eos is None:
            return
        self.out.eos.fits.extend(
            EosFit(
                equation=row.group(1),
                volume_a3=_float(row.group(2)),
                energy_ha=_float(row.group(3)),
                bulk_modulus_gpa=_float(row.group(4)),
                bulk_modulus_derivative=None if row.group(5) is None else _float(row.group(5)),
            )
            for row in rows
        )

    def _warning(self, text: str) -> None:
        if "TESTGEOM" in text:
            self.flags.add("testgeom")

    def _in(self, text: str) -> None:
        """``INSULATING STATE``, ``INDIRECT ENERGY BAND GAP`` (INFORMATION lines fall through)."""
        if text.startswith("INSULATING STATE"):
            self._band(insulating=True)
        elif text.startswith("INDIRECT"):
            self._gap(text)

    # ------------------------------------------------------------------ SCF
    def _scf_for_cycles(self) -> ScfRun:
        """Return the SCF the next cycles belong to: the one announced, the open one, or a new one.

        ``CRYSTAL - SCF`` only announces its SCF (:meth:`_open_scf` runs at its first cycle or
        its end), so the header is not a point where the per-cycle lines must be read.
        """
        if self.scf_announced:
            self.scf_announced = False
            return self._open_scf()
        run = self.scf_open
        if run is None or run.converged is not None:
            run = self._open_scf()
        return run

    def _open_scf(self) -> ScfRun:
        run = self.scf_open
        if run is None or run.cycle_numbers or run.converged is not None:
            run = ScfRun(source=self.source)
            self.out.scf.append(run)
            self.scf_open = run
        return run

    def _cyc(self, text: str) -> None:
        found = _CYC.match(text)
        if not found:
            return
        run = self._scf_for_cycles()
        run.add_cycle(int(found.group(1)), _float(found.group(2)), _float(found.group(3)))
        self.band_closed = True
        self.band_spin = "both"

    def _scf_end(self, text: str) -> None:
        found = _SCF_END.match(text)
        if not found:
            return
        run = self._scf_for_cycles() if self.scf_announced else self.scf_open
        run = run if run is not None else self._open_scf()
        run.converged = found.group(1) == "CONVERGENCE"
        run.energy_ha = _float(found.group(2))
        run.n_cycles = int(found.group(3))
        self.out.scf_energy_ha = run.energy_ha
        self.out.energy_ha = run.energy_ha
        self._step_energy(run.energy_ha)
        if not run.converged:
            self._add_error(text)
        self.scf_open = None

    def _total(self, text: str) -> None:
        """``TOTAL ENERGY(..)(AU)``, ``TOTAL ENERGY + DISP``, ``TOTAL ATOMIC CHARGES/SPINS``."""
        if text.startswith("TOTAL ENERGY"):
            found = _TOTAL_DISP.match(text)
            if found:
                value = _float(found.group(1))
                self.out.energy_with_dispersion_ha = value
                self.out.energy_ha = value
                self._step_energy(value)
                return
            found = _TOTAL_ENERGY.match(text)
            if found and found.group(3):
                value = _float(found.group(2))
                self.out.energy_ha = value
                self._step_energy(value)
                return
            found = _PROPERTIES_ENERGY.match(text)
            if found and self.out.energy_ha is None:
                self.out.energy_ha = _float(found.group(1))
        elif text.startswith("TOTAL ATOMIC CHARGES"):
            self._start_block(_RowCollector(_numeric_line, self._charges_done, max_skip=0))
        elif text.startswith("TOTAL ATOMIC SPINS"):
            self._start_block(_RowCollector(_numeric_line, self._spins_done, max_skip=0))
        elif text.startswith("TOO SMALL TRUST RADIUS"):
            self._add_error(text)

    def _d3(self, text: str) -> None:
        found = _D3.match(text)
        if found:
            self.out.dispersion_energy_ha = _float(found.group(1))

    def _charges_done(self, rows: list[str], _skipped: list[str]) -> None:
        """Keep the raw charge rows of the last cycle only (every cycle prints them)."""
        self._end_block()
        if self.atomic_guess_seen and self.reference_electrons is None:
            self.reference_electrons = _rows_floats(rows)
        self.charge_rows = rows

    def _spins_done(self, rows: list[str], _skipped: list[str]) -> None:
        self._end_block()
        self.spin_rows = rows

    # ------------------------------------------------------------------ band structure
    def _band(
        self, *, insulating: bool | None = None, fermi: float | None = None
    ) -> dict[str, Any]:
        """Return the edges of the current spin channel, reset at the first one after a cycle.

        Plain dicts while scanning (every cycle prints them); :class:`BandEdges` at the end.
        """
        if self.band_closed:
            self.edges = {}
            self.band_closed = False
        edge = self.edges.get(self.band_spin)
        if edge is None:
            edge = self.edges[self.band_spin] = {"spin": self.band_spin}
        if insulating is not None:
            edge["insulating"] = insulating
        if fermi is not None:
            edge["fermi_energy_ha"] = fermi
        return edge

    def _gap(self, text: str) -> None:
        found = _GAP.match(text)
        if found:
            edge = self._band()
            edge["band_gap_ev"] = _float(found.group(2))
            edge["direct"] = found.group(1) == "DIRECT"

    def _conducting(self, text: str) -> None:
        found = _EFERMI.match(text)
        if found:
            self._band(insulating=False, fermi=_float(found.group(1)))

    def _spin_locking(self, text: str) -> None:
        if text.startswith("SPIN LOCKING"):
            self._band()

    def _final_gap(self, text: str) -> None:
        """Read the gap at the final geometry: one line, or one per spin (the smaller is it)."""
        found = _FINAL_GAP.match(text)
        if not found:
            return
        value = _float(found.group(2))
        out = self.out
        if found.group(1) == "ALPHA":
            out.final_band_gap_alpha_ev = value
        elif found.group(1) == "BETA":
            out.final_band_gap_beta_ev = value
        spins = [
            gap
            for gap in (out.final_band_gap_alpha_ev, out.final_band_gap_beta_ev)
            if gap is not None
        ]
        out.final_band_gap_ev = min(spins) if found.group(1) else value

    def _spin_label(self, text: str) -> None:
        """Route a line that names a spin channel to the reader of its block.

        ``ALPHA / BETA ELECTRONS`` (band edges), ``ALPHA+BETA / ALPHA-BETA`` (Mulliken) and the
        per-spin final gaps ``ALPHA / BETA BAND GAP:``.
        """
        if "BAND GAP:" in text:
            self._final_gap(text)
        elif text.startswith("ALPHA+BETA"):
            self.mulliken_mode = "total"
        elif text.startswith("ALPHA-BETA"):
            self.mulliken_mode = "spin"
        elif text.startswith("ALPHA") and text.rstrip().endswith("ELECTRONS"):
            self.band_spin = "alpha"
            self._band()
        elif text.startswith("BETA") and text.rstrip().endswith("ELECTRONS"):
            self.band_spin = "beta"
            self._band()

    def _band_gap_final(self, text: str) -> None:
        """``BAND GAP:`` after an optimisation (closed shell); spin runs print ALPHA/BETA lines."""
        if text.startswith("BAND GAP:"):
            self._final_gap(text)
        elif "LINEARLY DEPENDENT" in text:
            self._add_error(text)

    def _direct(self, text: str) -> None:
        if text.startswith("DIRECT ENERGY BAND GAP"):
            self._gap(text)
        elif text.startswith("DISTANCE BETWEEN ATOMS"):
            self._add_error(text)

    # ------------------------------------------------------------------ optimisation
    def _step_energy(self, value: float) -> None:
        if self.step is not None:
            self.step.energy_ha = value

    def _ce(self, text: str) -> None:
        if text.startswith("CELL OPTIMIZATION"):
            self._opt_point(text)
        elif text.startswith("CENTRAL POINT"):
            found = _CENTRAL.match(text)
            if found:
                self.out.energy_ha = _float(found.group(1))

    def _co(self, text: str) -> None:
        if text.startswith("COORDINATE"):
            self._opt_point(text)
        elif text.startswith("CONVERGENCE TESTS UNSATISFIED"):
            self._add_error(text)

    def _opt_point(self, text: str) -> None:
        found = _OPT_POINT.match(text)
        if not found:
            return
        self.out.optimisation_type = found.group(1)
        self.step = OptStep(point=int(found.group(2)))
        self.out.opt_steps.append(self.step)

    def _opt_test(self, text: str) -> None:
        found = _OPT_TEST.match(text)
        if not found or self.step is None:
            return
        which = ("max_" if found.group(1) == "MAX" else "rms_") + (
            "gradient" if found.group(2) == "GRADIENT" else "displacement"
        )
        setattr(self.step, which, _float(found.group(3)))
        setattr(self.step, which + "_converged", found.group(4) == "YES")

    def _rejected(self, text: str) -> None:
        if text.startswith("ENERGY CHANGE > 0") and self.step is not None:
            self.step.step_rejected = True

    def _opt_end(self, text: str) -> None:
        found = _OPT_END.match(text)
        if not found:
            return
        self.out.opt_converged = found.group(1) == "CONVERGED"
        self.out.opt_energy_ha = _float(found.group(2))
        self.out.opt_points = int(found.group(3))
        self.out.energy_ha = self.out.opt_energy_ha
        self.step = None
        if not self.out.opt_converged:
            self._add_error(text)

    # ------------------------------------------------------------------ geometry
    def _dimension(self, text: str) -> None:
        found = _DIMENSION.search(text)
        if found and text.startswith("GEOMETRY FOR WAVE FUNCTION"):
            self.out.dimensionality = int(found.group(1))

    def _final_geometry(self, text: str) -> None:
        found = _DIMENSION.search(text)
        if found and text.startswith("FINAL OPTIMIZED GEOMETRY"):
            self.out.dimensionality = int(found.group(1))

    def _lattice_done(self, rows: list[re.Match[str]], _skipped: list[str]) -> None:
        self._end_block()
        if len(rows) == 3:
            self.pending_lattice = _matrix(rows)

    def _cartesian_done(self, rows: list[re.Match[str]], _skipped: list[str]) -> None:
        self._end_block()
        if rows and self.pending_lattice is not None:
            self.cartesian = _Geometry(
                order=self._table_order,
                lattice=self.pending_lattice,
                numbers=[int(row.group(2)) for row in rows],
                coords=[[_float(row.group(i)) for i in (4, 5, 6)] for row in rows],
            )

    def _cell_done(self, rows: list[re.Match[str]], _skipped: list[str]) -> None:
        self._end_block()
        self.pending_cell = [_float(v) for v in rows[0].groups()] if rows else None

    def _atoms(self, text: str) -> None:
        if text.startswith("ATOMIC WAVEFUNCTION"):
            self.atomic_guess_seen = True

    def _asym_done(self, rows: list[re.Match[str]], skipped: list[str]) -> None:
        self._end_block()
        if not rows:
            return
        self.cell_block = _Geometry(
            order=self._table_order,
            cell_parameters=self.pending_cell,
            numbers=[int(row.group(3)) for row in rows],
            coords=[[_float(row.group(i)) for i in (5, 6, 7)] for row in rows],
            columns=" ".join(skipped),
        )
        self.pending_cell = None

    def _forces_done(self, rows: list[re.Match[str]], _skipped: list[str]) -> None:
        self._end_block()
        if rows:
            self.out.forces_ha_per_bohr = [
                [_float(row.group(i)) for i in (3, 4, 5)] for row in rows
            ]

    def _cell_gradient_done(self, rows: list[re.Match[str]], _skipped: list[str]) -> None:
        self._end_block()
        if len(rows) == 3:
            self.out.cell_gradient_ha_per_bohr = _matrix(rows)

    def _stress_done(self, rows: list[re.Match[str]], _skipped: list[str]) -> None:
        self._end_block()
        if len(rows) == 3:
            self.out.stress_ha_per_bohr3 = _matrix(rows)

    # ------------------------------------------------------------------ populations
    def _mulliken(self, text: str) -> None:
        if text.startswith("MULLIKEN POPULATION ANALYSIS"):
            self._start_block(
                _RowCollector(
                    _MULLIKEN_ATOM.match, self._mulliken_done, stop=_MULLIKEN_STOP, max_lines=20_000
                )
            )

    def _mulliken_done(self, rows: list[re.Match[str]], _skipped: list[str]) -> None:
        self._end_block()
        if not rows:
            return
        if self.mulliken_mode == "spin":
            self.mulliken_spin = rows
        else:
            self.mulliken_total = rows
        self.mulliken_mode = "total"

    # ------------------------------------------------------------------ vibrations, elastic
    def _modes(self, text: str) -> None:
        if text.startswith("MODES") and "EIGV" in text:
            self.frequency_tables += 1
            self.flags.add("frequency")
            if self.frequency_tables == 1:
                self._start_block(_RowCollector(_FREQ_ROW.match, self._modes_done, max_skip=2))

    def _modes_done(self, rows: list[re.Match[str]], _skipped: list[str]) -> None:
        self._end_block()
        self.out.frequencies = [
            FrequencyMode(
                first_mode=int(row.group(1)),
                last_mode=int(row.group(2)),
                frequency_cm1=_float(row.group(3)),
                irrep=row.group(4),
                ir_active=None if row.group(5) is None else row.group(5) == "A",
                ir_intensity_km_mol=None if row.group(6) is None else _float(row.group(6)),
                raman_active=None if row.group(7) is None else row.group(7) == "A",
            )
            for row in rows
        ]

    def _elastic(self, text: str) -> None:
        found = _ELASTIC.match(text)
        if found:
            self.flags.add("elastic")
            self.out.elastic_constants_unit = found.group(1)
            self._start_block(_RowCollector(_ELASTIC_ROW.match, self._elastic_done, max_skip=2))

    def _compliance(self, text: str) -> None:
        if text.startswith("ELASTIC MODULI (COMPLIANCE TENSOR)"):
            self._start_block(_RowCollector(_ELASTIC_ROW.match, self._compliance_done, max_skip=2))

    @staticmethod
    def _upper_triangle(rows: list[re.Match[str]]) -> list[list[float]] | None:
        """Symmetric matrix from CRYSTAL's upper-triangular ``| ... |`` rows.

        Values are taken by their fixed decimals, so run-together fields such as
        ``248.7824-108.0635`` still split into two numbers.
        """
        values = [[float(v) for v in _FIXED_DECIMAL.findall(row.group(1))] for row in rows]
        size = len(values[0]) if values else 0
        if (
            size == 0
            or len(values) != size
            or any(len(v) != size - i for i, v in enumerate(values))
        ):
            return None
        matrix = [[0.0] * size for _ in range(size)]
        for i, row_values in enumerate(values):
            for offset, value in enumerate(row_values):
                j = i + offset
                matrix[i][j] = value
                matrix[j][i] = value
        return matrix

    def _elastic_done(self, rows: list[re.Match[str]], _skipped: list[str]) -> None:
        self._end_block()
        self.out.elastic_constants = self._upper_triangle(rows)

    def _compliance_done(self, rows: list[re.Match[str]], _skipped: list[str]) -> None:
        self._end_block()
        self.out.compliance_tpa_inv = self._upper_triangle(rows)

    # ------------------------------------------------------------------ result
    def result(self) -> CrystalOutput:
        """Close open tables and derive calculation kind, geometry, populations and state."""
        if self.block is not None:
            self.block.done(self.block.rows, self.block.skipped)
            self.block = None
        if self.scf_announced:
            self._scf_for_cycles()
        out = self.out
        found = _TIMING.match(self.last_timing) if self.last_timing else None
        if found:
            out.telapse_s = _float(found.group(1))
            out.tcpu_s = _float(found.group(2))
        out.band_edges = [BandEdges(**edge) for edge in self.edges.values()]
        self.last_charges = _rows_floats(self.charge_rows)
        self.last_spins = _rows_floats(self.spin_rows)
        out.calculation = self._calculation_kind()
        out.structure = self._structure()
        out.mulliken = self._mulliken_analysis()
        return out

    def _calculation_kind(self) -> CalculationKind:
        """Tell what the crystal run did; PROPERTIES only when no crystal run is in the file.

        A properties run appended to a crystal run's output (one log for both) must not hide
        the optimisation or SCF before it: ``includes_properties`` says it is there.
        """
        self.out.includes_properties = "properties" in self.flags
        kind = self._crystal_kind()
        if (
            kind is CalculationKind.SINGLE_POINT
            and self.out.includes_properties
            and not self.out.scf
        ):
            return CalculationKind.PROPERTIES
        return kind

    def _crystal_kind(self) -> CalculationKind:
        for flag, kind in (
            ("elastic", CalculationKind.ELASTIC),
            ("eos", CalculationKind.EOS),
            ("frequency", CalculationKind.FREQUENCY),
        ):
            if flag in self.flags:
                return kind
        if self.out.opt_steps or self.out.opt_converged is not None:
            return CalculationKind.OPTIMISATION
        if "testgeom" in self.flags:
            return CalculationKind.TESTGEOM
        return CalculationKind.SINGLE_POINT

    def _structure(self) -> Structure | Molecule | None:
        """Return the last geometry printed: Cartesian lattice + atoms, or a later cell+atoms."""
        cart, cell = self.cartesian, self.cell_block
        try:
            if self.out.dimensionality == 0 and cell.numbers and "X(ANGSTROM)" in cell.columns:
                return Molecule([_species(z) for z in cell.numbers], cell.coords)
            if (
                cell.order > cart.order
                and cell.cell_parameters
                and "X/A" in cell.columns
                and "Z/C" in cell.columns
            ):
                lattice = Lattice.from_parameters(*cell.cell_parameters)
                return Structure(lattice, [_species(z) for z in cell.numbers], cell.coords)
            if cart.lattice is not None and cart.numbers:
                dims = self.out.dimensionality if self.out.dimensionality is not None else 3
                pbc = tuple(axis < dims for axis in range(3))
                lattice = Lattice(cart.lattice, pbc=pbc)  # type: ignore[arg-type]
                species = [_species(z) for z in cart.numbers]
                return Structure(lattice, species, cart.coords, coords_are_cartesian=True)
        except (ValueError, KeyError, TypeError):
            return None
        return None

    def _mulliken_analysis(self) -> MullikenAnalysis | None:
        """PPAN tables when printed, else the last per-cycle ``TOTAL ATOMIC CHARGES``."""
        rows = self.mulliken_total
        if rows:
            labels = [row.group(2) for row in rows]
            numbers = [int(row.group(3)) for row in rows]
            populations = [float(row.group(4)) for row in rows]
            spins = (
                [float(row.group(4)) for row in self.mulliken_spin]
                if self.mulliken_spin
                else self.last_spins
            )
        elif self.last_charges is not None and (self.cartesian.numbers or self.cell_block.numbers):
            numbers = self.cartesian.numbers or self.cell_block.numbers
            if len(numbers) != len(self.last_charges):
                return None
            labels = [str(_species(z)) for z in numbers]
            populations = self.last_charges
            spins = self.last_spins
        else:
            return None
        reference = self.reference_electrons
        if reference is None or len(reference) != len(populations):
            reference = [float(z) if z < 100 else float("nan") for z in numbers]
        net = [ref - pop for ref, pop in zip(reference, populations, strict=True)]
        return MullikenAnalysis(
            labels=[label.capitalize() for label in labels],
            atomic_numbers=[_true_z(z) for z in numbers],
            populations=populations,
            net_charges=None if any(value != value for value in net) else net,
            spins=spins if spins is not None and len(spins) == len(populations) else None,
        )
