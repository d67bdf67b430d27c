"""The CRYSTAL ``fort.34`` (``.gui``) geometry file: read, write and convert to/from pymatgen.

``fort.34`` is what ``EXTERNAL`` reads and what CRYSTAL writes after ``EXTPRT`` or an optimisation
(``optcNNN``). It is the most faithful way to hand CRYSTAL an arbitrary pymatgen structure: every
atom of the cell is listed in Cartesian Angstrom together with the symmetry operators, so no
space-group setting conventions can get in the way.

Layout (verified on real files)::

    3   5   6                       dimensionality, centring code, crystal type [E energy DE
    delta(n)] a1x a1y a1z                     three lattice rows, Angstrom; 500 for non-periodic
    axes ... 48                              number of symmetry operators r11 r12 r13 / r21 .. / r31
    .. / t1 t2 t3    four lines each, Cartesian, x' = R x + t 2                               number
    of atoms (all atoms of the cell) 12  x y z                       conventional atomic number (Z,
    Z+200 for ECP), Cartesian Angstrom 225  48                         space group and number of
    operators (optional; "0 0" = unknown)
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np
import spglib
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pymatgen.core import Element, Lattice, Molecule, Structure

from crystal_atomate.io.deck_lines import DeckError

Vec3 = tuple[float, float, float]
Mat3 = tuple[Vec3, Vec3, Vec3]

#: Length CRYSTAL writes for the lattice vectors along non-periodic directions.
NON_PERIODIC_LENGTH = 500.0
#: Offset CRYSTAL adds to the atomic number of an atom described by an effective core potential.
ECP_OFFSET = 200

#: fort.34 crystal-type code per crystal system.
CRYSTAL_TYPES = {"triclinic": 1, "monoclinic": 2, "orthorhombic": 3, "tetragonal": 4,
                 "trigonal": 5, "hexagonal": 5, "cubic": 6}
_SYSTEM_BOUNDS = ((2, "triclinic"), (15, "monoclinic"), (74, "orthorhombic"), (142, "tetragonal"),
                  (167, "trigonal"), (194, "hexagonal"), (230, "cubic"))
_REAL = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_ENERGY_HEADER = re.compile(
    rf"E\s*(?P<energy>{_REAL})\s+DE\s*(?P<delta>{_REAL})\s*\(\s*(?P<n>\d+)\s*\)"
)


class Fort34ParseError(DeckError):
    """A fort.34 file that does not follow the layout; the message names the line."""


def format_real(value: float) -> str:
    """Fixed-width E format when it reproduces ``value`` exactly, else the shortest exact repr.

    Round trips (file -> model -> file -> model) must be lossless, and most real values print
    exactly in 13 significant digits, so the readable form is kept whenever it is exact.
    """
    text = f"{value:20.12E}"
    return text if float(text) == value else f" {value!r:>19}"


def crystal_system(space_group: int) -> str:
    """Return the crystal system of a space-group number (1-230)."""
    for last, system in _SYSTEM_BOUNDS:
        if 1 <= space_group <= last:
            return system
    raise ValueError(f"space group number {space_group} is not in 1..230")


def spin_signs(structure: Structure) -> list[int]:
    """+1 / -1 / 0 per site from the ``magmom`` site property (0 where absent or below 0.01)."""
    magmoms = structure.site_properties.get("magmom") or [0.0] * len(structure)
    return [
        0 if m is None or abs(float(np.sum(m))) < 0.01 else int(np.sign(np.sum(m))) for m in magmoms
    ]


def symmetry_of(
    structure: Structure, symprec: float = 1e-3, signs: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Fractional rotations, translations and space-group number, spin-up and spin-down told apart.

    spglib's space-group search ignores magnetic moments, so atoms are typed by (element,
    sign of magmom): an antiferromagnet then gets only the operators that keep each
    sublattice, i.e. up and down sites become symmetry-inequivalent as CRYSTAL needs.

    Parameters
    ----------
    structure
        The cell whose operators are wanted.
    symprec
        spglib's tolerance, Angstrom.
    signs
        :func:`spin_signs` of ``structure`` when the caller already has them (computed otherwise).

    Returns
    -------
    tuple
        Rotations and translations (fractional, spglib's) and the space-group number.

    Raises
    ------
    ValueError
        spglib finds no symmetry at all (a cell it cannot read).
    """
    kinds = list(
        zip(
            structure.atomic_numbers, spin_signs(structure) if signs is None else signs, strict=True
        )
    )
    unique = list(dict.fromkeys(kinds))
    types = [unique.index(kind) + 1 for kind in kinds]
    cell = (structure.lattice.matrix, structure.frac_coords, types)
    dataset = spglib.get_symmetry_dataset(cell, symprec=symprec)
    if dataset is None:
        raise ValueError(f"spglib found no symmetry for {structure.formula} (symprec={symprec})")
    return dataset.rotations, dataset.translations, int(dataset.number)


