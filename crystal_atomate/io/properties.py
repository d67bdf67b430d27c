"""The CRYSTAL ``properties`` input deck (``.d3``): NEWK, BAND and DOSS as typed models.

``properties < INPUT`` reads the deck after the SCF has left ``fort.9`` in the working directory.
Only the three keywords every electronic-structure workflow needs are modelled; any other
known keyword (:data:`PROPERTIES_KEYWORDS`: ``COMMENS``, ``PPAN``, ``RDFMWF``, ``ECHG`` blocks,
...) and the lines of numbers after it are kept verbatim in :attr:`PropertiesInput.extra`, at
their place in the deck, so a hand-written deck survives a read/write cycle. An unknown keyword
is an error naming the line ("did you mean DOSS?"); ``allow_unknown`` lets one through. CRYSTAL
stops reading at the first ``END``: whatever follows it is dropped.

Record layouts (one Fortran list-directed record per line), as in the CRYSTAL manual and the
real decks of the reference set:

* ``NEWK``: ``IS ISP`` (or ``0 ISP`` then ``IS1 IS2 IS3``), then ``IFE NPR``.
* ``BAND``: a title, ``NLINE ISS NSUB INZB IFNB IPLO LPR66``, then NLINE records
  ``I1 I2 I3 J1 J2 J3`` (vertices in units of 1/ISS of the reciprocal primitive vectors) or,
  when ``ISS = 0``, two high-symmetry labels (``G X``).
* ``DOSS``: ``NPRO NPT INZB IFNB IPLO NPOL NPR``; ``BMI BMA`` (Hartree) when INZB and IFNB are
  both negative; then NPRO records ``N i1 ... i|N|``: N > 0 projects on N atomic orbitals,
  N < 0 on |N| atoms.

``NPR`` (number of print options) is non-zero in no deck we have seen run; when it is, the next
record is kept verbatim in ``print_record`` because its layout is not verified.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Collection, Iterator, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pymatgen.core import Element, Lattice, Structure
from pymatgen.symmetry.bandstructure import HighSymmKpath

from crystal_atomate.io.deck_lines import (
    DeckError,
    allowed_keywords,
    did_you_mean,
    is_argument_line,
)

__all__ = [
    "PROPERTIES_KEYWORDS",
    "Band",
    "BandSegment",
    "Doss",
    "DossProjection",
    "KPathConvention",
    "Newk",
    "PropertiesInput",
    "PropertiesParseError",
    "element_atom_indices",
    "high_symmetry_points",
]

KPathConvention = Literal["setyawan_curtarolo", "hinuma", "latimer_munro"]
Vertex = tuple[int, int, int] | str
Section = Literal["NEWK", "BAND", "DOSS", "EXTRA"]

#: CRYSTAL limits (manual): at most 15 projections and 25 Legendre polynomials in DOSS.
MAX_DOSS_PROJECTIONS = 15
MAX_DOSS_POLYNOMIALS = 25
#: Largest shrink factor tried when turning fractional vertices into CRYSTAL's integers.
MAX_BAND_SHRINK = 48
_FRACTION_TOL = 1e-5


#: Keywords of the properties program (CRYSTAL23 manual, as remembered, and the real decks);
#: sub-keywords of the map blocks (ECHG, POTM ...: MAPNET, COORDINA ...) are included.
PROPERTIES_KEYWORDS = frozenset({
    "NEWK", "BAND", "DOSS", "PPAN", "RDFMWF", "COMMENS", "ECHG", "ECH3", "POTM", "POT3", "POTC",
    "CLAS", "EMDL", "EMDP", "EMDLDM", "EMDPDM", "PROF", "COMPTON", "BOLTZTRA", "XFAC",
    "ANISOTRO", "ISOTROPIC", "POLI", "PATO", "PBAN", "PGEOMW", "PDIDE", "PSCF", "LOCALWF",
    "DIEL", "KINETEMD", "BIDIERD", "RHOLINE", "SPINCNTM", "TOPO", "DLVINPUT", "BWIDTH", "EDFT",
    "EXTPRT", "FMWF", "GRID3D", "ATOMIRR", "ADFT", "SETPRINT", "CHARGED", "NOSYMADA",
    "CRYAPI_OUT", "INFOGUI", "ANBD", "SPOLBP", "SPOLWF", "XRDSPEC", "MAPNET", "COORDINA",
    "RECTANGU", "MARGINS", "PRINT", "ATOMS", "SLATER", "SPINDENS", "FRACTION", "ANGSTROM",
    "BOHR", "RAYCOV", "NEIGHBOR", "STOP", "FINDSYM", "OPTGEOM", "EIGSHIFT", "MAXNEIGHB",
    "CLUSPLOT", "EMDWF", "ORTHOGONAL", "DOSSPLOT", "PROJWF", "SYMMWF", "ELF", "GRADIENT",
    "LAPLACIAN"
})


class PropertiesParseError(DeckError):
    """A properties deck or data file cannot be read; the message names the file and line."""

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message, line=line, hint=hint)
        where = str(path) if path is not None else "<string>"
        if line is not None:
            where = f"{where}, line {line}"
        self.args = (f"{where}: {message}" + ("" if hint is None else f" ({hint})"),)
        self.path = None if path is None else Path(path)


class _Model(BaseModel):
    """Frozen, strict-field base: decks are values, compared field by field."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Newk(_Model):
    """``NEWK``: the Monkhorst-Pack (and Gilat) mesh on which properties diagonalise.

    DOSS needs it; BAND does not, but CRYSTAL decks often carry it anyway.
    """

    shrink: int = Field(ge=0, description="IS; 0 means the anisotropic ``mesh`` is given")
    gilat_shrink: int = Field(ge=1, description="ISP, the denser Gilat net (Fermi level, DOS)")
    mesh: tuple[int, int, int] | None = Field(None, description="IS1 IS2 IS3 when IS = 0")
    recompute_fermi: bool = Field(True, description="IFE: recompute the Fermi energy")
    npr: int = Field(0, ge=0, description="NPR, number of print options")
    print_record: str | None = Field(None, description="record after ``IFE NPR`` when NPR > 0")

    @model_validator(mode="after")
    def _check(self) -> Newk:
        """IS = 0 and a mesh go together; a print record only with NPR > 0."""
        if (self.shrink == 0) != (self.mesh is not None):
            raise ValueError("NEWK: give a mesh exactly when shrink (IS) is 0")
        _check_print_record(self.npr, self.print_record, "NEWK")
        return self

    def lines(self) -> list[str]:
        """Return the deck lines, keyword included."""
        out = ["NEWK", f"{self.shrink} {self.gilat_shrink}"]
        if self.mesh is not None:
            out.append(" ".join(str(i) for i in self.mesh))
        out.append(f"{int(self.recompute_fermi)} {self.npr}")
        if self.print_record is not None:
            out.append(self.print_record)
        return out


