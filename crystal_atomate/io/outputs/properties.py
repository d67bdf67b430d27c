"""Readers for what CRYSTAL ``properties`` writes: BAND.DAT, DOSS.DAT, fort.25 and its stdout.

Units, checked against the reference runs (CRYSTAL14 and 17):

* Every energy in these files is in **Hartree**. ``BAND.DAT`` energies are relative to the Fermi
  level (y-axis label ``E-EFERMI (HARTREE)``; the valence-band top of MgO reads 0.0).
  ``DOSS.DAT`` energies are relative to it in CRYSTAL17 (``E-EFERMI (HARTREE)``) and absolute in
  CRYSTAL14 (``ENERGY (HARTREE)``); the label decides. CRYSTAL17 appends
  ``# EFERMI (HARTREE) value`` to each spin block; CRYSTAL14 does not write the Fermi level.
  fort.25 energies are absolute, with the Fermi level in every header record.
* The band-structure abscissa is the path length in bohr^-1 (2*pi included).
* DOS are states/Hartree/cell; CRYSTAL writes the beta-spin DOS with a negative sign. The last
  DOS column (or fort.25 projection) is the total, after the NPRO projections.

The readers convert at the boundary: the typed results hold eV, states/eV/cell, Angstrom^-1 and
positive beta densities, so nothing downstream sees a Hartree.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
from pymatgen.core import Element, Structure
from pymatgen.electronic_structure.bandstructure import BandStructureSymmLine
from pymatgen.electronic_structure.core import Spin
from pymatgen.electronic_structure.dos import Dos

from crystal_atomate.io.errors import CrystalError, CrystalErrorKind, classify_line
from crystal_atomate.io.properties import (
    Band,
    Doss,
    KPathConvention,
    PropertiesParseError,
    element_atom_indices,
    high_symmetry_points,
)
from crystal_atomate.io.units import BOHR_TO_ANGSTROM, HARTREE_TO_EV

__all__ = [
    "BandData",
    "DossData",
    "Fort25Data",
    "PropertiesOutput",
    "parse_properties_output",
    "read_band_dat",
    "read_doss_dat",
    "read_fort25",
]

_SPINS = (Spin.up, Spin.down)
#: Searched (findall): the look-behind stops a restart inside a run of capitals (quadratic).
_HEADER_INT = re.compile(r"(?<![A-Z])([A-Z]++)\s+(-?\d+)")
_VERSION_LINE = re.compile(r"\s*\*\s+(CRYSTAL\d\d)\s+\*")
_EFERMI_LINE = re.compile(r"^#\s*EFERMI\s*\(HARTREE\)\s+(\S+)")
_VERTEX_LABEL = re.compile(r"^\((-?\d+),(-?\d+),(-?\d+)\)/(\d+)$")
_FORT25_FIELD = 12


@dataclass(frozen=True)
class BandData:
    """Eigenvalues along a BAND path, in eV, with the path's vertices as CRYSTAL wrote them.

    ``eigenvalues[spin]`` has shape (n_bands, n_kpoints); when ``fermi_shifted`` they are
    relative to ``efermi`` (which may be unknown: CRYSTAL14 BAND.DAT does not print it).
    ``vertex_indices`` are the 0-based k-point indices of the segment ends.
    """

    eigenvalues: dict[Spin, np.ndarray]
    distances: np.ndarray
    vertex_indices: list[int]
    vertex_labels: list[str]
    efermi: float | None
    fermi_shifted: bool
    source: Path | None = None

    @property
    def n_kpoints(self) -> int:
        """The number of k-points along the path."""
        return int(self.distances.size)

    @property
    def n_bands(self) -> int:
        """The number of bands in the file."""
        return int(self.eigenvalues[Spin.up].shape[0])

    @property
    def is_spin_polarized(self) -> bool:
        """Whether the file holds a second (beta) spin block."""
        return Spin.down in self.eigenvalues

    def absolute_eigenvalues(self) -> dict[Spin, np.ndarray]:
        """Eigenvalues on CRYSTAL's absolute scale; relative to E_F when E_F is unknown."""
        shift = self.efermi if (self.fermi_shifted and self.efermi is not None) else 0.0
        return {spin: values + shift for spin, values in self.eigenvalues.items()}

    def pymatgen_efermi(self, tolerance: float = 1e-4) -> float:
        """E_F for pymatgen: CRYSTAL's, or mid-gap when no band crosses it.

        For insulators CRYSTAL puts E_F on the valence-band top, which pymatgen's strict
        ``energy < efermi`` test would count as a conduction state (zero gap); mid-gap is what
        pymatgen expects. ``tolerance`` (eV) absorbs the 5-digit precision of BAND.DAT.
        """
        level = self.efermi if self.efermi is not None else 0.0
        bands = np.vstack(list(self.absolute_eigenvalues().values()))
        crossing = np.any(
            (bands.min(axis=1) < level - tolerance) & (bands.max(axis=1) > level + tolerance)
        )
        occupied, empty = bands[bands <= level + tolerance], bands[bands > level + tolerance]
        if crossing or occupied.size == 0 or empty.size == 0:
            return level
        return float(occupied.max() + empty.min()) / 2

    def vertex_fractions(self) -> list[np.ndarray] | None:
        """Vertex coordinates from CRYSTAL17 labels like ``(2,0,2)/4``; None otherwise."""
        found = [_VERTEX_LABEL.match(label.strip()) for label in self.vertex_labels]
        if not all(found):
            return None
        return [np.array([int(m[1]), int(m[2]), int(m[3])], dtype=float) / int(m[4]) for m in found]

    def to_band_structure(
        self,
        structure: Structure,
        band: Band | None = None,
        *,
        kpath: KPathConvention = "setyawan_curtarolo",
    ) -> BandStructureSymmLine:
        """Build a pymatgen band structure on the reciprocal lattice of ``structure``.

        The vertices come from ``band`` (the deck that produced the file) or, failing that, from
        the coordinates CRYSTAL17 prints as vertex labels. Labels come from ``band.labels``, else
        from the ``kpath`` high-symmetry points that coincide with a vertex, else the coordinates.
        CRYSTAL does not compute the start of a segment that begins where the previous one did
        not end; such a vertex gets no k-point (pymatgen then joins the two segments).
        """
        vertices = self._vertices(band)
        names = self._vertex_names(structure, band, vertices, kpath)
        frac: list[np.ndarray] = []
        columns: list[int] = []
        labels: dict[str, np.ndarray] = {}
        pairs = zip(vertices, names, strict=False)
        for segment, ((start, end), (start_name, end_name)) in enumerate(pairs):
            first, last = self.vertex_indices[segment], self.vertex_indices[segment + 1]
            computed = range(first, last + 1) if segment == 0 else range(first + 1, last + 1)
            if segment > 0 and np.allclose(start, vertices[segment - 1][1]):
                frac.append(start)
                columns.append(first)
            for j in computed:
                frac.append(start + (end - start) * (j - first) / (last - first))
                columns.append(j)
            labels[start_name] = start
            labels[end_name] = end
        eigen = {spin: values[:, columns] for spin, values in self.absolute_eigenvalues().items()}
        return BandStructureSymmLine(
            kpoints=np.array(frac),
            eigenvals=eigen,
            lattice=structure.lattice.reciprocal_lattice,
            efermi=self.pymatgen_efermi(),
            labels_dict=labels,
            structure=structure,
        )

    def _vertices(self, band: Band | None) -> list[tuple[np.ndarray, np.ndarray]]:
        segments = len(self.vertex_indices) - 1
        if band is not None:
            if len(band.path) != segments:
                raise ValueError(f"BAND input has {len(band.path)} segments, the data {segments}")
            return band.fractional_vertices()
        points = self.vertex_fractions()
        if points is None:
            raise ValueError("the file does not print vertex coordinates: pass the Band input")
        return list(pairwise(points))

    def _vertex_names(
        self,
        structure: Structure,
        band: Band | None,
        vertices: Sequence[tuple[np.ndarray, np.ndarray]],
        kpath: KPathConvention,
    ) -> list[tuple[str, str]]:
        if band is not None and band.labels is not None:
            return list(band.labels)
        known = high_symmetry_points(structure, kpath=kpath)

        def name(point: np.ndarray) -> str:
            for label, coords in known.items():
                if np.allclose(coords, point, atol=1e-5):
                    return label
            return "(" + ",".join(f"{x:g}" for x in point) + ")"

        return [(name(a), name(b)) for a, b in vertices]


