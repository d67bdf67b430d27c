"""A typed model of the CRYSTAL ``.d12`` deck: ``CrystalInput.from_string(x.to_string()) == x``.

The deck is title, geometry block (closed by END, or by ``BASISSET <name>`` which also replaces
the basis block), basis block (closed by END), Hamiltonian/SCF block (closed by END). The reader
is strict: a keyword CRYSTAL23 does not know in its block (:mod:`crystal_atomate.io.d12_keywords`),
a count that does not match its lines or a missing terminator raises a :class:`DeckError` naming
the line and the likely fix. Known keywords the model does not type are kept verbatim in ``extra``
/ ``geometry_keywords`` lists, in their original order, after the typed keywords of the same
block; so every deck CRYSTAL accepts can be read, edited and written back without loss of meaning.
``extra`` is also the escape hatch: whatever it holds is written as is, and
``from_string(..., allow_unknown=[...])`` reads keywords the tables miss.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pymatgen.core import Element, Molecule, Structure

from crystal_atomate.io.basis import LIBRARY_COVERAGE, BasisSet, format_number, parse_basis
from crystal_atomate.io.d12_keywords import (
    BLOCK_NAMES,
    CORRELATION_NAMES,
    COUNTED,
    EXCHANGE_NAMES,
    FUNCTIONALS,
    KEYWORDS,
    NUMERIC,
    SUBBLOCK,
    SUBBLOCK_KEYWORDS,
    TERMINATORS,
    blocks_knowing,
)
from crystal_atomate.io.deck_lines import (
    CountMismatchError,
    D12ParseError,
    DeckError,
    LineCursor,
    MissingTerminatorError,
    UnknownKeywordError,
    allowed_keywords,
    clean_lines,
    did_you_mean,
    is_argument_line,
    parse_real,
)
from crystal_atomate.io.geometry import (
    ExternalGeometry,
    Geometry,
    geometry_from_structure,
    parse_geometry,
)

OPT_TYPES = ("FULLOPTG", "CELLONLY", "ITATOCEL", "CVOLOPT", "INTREDUN", "ATOMONLY")
GRIDS = ("OLDGRID", "LGRID", "XLGRID", "XXLGRID", "XXXLGRID", "HUGEGRID")
_DISPERSION_SUFFIX = re.compile(r"-D3(BJ)?$")
#: Keywords opening a sub-block closed by its own END; unknown ones are copied whole into ``extra``.
__all__ = [
    "FUNCTIONALS",
    "GRIDS",
    "OPT_TYPES",
    "CountMismatchError",
    "CrystalInput",
    "D12ParseError",
    "DeckError",
    "Dft",
    "Elastcon",
    "Eos",
    "FreqCalc",
    "Hamiltonian",
    "MissingTerminatorError",
    "OptGeom",
    "Scf",
    "Shrink",
    "UnknownKeywordError",
    "is_end",
    "is_functional",
    "looks_like_slab",
]


def is_end(keyword: str | None) -> bool:
    """CRYSTAL closes a block with any word starting with END (END, ENDGEOM, ENDSCF, ENDOPT ...)."""
    return keyword is not None and keyword.startswith("END")


def is_functional(name: str) -> bool:
    """Tell whether ``name`` is a CRYSTAL23 functional keyword, maybe with a D3 suffix."""
    name = name.upper()
    return name in FUNCTIONALS or _DISPERSION_SUFFIX.sub("", name) in FUNCTIONALS


class _DeckCursor(LineCursor):
    """A cursor over a ``.d12`` deck that knows which unknown keywords the caller allows."""

    def __init__(self, lines: list[tuple[int, str]], allow_unknown: bool | Collection[str]) -> None:
        super().__init__(lines, error=D12ParseError)
        self.allow_all = allow_unknown is True
        self.periodic = False
        self.allowed = allowed_keywords(allow_unknown)

    def allows(self, keyword: str) -> bool:
        """Tell whether the caller allowed ``keyword`` (or everything) in ``allow_unknown``."""
        return self.allow_all or keyword in self.allowed


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- geometry-block sub-blocks -----------------------------------------------------------------
class OptGeom(_Block):
    """``OPTGEOM ... ENDOPT``. ``type=None`` is CRYSTAL23's default: atoms and cell."""

    type: Literal[OPT_TYPES] | None = None  # type: ignore[valid-type]
    toldeg: float | None = Field(default=None, gt=0)
    toldex: float | None = Field(default=None, gt=0)
    toldee: int | None = Field(default=None, gt=0)
    maxcycle: int | None = Field(default=None, gt=0)
    finalrun: Literal[0, 1, 2, 3, 4] | None = None
    restart: bool = False
    hessopt: bool = False
    onelog: bool = False
    maxtradius: float | None = Field(default=None, gt=0)
    trustradius: bool = False
    printopt: bool = False
    extra: list[str] = Field(default_factory=list)

    def to_lines(self) -> list[str]:
        """Return the block's deck lines, ``OPTGEOM`` through ``ENDOPT``."""
        return ["OPTGEOM", *_typed_lines(self, _OPT_SPEC), *self.extra, "ENDOPT"]


