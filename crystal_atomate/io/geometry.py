"""The geometry block of a CRYSTAL deck, and conversions from/to pymatgen.

CRYSTAL's own ``CRYSTAL`` input is the compact, symmetrised form: space group, the independent
lattice parameters of its crystal system and the asymmetric unit. Getting the setting wrong
silently builds another crystal, so the conventions below were checked against CRYSTAL's own
expansion of real decks (``gui_geometry_examples``): with ``IFSO=0`` CRYSTAL uses ITA origin
choice 2 for the groups that have two, with ``IFSO=1`` origin choice 1; monoclinic cells are
unique-axis b (``a b c beta``), trigonal ones hexagonal axes unless ``IFHR=1``.

Structures with magnetic moments go through ``EXTERNAL`` (fort.34) instead, with the symmetry
reduced so that up and down sites are inequivalent; :func:`atomspin_from_structure` gives the
matching ``ATOMSPIN`` list.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from functools import cache
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pymatgen.core import Composition, Lattice, Molecule, PeriodicSite, Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer
from pymatgen.symmetry.groups import SpaceGroup

from crystal_atomate.io.basis import format_number
from crystal_atomate.io.deck_lines import CountMismatchError, LineCursor, is_argument_line
from crystal_atomate.io.fort34 import (
    Fort34,
    Vec3,
    conventional_atomic_number,
    crystal_system,
    spin_signs,
)

#: Atoms closer than this are almost certainly a structure bug (duplicate site, wrong cell).
MIN_INTERATOMIC_DISTANCE = 0.5

#: Independent lattice parameters CRYSTAL reads per crystal system.
N_LATTICE_PARAMETERS = {"triclinic": 6, "monoclinic": 4, "orthorhombic": 3, "tetragonal": 2,
                        "trigonal": 2, "hexagonal": 2, "cubic": 1}


class StructureError(ValueError):
    """A structure CRYSTAL cannot (or should not) be given: empty, disordered, overlapping atoms."""


class AtomSite(BaseModel):
    """``Z x y z``: conventional atomic number (Z+200 for ECP), coordinates as the block defines."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    number: int = Field(gt=0)
    coords: Vec3

    def to_line(self) -> str:
        """Return the atom's deck line."""
        return f"{self.number} " + " ".join(format_number(c) for c in self.coords)


def _slab_parameter_count(layer_group: int) -> int:
    """Oblique (1-7) a b gamma; rectangular (8-48) a b; square (49-64) and hexagonal (65-80) a."""
    return 3 if layer_group <= 7 else 2 if layer_group <= 48 else 1


class CrystalGeometry(BaseModel):
    """``CRYSTAL``: 3D; space group, independent lattice parameters, fractional asymmetric unit."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["CRYSTAL"] = "CRYSTAL"
    iflag: Literal[0, 1] = 0
    ifhr: Literal[0, 1] = 0
    ifso: int = Field(default=0, ge=0)
    space_group: int | str
    origin_shift: tuple[int, int, int] | None = None
    lattice_parameters: list[float] = Field(min_length=1, max_length=6)
    atoms: list[AtomSite] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> CrystalGeometry:
        if self.iflag == 0 and not (
            isinstance(self.space_group, int) and 1 <= self.space_group <= 230
        ):
            raise ValueError(f"IFLAG=0 needs a space-group number 1..230, got {self.space_group!r}")
        if self.iflag == 1 and not isinstance(self.space_group, str):
            raise ValueError("IFLAG=1 needs a space-group symbol")
        if (self.ifso > 1) != (self.origin_shift is not None):
            raise ValueError("an origin-shift line is given iff IFSO > 1")
        if isinstance(self.space_group, int):
            expected = N_LATTICE_PARAMETERS[crystal_system(self.space_group)]
            if crystal_system(self.space_group) == "trigonal" and self.ifhr == 1:
                expected = 2
            if len(self.lattice_parameters) != expected:
                raise ValueError(
                    f"space group {self.space_group} takes {expected} lattice parameter(s), "
                    f"got {len(self.lattice_parameters)}"
                )
        if any(p <= 0 for p in self.lattice_parameters):
            raise ValueError("lattice parameters must be positive")
        return self

    def to_lines(self) -> list[str]:
        """Return the block's deck lines, ``CRYSTAL`` through the asymmetric unit."""
        lines = ["CRYSTAL", f"{self.iflag} {self.ifhr} {self.ifso}", str(self.space_group)]
        if self.origin_shift is not None:
            lines.append(" ".join(map(str, self.origin_shift)))
        lines.append(" ".join(format_number(p) for p in self.lattice_parameters))
        lines.append(str(len(self.atoms)))
        lines.extend(atom.to_line() for atom in self.atoms)
        return lines

    def to_structure(self) -> Structure:
        """Expand the asymmetric unit with pymatgen, in CRYSTAL's setting (see the module doc)."""
        if self.iflag != 0 or self.ifso > 1:
            raise NotImplementedError("only numbered space groups with IFSO 0 or 1 can be expanded")
        system = crystal_system(self.space_group)
        lattice = _lattice_from_parameters(
            system, self.lattice_parameters, rhombohedral=self.ifhr == 1
        )
        return Structure.from_spacegroup(
            self._setting_symbol(), lattice, [atom.number % 100 for atom in self.atoms],
            [atom.coords for atom in self.atoms], tol=1e-3,
        )

    def _setting_symbol(self) -> str:
        """Pymatgen's symbol for the setting CRYSTAL picks from IFHR/IFSO."""
        symbol = _space_group_symbol(self.space_group)
        if crystal_system(self.space_group) == "trigonal" and symbol.startswith("R"):
            return f"{symbol}:{'R' if self.ifhr else 'H'}"
        choice = f"{symbol}:{1 if self.ifso == 1 else 2}"
        return choice if _is_known_setting(choice) else symbol