@dataclass(frozen=True)
class DossData:
    """Total and projected DOS in states/eV/cell on an energy grid in eV.

    ``densities[spin]`` has shape (n_projections + 1, n_energies): the projections in deck order,
    the total last; beta densities are positive. ``energies`` are relative to ``efermi`` when
    ``fermi_shifted``.
    """

    energies: np.ndarray
    densities: dict[Spin, np.ndarray]
    efermi: float | None
    fermi_shifted: bool
    source: Path | None = None

    @property
    def n_projections(self) -> int:
        """The number of projections; the file's last column block is the total DOS."""
        return int(self.densities[Spin.up].shape[0]) - 1

    @property
    def is_spin_polarized(self) -> bool:
        """Whether the file holds a second (beta) spin block."""
        return Spin.down in self.densities

    def total(self, spin: Spin = Spin.up) -> np.ndarray:
        """Return the total DOS of ``spin`` (states/eV; beta densities are negative)."""
        return self.densities[spin][-1]

    def to_dos(self, efermi: float | None = None) -> Dos:
        """Return the total DOS as a pymatgen ``Dos``; ``efermi`` (eV) overrides the file's."""
        return self._dos(-1, efermi)

    def to_projected_dos(self, index: int, efermi: float | None = None) -> Dos:
        """Projection ``index`` (0-based, deck order) as a pymatgen ``Dos``."""
        if not 0 <= index < self.n_projections:
            raise IndexError(f"projection {index} out of range 0..{self.n_projections - 1}")
        return self._dos(index, efermi)

    def to_element_dos(
        self, structure: Structure, doss: Doss, efermi: float | None = None
    ) -> dict[Element, Dos]:
        """Return the per-element DOS for decks made by :meth:`Doss.from_structure`.

        Such decks have one atom projection per element, in ``element_atom_indices`` order.
        """
        expected = [sorted(v) for v in element_atom_indices(structure).values()]
        given = [sorted(p.indices) for p in doss.projections if p.kind == "atom"]
        if given != expected or len(doss.projections) != self.n_projections:
            raise ValueError("the DOSS projections are not one atom projection per element")
        return {
            element: self._dos(i, efermi)
            for i, element in enumerate(element_atom_indices(structure))
        }

    def _dos(self, column: int, efermi: float | None) -> Dos:
        """Absolute energies for pymatgen; a shifted file with no E_F stays relative to it."""
        level = efermi if efermi is not None else self.efermi
        if not self.fermi_shifted and level is None:
            raise ValueError(
                "the file gives absolute energies but no Fermi level: pass efermi (eV), e.g. "
                "from fort.25 or parse_properties_output(...).efermi"
            )
        energies = self.energies
        if self.fermi_shifted:
            anchor = self.efermi if self.efermi is not None else (level or 0.0)
            energies = energies + anchor
            level = anchor if level is None else level
        return Dos(
            efermi=level,
            energies=energies,
            densities={spin: values[column].copy() for spin, values in self.densities.items()},
        )


