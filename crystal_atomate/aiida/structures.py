"""pymatgen structures <-> AiiDA ``StructureData`` with the starting moments kept.

A StructureData has kinds, not site properties: a site's ``magmom`` becomes its own kind (``Ni1``,
``Ni2`` for antiferromagnetic NiO) and the moments travel in the parameters as ``magmoms`` (kind
name
-> moment), the AiiDA convention for starting magnetisations.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiida.orm import StructureData
from pymatgen.core import Molecule, Structure

__all__ = ["structure_from_node", "structure_to_node"]


def structure_to_node(structure: Structure | Molecule) -> tuple[StructureData, dict[str, float]]:
    """Return a StructureData (one kind per element and moment) and the moments of its kinds."""
    moments = structure.site_properties.get("magmom")
    if moments is None:
        node = (
            StructureData(pymatgen=structure)
            if isinstance(structure, Structure)
            else _molecule_node(structure)
        )
        return node, {}
    kinds: dict[tuple[str, float], str] = {}
    names = []
    for site, moment in zip(structure, moments, strict=True):
        key = (site.specie.symbol, float(moment))
        if key not in kinds:
            same_element = sum(1 for symbol, _ in kinds if symbol == key[0])
            kinds[key] = (
                key[0]
                if same_element == 0 and float(moment) == 0.0
                else f"{key[0]}{same_element + 1}"
            )
        names.append(kinds[key])
    labelled = structure.copy(site_properties={"kind_name": names})
    labelled.remove_site_property("magmom")
    node = (
        StructureData(pymatgen=labelled)
        if isinstance(labelled, Structure)
        else _molecule_node(labelled)
    )
    return node, {name: moment for (_, moment), name in kinds.items()}


def structure_from_node(
    node: StructureData, magmoms: Mapping[str, float] | None = None
) -> Structure | Molecule:
    """Return the pymatgen structure of ``node``.

    It has ``magmom`` site properties when ``magmoms`` are given.
    """
    structure = node.get_pymatgen()
    for name in list(structure.site_properties):
        structure.remove_site_property(name)
    if magmoms:
        moments = [float(magmoms.get(site.kind_name, 0.0)) for site in node.sites]
        structure = structure.copy(site_properties={"magmom": moments})
    return structure


def _molecule_node(molecule: Molecule) -> StructureData:
    """Molecules in a non-periodic box (CRYSTAL's MOLECULE needs no cell)."""
    boxed = molecule.get_boxed_structure(20.0, 20.0, 20.0, no_cross=True)
    node = StructureData(pymatgen=boxed)
    node.pbc = (False, False, False)
    return node