@cache
def _space_group(symbol: str) -> SpaceGroup | None:
    """Pymatgen's SpaceGroup for ``symbol`` (None if unknown), kept alive for the process.

    pymatgen caches SpaceGroup instances only weakly and builds the operations of a cubic group
    with O(n^2) SymmOp comparisons (Fm-3m: ~0.3 s); holding them here also makes the
    ``SpaceGroup(symbol)`` inside ``Structure.from_spacegroup`` a cache hit.
    """
    try:
        return SpaceGroup(symbol)
    except ValueError:
        return None


@cache
def _space_group_by_number(number: int) -> SpaceGroup:
    return SpaceGroup.from_int_number(number)


def _space_group_symbol(number: int) -> str:
    return _space_group_by_number(number).symbol


def _is_known_setting(symbol: str) -> bool:
    return _space_group(symbol) is not None


def _lattice_from_parameters(system: str, p: list[float], rhombohedral: bool = False) -> Lattice:
    if system == "cubic":
        return Lattice.cubic(p[0])
    if system in ("tetragonal",):
        return Lattice.tetragonal(p[0], p[1])
    if system in ("trigonal", "hexagonal"):
        return Lattice.rhombohedral(p[0], p[1]) if rhombohedral else Lattice.hexagonal(p[0], p[1])
    if system == "orthorhombic":
        return Lattice.orthorhombic(*p)
    if system == "monoclinic":
        return Lattice.monoclinic(*p)
    return Lattice.from_parameters(*p)


class SlabGeometry(BaseModel):
    """``SLAB``: layer group, its lattice parameters, atoms (x y fractional, z in Angstrom)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["SLAB"] = "SLAB"
    layer_group: int = Field(ge=1, le=80)
    lattice_parameters: list[float] = Field(min_length=1, max_length=3)
    atoms: list[AtomSite] = Field(min_length=1)

    @model_validator(mode="after")
    def _parameter_count(self) -> SlabGeometry:
        expected = _slab_parameter_count(self.layer_group)
        if len(self.lattice_parameters) != expected:
            raise ValueError(
                f"layer group {self.layer_group} takes {expected} lattice parameter(s)"
            )
        return self

    def to_lines(self) -> list[str]:
        """Return the block's deck lines, ``SLAB`` through its atoms."""
        return [
            "SLAB",
            str(self.layer_group),
            " ".join(format_number(p) for p in self.lattice_parameters),
            str(len(self.atoms)),
            *(atom.to_line() for atom in self.atoms),
        ]