class FreqCalc(_Block):
    """``FREQCALC ... ENDFREQ``: frequencies, IR/Raman intensities, phonon dispersion."""

    numderiv: Literal[1, 2] | None = None
    restart: bool = False
    intens: bool = False
    intpol: bool = False
    intcphf: list[str] | None = None
    intraman: bool = False
    ramanrea: bool = False
    ramexp: tuple[float, float] | None = None
    irspec: list[str] | None = None
    dispersion: bool = False
    extra: list[str] = Field(default_factory=list)

    @field_validator("ramexp")
    @classmethod
    def _positive(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and (value[0] < 0 or value[1] <= 0):
            raise ValueError("RAMEXP needs temperature >= 0 K and wavelength > 0 nm")
        return value

    def to_lines(self) -> list[str]:
        """Return the block's deck lines, ``FREQCALC`` through ``ENDFREQ``."""
        lines = ["FREQCALC", *_typed_lines(self, _FREQ_SPEC)]
        for name in ("intcphf", "irspec"):
            block = getattr(self, name)
            if block is not None:
                lines.extend([name.upper(), *block, "END"])
        return [*lines, *self.extra, "ENDFREQ"]


class Elastcon(_Block):
    """``ELASTCON ... END`` (``PREOPTGEOM`` relaxes the structure first)."""

    preoptgeom: bool = False
    extra: list[str] = Field(default_factory=list)

    def to_lines(self) -> list[str]:
        """Return the block's deck lines, ``ELASTCON`` through ``END``."""
        return ["ELASTCON", *(["PREOPTGEOM"] if self.preoptgeom else []), *self.extra, "END"]


class Eos(_Block):
    """``EOS ... END``: RANGE (min, max volume ratio, points), PRANGE (pressures GPa, points)."""

    range: tuple[float, float, int] | None = None
    prange: tuple[float, float, int] | None = None
    preoptgeom: bool = False
    extra: list[str] = Field(default_factory=list)

    def to_lines(self) -> list[str]:
        """Return the block's deck lines, ``EOS`` through ``END``."""
        lines = ["EOS"]
        for name in ("range", "prange"):
            value = getattr(self, name)
            if value is not None:
                lines.extend([name.upper(), _join(value)])
        return [*lines, *(["PREOPTGEOM"] if self.preoptgeom else []), *self.extra, "END"]


# -- Hamiltonian and SCF ---------------------------------------------------------------------------
class Dft(_Block):
    """``DFT ... ENDDFT``: one functional keyword, or an EXCHANGE/CORRELAT pair."""

    functional: str | None = None
    exchange: str | None = None
    correlation: str | None = None
    spin: bool = False
    grid: Literal[GRIDS] | None = None  # type: ignore[valid-type]
    extra: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_functional(self) -> Dft:
        pair = (self.exchange, self.correlation)
        if self.functional is not None:
            if any(pair):
                raise ValueError("give either a functional or an EXCHANGE/CORRELAT pair, not both")
            if not is_functional(self.functional):
                raise ValueError(f"unknown functional {self.functional!r}")
        elif self.exchange is None and self.correlation is None:
            raise ValueError("a DFT block needs a functional or EXCHANGE/CORRELAT")
        for name in (self.functional, *pair):
            if name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9\-+]*", name):
                raise ValueError(f"invalid functional keyword {name!r}")
        return self

    def to_lines(self) -> list[str]:
        """Return the block's deck lines, ``DFT`` through ``ENDDFT``."""
        lines = ["DFT"]
        if self.functional:
            lines.append(self.functional)
        for key, value in (("EXCHANGE", self.exchange), ("CORRELAT", self.correlation)):
            if value is not None:
                lines.extend([key, value])
        lines.extend(["SPIN"] if self.spin else [])
        lines.extend([self.grid] if self.grid else [])
        return [*lines, *self.extra, "ENDDFT"]


class Hamiltonian(_Block):
    """RHF (CRYSTAL's default, written as nothing), UHF/ROHF, or DFT."""

    method: Literal["RHF", "UHF", "ROHF"] = "RHF"
    dft: Dft | None = None

    @model_validator(mode="after")
    def _hf_or_dft(self) -> Hamiltonian:
        if self.dft is not None and self.method != "RHF":
            raise ValueError(
                f"{self.method} is a Hartree-Fock method; spin-polarised DFT uses Dft(spin=True)"
            )
        return self

    @property
    def spin_polarized(self) -> bool:
        """Tell whether the run is spin polarized (any method but RHF, or a spin DFT block)."""
        return self.method != "RHF" or (self.dft is not None and self.dft.spin)

    def to_lines(self) -> list[str]:
        """Return the Hamiltonian's lines: the DFT block, else the HF method (none for RHF)."""
        if self.dft is not None:
            return self.dft.to_lines()
        return [] if self.method == "RHF" else [self.method]


class Shrink(_Block):
    """``SHRINK``: ``IS ISP`` (isotropic) or ``0 ISP`` followed by the 3-integer mesh."""

    mesh: int | tuple[int, int, int]
    isp: int = Field(gt=0)
    isp2: int | None = Field(default=None, gt=0)

    @field_validator("mesh")
    @classmethod
    def _positive_mesh(cls, mesh: int | tuple[int, int, int]) -> int | tuple[int, int, int]:
        if min(mesh if isinstance(mesh, tuple) else (mesh,)) < 1:
            raise ValueError("SHRINK factors must be positive")
        return mesh

    def to_lines(self) -> list[str]:
        """Return the ``SHRINK`` lines (a tuple mesh adds its own line after IS = 0)."""
        head = [
            0 if isinstance(self.mesh, tuple) else self.mesh,
            self.isp,
            *([self.isp2] if self.isp2 else []),
        ]
        return [
            "SHRINK",
            _join(head),
            *([_join(self.mesh)] if isinstance(self.mesh, tuple) else []),
        ]