class BandSegment(_Model):
    """One line of the BAND path: integer vertices (units of 1/ISS) or two labels (ISS = 0)."""

    start: Vertex
    end: Vertex


class Band(_Model):
    """``BAND``: eigenvalues along a path of straight segments in reciprocal space.

    CRYSTAL spreads ``n_points`` over the segments in proportion to their length; the first
    segment includes both its ends, every later one only its end. ``labels`` is plotting
    metadata (one ``(start, end)`` pair per segment): the deck has nowhere to keep it, so it is
    never written and a deck read back has ``labels=None``.
    """

    title: str = "BAND STRUCTURE"
    shrink: int = Field(ge=0, description="ISS; 0 when the vertices are labels")
    n_points: int = Field(ge=2, description="NSUB, total number of k-points along the path")
    first_band: int = Field(ge=1, description="INZB")
    last_band: int = Field(ge=1, description="IFNB")
    plot: int = Field(1, ge=0, description="IPLO: 0 none, 1 fort.25 (and BAND.DAT in C17+)")
    print_eigenvalues: int = Field(0, ge=0, description="LPR66: print eigenvalues")
    path: list[BandSegment] = Field(min_length=1)
    labels: list[tuple[str, str]] | None = None

    @model_validator(mode="after")
    def _check(self) -> Band:
        """Vertex kind follows ISS; band range ordered; one label pair per segment."""
        if "\n" in self.title:
            raise ValueError("BAND: the title is one line")
        if self.last_band < self.first_band:
            raise ValueError("BAND: last_band is below first_band")
        for segment in self.path:
            for vertex in (segment.start, segment.end):
                if isinstance(vertex, str) != (self.shrink == 0):
                    raise ValueError("BAND: use labels exactly when shrink (ISS) is 0")
        if self.labels is not None and len(self.labels) != len(self.path):
            raise ValueError("BAND: give one (start, end) label pair per segment")
        return self

    def fractional_vertices(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Segment ends as fractional coordinates of the reciprocal primitive vectors."""
        if self.shrink == 0:
            raise ValueError("BAND path is given by labels: CRYSTAL decides their coordinates")
        return [
            (np.divide(s.start, self.shrink), np.divide(s.end, self.shrink)) for s in self.path
        ]

    def lines(self) -> list[str]:
        """Return the deck lines, keyword included (labels are not part of the deck)."""
        out = [
            "BAND",
            self.title,
            f"{len(self.path)} {self.shrink} {self.n_points} {self.first_band} {self.last_band} "
            f"{self.plot} {self.print_eigenvalues}",
        ]
        for segment in self.path:
            out.append(" ".join(_vertex_tokens(segment.start) + _vertex_tokens(segment.end)))
        return out

    @classmethod
    def from_structure(
        cls,
        structure: Structure,
        *,
        bands: tuple[int, int],
        line_density: float = 20.0,
        kpath: KPathConvention = "setyawan_curtarolo",
        title: str | None = None,
        symprec: float = 0.01,
    ) -> Band:
        """Build the standard high-symmetry path of ``structure`` as a CRYSTAL BAND block.

        ``bands`` is (INZB, IFNB), typically ``(1, number of AO)`` from the SCF output.
        ``line_density`` is k-points per reciprocal Angstrom (2*pi included, as in pymatgen);
        the total is handed to CRYSTAL, which spreads it over the segments.

        Caveat: CRYSTAL reads the vertices in the reciprocal basis of the primitive cell *it*
        builds from the geometry. For the EXTERNAL (fort.34) route that is the lattice of the
        structure written to fort.34, i.e. ``structure.lattice``, which is the basis used here.
        For a ``CRYSTAL`` geometry block (space group + conventional parameters) CRYSTAL builds
        its own primitive cell; pass a structure with that lattice or the path is wrong.
        A supercell gets the same path in its own (folded) reciprocal basis.
        """
        points, label_segments = _kpath(structure, kpath, symprec)
        fractional = [points[label] for pair in label_segments for label in pair]
        shrink = _common_shrink(fractional)
        reciprocal = structure.lattice.reciprocal_lattice
        length = sum(
            float(np.linalg.norm(reciprocal.get_cartesian_coords(points[b] - points[a])))
            for a, b in label_segments
        )
        return cls(
            title=title or f"{structure.composition.reduced_formula} {kpath}",
            shrink=shrink,
            n_points=max(len(label_segments) + 1, math.ceil(length * line_density)),
            first_band=bands[0],
            last_band=bands[1],
            path=[
                BandSegment(
                    start=_to_integers(points[a], shrink), end=_to_integers(points[b], shrink)
                )
                for a, b in label_segments
            ],
            labels=label_segments,
        )


class DossProjection(_Model):
    """One projected DOS: on atomic orbitals or on whole atoms (1-based CRYSTAL indices)."""

    kind: Literal["ao", "atom"]
    indices: list[int] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> DossProjection:
        """CRYSTAL numbers atoms and AOs from 1."""
        if min(self.indices) < 1:
            raise ValueError("DOSS projection indices start at 1")
        return self

    def tokens(self) -> list[str]:
        """``N i1 ... iN`` with N negative for atoms, as CRYSTAL reads it."""
        count = len(self.indices) if self.kind == "ao" else -len(self.indices)
        return [str(count)] + [str(i) for i in self.indices]


class Doss(_Model):
    """``DOSS``: total and projected density of states (Fourier-Legendre expansion).

    CRYSTAL always adds the total DOS after the ``projections``. ``energy_range`` (BMI, BMA in
    Hartree) replaces the band window when ``first_band`` and ``last_band`` are both negative.
    """

    n_points: int = Field(ge=2, description="NPT, energy points")
    first_band: int = Field(description="INZB; negative with energy_range")
    last_band: int = Field(description="IFNB; negative with energy_range")
    energy_range: tuple[float, float] | None = Field(None, description="BMI BMA, Hartree")
    plot: int = Field(2, ge=0, description="IPLO: 0 none, 1 fort.25, 2 DOSS.DAT")
    n_polynomials: int = Field(14, ge=1, le=MAX_DOSS_POLYNOMIALS, description="NPOL")
    npr: int = Field(0, ge=0, description="NPR, number of print options")
    print_record: str | None = Field(None, description="record after the header when NPR > 0")
    projections: list[DossProjection] = Field(default_factory=list, max_length=MAX_DOSS_PROJECTIONS)

    @model_validator(mode="after")
    def _check(self) -> Doss:
        """Energy window exactly when both band limits are negative."""
        negative = self.first_band < 0 and self.last_band < 0
        if negative != (self.energy_range is not None):
            raise ValueError("DOSS: give energy_range exactly when first/last band are negative")
        if self.energy_range is None and not 1 <= self.first_band <= self.last_band:
            raise ValueError("DOSS: need 1 <= first_band <= last_band")
        if self.energy_range is not None and self.energy_range[0] >= self.energy_range[1]:
            raise ValueError("DOSS: energy_range must be increasing")
        _check_print_record(self.npr, self.print_record, "DOSS")
        return self

    def lines(self) -> list[str]:
        """Return the deck lines, keyword included."""
        out = [
            "DOSS",
            f"{len(self.projections)} {self.n_points} {self.first_band} {self.last_band} "
            f"{self.plot} {self.n_polynomials} {self.npr}",
        ]
        if self.energy_range is not None:
            out.append(f"{self.energy_range[0]!r} {self.energy_range[1]!r}")
        if self.print_record is not None:
            out.append(self.print_record)
        out.extend(" ".join(p.tokens()) for p in self.projections)
        return out

    @classmethod
    def from_structure(
        cls,
        structure: Structure,
        *,
        bands: tuple[int, int],
        n_points: int = 1000,
        n_polynomials: int = 14,
        plot: int = 2,
    ) -> Doss:
        """Total DOS plus one atom projection per element, in the structure's site order.

        CRYSTAL numbers the atoms of its primitive cell; with EXTERNAL and a fort.34 listing
        every atom in ``structure`` order (CRYSTAL >= 17), atom *i* is ``structure[i - 1]``.
        """
        return cls(
            n_points=n_points,
            first_band=bands[0],
            last_band=bands[1],
            plot=plot,
            n_polynomials=n_polynomials,
            projections=[
                DossProjection(kind="atom", indices=indices)
                for indices in element_atom_indices(structure).values()
            ],
        )


class PropertiesInput(_Model):
    """A whole properties deck; ``to_string`` ends it with ``END``.

    ``layout`` records the order of the sections when it differs from the default
    (extra lines, then BAND, NEWK, DOSS: BAND resets the NEWK information, CRYSTAL warns
    ``BF SYMMETRY ADAPTED-INFO MODIFIED BY BAND-CALL NEWK``, so DOSS comes after a fresh NEWK).
    Each ``"EXTRA"`` entry in ``layout`` stands for the next line of ``extra``.
    """

    newk: Newk | None = None
    band: Band | None = None
    doss: Doss | None = None
    extra: list[str] = Field(default_factory=list)
    layout: list[Section] | None = None

    @model_validator(mode="after")
    def _check(self) -> PropertiesInput:
        """``layout`` must name every present section once and every extra line."""
        if self.layout is not None and sorted(self.layout) != sorted(self._default_layout()):
            raise ValueError("layout does not match the sections present")
        if any("\n" in line for line in self.extra):
            raise ValueError("extra holds one line per item")
        return self

    def _default_layout(self) -> list[Section]:
        sections: list[Section] = ["EXTRA"] * len(self.extra)
        for name, block in (("BAND", self.band), ("NEWK", self.newk), ("DOSS", self.doss)):
            if block is not None:
                sections.append(name)
        return sections

    def to_string(self) -> str:
        """Return the deck text, newline-terminated."""
        blocks = {"NEWK": self.newk, "BAND": self.band, "DOSS": self.doss}
        extra = iter(self.extra)
        lines: list[str] = []
        for section in self.layout or self._default_layout():
            if section == "EXTRA":
                lines.append(next(extra))
            else:
                lines.extend(blocks[section].lines())
        lines.append("END")
        return "\n".join(lines) + "\n"

    def write_input(self, directory: str | Path) -> Path:
        """Write ``INPUT`` (what ``properties < INPUT`` and Pproperties read); return its path."""
        path = Path(directory) / "INPUT"
        path.write_text(self.to_string())
        return path

    @classmethod
    def from_file(
        cls, path: str | Path, *, allow_unknown: bool | Collection[str] = ()
    ) -> PropertiesInput:
        """Read a ``.d3`` deck; errors name the file and line (see :meth:`from_string`)."""
        return cls.from_string(Path(path).read_text(), path=path, allow_unknown=allow_unknown)

    @classmethod
    def from_string(
        cls,
        text: str,
        *,
        path: str | Path | None = None,
        allow_unknown: bool | Collection[str] = (),
    ) -> PropertiesInput:
        """Parse deck text up to the first ``END``.

        Parameters
        ----------
        text
            The deck.
        path
            Where it came from, for messages.
        allow_unknown
            Keywords to keep verbatim although :data:`PROPERTIES_KEYWORDS` lacks them (``True``:
            any keyword).

        Returns
        -------
        PropertiesInput
            The deck.

        Raises
        ------
        PropertiesParseError
            The first problem, with its line: an unknown keyword, numbers where a keyword belongs
            (a count such as NPRO or NLINE too small), a missing ``END``.
        """
        return _DeckReader(text, path, allow_unknown).read()


def high_symmetry_points(
    structure: Structure, *, kpath: KPathConvention = "setyawan_curtarolo", symprec: float = 0.01
) -> dict[str, np.ndarray]:
    """High-symmetry points of ``kpath``, as fractions of ``structure``'s reciprocal vectors.

    pymatgen gives Setyawan-Curtarolo points in the basis of its *standard* primitive cell,
    which can be a rotated or re-chosen basis of the same lattice; they are mapped onto the
    structure's own basis through the integer matrix relating the two lattices.
    """
    return _kpath(structure, kpath, symprec)[0]


def _kpath(
    structure: Structure, kpath: KPathConvention, symprec: float
) -> tuple[dict[str, np.ndarray], list[tuple[str, str]]]:
    """Points in the structure's reciprocal basis, and the path as (start, end) label pairs."""
    with warnings.catch_warnings():
        # pymatgen warns that a non-standard cell may give a wrong path; _basis_change fixes it.
        warnings.filterwarnings("ignore", message="The input structure does not match")
        warnings.filterwarnings("ignore", message="K-path from the Hinuma")
        finder = HighSymmKpath(structure, path_type=kpath, symprec=symprec)
    basis = finder.prim.lattice if kpath == "setyawan_curtarolo" else structure.lattice
    scale = _basis_change(basis, structure.lattice)
    kpoints = finder.kpath["kpoints"]
    points = {label: scale @ np.asarray(k, dtype=float) for label, k in kpoints.items()}
    segments = [pair for branch in finder.kpath["path"] for pair in pairwise(branch)]
    return points, segments


def element_atom_indices(structure: Structure) -> dict[Element, list[int]]:
    """1-based atom indices per element, in order of first appearance."""
    indices: dict[Element, list[int]] = {}
    for i, site in enumerate(structure, start=1):
        element = getattr(site.specie, "element", site.specie)
        indices.setdefault(element, []).append(i)
    return indices


def _basis_change(source: Lattice, target: Lattice) -> np.ndarray:
    """Integer matrix M with target ~ M @ source (rotation allowed), closest to no rotation.

    Fractional reciprocal coordinates transform with the same M: f_target = M @ f_source. The
    target is always a superlattice of the primitive cell pymatgen derived from it, so a
    mapping exists; not finding one means the lattice tolerance was too tight.
    """
    if np.allclose(source.matrix, target.matrix, atol=1e-6):
        return np.eye(3)
    best: tuple[float, np.ndarray] | None = None
    for _aligned, rotation, scale in source.find_all_mappings(target, ltol=1e-4, atol=0.5):
        trace = float(np.trace(rotation))
        if best is None or trace > best[0]:
            best = (trace, np.asarray(scale, dtype=float))
    if best is None:
        raise ValueError("no integer mapping between the k-path basis and the structure lattice")
    return best[1]


def _common_shrink(fractions: Sequence[np.ndarray]) -> int:
    """Smallest ISS making every coordinate an integer multiple of 1/ISS."""
    values = np.concatenate([np.asarray(f, dtype=float) for f in fractions])
    for shrink in range(1, MAX_BAND_SHRINK + 1):
        scaled = values * shrink
        if np.all(np.abs(scaled - np.round(scaled)) < _FRACTION_TOL * shrink):
            return shrink
    raise ValueError(f"k-path vertices are not multiples of 1/n for any n <= {MAX_BAND_SHRINK}")


def _to_integers(fraction: np.ndarray, shrink: int) -> tuple[int, int, int]:
    a, b, c = (int(round(x)) for x in np.asarray(fraction) * shrink)
    return a, b, c


def _vertex_tokens(vertex: Vertex) -> list[str]:
    return [vertex] if isinstance(vertex, str) else [str(i) for i in vertex]


def _check_print_record(npr: int, record: str | None, keyword: str) -> None:
    if (npr > 0) != (record is not None):
        raise ValueError(f"{keyword}: a print record goes with NPR > 0 and only then")


def _fortran_float(token: str) -> float:
    """Fortran reals may use D exponents (``1.0D-2``)."""
    return float(token.replace("D", "E").replace("d", "e"))


class _DeckReader:
    """Line cursor over a deck, raising :class:`PropertiesParseError` with the line number."""

    def __init__(
        self, text: str, path: str | Path | None, allow_unknown: bool | Collection[str] = ()
    ):
        self.lines = text.splitlines()
        self.path = path
        self.index = 0
        self.allow_all = allow_unknown is True
        self.allowed = allowed_keywords(allow_unknown)

    def error(
        self, message: str, line: int | None = None, hint: str | None = None
    ) -> PropertiesParseError:
        return PropertiesParseError(message, path=self.path, line=line or self.index, hint=hint)

    def _extra_line(self, line: str, layout: list[Section]) -> None:
        """Check an untyped line: a known (or allowed) keyword, or numbers after one."""
        if is_argument_line(line):
            if not layout or layout[-1] != "EXTRA":
                raise self.error(
                    f"expected a keyword, got {line!r}",
                    hint="numbers with no keyword before them: a count above (NLINE, NPRO) "
                    "is too small, or a keyword line was lost",
                )
            return
        keyword = line.split()[0].upper()
        if keyword in PROPERTIES_KEYWORDS or self.allow_all or keyword in self.allowed:
            return
        raise self.error(f"unknown properties keyword {keyword!r}",
                         hint=did_you_mean(keyword, PROPERTIES_KEYWORDS)
                         or f"if CRYSTAL23 knows {keyword}, read with allow_unknown=[{keyword!r}]")

    def next_line(self, what: str) -> str:
        """Return the next non-blank line (its 1-based number goes in ``self.index``)."""
        while self.index < len(self.lines):
            self.index += 1
            line = self.lines[self.index - 1].strip()
            if line:
                return line
        raise self.error(f"deck ends while reading {what} (no END)", line=len(self.lines),
                         hint="a properties deck ends with END")

    def ints(self, what: str, count: int) -> list[int]:
        """Read the first ``count`` integers of the next record."""
        tokens = self.next_line(what).split()
        if len(tokens) < count:
            raise self.error(f"{what}: expected {count} integers, found {len(tokens)}")
        try:
            return [int(t) for t in tokens[:count]]
        except ValueError as exc:
            raise self.error(f"{what}: not an integer ({exc})") from exc

    def int_stream(self, what: str, count: int) -> Iterator[int]:
        """``count`` integers that may run over several records (list-directed read)."""
        produced = 0
        while produced < count:
            for token in self.next_line(what).split():
                if produced == count:
                    raise self.error(f"{what}: more values than announced")
                try:
                    yield int(token)
                except ValueError as exc:
                    raise self.error(f"{what}: not an integer ({exc})") from exc
                produced += 1

    def read(self) -> PropertiesInput:
        blocks: dict[str, BaseModel] = {}
        extra: list[str] = []
        layout: list[Section] = []
        while True:
            line = self.next_line("a keyword")
            keyword = line.split()[0].upper()
            if keyword.startswith("END"):
                break
            if keyword in ("NEWK", "BAND", "DOSS"):
                if keyword in blocks:
                    raise self.error(f"{keyword} given twice; only one of each is modelled")
                start = self.index
                try:
                    blocks[keyword] = getattr(self, f"_{keyword.lower()}")()
                except ValueError as exc:
                    if isinstance(exc, PropertiesParseError):
                        raise
                    raise self.error(f"{keyword}: {exc}", line=start) from exc
                layout.append(keyword)
            else:
                self._extra_line(line, layout)
                extra.append(line)
                layout.append("EXTRA")
        deck = PropertiesInput(extra=extra, **{k.lower(): v for k, v in blocks.items()})
        if layout != deck._default_layout():
            deck = deck.model_copy(update={"layout": layout})
        return deck

    def _newk(self) -> Newk:
        shrink, gilat = self.ints("NEWK shrink", 2)
        mesh = tuple(self.ints("NEWK mesh", 3)) if shrink == 0 else None
        ife, npr = self.ints("NEWK IFE NPR", 2)
        if ife not in (0, 1):
            raise self.error(f"NEWK: IFE must be 0 or 1, not {ife}")
        record = self.next_line("NEWK print record") if npr > 0 else None
        return Newk(
            shrink=shrink, gilat_shrink=gilat, mesh=mesh, recompute_fermi=bool(ife), npr=npr,
            print_record=record,
        )

    def _band(self) -> Band:
        title = self.next_line("BAND title")
        nline, iss, nsub, inzb, ifnb, iplo, lpr = self.ints("BAND header", 7)
        path = []
        for _ in range(nline):
            if iss == 0:
                tokens = self.next_line("BAND path labels").split()
                if len(tokens) < 2:
                    raise self.error("BAND path: expected two labels")
                path.append(BandSegment(start=tokens[0], end=tokens[1]))
            else:
                v = self.ints("BAND path", 6)
                path.append(BandSegment(start=(v[0], v[1], v[2]), end=(v[3], v[4], v[5])))
        return Band(
            title=title, shrink=iss, n_points=nsub, first_band=inzb, last_band=ifnb, plot=iplo,
            print_eigenvalues=lpr, path=path,
        )

    def _doss(self) -> Doss:
        npro, npt, inzb, ifnb, iplo, npol, npr = self.ints("DOSS header", 7)
        if npro < 0 or npro > MAX_DOSS_PROJECTIONS:
            raise self.error(f"DOSS: NPRO must be 0..{MAX_DOSS_PROJECTIONS}, not {npro}")
        energy_range = None
        if inzb < 0 and ifnb < 0:
            tokens = self.next_line("DOSS energy window").split()
            try:
                energy_range = (_fortran_float(tokens[0]), _fortran_float(tokens[1]))
            except (ValueError, IndexError) as exc:
                raise self.error(f"DOSS energy window: expected BMI BMA ({exc})") from exc
        record = self.next_line("DOSS print record") if npr > 0 else None
        projections = [self._projection() for _ in range(npro)]
        return Doss(
            n_points=npt, first_band=inzb, last_band=ifnb, energy_range=energy_range, plot=iplo,
            n_polynomials=npol, npr=npr, print_record=record, projections=projections,
        )

    def _projection(self) -> DossProjection:
        """``N i1 .. i|N|``: the indices may wrap onto following records (list-directed read)."""
        first, *rest = self.next_line("DOSS projection").split()
        try:
            count = int(first)
            indices = [int(t) for t in rest]
        except ValueError as exc:
            raise self.error(f"DOSS projection: not an integer ({exc})") from exc
        if count == 0 or len(indices) > abs(count):
            raise self.error(f"DOSS projection: {len(indices)} indices for N = {count}")
        indices.extend(self.int_stream("DOSS projection", abs(count) - len(indices)))
        return DossProjection(kind="ao" if count > 0 else "atom", indices=indices)