class PolymerGeometry(BaseModel):
    """``POLYMER``: rod group, ``a``, atoms with x fractional and y z in Angstrom."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["POLYMER"] = "POLYMER"
    rod_group: int = Field(ge=1, le=75)
    lattice_parameters: list[float] = Field(min_length=1, max_length=1)
    atoms: list[AtomSite] = Field(min_length=1)

    def to_lines(self) -> list[str]:
        """Return the block's deck lines, ``POLYMER`` through its atoms."""
        return ["POLYMER", str(self.rod_group), format_number(self.lattice_parameters[0]),
                str(len(self.atoms)), *(atom.to_line() for atom in self.atoms)]


class MoleculeGeometry(BaseModel):
    """``MOLECULE``: point group and the symmetry-independent atoms in Cartesian Angstrom."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["MOLECULE"] = "MOLECULE"
    point_group: int = Field(ge=1, le=48)
    atoms: list[AtomSite] = Field(min_length=1)

    def to_lines(self) -> list[str]:
        """Return the block's deck lines, ``MOLECULE`` through its atoms."""
        return [
            "MOLECULE",
            str(self.point_group),
            str(len(self.atoms)),
            *(atom.to_line() for atom in self.atoms),
        ]


class ExternalGeometry(BaseModel):
    """``EXTERNAL``: the geometry is in a separate ``fort.34``, carried here when known."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["EXTERNAL"] = "EXTERNAL"
    fort34: Fort34 | None = None

    def to_lines(self) -> list[str]:
        """Return the block's deck line; the geometry itself goes to fort.34."""
        return ["EXTERNAL"]

    @classmethod
    def from_file(cls, path: str | Path) -> ExternalGeometry:
        """``EXTERNAL`` carrying the fort.34 read from ``path``."""
        return cls(fort34=Fort34.from_file(path))


Geometry = Annotated[
    CrystalGeometry | SlabGeometry | PolymerGeometry | MoleculeGeometry | ExternalGeometry,
    Field(discriminator="kind"),
]
GEOMETRY_KEYWORDS = ("CRYSTAL", "SLAB", "POLYMER", "MOLECULE", "EXTERNAL")


def parse_geometry(cursor: LineCursor) -> Geometry:
    """Parse the geometry definition (keyword through the last atom) at the cursor."""
    keyword = cursor.peek_keyword()
    if keyword not in GEOMETRY_KEYWORDS:
        raise cursor.error(f"a geometry keyword ({', '.join(GEOMETRY_KEYWORDS)})")
    cursor.line(keyword)
    if keyword == "EXTERNAL":
        return ExternalGeometry()
    if keyword == "CRYSTAL":
        iflag, ifhr, ifso = cursor.ints(3, "'IFLAG IFHR IFSO'")
        space_group: int | str = (
            cursor.line("a space group").strip()
            if iflag
            else cursor.ints(1, "a space-group number")[0]
        )
        origin = tuple(cursor.ints(3, "an origin shift 'n1 n2 n3'")) if ifso > 1 else None
        parameters = cursor.reals(None, "the lattice parameters")
        atoms = _parse_atoms(cursor)
        return _validated(
            cursor,
            CrystalGeometry,
            iflag=iflag,
            ifhr=ifhr,
            ifso=ifso,
            space_group=space_group,
            origin_shift=origin,
            lattice_parameters=parameters,
            atoms=atoms,
        )
    if keyword == "MOLECULE":
        group = cursor.ints(1, "a point-group number")[0]
        return _validated(cursor, MoleculeGeometry, point_group=group, atoms=_parse_atoms(cursor))
    group = cursor.ints(1, "a layer/rod group number")[0]
    parameters = cursor.reals(None, "the lattice parameters")
    model = SlabGeometry if keyword == "SLAB" else PolymerGeometry
    field = "layer_group" if keyword == "SLAB" else "rod_group"
    return _validated(
        cursor, model, **{field: group}, lattice_parameters=parameters, atoms=_parse_atoms(cursor)
    )


def _parse_atoms(cursor: LineCursor) -> list[AtomSite]:
    count = cursor.ints(1, "the number of atoms")[0]
    count_line = cursor.number(-1)
    atoms = []
    for index in range(count):
        if cursor.at_end() or not is_argument_line(cursor.peek()):
            raise cursor.error(
                "an atom 'Z x y z'",
                error=CountMismatchError,
                hint=f"the atom count on line {count_line} says {count}, {index} atom line(s) "
                     "follow",
            )
        number, *_ = cursor.ints(1, "an atom 'Z x y z'")
        cursor.index -= 1
        coords = cursor.reals(4, "an atom 'Z x y z'")[1:]
        atoms.append(AtomSite(number=number, coords=tuple(coords)))
    return atoms