class Scf(_Block):
    """SCF keywords of the last block; ``extra`` keeps anything else verbatim, in order."""

    shrink: Shrink | None = None
    tolinteg: tuple[int, int, int, int, int] | None = None
    toldee: int | None = Field(default=None, gt=0)
    maxcycle: int | None = Field(default=None, gt=0)
    fmixing: int | None = Field(default=None, ge=0, le=100)
    levshift: tuple[int, int] | None = None
    broyden: tuple[float, int, int] | None = None
    anderson: bool = False
    smear: float | None = Field(default=None, gt=0)
    atomspin: list[tuple[int, int]] | None = None
    spinlock: tuple[int, int] | None = None
    guessp: bool = False
    ppan: bool = False
    ldremo: int | None = None
    nodiis: bool = False
    extra: list[str] = Field(default_factory=list)

    @field_validator("tolinteg")
    @classmethod
    def _tolinteg_positive(cls, value: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if value is not None and min(value) < 1:
            raise ValueError("TOLINTEG needs 5 positive integers")
        return value

    @field_validator("atomspin")
    @classmethod
    def _atomspin(cls, value: list[tuple[int, int]] | None) -> list[tuple[int, int]] | None:
        if value is not None:
            if not value:
                raise ValueError("ATOMSPIN needs at least one (atom, spin) pair")
            if any(label < 1 or spin not in (-1, 0, 1) for label, spin in value):
                raise ValueError("ATOMSPIN pairs are (1-based atom label, spin in -1/0/+1)")
        return value

    @field_validator("spinlock")
    @classmethod
    def _spinlock(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and value[1] < 0:
            raise ValueError("SPINLOCK cycle count must be >= 0")
        return value

    def to_lines(self) -> list[str]:
        """Return the SCF keyword lines of the last block (``SHRINK`` first)."""
        lines = self.shrink.to_lines() if self.shrink else []
        lines.extend(_typed_lines(self, _SCF_SPEC))
        if self.atomspin is not None:
            lines.extend(
                ["ATOMSPIN", str(len(self.atomspin)), *(_join(pair) for pair in self.atomspin)]
            )
        return [*lines, *self.extra]


# -- table-driven keywords: (field, KEYWORD, converter for the argument line or None for a flag) ---
_Spec = list[tuple[str, str, Callable | None]]
_OPT_SPEC: _Spec = [
    ("toldeg", "TOLDEG", float),
    ("toldex", "TOLDEX", float),
    ("toldee", "TOLDEE", int),
    ("maxcycle", "MAXCYCLE", int),
    ("finalrun", "FINALRUN", int),
    ("restart", "RESTART", None),
    ("hessopt", "HESSOPT", None),
    ("onelog", "ONELOG", None),
    ("maxtradius", "MAXTRADIUS", float),
    ("trustradius", "TRUSTRADIUS", None),
    ("printopt", "PRINTOPT", None),
]
_FREQ_SPEC: _Spec = [
    ("restart", "RESTART", None),
    ("numderiv", "NUMDERIV", int),
    ("intens", "INTENS", None),
    ("intpol", "INTPOL", None),
    ("intraman", "INTRAMAN", None),
    ("ramanrea", "RAMANREA", None),
    ("ramexp", "RAMEXP", (float, float)),
    ("dispersion", "DISPERSION", None),
]
_SCF_SPEC: _Spec = [
    ("tolinteg", "TOLINTEG", (int,) * 5),
    ("toldee", "TOLDEE", int),
    ("maxcycle", "MAXCYCLE", int),
    ("fmixing", "FMIXING", int),
    ("levshift", "LEVSHIFT", (int, int)),
    ("broyden", "BROYDEN", (float, int, int)),
    ("anderson", "ANDERSON", None),
    ("smear", "SMEAR", float),
    ("spinlock", "SPINLOCK", (int, int)),
    ("guessp", "GUESSP", None),
    ("ppan", "PPAN", None),
    ("ldremo", "LDREMO", int),
    ("nodiis", "NODIIS", None),
]


def _join(values) -> str:
    return " ".join(format_number(v) if isinstance(v, float) else str(v) for v in values)


def _typed_lines(model: BaseModel, spec: _Spec) -> list[str]:
    """Render the set keywords of ``spec``: a flag alone, otherwise keyword + argument line."""
    lines = []
    if isinstance(model, OptGeom) and model.type is not None:
        lines.append(model.type)
    for field, keyword, convert in spec:
        value = getattr(model, field)
        if value is None or value is False:
            continue
        lines.append(keyword)
        if convert is not None:
            lines.append(_join(value) if isinstance(value, tuple) else _join([value]))
    return lines


def _read_typed(cursor: LineCursor, spec: _Spec, fields: dict) -> bool:
    """If the current line is a keyword of ``spec``, consume it (and its arguments) into ``fields``.

    Arguments may sit on the keyword line itself (``MAXCYCLE 100``) or on the next line.
    """
    keyword = cursor.peek_keyword()
    for field, name, convert in spec:
        if keyword != name:
            continue
        if field in fields:
            raise cursor.error(f"one {name}", hint=f"{name} is given twice in this block; keep one")
        inline = cursor.line(name).split()[1:]
        if convert is None:
            fields[field] = True
            return True
        kinds = convert if isinstance(convert, tuple) else (convert,)
        what = f"{len(kinds)} argument(s) for {name}"
        if inline:
            cursor.index -= 1
            try:
                values = [parse_real(token) for token in inline[: len(kinds)]]
            except ValueError:
                raise cursor.error(what) from None
            if len(values) < len(kinds):
                raise cursor.error(what)
            cursor.index += 1
        else:
            values = cursor.reals(len(kinds), what)
        try:
            converted = [_exact(kind, value) for kind, value in zip(kinds, values, strict=True)]
        except ValueError:
            cursor.index -= 1
            raise cursor.error(f"integer argument(s) for {name}") from None
        fields[field] = tuple(converted) if isinstance(convert, tuple) else converted[0]
        return True
    return False


def _exact(kind: type, value: float) -> float | int:
    if kind is int:
        if value != int(value):
            raise ValueError(value)
        return int(value)
    return value


def _copy_subblock(cursor: _DeckCursor) -> list[str]:
    """Return an opener line through its END, verbatim.

    Keywords checked where the sub-block has a table.
    """
    opener = (cursor.peek_keyword(), cursor.number())
    table = SUBBLOCK_KEYWORDS.get(opener[0])
    lines = [cursor.line("a sub-block")]
    while not is_end(cursor.peek_keyword()):
        if cursor.at_end():
            raise cursor.error(f"END closing {opener[0]}", error=MissingTerminatorError,
                               hint=f"{opener[0]} opened on line {opener[1]} is never closed")
        keyword = cursor.peek_keyword()
        if (table is not None and not is_argument_line(cursor.peek()) and keyword not in table
                and not cursor.allows(keyword)):
            raise _unknown_keyword(cursor, opener[0], keyword, opener, table)
        lines.append(cursor.line(f"END closing {opener[0]}"))
    return [*lines, cursor.line("END")]


def _untyped(cursor: _DeckCursor, block: str, opener: tuple[str, int] | None = None) -> list[str]:
    """Return a known keyword of ``block`` the model does not type, with its argument lines.

    The lines are kept verbatim.

    Raises the typed error CRYSTAL's own failure would hide: numbers where a keyword belongs
    (a count above is too small, or a keyword line was lost), a keyword of another block (its
    block's terminator is missing), or a keyword no block knows (a misspelling).
    """
    line = cursor.peek()
    what = f"a keyword of the {BLOCK_NAMES[block]} block"
    if is_argument_line(line):
        raise cursor.error(
            what,
            error=CountMismatchError,
            hint="numbers with no keyword before them: a count above (atoms, shells, "
            "entries of a keyword) is too small, or a keyword line was lost",
        )
    keyword = line.split()[0].upper()
    arguments = KEYWORDS[block].get(keyword)
    if arguments is None:
        if not cursor.allows(keyword):
            raise _unknown_keyword(cursor, block, keyword, opener)
        arguments = NUMERIC
    if arguments == SUBBLOCK:
        return _copy_subblock(cursor)
    lines = [cursor.line(keyword)]
    if arguments == NUMERIC:
        while not cursor.at_end() and is_argument_line(cursor.peek()):
            lines.append(cursor.line("an argument"))
    elif arguments == COUNTED:
        lines.extend(_counted_lines(cursor, keyword))
    else:
        lines.extend(cursor.line(f"an argument of {keyword}") for _ in range(arguments))
    return lines


def _counted_lines(cursor: LineCursor, keyword: str) -> list[str]:
    """``N`` then exactly N lines of numbers (ATOMINSE, ATOMDISP, MODISYMM ...)."""
    if cursor.at_end() or len(cursor.peek().split()) != 1:
        raise cursor.error(
            f"the number of {keyword} entries (one integer)", error=CountMismatchError
        )
    count = cursor.ints(1, f"the number of {keyword} entries")[0]
    counted_at = cursor.number(-1)
    lines = [str(cursor.lines[cursor.index - 1][1])]
    for index in range(count):
        if cursor.at_end() or not is_argument_line(cursor.peek()):
            raise cursor.error(
                f"an entry of {keyword}",
                error=CountMismatchError,
                hint=f"{keyword} on line {counted_at} announces {count} entries, {index} follow",
            )
        lines.append(cursor.line(f"an entry of {keyword}"))
    if not cursor.at_end() and is_argument_line(cursor.peek()):
        raise cursor.error(
            "a keyword",
            error=CountMismatchError,
            hint=f"{keyword} on line {counted_at} announces {count} entries, more follow",
        )
    return lines


def _unknown_keyword(cursor: LineCursor, block: str, keyword: str, opener: tuple[str, int] | None,
                     table: dict | None = None) -> DeckError:
    """Return the error for ``keyword`` in ``block``.

    Misplaced (terminator missing) or unknown (misspelt).
    """
    what = f"a keyword of the {BLOCK_NAMES.get(block, block)} block"
    table = KEYWORDS[block] if table is None else table
    elsewhere = [name for name in blocks_knowing(keyword) if name != block]
    if elsewhere and opener is not None:
        name, line = opener
        return cursor.error(
            what,
            error=MissingTerminatorError,
            hint=f"{keyword} belongs to the {BLOCK_NAMES[elsewhere[0]]} block: {name} opened on "
            f"line {line} is not closed, add {TERMINATORS.get(block, 'END')} before line "
            f"{cursor.number()}",
        )
    if elsewhere:
        return cursor.error(what, error=UnknownKeywordError,
                            hint=f"{keyword} belongs to the {BLOCK_NAMES[elsewhere[0]]} block"
                                 + (", inside DFT ... ENDDFT" if elsewhere[0] == "DFT" else ""))
    hint = did_you_mean(keyword, table)
    if hint is None:
        close = [did_you_mean(keyword, table) for table in KEYWORDS.values()]
        hint = next((h for h in close if h), None)
    return cursor.error(
        what,
        error=UnknownKeywordError,
        hint=hint or f"if CRYSTAL23 knows {keyword}, read with allow_unknown=[{keyword!r}]",
    )


def _parse_block(cursor: _DeckCursor, model: type[BaseModel], spec: _Spec,
                 special: Callable[[LineCursor, dict], bool] | None = None) -> BaseModel:
    """Parse keyword lines up to the block's END into ``model``, other known ones into ``extra``."""
    opener = (cursor.peek_keyword(), cursor.number())
    block = "DFT" if model is Dft else opener[0]
    cursor.line(model.__name__)
    fields: dict = {"extra": []}
    while not is_end(cursor.peek_keyword()):
        if cursor.at_end():
            raise cursor.error(
                f"{TERMINATORS[block]} closing {opener[0]}",
                error=MissingTerminatorError,
                hint=f"{opener[0]} opened on line {opener[1]} is never closed",
            )
        if special is not None and special(cursor, fields):
            continue
        if _read_typed(cursor, spec, fields):
            continue
        fields["extra"].extend(_untyped(cursor, block, opener))
    end_at = cursor.index
    cursor.line("END")
    try:
        return model(**fields)
    except ValueError as exc:
        cursor.index = end_at
        raise cursor.error(f"a valid {opener[0]} block ({exc})") from None


def _opt_special(cursor: LineCursor, fields: dict) -> bool:
    if cursor.peek_keyword() in OPT_TYPES:
        fields["type"] = cursor.line("an optimisation type").split()[0].upper()
        return True
    return False


def _freq_special(cursor: LineCursor, fields: dict) -> bool:
    keyword = cursor.peek_keyword()
    if keyword in ("INTCPHF", "IRSPEC"):
        fields[keyword.lower()] = _copy_subblock(cursor)[1:-1]
        return True
    return False


def _eos_special(cursor: LineCursor, fields: dict) -> bool:
    keyword = cursor.peek_keyword()
    if keyword in ("RANGE", "PRANGE"):
        cursor.line(keyword)
        low, high, points = cursor.reals(3, f"'min max points' for {keyword}")
        fields[keyword.lower()] = (low, high, int(points))
        return True
    if keyword == "PREOPTGEOM":
        cursor.line(keyword)
        fields["preoptgeom"] = True
        return True
    return False


def _dft_special(cursor: LineCursor, fields: dict) -> bool:
    line = cursor.peek()
    keyword = cursor.peek_keyword()
    if keyword in ("EXCHANGE", "CORRELAT"):
        cursor.line(keyword)
        names = EXCHANGE_NAMES if keyword == "EXCHANGE" else CORRELATION_NAMES
        name = cursor.peek_keyword()
        if name is not None and name not in names and not cursor.allows(name):
            raise cursor.error(
                f"an {keyword} functional name",
                error=UnknownKeywordError,
                hint=did_you_mean(name, names) or f"known: {' '.join(sorted(names))}",
            )
        fields["exchange" if keyword == "EXCHANGE" else "correlation"] = cursor.line(
            f"a {keyword} name"
        ).split()[0]
    elif keyword == "SPIN":
        fields["spin"] = bool(cursor.line("SPIN"))
    elif keyword in GRIDS:
        fields["grid"] = cursor.line("a grid").split()[0].upper()
    elif "functional" not in fields and len(line.split()) == 1 and is_functional(keyword):
        fields["functional"] = cursor.line("a functional")
    else:
        return False
    return True


def _scf_special(cursor: LineCursor, fields: dict) -> bool:
    keyword = cursor.peek_keyword()
    if keyword == "SHRINK":
        cursor.line("SHRINK")
        following = (cursor.peek() or "").split()
        if not following or not following[0].lstrip("-").isdigit():
            if cursor.periodic:
                raise cursor.error(
                    "SHRINK factors 'IS ISP'",
                    error=CountMismatchError,
                    hint="only a molecule takes SHRINK without factors",
                )
            fields["extra"].append(
                "SHRINK"
            )  # 0D decks write a bare SHRINK; CRYSTAL reads no numbers
            return True
        if "shrink" in fields:
            cursor.index -= 1
            raise cursor.error("one SHRINK", hint="SHRINK is given twice in this block; keep one")
        head = cursor.ints(None, "SHRINK factors 'IS ISP'")
        if not 2 <= len(head) <= 3:
            cursor.index -= 1
            raise cursor.error("SHRINK factors 'IS ISP'")
        mesh = tuple(cursor.ints(3, "three SHRINK factors")) if head[0] == 0 else head[0]
        fields["shrink"] = Shrink(mesh=mesh, isp=head[1], isp2=head[2] if len(head) > 2 else None)
    elif keyword == "ATOMSPIN":
        opened = cursor.number()
        cursor.line("ATOMSPIN")
        if cursor.at_end() or len(cursor.peek().split()) != 1:
            raise cursor.error(
                "the number of ATOMSPIN entries (one integer)", error=CountMismatchError
            )
        count = cursor.ints(1, "the number of ATOMSPIN entries")[0]
        values: list[int] = []
        while len(values) < 2 * count:
            if cursor.at_end() or not is_argument_line(cursor.peek()):
                raise cursor.error(
                    "ATOMSPIN 'label spin' pairs",
                    error=CountMismatchError,
                    hint=f"ATOMSPIN on line {opened} announces {count} atoms, {len(values) // 2} "
                         "follow",
                )
            values.extend(cursor.ints(None, "ATOMSPIN 'label spin' pairs"))
        if len(values) != 2 * count or (not cursor.at_end() and is_argument_line(cursor.peek())):
            raise cursor.error(
                "a keyword after the ATOMSPIN pairs",
                error=CountMismatchError,
                hint=f"ATOMSPIN on line {opened} announces {count} atoms, more follow",
            )
        fields["atomspin"] = list(zip(values[0::2], values[1::2], strict=True))
    else:
        return False
    return True


_TASKS: dict[str, tuple[str, type[BaseModel], _Spec, Callable[[LineCursor, dict], bool] | None]] = {
    "OPTGEOM": ("optgeom", OptGeom, _OPT_SPEC, _opt_special),
    "FREQCALC": ("freqcalc", FreqCalc, _FREQ_SPEC, _freq_special),
    "ELASTCON": ("elastcon", Elastcon, [("preoptgeom", "PREOPTGEOM", None)], None),
    "EOS": ("eos", Eos, [], _eos_special),
}


# -- the deck
# ---------------------------------------------------------------------------------------
class CrystalInput(BaseModel):
    """A whole ``.d12`` deck. ``basis=None`` only for geometry-only decks (TESTGEOM/EXTPRT)."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(max_length=80)
    geometry: Geometry
    geometry_keywords: list[str] = Field(default_factory=list)
    optgeom: OptGeom | None = None
    freqcalc: FreqCalc | None = None
    elastcon: Elastcon | None = None
    eos: Eos | None = None
    basis: BasisSet | None = None
    hamiltonian: Hamiltonian = Field(default_factory=Hamiltonian)
    scf: Scf = Field(default_factory=Scf)

    @field_validator("title")
    @classmethod
    def _one_line(cls, title: str) -> str:
        if "\n" in title or "\r" in title:
            raise ValueError("the title is a single line")
        return title

    @model_validator(mode="after")
    def _consistent(self) -> CrystalInput:
        tasks = [
            name
            for name in ("optgeom", "freqcalc", "elastcon", "eos")
            if getattr(self, name) is not None
        ]
        if len(tasks) > 1:
            raise ValueError(f"only one of OPTGEOM/FREQCALC/ELASTCON/EOS per deck, got {tasks}")
        if self.basis is None and (self.hamiltonian != Hamiltonian() or self.scf != Scf()):
            raise ValueError(
                "a deck without basis set is geometry-only and takes no Hamiltonian/SCF keywords"
            )
        return self

    # -- text -------------------------------------------------------------------------------------
    def to_string(self) -> str:
        """Return the deck text (newline-terminated)."""
        lines = [self.title, *self.geometry.to_lines(), *self.geometry_keywords]
        for task in (self.optgeom, self.freqcalc, self.elastcon, self.eos):
            if task is not None:
                lines.extend(task.to_lines())
        if self.basis is None:
            lines.append("END")
        elif self.basis.library is not None:
            lines.extend(self.basis.to_lines())
        else:
            lines.extend(["END", *self.basis.to_lines(), "END"])
        if self.basis is not None:
            lines.extend([*self.hamiltonian.to_lines(), *self.scf.to_lines(), "END"])
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        """Return the deck text, as :meth:`to_string`."""
        return self.to_string()

    @classmethod
    def from_string(cls, text: str, *, allow_unknown: bool | Collection[str] = ()) -> CrystalInput:
        """Parse a deck strictly: the first problem raises a :class:`DeckError` naming its line.

        Parameters
        ----------
        text
            The deck.
        allow_unknown
            Keywords to accept (verbatim, with the lines of numbers after them) although
            :mod:`crystal_atomate.io.d12_keywords` does not list them in their block; ``True``
            accepts any. The escape hatch for keywords CRYSTAL23 knows and the tables miss.

        Returns
        -------
        CrystalInput
            The deck.

        Raises
        ------
        UnknownKeywordError
            A keyword CRYSTAL23 does not know in its block (with "did you mean ...?").
        CountMismatchError
            Atoms, basis shells or primitives not matching their count.
        MissingTerminatorError
            A block not closed (OPTGEOM without ENDOPT, no final END ...).
        D12ParseError
            Any other malformed line.
        """
        raw = text.splitlines()
        if not raw:
            raise D12ParseError("empty deck", line=1)
        cursor = _DeckCursor(
            [(number + 1, line) for number, line in clean_lines("\n".join(raw[1:]))], allow_unknown
        )
        geometry = parse_geometry(cursor)
        cursor.periodic = geometry.kind in ("CRYSTAL", "SLAB", "POLYMER")
        fields: dict = {"title": raw[0].strip()[:80], "geometry": geometry, "geometry_keywords": []}
        after_geometry = cursor.index
        closed: tuple[str, int, int] | None = None
        while True:
            keyword = cursor.peek_keyword()
            if keyword is None:
                raise cursor.error("END closing the geometry block", error=MissingTerminatorError)
            if keyword in _TASKS:
                field, model, spec, special = _TASKS[keyword]
                opened = cursor.number()
                fields[field] = _parse_block(cursor, model, spec, special)
                closed = (keyword, opened, cursor.number(-1))
                continue
            if keyword == "BASISSET":
                cursor.line("BASISSET")
                fields["basis"] = _library(cursor)
                break
            if is_end(keyword):
                cursor.line("END")
                if cursor.at_end():
                    return cls._build(cursor, fields)
                fields["basis"] = _parse_basis_block(cursor)
                break
            if is_argument_line(cursor.peek()):
                raise _numbers_in_geometry(cursor, geometry, after_geometry, closed)
            fields["geometry_keywords"].extend(_untyped(cursor, "geometry"))
            closed = None
        fields["hamiltonian"], fields["scf"] = _parse_hamiltonian_scf(cursor)
        if not cursor.at_end():
            raise cursor.error("nothing after the final END")
        return cls._build(cursor, fields)

    @classmethod
    def _build(cls, cursor: LineCursor, fields: dict) -> CrystalInput:
        try:
            return cls(**fields)
        except ValueError as exc:
            raise D12ParseError(f"invalid deck: {exc}", line=cursor.number(-1)) from None

    @classmethod
    def from_file(
        cls, path: str | Path, *, allow_unknown: bool | Collection[str] = ()
    ) -> CrystalInput:
        """Read a deck (see :meth:`from_string`); for EXTERNAL, attach the ``fort.34`` beside it."""
        path = Path(path)
        deck = cls.from_string(path.read_text(), allow_unknown=allow_unknown)
        fort34 = path.parent / "fort.34"
        if isinstance(deck.geometry, ExternalGeometry) and fort34.is_file():
            deck.geometry = ExternalGeometry.from_file(fort34)
        return deck

    def write_input(self, directory: str | Path, make_dir: bool = True) -> Path:
        """Write ``INPUT`` (and ``fort.34`` for EXTERNAL), once the basis covers every element."""
        self.check_basis()
        directory = Path(directory)
        if make_dir:
            directory.mkdir(parents=True, exist_ok=True)
        if isinstance(self.geometry, ExternalGeometry) and self.geometry.fort34 is not None:
            self.geometry.fort34.write_file(directory / "fort.34")
        path = directory / "INPUT"
        path.write_text(self.to_string())
        return path

    @property
    def elements(self) -> set[str] | None:
        """Elements of the geometry (None for EXTERNAL without its fort.34)."""
        if isinstance(self.geometry, ExternalGeometry):
            atoms = self.geometry.fort34.atoms if self.geometry.fort34 else None
        else:
            atoms = self.geometry.atoms
        return (
            None if atoms is None else {Element.from_Z(atom.number % 100).symbol for atom in atoms}
        )

    def check_basis(self) -> None:
        """Raise :class:`UnknownBasisElementError` if the basis lacks an element of the geometry."""
        if self.basis is not None and self.elements is not None:
            self.basis.check_elements(self.elements)

    # -- pymatgen ----------------------------------------------------------------------------------
    @classmethod
    def from_structure(
        cls,
        structure: Structure | Molecule,
        *,
        title: str | None = None,
        geometry: Literal["external", "symmetrized"] = "external",
        basis: BasisSet | str,
        hamiltonian: Hamiltonian | None = None,
        scf: Scf | None = None,
        optgeom: OptGeom | None = None,
        freqcalc: FreqCalc | None = None,
        elastcon: Elastcon | None = None,
        eos: Eos | None = None,
        geometry_keywords: Collection[str] = (),
        dimensionality: Literal[0, 2, 3] | None = None,
        symprec: float = 1e-3,
    ) -> CrystalInput:
        """Return a deck for a pymatgen ``Structure`` (3D, or a slab) or ``Molecule`` (0D).

        The basis is checked first, so a missing element fails before anything is built.
        Magnetic moments (``magmom``) force the EXTERNAL form with up/down sites made
        inequivalent, fill ``ATOMSPIN`` (unless given) and switch on spin polarisation
        (UHF, or ``SPIN`` in the DFT block). The structure is taken as given: check it first
        with :func:`crystal_atomate.io.geometry.check_structure` (input sets do, once per job).
        """
        basis = BasisSet.from_library(basis) if isinstance(basis, str) else basis
        basis.check_elements({site.specie.symbol for site in structure})
        hamiltonian = hamiltonian or Hamiltonian()
        scf = scf or Scf()
        if dimensionality is None:
            dimensionality = (
                0 if isinstance(structure, Molecule) else 2 if looks_like_slab(structure) else 3
            )
        geometry_model, atomspin = geometry_from_structure(
            structure, form=geometry, dimensionality=dimensionality, symprec=symprec,
            ecp_elements=basis.ecp_elements,
        )
        if atomspin:
            if scf.atomspin is None:
                scf = scf.model_copy(update={"atomspin": atomspin})
            if hamiltonian.dft is not None:
                hamiltonian = hamiltonian.model_copy(
                    update={"dft": hamiltonian.dft.model_copy(update={"spin": True})}
                )
            elif hamiltonian.method == "RHF":
                hamiltonian = hamiltonian.model_copy(update={"method": "UHF"})
        return cls(
            title=(title or structure.composition.reduced_formula)[:80],
            geometry=geometry_model,
            geometry_keywords=list(geometry_keywords),
            optgeom=optgeom,
            freqcalc=freqcalc,
            elastcon=elastcon,
            eos=eos,
            basis=basis,
            hamiltonian=hamiltonian,
            scf=scf,
        )


#: A gap this wide (Angstrom) along c between periodic images means the structure is a slab.
SLAB_VACUUM = 7.0


def looks_like_slab(structure: Structure) -> bool:
    """Return True when the atoms leave an empty gap of at least :data:`SLAB_VACUUM` along c."""
    z = sorted(structure.frac_coords[:, 2] % 1.0)
    gaps = [b - a for a, b in zip(z, z[1:], strict=False)] + [1.0 - z[-1] + z[0]]
    in_plane = (
        structure.lattice.a
        * structure.lattice.b
        * abs(math.sin(math.radians(structure.lattice.gamma)))
    )
    height = structure.volume / in_plane
    return max(gaps) * height >= SLAB_VACUUM


def _parse_hamiltonian_scf(cursor: _DeckCursor) -> tuple[Hamiltonian, Scf]:
    """Return the last block.

    Optional HF flavour or DFT block, then SCF keywords, then the final END.
    """
    hamiltonian: dict = {}
    scf: dict = {"extra": []}
    while not is_end(cursor.peek_keyword()):
        keyword = cursor.peek_keyword()
        if keyword is None:
            raise cursor.error("the final END", error=MissingTerminatorError,
                               hint="the Hamiltonian/SCF block (and the deck) ends with END")
        if keyword == "DFT":
            hamiltonian["dft"] = _parse_block(cursor, Dft, [], _dft_special)
        elif keyword in ("UHF", "RHF", "ROHF"):
            hamiltonian["method"] = cursor.line(keyword).split()[0].upper()
        elif not (_scf_special(cursor, scf) or _read_typed(cursor, _SCF_SPEC, scf)):
            scf["extra"].extend(_untyped(cursor, "SCF"))
    end_at = cursor.index
    cursor.line("END")
    try:
        return Hamiltonian(**hamiltonian), Scf(**scf)
    except ValueError as exc:
        cursor.index = end_at
        raise cursor.error(f"valid Hamiltonian/SCF keywords ({exc})") from None


def _library(cursor: _DeckCursor) -> BasisSet:
    """Return the name after ``BASISSET``.

    One of CRYSTAL's internal libraries (or an allowed name).
    """
    line = cursor.peek()
    name = line.split()[0] if line else None
    if (
        name is not None
        and name.upper() not in LIBRARY_COVERAGE
        and not cursor.allows(name.upper())
    ):
        raise cursor.error(
            "the name of a CRYSTAL basis-set library",
            error=UnknownKeywordError,
            hint=did_you_mean(name.upper(), LIBRARY_COVERAGE)
            or f"if CRYSTAL23 has it, read with allow_unknown=[{name.upper()!r}]",
        )
    return BasisSet.from_library(cursor.line("a basis-set name").split()[0])


def _parse_basis_block(cursor: LineCursor) -> BasisSet:
    """Explicit basis sets after the geometry END, through the basis block's own END."""
    start = cursor.index
    try:
        basis = parse_basis(cursor)
    except DeckError:
        raise
    except ValueError as exc:
        cursor.index = start
        raise cursor.error(f"a valid basis set ({exc})") from None
    if not is_end(cursor.peek_keyword()):
        raise cursor.error("END closing the basis-set block", error=MissingTerminatorError,
                           hint="after '99 0' (and GHOSTS) the basis block ends with END")
    cursor.line("END")
    return basis


def _numbers_in_geometry(cursor: LineCursor, geometry: Geometry, after_geometry: int,
                         closed: tuple[str, int, int] | None) -> DeckError:
    """Return the error for numbers where a geometry keyword or END belongs, naming the cause."""
    what = "a geometry-block keyword or END"
    if closed is not None:
        name, opened, end = closed
        return cursor.error(
            what,
            error=MissingTerminatorError,
            hint=f"line {end} closed {name} (opened on line {opened}) and the geometry block is "
            f"still open: is {TERMINATORS[name]} missing before line {end}?",
        )
    atoms = getattr(geometry, "atoms", None)
    if atoms is not None and cursor.index == after_geometry:
        count_line = cursor.lines[after_geometry - len(atoms) - 1][0]
        return cursor.error(
            what,
            error=CountMismatchError,
            hint=f"the atom count on line {count_line} says {len(atoms)}: is this atom "
            f"{len(atoms) + 1}, or is the geometry END missing before the basis set?",
        )
    return cursor.error(
        what,
        error=CountMismatchError,
        hint="numbers with no keyword before them: a keyword line was lost, or an entry count "
        "above is too small",
    )
