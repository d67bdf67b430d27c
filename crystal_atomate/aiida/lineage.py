"""Provenance inputs for a CRYSTAL run whose directory a Maker already wrote (executor, flow mode).

The Maker writes ``INPUT`` (and ``fort.34``, restart files) itself, so the CalcJob runs those bytes
(``input_folder``); this module adds what the provenance graph needs beside them:

- ``structure``: the structure the job was given; when it is the geometry the previous step's
  CalcJob produced, that CalcJob's ``output_structure`` node itself, so the graph reads relax ->
  relaxed structure -> static;
- ``parameters``: the deck's settings (task, Hamiltonian, SCF: everything but geometry and basis);
- ``basis``: the basis set (one node per distinct basis, shared by the steps that use it);
- ``parent_folder``: the previous step's ``remote_folder``, from which the restart files (fort.9 ->
  fort.20, HESSOPT.DAT, OPTINFO.DAT, FREQINFO.DAT) are staged instead of travelling in the folder.

The previous step is found as jobflow passes it: the job's ``prev_dir`` is the directory recorded in
the extra ``jobflow_directory`` of the CalcJob that ran there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from aiida import orm
from pymatgen.core import Molecule, Structure

from crystal_atomate.aiida.structures import structure_to_node
from crystal_atomate.io.d12 import CrystalInput
from crystal_atomate.io.geometry import CrystalGeometry, ExternalGeometry
from crystal_atomate.sets.base import RESTART_FILES

__all__ = [
    "JOBFLOW_DIRECTORY_EXTRA",
    "Lineage",
    "deck_structure",
    "find_step_calcjob",
    "job_context",
    "lineage_of",
    "parent_remote",
    "same_geometry",
]

JOBFLOW_DIRECTORY_EXTRA = "jobflow_directory"
#: Geometries closer than this (Å, lattice vectors and Cartesian positions) are the same structure.
SAME_GEOMETRY_TOLERANCE = 1e-4


@dataclass
class Lineage:
    """What a written directory's CalcJob takes besides its files.

    Also which files stay behind because ``parent_folder`` stages them.
    """

    inputs: dict[str, orm.Data] = field(default_factory=dict)
    staged_from_parent: set[str] = field(default_factory=set)


def find_step_calcjob(directory: str | Path) -> orm.CalcJobNode | None:
    """Return the newest CRYSTAL CalcJob that ran in the Maker directory ``directory``.

    None if none did.
    """
    query = orm.QueryBuilder().append(
        orm.CalcJobNode,
        filters={
            f"extras.{JOBFLOW_DIRECTORY_EXTRA}": str(Path(directory).resolve()),
            "process_type": {"like": "%crystal_atomate.crystal"},
        },
        project="*",
    )
    query.order_by({orm.CalcJobNode: {"ctime": "desc"}}).limit(1)
    found = query.first()
    return None if found is None else found[0]


def lineage_of(
    workdir: Path,
    code: orm.AbstractCode,
    structure: Structure | Molecule | None,
    prev_dir: str | Path | None,
) -> Lineage:
    """Return the provenance inputs of the CalcJob running the deck in ``workdir``.

    Parameters
    ----------
    workdir
        The directory the Maker wrote (``INPUT``, ``fort.34``, restart files).
    code
        The code that will run it: a parent folder is only used on the same computer.
    structure
        The structure the job was given; None to take the deck's own geometry.
    prev_dir
        The previous step's directory, as jobflow passed it to the Maker.

    Returns
    -------
    Lineage
        Inputs to add to the builder and the restart files the parent folder stages.
    """
    deck = CrystalInput.from_file(workdir / "INPUT")
    parent = find_step_calcjob(prev_dir) if prev_dir else None
    lineage = Lineage()
    structure = structure if structure is not None else deck_structure(deck)
    if structure is not None:
        lineage.inputs["structure"] = _structure_node(structure, parent)
    lineage.inputs["parameters"] = orm.Dict(
        deck.model_dump(mode="json", exclude={"geometry", "basis"})
    )
    if deck.basis is not None:
        lineage.inputs["basis"] = _shared(
            orm.Dict({"name": deck.basis.name, "text": deck.basis.to_string()})
        )
    remote = parent_remote(parent, code)
    if remote is not None:
        lineage.inputs["parent_folder"] = remote
        lineage.staged_from_parent = {
            target for target in RESTART_FILES.values() if (workdir / target).is_file()
        }
    return lineage


def deck_structure(deck: CrystalInput) -> Structure | Molecule | None:
    """Return the geometry the deck runs on, when it can be expanded.

    EXTERNAL with its fort.34, CRYSTAL.
    """
    geometry = deck.geometry
    if isinstance(geometry, ExternalGeometry) and geometry.fort34 is not None:
        fort34 = geometry.fort34
        return fort34.to_molecule() if fort34.dimensionality == 0 else fort34.to_structure()
    if isinstance(geometry, CrystalGeometry):
        try:
            return geometry.to_structure()
        except NotImplementedError:
            return None
    return None


def _structure_node(
    structure: Structure | Molecule, parent: orm.CalcJobNode | None
) -> orm.StructureData:
    """Return the parent's ``output_structure`` when ``structure`` is it, else a new node."""
    produced = (
        parent.outputs["output_structure"]
        if parent is not None and "output_structure" in parent.outputs
        else None
    )
    if (
        produced is not None
        and isinstance(structure, Structure)
        and same_geometry(produced.get_pymatgen(), structure)
    ):
        return produced
    node, _ = structure_to_node(structure)
    return node


def same_geometry(
    first: Structure, second: Structure, tolerance: float = SAME_GEOMETRY_TOLERANCE
) -> bool:
    """Tell whether two structures are the identical geometry, not a similar one.

    Same species in the same order on the same lattice at the same positions (within
    ``tolerance`` Å, positions modulo a lattice vector).
    """
    if len(first) != len(second) or [site.species for site in first] != [
        site.species for site in second
    ]:
        return False
    if not np.allclose(first.lattice.matrix, second.lattice.matrix, atol=tolerance):
        return False
    shift = first.frac_coords - second.frac_coords
    shift -= np.round(shift)
    return bool(np.all(np.abs(first.lattice.get_cartesian_coords(shift)) <= tolerance))


def _shared(node: orm.Dict) -> orm.Dict:
    """Return a stored Dict with the same (string-valued) content if there is one.

    So equal inputs are one node.
    """
    filters = {f"attributes.{key}": value for key, value in node.get_dict().items()}
    found = orm.QueryBuilder().append(orm.Dict, filters=filters, project="*").first()
    return node if found is None else found[0]


def parent_remote(parent: orm.CalcJobNode | None, code: orm.AbstractCode) -> orm.RemoteData | None:
    """Return the previous run's remote folder, when it is on the computer running the next."""
    if parent is None or "remote_folder" not in parent.outputs:
        return None
    remote = parent.outputs.remote_folder
    return remote if remote.computer.uuid == code.computer.uuid else None


def job_context() -> tuple[Any, Any]:
    """Return the structure and ``prev_dir`` of the jobflow job being run (resolved), or.

    None, None.
    """
    from jobflow import CURRENT_JOB

    job = CURRENT_JOB.job
    if job is None:
        return None, None
    structure = job.function_args[0] if job.function_args else job.function_kwargs.get("structure")
    structure = structure if isinstance(structure, Structure | Molecule) else None
    return structure, job.function_kwargs.get("prev_dir")