def _validated(cursor: LineCursor, model: type[BaseModel], **fields) -> BaseModel:
    try:
        return model(**fields)
    except ValueError as exc:
        cursor.index -= 1
        raise cursor.error(f"a valid {model.__name__} ({exc})") from None


# -- pymatgen -> CRYSTAL ---------------------------------------------------------------------------
def check_structure(structure: Structure | Molecule) -> None:
    """Reject structures CRYSTAL would misread, BEFORE any file is written.

    The conversions below take the structure as given; this all-pairs check is run once per
    job by the input set (:meth:`~crystal_atomate.sets.base.CrystalInputGenerator.check_structure`),
    or by whoever builds a deck from a structure directly.

    Parameters
    ----------
    structure
        The structure or molecule about to be written.

    Raises
    ------
    StructureError
        Naming the problem: no sites, partial occupancy / disorder (CRYSTAL has no notion of
        it) or two sites closer than 0.5 Angstrom.
    """
    if len(structure) == 0:
        raise StructureError("structure has no sites")
    if not structure.is_ordered:
        bad = [i for i, site in enumerate(structure) if not site.is_ordered]
        raise StructureError(
            f"structure is disordered (partial occupancy) at site(s) {bad}; CRYSTAL needs an "
            "ordered structure"
        )
    distances = structure.distance_matrix
    np.fill_diagonal(distances, np.inf)
    i, j = np.unravel_index(np.argmin(distances), distances.shape)
    if distances[i, j] < MIN_INTERATOMIC_DISTANCE:
        raise StructureError(
            f"sites {i} ({structure[i].specie}) and {j} ({structure[j].specie}) are only "
            f"{distances[i, j]:.3f} A apart (< {MIN_INTERATOMIC_DISTANCE} A)"
        )




def geometry_from_structure(
    structure: Structure | Molecule,
    *,
    form: Literal["external", "symmetrized"],
    dimensionality: Literal[0, 2, 3],
    symprec: float = 1e-3,
    ecp_elements: Collection[str] = (),
) -> tuple[Geometry, list[tuple[int, int]]]:
    """Return the geometry block of a deck for ``structure``, and its ``ATOMSPIN`` pairs.

    The one way from pymatgen to a deck's geometry: the spin signs are read once and serve both
    the symmetry (up and down sites inequivalent) and ``ATOMSPIN``. The structure is taken as
    given (see :func:`check_structure`).

    Parameters
    ----------
    structure
        A 3D structure, a slab (c is the vacuum direction) or a molecule.
    form
        ``"external"`` (fort.34 with every atom and the operators) or ``"symmetrized"`` (the
        ``CRYSTAL`` keyword form); 0D and 2D structures are always written as fort.34.
    dimensionality
        0 (molecule), 2 (slab) or 3.
    symprec
        spglib's tolerance, Angstrom.
    ecp_elements
        Elements whose basis carries an effective core potential (atomic number Z+200).

    Returns
    -------
    tuple
        The geometry model and the ``(1-based site, +1/-1)`` pairs, empty without moments.

    Raises
    ------
    ValueError
        Magnetic moments with ``form="symmetrized"``, which cannot tell up from down sites.
    """
    signs = spin_signs(structure)
    atomspin = _atomspin(signs)
    if atomspin and form == "symmetrized":
        raise ValueError(
            "magnetic moments need geometry='external' (CRYSTAL form cannot separate spins)"
        )
    if dimensionality == 0:
        molecule = structure if isinstance(structure, Molecule) else Molecule.from_sites(structure)
        return ExternalGeometry(
            fort34=Fort34.from_molecule(molecule, ecp_elements=ecp_elements)
        ), atomspin
    if dimensionality == 2:
        return ExternalGeometry(
            fort34=Fort34.from_slab(structure, ecp_elements=ecp_elements)
        ), atomspin
    if form == "symmetrized":
        return crystal_geometry_from_structure(structure, symprec, ecp_elements), atomspin
    fort34 = Fort34.from_structure(
        structure, symmetry=True, symprec=symprec, ecp_elements=ecp_elements, signs=signs
    )
    return ExternalGeometry(fort34=fort34), atomspin