@dataclass(frozen=True)
class Fort25Data:
    """The BAND and DOSS records of a fort.25."""

    bands: BandData | None
    doss: DossData | None


@dataclass(frozen=True)
class PropertiesOutput:
    """The essentials of a properties stdout: did it finish, what failed, which version."""

    terminated: bool
    errors: list[CrystalError]
    warnings: list[str]
    version: str | None
    efermi: float | None
    source: Path | None = None

    @property
    def successful(self) -> bool:
        """Whether the run terminated and reported no error."""
        return self.terminated and not self.errors


def read_band_dat(path: str | Path) -> BandData:
    """Read a CRYSTAL ``BAND.DAT`` (``*_dat.BAND``), one block per spin."""
    lines = _read_lines(path)
    header = _header_ints(lines, path, "NKPT", "NBND", "NSPIN")
    npanel = _header_ints(lines[1:2], path, "NPANEL", offset=1)["NPANEL"]
    vertex_lines = lines[2 : 3 + npanel]
    vertex_indices, vertex_labels = [], []
    for number, line in enumerate(vertex_lines, start=3):
        parts = line[1:].split(None, 1)
        if not line.startswith("#") or not parts or not parts[0].isdigit():
            raise PropertiesParseError("expected '# <k index> <label>'", path=path, line=number)
        vertex_indices.append(int(parts[0]) - 1)
        vertex_labels.append(parts[1].strip() if len(parts) > 1 else "")
    blocks, efermis, _labels = _numeric_blocks(lines, path, header["NBND"] + 1, header["NSPIN"])
    for spin_block in blocks:
        if spin_block.shape[0] != header["NKPT"]:
            raise PropertiesParseError(
                f"{spin_block.shape[0]} k-points in a spin block, header says {header['NKPT']}",
                path=path,
                line=len(lines),
            )
    return BandData(
        eigenvalues={s: b[:, 1:].T * HARTREE_TO_EV for s, b in zip(_SPINS, blocks, strict=False)},
        distances=blocks[0][:, 0] / BOHR_TO_ANGSTROM,
        vertex_indices=vertex_indices,
        vertex_labels=vertex_labels,
        efermi=efermis[0] * HARTREE_TO_EV if efermis else None,
        fermi_shifted=True,
        source=Path(path),
    )