def conventional_atomic_number(symbol: str, ecp_elements: Collection[str]) -> int:
    """CRYSTAL's atomic number: Z, or Z+200 when the element carries an effective core potential."""
    z = Element(symbol).Z
    return z + ECP_OFFSET if symbol in ecp_elements else z


class SymmetryOperator(BaseModel):
    """One Cartesian operator, applied as ``x' = rotation @ x + translation`` (Angstrom)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rotation: Mat3
    translation: Vec3


class Fort34Atom(BaseModel):
    """An atom: conventional atomic number (Z, or Z+200 for ECP), Cartesian position in Angstrom."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    number: int = Field(gt=0)
    position: Vec3

    @property
    def element(self) -> Element:
        """The chemical element (the conventional number modulo 100)."""
        return Element.from_Z(self.number % 100)


class EnergyHeader(BaseModel):
    """The ``E <energy> DE <change>(n)`` tail of the first line of an optimised geometry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    energy: float
    delta: float
    n: int


class Fort34(BaseModel):
    """A parsed ``fort.34``: lattice, symmetry operators and all atoms of the cell, Cartesian."""

    model_config = ConfigDict(extra="forbid")

    dimensionality: int = Field(ge=0, le=3)
    centring: int = Field(default=1, ge=1, le=7)
    crystal_type: int = Field(default=1, ge=1, le=6)
    lattice: Mat3
    symmops: list[SymmetryOperator] = Field(min_length=1)
    atoms: list[Fort34Atom] = Field(min_length=1)
    space_group: tuple[int, int] | None = None
    energy: EnergyHeader | None = None

    @field_validator("lattice")
    @classmethod
    def _lattice_not_singular(cls, lattice: Mat3) -> Mat3:
        if abs(np.linalg.det(np.array(lattice))) < 1e-8:
            raise ValueError("lattice vectors are linearly dependent")
        return lattice

    # -- text ---------------------------------------------------------------------------------
    @classmethod
    def from_string(cls, text: str) -> Fort34:
        """Parse the text of a fort.34 / .gui / optcNNN file."""
        lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
        cursor = iter(lines)

        def take(count: int | None = None, what: str = "") -> tuple[int, list[str]]:
            try:
                number, line = next(cursor)
            except StopIteration:
                raise Fort34ParseError(f"file ends early: expected {what}") from None
            tokens = line.split()
            if count is not None and len(tokens) < count:
                raise Fort34ParseError(f"line {number}: expected {what}, got {line.strip()!r}")
            return number, tokens

        def numbers(tokens: list[str], number: int, kind: type, count: int) -> list:
            try:
                return [kind(token) for token in tokens[:count]]
            except ValueError:
                raise Fort34ParseError(
                    f"line {number}: not numbers: {' '.join(tokens)!r}"
                ) from None

        number, header = take(3, "dimensionality, centring code, crystal type")
        dimensionality, centring, crystal_type = numbers(header, number, int, 3)
        energy = None
        if len(header) > 3:
            match = _ENERGY_HEADER.search(lines[0][1])
            if match is None:
                raise Fort34ParseError(
                    f"line {number}: unreadable energy header {lines[0][1].strip()!r}"
                )
            energy = EnergyHeader(
                energy=float(match["energy"]), delta=float(match["delta"]), n=int(match["n"])
            )
        lattice = tuple(
            tuple(numbers(*reversed(take(3, "a lattice vector")), float, 3)) for _ in range(3)
        )
        number, tokens = take(1, "the number of symmetry operators")
        symmops = []
        for _ in range(numbers(tokens, number, int, 1)[0]):
            rows = [
                tuple(numbers(*reversed(take(3, "a symmetry operator row")), float, 3))
                for _ in range(4)
            ]
            symmops.append(SymmetryOperator(rotation=tuple(rows[:3]), translation=rows[3]))
        number, tokens = take(1, "the number of atoms")
        atoms = []
        for _ in range(numbers(tokens, number, int, 1)[0]):
            number, tokens = take(4, "an atom 'Z x y z'")
            atoms.append(Fort34Atom(number=numbers(tokens, number, int, 1)[0],
                                    position=tuple(numbers(tokens[1:], number, float, 3))))
        space_group = None
        rest = next(cursor, None)
        if rest is not None:
            space_group = tuple(numbers(rest[1].split(), rest[0], int, 2))
        return cls(
            dimensionality=dimensionality,
            centring=centring,
            crystal_type=crystal_type,
            lattice=lattice,
            symmops=symmops,
            atoms=atoms,
            space_group=space_group,
            energy=energy,
        )

    @classmethod
    def from_file(cls, path: str | Path) -> Fort34:
        """Read a fort.34 / .gui / optcNNN file."""
        return cls.from_string(Path(path).read_text())

    def to_string(self) -> str:
        """Render in CRYSTAL's layout; the result parses back to an equal object."""
        header = f"{self.dimensionality:4d}{self.centring:4d}{self.crystal_type:4d}"
        if self.energy is not None:
            header += (
                f" E{format_real(self.energy.energy)}"
                f" DE{format_real(self.energy.delta)}({self.energy.n:3d})"
            )
        lines = [header, *(_row(vector) for vector in self.lattice), f"{len(self.symmops):5d}"]
        for op in self.symmops:
            lines.extend(_row(row) for row in (*op.rotation, op.translation))
        lines.append(f"{len(self.atoms):5d}")
        lines.extend(f"{atom.number:5d}{_row(atom.position)}" for atom in self.atoms)
        if self.space_group is not None:
            lines.append(f"{self.space_group[0]:5d}{self.space_group[1]:5d}")
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        """Return the fort.34 text, as :meth:`to_string`."""
        return self.to_string()

    def write_file(self, path: str | Path) -> Path:
        """Write to ``path`` (usually ``<dir>/fort.34``) and return it."""
        path = Path(path)
        path.write_text(self.to_string())
        return path

    # -- pymatgen ----------------------------------------------------------------------------
    @classmethod
    def from_structure(
        cls, structure: Structure, symmetry: bool = True, symprec: float = 1e-3,
        ecp_elements: Collection[str] = (), signs: Sequence[int] | None = None,
    ) -> Fort34:
        """Return a 3D fort.34 holding every site of ``structure`` in its own cell.

        With ``symmetry`` the operators are spglib's for this very cell (so CRYSTAL can reduce the
        work), one per rotation: pure centring translations of a non-primitive cell are dropped
        because CRYSTAL counts at most 48 operators; a structure with ``magmom`` site properties
        gets only the operators that keep the moments, which is what makes antiferromagnetic
        sublattices inequivalent. Without it the file is P1 (identity only, header ``3 1 1``).
        ``ecp_elements`` get atomic number Z+200; ``signs`` are the structure's :func:`spin_signs`
        when the caller has them already. The structure is taken as given:
        :func:`crystal_atomate.io.geometry.check_structure` is the caller's (the input set checks it
        once per job).
        """
        atoms = [Fort34Atom(number=conventional_atomic_number(site.specie.symbol, ecp_elements),
                            position=_as_vec3(site.coords)) for site in structure]
        lattice = _as_mat3(structure.lattice.matrix)
        if not symmetry:
            return cls(dimensionality=3, centring=1, crystal_type=1, lattice=lattice,
                       symmops=[_IDENTITY], atoms=atoms, space_group=(1, 1))
        rotations, translations, number = symmetry_of(structure, symprec, signs)
        matrix = structure.lattice.matrix
        symmops: dict[Mat3, SymmetryOperator] = {}
        for rotation, translation in zip(rotations, translations, strict=True):
            cartesian = np.round(matrix.T @ rotation @ np.linalg.inv(matrix.T), 12) + 0.0
            symmops.setdefault(
                _as_mat3(cartesian),
                SymmetryOperator(
                    rotation=_as_mat3(cartesian), translation=_as_vec3(translation @ matrix)
                ),
            )
        return cls(
            dimensionality=3,
            centring=1,
            crystal_type=CRYSTAL_TYPES[crystal_system(number)],
            lattice=lattice,
            symmops=list(symmops.values()),
            atoms=atoms,
            space_group=(number, len(symmops)),
        )

    @classmethod
    def from_slab(cls, structure: Structure, ecp_elements: Collection[str] = ()) -> Fort34:
        """Return a 2D (SLAB) fort.34 of a slab ``Structure`` whose c axis is the vacuum direction.

        CRYSTAL wants the surface in the xy plane, z Cartesian and non-periodic; the structure is
        rotated into that frame (a along x) and written P1, which is always valid.
        """
        a_vec, b_vec, _ = structure.lattice.matrix
        e1 = a_vec / np.linalg.norm(a_vec)
        e3 = np.cross(a_vec, b_vec) / np.linalg.norm(np.cross(a_vec, b_vec))
        frame = np.array([e1, np.cross(e3, e1), e3])
        frac = structure.frac_coords.copy()
        frac[:, 2] -= np.round(frac[:, 2] - frac[0, 2])
        positions = (frac @ structure.lattice.matrix) @ frame.T
        positions[:, 2] -= (positions[:, 2].max() + positions[:, 2].min()) / 2
        lattice = np.array([frame @ a_vec, frame @ b_vec, (0.0, 0.0, NON_PERIODIC_LENGTH)])
        lattice[:2, 2] = 0.0
        atoms = [Fort34Atom(number=conventional_atomic_number(site.specie.symbol, ecp_elements),
                            position=_as_vec3(position))
                 for site, position in zip(structure, positions, strict=True)]
        return cls(dimensionality=2, centring=1, crystal_type=1, lattice=_as_mat3(lattice),
                   symmops=[_IDENTITY], atoms=atoms, space_group=(0, 0))

    @classmethod
    def from_molecule(cls, molecule: Molecule, ecp_elements: Collection[str] = ()) -> Fort34:
        """Return a 0D fort.34 (identity only, 500 A box) of a molecule's Cartesian coordinates."""
        atoms = [
            Fort34Atom(
                number=conventional_atomic_number(site.specie.symbol, ecp_elements),
                position=_as_vec3(site.coords),
            )
            for site in molecule
        ]
        return cls(
            dimensionality=0,
            centring=1,
            crystal_type=1,
            lattice=_as_mat3(np.eye(3) * NON_PERIODIC_LENGTH),
            symmops=[_IDENTITY],
            atoms=atoms,
            space_group=(1, 1),
        )

    @property
    def atomic_numbers(self) -> list[int]:
        """True atomic numbers (ECP offsets removed)."""
        return [atom.number % 100 for atom in self.atoms]

    def to_structure(self) -> Structure:
        """Return the periodic structure.

        2D/1D keep CRYSTAL's 500 A along the non-periodic axes.
        """
        if self.dimensionality == 0:
            raise ValueError("a 0D fort.34 is a molecule: use to_molecule()")
        return Structure(
            Lattice(self.lattice),
            self.atomic_numbers,
            [atom.position for atom in self.atoms],
            coords_are_cartesian=True,
        )

    def to_molecule(self) -> Molecule:
        """Return the molecule of a 0D fort.34."""
        if self.dimensionality != 0:
            raise ValueError(f"a {self.dimensionality}D fort.34 is periodic: use to_structure()")
        return Molecule(self.atomic_numbers, [atom.position for atom in self.atoms])


_IDENTITY = SymmetryOperator(
    rotation=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)), translation=(0.0, 0.0, 0.0)
)


def _row(values: Vec3) -> str:
    return " ".join(format_real(float(v)) for v in values)


def _as_vec3(vector: np.ndarray) -> Vec3:
    return tuple(float(v) for v in vector)


def _as_mat3(matrix: np.ndarray) -> Mat3:
    return tuple(_as_vec3(row) for row in matrix)