def crystal_geometry_from_structure(
    structure: Structure, symprec: float = 1e-3, ecp_elements: Collection[str] = (),
) -> CrystalGeometry:
    """Return the symmetrised ``CRYSTAL`` block of a 3D structure (spglib standard setting).

    Lattice parameters are rounded to 1e-8 A / degree to drop spglib's refinement noise.

    Magnetic moments are not representable here (equivalent sites must share a spin): use
    ``EXTERNAL`` via :meth:`Fort34.from_structure` for magnetic structures. The structure is
    taken as given (see :func:`check_structure`).
    """
    analyzer = SpacegroupAnalyzer(structure, symprec=symprec)
    refined = _refined_structure(structure, analyzer)
    number = analyzer.get_space_group_number()
    system = crystal_system(number)
    a, b, c, alpha, beta, gamma = refined.lattice.parameters
    parameters = {"cubic": [a], "tetragonal": [a, c], "trigonal": [a, c], "hexagonal": [a, c],
                  "orthorhombic": [a, b, c], "monoclinic": [a, b, c, beta],
                  "triclinic": [a, b, c, alpha, beta, gamma]}[system]
    symbol = _space_group_symbol(number)
    ifso = 1 if _is_known_setting(f"{symbol}:1") else 0
    atoms = []
    for group in _equivalent_sites(refined, symprec):
        site = min(group, key=lambda s: tuple(np.round(s.frac_coords % 1.0, 6)))
        coords = np.round(site.frac_coords % 1.0, 10) % 1.0
        atoms.append(
            AtomSite(
                number=conventional_atomic_number(site.specie.symbol, ecp_elements),
                coords=tuple(float(x) for x in coords),
            )
        )
    return CrystalGeometry(
        ifso=ifso,
        space_group=number,
        lattice_parameters=[round(float(p), 8) for p in parameters],
        atoms=atoms,
    )


def _refined_structure(structure: Structure, analyzer: SpacegroupAnalyzer) -> Structure:
    """``analyzer.get_refined_structure()``, taken from the symmetry dataset the analyzer holds.

    spglib's ``refine_cell`` returns that dataset's standardized cell but finds it by a second
    symmetry search (~25 ms for an 8-atom cubic cell). Type numbers are pymatgen's: species
    numbered from 1 by first occurrence.
    """
    unique_species: list[Composition] = []
    for site in structure:
        if site.species not in unique_species:
            unique_species.append(site.species)
    dataset = analyzer.get_symmetry_dataset()
    species = [unique_species[number - 1] for number in dataset.std_types]
    return Structure(dataset.std_lattice, species, dataset.std_positions).get_sorted_structure()


def _equivalent_sites(structure: Structure, symprec: float) -> list[list[PeriodicSite]]:
    """``get_symmetrized_structure().equivalent_sites``, from the symmetry dataset alone.

    Groups are ordered by spglib's equivalent-atom label, sites by index, as pymatgen orders them;
    pymatgen would also build the space-group operations with another spglib run, unused here.
    """
    labels = SpacegroupAnalyzer(structure, symprec=symprec).get_symmetry_dataset().equivalent_atoms
    groups: dict[int, list[PeriodicSite]] = {}
    for label, site in zip(labels, structure, strict=True):
        groups.setdefault(int(label), []).append(site)
    return [groups[label] for label in sorted(groups)]


def atomspin_from_structure(structure: Structure | Molecule) -> list[tuple[int, int]]:
    """``ATOMSPIN`` entries (1-based site index, +1/-1) from the ``magmom`` site property.

    Labels follow the site order, which is the order written to fort.34 and kept by CRYSTAL
    for EXTERNAL geometries (checked on the NiO AFM reference run). Sites without a moment are
    left out: CRYSTAL treats them as unconstrained.
    """
    return _atomspin(spin_signs(structure))


def _atomspin(signs: Sequence[int]) -> list[tuple[int, int]]:
    return [(index, sign) for index, sign in enumerate(signs, start=1) if sign]