def read_doss_dat(path: str | Path) -> DossData:
    """Read a CRYSTAL ``DOSS.DAT`` (``*_dat.DOSS``), one block per spin."""
    lines = _read_lines(path)
    header = _header_ints(lines, path, "NEPTS", "NPROJ", "NSPIN")
    blocks, efermis, labels = _numeric_blocks(lines, path, header["NPROJ"] + 1, header["NSPIN"])
    for block in blocks:
        if block.shape[0] != header["NEPTS"]:
            raise PropertiesParseError(
                f"{block.shape[0]} energies in a spin block, header says {header['NEPTS']}",
                path=path,
                line=len(lines),
            )
    x_label = next((label for label in labels if "XAXIS LABEL" in label), "")
    signs = (1.0, -1.0)
    return DossData(
        energies=blocks[0][:, 0] * HARTREE_TO_EV,
        densities={
            spin: sign * block[:, 1:].T / HARTREE_TO_EV
            for spin, sign, block in zip(_SPINS, signs, blocks, strict=False)
        },
        efermi=efermis[0] * HARTREE_TO_EV if efermis else None,
        fermi_shifted="EFERMI" in x_label,
        source=Path(path),
    )


def read_fort25(path: str | Path) -> Fort25Data:
    """Read a fort.25 holding BAND and DOSS records (fixed-width ``6E12.5`` data).

    Map records (ECHG, ECH3, ...) have another layout and are refused with a parse error.

    Each record: ``-%-`` IHFERM TYPE NROW NCOL DX DY EFERMI, a line of two reals, a line of six
    integers (BAND: segment ends; DOSS: projection number and its AO count), then NROW*NCOL
    values. IHFERM odd means spin-polarised: the alpha records come first, then the beta ones
    (seen in DOSS; assumed for BAND, which the reference set has no spin-polarised example of).
    """
    lines = _read_lines(path)
    records: dict[str, list[_Fort25Record]] = {"BAND": [], "DOSS": []}
    index = 0
    while index < len(lines):
        if not lines[index].strip():
            index += 1
            continue
        record, index = _fort25_record(lines, index, path)
        records[record.kind].append(record)
    return Fort25Data(
        bands=_fort25_bands(records["BAND"], path) if records["BAND"] else None,
        doss=_fort25_doss(records["DOSS"], path) if records["DOSS"] else None,
    )


def parse_properties_output(path: str | Path) -> PropertiesOutput:
    """Termination, classified errors, warnings, version and Fermi level of a properties run.

    A run with no TERMINATION line and no error line is reported as ``TRUNCATED``.
    """
    lines = _read_lines(path)
    terminated = False
    errors: list[CrystalError] = []
    warnings: list[str] = []
    version: str | None = None
    efermi: float | None = None
    for number, line in enumerate(lines, start=1):
        if line.startswith(" EEEEEEEEEE TERMINATION"):
            terminated = True
        elif version is None and (found := _VERSION_LINE.match(line)):
            version = found[1]
        elif line.lstrip().startswith("WARNING ****"):
            warnings.append(line.strip())
        elif (fermi := _fermi_in_line(line)) is not None:
            efermi = fermi
        if (error := classify_line(line, number, source="properties")) is not None:
            errors.append(error)
    if not terminated and not errors:
        errors.append(
            CrystalError(
                kind=CrystalErrorKind.TRUNCATED,
                message=CrystalErrorKind.TRUNCATED.message,
                source="properties",
            )
        )
    return PropertiesOutput(
        terminated=terminated,
        errors=errors,
        warnings=warnings,
        version=version,
        efermi=efermi,
        source=Path(path),
    )


