"""CRYSTAL basis sets: a built-in library by name, or explicit per-element sets in CRYSTAL format.

Explicit layout (one block per element, the list closed by ``99 0``)::

    NAT NSHL                 conventional atomic number (Z, Z+200 with ECP), number of shells
    [ECP keyword]            INPUT / HAYWLC / HAYWSC / BARTHE / DURAND / STUTSC / STUTLC ...
    [ZNUC M M0 M1 ...]       INPUT only, then sum(M...) lines "exponent coefficient power"
    ITYB LAT NG CHE SCAL     per shell: type (0 general, 1 STO-nG, 2 3(6)-21G), angular (0 s, 1 sp,
    exponent coeff [coeff]   2 p, 3 d, 4 f, 5 g), primitives, electrons, scale; NG primitive lines
                             only for ITYB 0 (sp shells carry an s and a p coefficient)

``BASISSET <name>`` instead loads one of CRYSTAL's internal libraries; which elements each covers
is in :data:`LIBRARY_COVERAGE`, so a missing element is reported before CRYSTAL is ever started.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pymatgen.core import Element

from crystal_atomate.io.deck_lines import (
    CountMismatchError,
    DeckError,
    LineCursor,
    clean_lines,
)

#: ECP keywords followed directly by shells (parameters are built into CRYSTAL).
BUILTIN_ECPS = frozenset({"HAYWLC", "HAYWSC", "BARTHE", "DURAND", "STUTSC", "STUTLC"})
#: ``INPUT``: a free-format ECP whose parameters follow in the deck.
ECP_KEYWORDS = BUILTIN_ECPS | {"INPUT"}
_TERMINATOR = "99 0"


def _z_range(first: str, last: str) -> frozenset[int]:
    return frozenset(range(Element(first).Z, Element(last).Z + 1))


#: Elements covered by CRYSTAL's internal basis-set libraries (keys upper-case).
#: The CRYSTAL23 manual was not at hand: ranges marked "uncertain" are from memory of the
#: library papers and should be checked against ``Loading internal basis set`` in a real output.
LIBRARY_COVERAGE: dict[str, frozenset[int]] = {
    "STO-3G": _z_range("H", "Xe"),
    "STO-6G": _z_range("H", "Kr"),  # uncertain
    "3-21G": _z_range("H", "Xe"),  # uncertain
    "6-31G*": _z_range("H", "Zn"),  # uncertain
    "6-31G**": _z_range("H", "Zn"),  # uncertain
    "POB-DZVP": _z_range("H", "Br"),  # uncertain
    "POB-DZVPP": _z_range("H", "Br"),  # uncertain
    "POB-TZVP": _z_range("H", "Br"),  # uncertain (Rb-I added later in some versions)
    "POB-TZVP-REV2": _z_range("H", "Br"),  # uncertain (the rev2 paper covers H-Br)
    "DEF2-SVP": _z_range("H", "Rn"),  # uncertain
    "DEF2-TZVP": _z_range("H", "Rn"),  # uncertain
    "DEF2-MSVP": _z_range("H", "Rn"),  # uncertain (PBEh-3c basis; lanthanides may be absent)
    "SOLDEF2MSVP": _z_range("H", "Rn"),  # uncertain (HSEsol-3c basis)
    "MINIX": _z_range("H", "Rn"),  # uncertain (HF-3c basis)
}


class BasisParseError(DeckError):
    """Malformed basis-set text; the message names the line number and its text."""


class UnknownBasisElementError(ValueError):
    """The structure contains elements the basis set does not define."""

    def __init__(self, missing: Iterable[str], basis: str) -> None:
        self.missing = sorted(set(missing), key=lambda symbol: Element(symbol).Z)
        self.basis = basis
        super().__init__(
            f"basis set {basis} has no basis for element(s): {', '.join(self.missing)}"
        )


class UnknownBasisLibraryError(ValueError):
    """A ``BASISSET`` name not in :data:`LIBRARY_COVERAGE`, so its elements cannot be checked."""


def format_number(value: float) -> str:
    """Return the shortest text that reads back as exactly ``value`` (for Fortran list input)."""
    return repr(float(value))


class Shell(BaseModel):
    """One shell: ``ITYB LAT NG CHE SCAL`` and, for ITYB 0, its primitives."""

    model_config = ConfigDict(extra="forbid")

    ityb: Literal[0, 1, 2]
    lat: Literal[0, 1, 2, 3, 4, 5]
    ng: int = Field(gt=0)
    che: float = Field(ge=0)
    scal: float
    primitives: list[tuple[float, ...]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _primitives_match_header(self) -> Shell:
        """ITYB 0 lists NG primitives (three columns for sp shells); built-in types list none."""
        if self.ityb != 0:
            if self.primitives:
                raise ValueError(f"shell type ITYB={self.ityb} takes no primitive lines")
            return self
        if len(self.primitives) != self.ng:
            raise ValueError(
                f"shell declares NG={self.ng} primitives but has {len(self.primitives)}"
            )
        width = 3 if self.lat == 1 else 2
        if any(len(p) != width for p in self.primitives):
            raise ValueError(
                f"LAT={self.lat} primitives need {width} columns (exponent + coefficients)"
            )
        if any(p[0] <= 0 for p in self.primitives):
            raise ValueError("primitive exponents must be positive")
        return self

    def to_lines(self) -> list[str]:
        """Return the shell line ``ITYB LAT NG CHE SCAL`` and one line per primitive."""
        header = (
            f"{self.ityb} {self.lat} {self.ng} {format_number(self.che)} {format_number(self.scal)}"
        )
        return [header, *(" ".join(format_number(v) for v in p) for p in self.primitives)]


class Ecp(BaseModel):
    """An effective core potential: a built-in kind, or ``INPUT`` with its parameters."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    znuc: float | None = None
    counts: list[int] = Field(default_factory=list)
    terms: list[tuple[float, float, int]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Ecp:
        if self.kind not in ECP_KEYWORDS:
            raise ValueError(
                f"unknown ECP keyword {self.kind!r}; expected one of {sorted(ECP_KEYWORDS)}"
            )
        if self.kind == "INPUT":
            if self.znuc is None or not self.counts:
                raise ValueError("INPUT ECP needs ZNUC and the term counts M M0 M1 ...")
            if len(self.terms) != sum(self.counts):
                raise ValueError(
                    f"INPUT ECP declares {sum(self.counts)} terms but has {len(self.terms)}"
                )
        elif self.znuc is not None or self.counts or self.terms:
            raise ValueError(f"built-in ECP {self.kind} takes no parameters")
        return self

    def to_lines(self) -> list[str]:
        """Return the ECP lines: the built-in name alone, or ``INPUT`` with its parameters."""
        if self.kind != "INPUT":
            return [self.kind]
        head = " ".join([format_number(self.znuc), *map(str, self.counts)])
        return [
            "INPUT",
            head,
            *(f"{format_number(a)} {format_number(c)} {n}" for a, c, n in self.terms),
        ]


class AtomBasis(BaseModel):
    """The basis of one element: ``NAT NSHL``, an optional ECP, and the shells."""

    model_config = ConfigDict(extra="forbid")

    number: int = Field(gt=0)
    ecp: Ecp | None = None
    shells: list[Shell] = Field(min_length=1)

    @model_validator(mode="after")
    def _ecp_matches_number(self) -> AtomBasis:
        """CRYSTAL decides "ECP or not" from NAT: above 200 an ECP line must follow, below none."""
        if (self.number > 200) != (self.ecp is not None):
            raise ValueError(f"NAT={self.number}: an ECP keyword is required iff NAT > 200")
        Element.from_Z(self.number % 100)
        return self

    @property
    def element(self) -> str:
        """The element symbol (NAT modulo 100)."""
        return Element.from_Z(self.number % 100).symbol

    def to_lines(self) -> list[str]:
        """Return the atom's basis lines: ``NAT NSHL``, the ECP if any, then its shells."""
        lines = [f"{self.number} {len(self.shells)}"]
        if self.ecp is not None:
            lines.extend(self.ecp.to_lines())
        for shell in self.shells:
            lines.extend(shell.to_lines())
        return lines


class BasisSet(BaseModel):
    """Either an internal library (``library``) or explicit per-element sets (``atoms``)."""

    model_config = ConfigDict(extra="forbid")

    library: str | None = None
    atoms: list[AtomBasis] = Field(default_factory=list)
    ghosts: list[int] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> BasisSet:
        if (self.library is None) == (not self.atoms):
            raise ValueError(
                "a basis set is either a library name or a list of per-element basis sets"
            )
        if self.library is not None and (
            not re.fullmatch(r"\S+", self.library) or self.ghosts is not None
        ):
            raise ValueError(f"invalid library basis {self.library!r} (one word, no GHOSTS)")
        numbers = [atom.number for atom in self.atoms]
        duplicated = sorted({n for n in numbers if numbers.count(n) > 1})
        if duplicated:
            raise ValueError(f"atomic number(s) {duplicated} have more than one basis set")
        return self

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_library(cls, name: str) -> BasisSet:
        """CRYSTAL's internal basis ``name`` (e.g. ``POB-TZVP-REV2``, ``STO-3G``, ``def2-mSVP``)."""
        return cls(library=name)

    @classmethod
    def from_string(cls, text: str) -> BasisSet:
        """Explicit basis sets from text: one or more elements, ``99 0`` and GHOSTS optional.

        A YAML front matter (``---`` ... ``---``, as in aiida-crystal17 files) is skipped.
        """
        body = re.sub(r"\A\s*---\n.*?\n---\s*\n", "", text, flags=re.DOTALL)
        offset = text[: len(text) - len(body)].count("\n")
        cursor = LineCursor(
            [(number + offset, line) for number, line in clean_lines(body)], error=BasisParseError
        )
        basis = parse_basis(cursor)
        if not cursor.at_end():
            raise cursor.error("nothing after the basis set")
        return basis

    @classmethod
    def from_file(cls, path: str | Path) -> BasisSet:
        """Explicit basis sets from a file."""
        return cls.from_string(Path(path).read_text())

    @classmethod
    def from_files(cls, paths: Iterable[str | Path]) -> BasisSet:
        """Merge per-element files (each may hold several elements) into one basis set."""
        return cls(atoms=[atom for path in paths for atom in cls.from_file(path).atoms])

    @classmethod
    def from_directory(
        cls, directory: str | Path, elements: Iterable[str], pattern: str = "*"
    ) -> BasisSet:
        """Pick the basis for each of ``elements`` from the files in ``directory``.

        Each element must be defined by exactly one file, so an unintended choice cannot happen.
        """
        wanted = {Element(str(e)).symbol for e in elements}
        found: dict[str, list[tuple[Path, AtomBasis]]] = {}
        for path in sorted(Path(directory).glob(pattern)):
            if not path.is_file():
                continue
            try:
                atoms = cls.from_file(path).atoms
            except (BasisParseError, ValueError):
                continue
            for atom in atoms:
                if atom.element in wanted:
                    found.setdefault(atom.element, []).append((path, atom))
        missing = wanted - found.keys()
        if missing:
            raise UnknownBasisElementError(missing, f"directory {directory}")
        ambiguous = {
            symbol: [str(p.name) for p, _ in hits]
            for symbol, hits in found.items()
            if len(hits) > 1
        }
        if ambiguous:
            raise ValueError(
                f"several basis files define the same element in {directory}: {ambiguous}"
            )
        return cls(
            atoms=[found[symbol][0][1] for symbol in sorted(wanted, key=lambda s: Element(s).Z)]
        )

    # -- queries --------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """A short description for messages: the library name, or the explicit elements."""
        return self.library or "explicit(" + ",".join(atom.element for atom in self.atoms) + ")"

    @property
    def elements(self) -> frozenset[str]:
        """Element symbols this basis covers."""
        if self.library is not None:
            coverage = LIBRARY_COVERAGE.get(self.library.upper())
            if coverage is None:
                raise UnknownBasisLibraryError(
                    f"basis library {self.library!r} is not in LIBRARY_COVERAGE; its elements are "
                    "unknown"
                )
            return frozenset(Element.from_Z(z).symbol for z in coverage)
        return frozenset(atom.element for atom in self.atoms)

    @property
    def ecp_elements(self) -> frozenset[str]:
        """Elements whose explicit basis carries an ECP: their atoms are written as Z+200."""
        return frozenset(atom.element for atom in self.atoms if atom.ecp is not None)

    def check_elements(self, elements: Iterable[str | Element]) -> None:
        """Raise :class:`UnknownBasisElementError` naming every element the basis lacks."""
        symbols = {Element(str(e)).symbol for e in elements}
        missing = symbols - self.elements
        if missing:
            raise UnknownBasisElementError(missing, self.name)

    # -- text -----------------------------------------------------------------------------------
    def to_lines(self) -> list[str]:
        """Return the deck lines: ``BASISSET name``, or the sets, ``99 0`` and GHOSTS (no END)."""
        if self.library is not None:
            return ["BASISSET", self.library]
        lines = [line for atom in self.atoms for line in atom.to_lines()]
        lines.append(_TERMINATOR)
        if self.ghosts is not None:
            lines.extend(["GHOSTS", str(len(self.ghosts)), " ".join(map(str, self.ghosts))])
        return lines

    def to_string(self) -> str:
        """Text of the basis block, parseable by :meth:`from_string`."""
        return "\n".join(self.to_lines()) + "\n"


def parse_basis(cursor: LineCursor) -> BasisSet:
    """Parse explicit basis sets at the cursor, through ``99 0`` and GHOSTS (or the end of input).

    Parameters
    ----------
    cursor
        At the first ``NAT NSHL`` line.

    Returns
    -------
    BasisSet
        The explicit basis sets.

    Raises
    ------
    CountMismatchError
        (or the cursor's own error type) when NSHL or NG does not match the lines that follow:
        CRYSTAL would read the next element's header as a shell, or a shell as a primitive.
    """
    atoms: list[AtomBasis] = []
    ghosts = None
    while not cursor.at_end():
        start = cursor.index
        _check_element_header(cursor, atoms)
        nat, nshl = cursor.ints(2, "'NAT NSHL' or '99 0'")
        if nat == 99:
            if cursor.peek_keyword() == "GHOSTS":
                cursor.line("GHOSTS")
                count = cursor.ints(1, "the number of ghost atoms")[0]
                ghosts = []
                while len(ghosts) < count:
                    ghosts.extend(cursor.ints(None, "ghost atom labels"))
            break
        ecp = _parse_ecp(cursor) if cursor.peek_keyword() in ECP_KEYWORDS else None
        header = cursor.number(-1)
        shells = []
        for index in range(nshl):
            if cursor.at_end() or len(cursor.peek().split()) < 5:
                raise cursor.error("a shell 'ITYB LAT NG CHE SCAL'", error=CountMismatchError,
                                   hint=f"NAT={nat} on line {header} declares NSHL={nshl} shells, "
                                        f"{index} follow (or a shell above has too few primitives)")
            shells.append(_parse_shell(cursor))
        try:
            atoms.append(AtomBasis(number=nat, ecp=ecp, shells=shells))
        except ValueError as exc:
            cursor.index = start
            raise cursor.error(f"a valid basis for NAT={nat} ({exc})") from None
    if not atoms:
        raise cursor.error("a basis set 'NAT NSHL'")
    return BasisSet(atoms=atoms, ghosts=ghosts)


def _check_element_header(cursor: LineCursor, atoms: list[AtomBasis]) -> None:
    """Raise a count error when a shell or primitive line sits where ``NAT NSHL`` belongs."""
    line = cursor.peek()
    if line is None or len(line.split()) < 3 or not atoms:
        return
    last = atoms[-1]
    raise cursor.error(
        "'NAT NSHL' or '99 0'",
        error=CountMismatchError,
        hint=f"the element before (NAT={last.number}) declares NSHL={len(last.shells)}: "
        "a shell count or a primitive count (NG) above is too small",
    )


def _parse_ecp(cursor: LineCursor) -> Ecp:
    kind = cursor.line("an ECP keyword").split()[0].upper()
    if kind != "INPUT":
        return Ecp(kind=kind)
    znuc, *counts = cursor.reals(None, "'ZNUC M M0 M1 ...'")
    counts = [int(count) for count in counts]
    terms = []
    for _ in range(sum(counts)):
        exponent, coefficient, power = cursor.reals(3, "an ECP term 'exponent coefficient power'")
        terms.append((exponent, coefficient, int(power)))
    return Ecp(kind=kind, znuc=znuc, counts=counts, terms=terms)


def _parse_shell(cursor: LineCursor) -> Shell:
    start = cursor.index
    what = "a shell 'ITYB LAT NG CHE SCAL'"
    ityb, lat, ng = cursor.ints(3, what)
    cursor.index = start
    che, scal = cursor.reals(5, what)[3:5]
    width = 3 if lat == 1 else 2
    primitives = []
    if ityb == 0:
        for index in range(ng):
            if cursor.at_end() or not width <= len(cursor.peek().split()) < 5:
                raise cursor.error(
                    f"a primitive line with {width} numbers",
                    error=CountMismatchError,
                    hint=f"the shell on line {cursor.lines[start][0]} declares NG={ng} "
                    f"primitives, {index} follow",
                )
            primitives.append(tuple(cursor.reals(width, f"a primitive line with {width} numbers")))
    try:
        return Shell(ityb=ityb, lat=lat, ng=ng, che=che, scal=scal, primitives=primitives)
    except ValidationError as exc:
        cursor.index = start
        raise cursor.error(f"a valid shell ({exc.errors()[0]['msg']})") from None