_FERMI_PATTERNS = (
    re.compile(r"EFERMI(?:\(AU\))?\s+(-?\d+\.\d+(?:E[-+]?\d+)?)"),
    re.compile(r"^\s*TOP OF VALENCE BANDS.*EIG\s+(-?\d+\.\d+E[-+]?\d+)"),
)


def _fermi_in_line(line: str) -> float | None:
    """Read the Fermi level (eV) from an ``EFERMI`` print or the valence-band top.

    Metals and BAND print ``EFERMI``; for insulators CRYSTAL puts E_F at the valence-band top, as
    the BAND.DAT ``EFERMI`` of MgO shows.
    """
    for pattern in _FERMI_PATTERNS:
        if found := pattern.search(line):
            return float(found[1]) * HARTREE_TO_EV
    return None


def _read_lines(path: str | Path) -> list[str]:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as exc:
        raise PropertiesParseError(f"cannot read: {exc.strerror}", path=path) from exc
    if not text.strip():
        raise PropertiesParseError("empty file", path=path, line=1)
    return text.splitlines()


def _header_ints(
    lines: Sequence[str], path: str | Path, *names: str, offset: int = 0
) -> dict[str, int]:
    """``# NAME value NAME value`` header record."""
    values = dict((k, int(v)) for k, v in _HEADER_INT.findall(lines[0])) if lines else {}
    missing = [n for n in names if n not in values]
    if not lines or not lines[0].startswith("#") or missing:
        raise PropertiesParseError(
            f"header must give {' '.join(names)} (missing {' '.join(missing) or 'the # line'})",
            path=path,
            line=1 + offset,
        )
    if values.get("NSPIN", 1) not in (1, 2):
        raise PropertiesParseError("NSPIN must be 1 or 2", path=path, line=1 + offset)
    return values


def _numeric_blocks(
    lines: Sequence[str], path: str | Path, columns: int, nspin: int
) -> tuple[list[np.ndarray], list[float], list[str]]:
    """Split the data rows into spin blocks (a block ends at ``# EFERMI`` or ``&``)."""
    blocks: list[list[list[float]]] = [[]]
    efermis: list[float] = []
    labels: list[str] = []
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("@"):
            labels.append(stripped)
            continue
        if stripped.startswith("#"):
            if found := _EFERMI_LINE.match(stripped):
                efermis.append(float(found[1]))
                blocks.append([])
            continue
        if stripped == "&":
            blocks.append([])
            continue
        row = stripped.split()
        if len(row) != columns:
            raise PropertiesParseError(
                f"expected {columns} columns, found {len(row)}", path=path, line=number
            )
        try:
            blocks[-1].append([float(x) for x in row])
        except ValueError as exc:
            raise PropertiesParseError(f"not a number ({exc})", path=path, line=number) from exc
    blocks = [b for b in blocks if b]
    if len(blocks) != nspin:
        raise PropertiesParseError(
            f"{len(blocks)} data blocks for NSPIN {nspin}", path=path, line=len(lines)
        )
    return [np.array(b) for b in blocks], efermis, labels


@dataclass(frozen=True)
class _Fort25Record:
    kind: str
    open_shell: bool
    ncol: int
    step: float
    efermi: float
    reals: tuple[float, float]
    ints: tuple[int, ...]
    values: np.ndarray
    line: int


def _fort25_record(lines: Sequence[str], index: int, path: str | Path) -> tuple[_Fort25Record, int]:
    head = lines[index]
    if not head.startswith("-%-") or len(head) < 18 + 3 * _FORT25_FIELD:
        raise PropertiesParseError("expected a '-%-' record header", path=path, line=index + 1)
    if head[4:8] not in ("BAND", "DOSS"):
        raise PropertiesParseError(
            f"unsupported fort.25 record {head[4:8]!r} (only BAND and DOSS are read)",
            path=path,
            line=index + 1,
        )
    try:
        ihferm = int(head[3])
        nrow, ncol = int(head[8:13]), int(head[13:18])
        dx, dy, efermi = _fixed_reals(head[18:], path, index + 1)[:3]
        reals = _fixed_reals(lines[index + 1], path, index + 2)
        ints = tuple(int(x) for x in lines[index + 2].split())
    except (ValueError, IndexError) as exc:
        raise PropertiesParseError(f"bad record header ({exc})", path=path, line=index + 1) from exc
    count = nrow * ncol
    n_lines = -(-count // 6)
    first_data = index + 3
    if first_data + n_lines > len(lines):
        raise PropertiesParseError(
            f"record needs {n_lines} data lines, file ends", path=path, line=len(lines)
        )
    values: list[float] = []
    for offset, line in enumerate(lines[first_data : first_data + n_lines]):
        values.extend(_fixed_reals(line, path, first_data + offset + 1))
    if len(values) != count:
        raise PropertiesParseError(
            f"{len(values)} values for NROW*NCOL = {count}", path=path, line=first_data + n_lines
        )
    record = _Fort25Record(
        kind=head[4:8],
        open_shell=ihferm % 2 == 1,
        ncol=ncol,
        step=dy,
        efermi=efermi,
        reals=(reals[0], reals[1]),
        ints=ints,
        values=np.array(values).reshape(ncol, nrow),
        line=index + 1,
    )
    return record, first_data + n_lines


def _fixed_reals(text: str, path: str | Path, line: int) -> list[float]:
    """``E12.5`` fields, which run together when negative (``1.0E+00-2.0E+00``)."""
    text = text.rstrip()
    try:
        return [
            float(text[i : i + _FORT25_FIELD])
            for i in range(0, len(text), _FORT25_FIELD)
            if text[i : i + _FORT25_FIELD].strip()
        ]
    except ValueError as exc:
        raise PropertiesParseError(f"not an E12.5 number ({exc})", path=path, line=line) from exc


def _spin_halves(records: list[_Fort25Record], path: str | Path) -> list[list[_Fort25Record]]:
    if not records[0].open_shell:
        return [records]
    if len(records) % 2:
        raise PropertiesParseError(
            "odd number of records in a spin-polarised file", path=path, line=records[-1].line
        )
    half = len(records) // 2
    return [records[:half], records[half:]]


def _fort25_bands(records: list[_Fort25Record], path: str | Path) -> BandData:
    """Segments concatenated as in BAND.DAT: the first keeps both ends, later ones their end."""
    per_spin = _spin_halves(records, path)
    first_spin = per_spin[0]
    distances: list[float] = []
    vertex_indices = [0]
    for number, record in enumerate(first_spin):
        start = distances[-1] if distances else 0.0
        steps = range(record.ncol) if number == 0 else range(1, record.ncol + 1)
        distances.extend(start + record.step * s for s in steps)
        vertex_indices.append(len(distances) - 1)
    labels = ["(" + ",".join(str(i) for i in first_spin[0].ints[:3]) + ")"]
    labels += ["(" + ",".join(str(i) for i in r.ints[3:6]) + ")" for r in first_spin]
    return BandData(
        eigenvalues={
            spin: np.vstack([r.values for r in spin_records]).T * HARTREE_TO_EV
            for spin, spin_records in zip(_SPINS, per_spin, strict=False)
        },
        distances=np.array(distances) / BOHR_TO_ANGSTROM,
        vertex_indices=vertex_indices,
        vertex_labels=labels,
        efermi=first_spin[0].efermi * HARTREE_TO_EV,
        fermi_shifted=False,
        source=Path(path),
    )


def _fort25_doss(records: list[_Fort25Record], path: str | Path) -> DossData:
    """One record per projection (total last); energies start at the second real of line 2."""
    per_spin = _spin_halves(records, path)
    first = per_spin[0][0]
    energies = first.reals[1] + first.step * np.arange(first.ncol)
    signs = (1.0, -1.0)
    return DossData(
        energies=energies * HARTREE_TO_EV,
        densities={
            spin: sign * np.vstack([r.values[:, 0] for r in spin_records]) / HARTREE_TO_EV
            for spin, sign, spin_records in zip(_SPINS, signs, per_spin, strict=False)
        },
        efermi=first.efermi * HARTREE_TO_EV,
        fermi_shifted=False,
        source=Path(path),
    )
