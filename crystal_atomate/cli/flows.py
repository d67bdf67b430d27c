"""Named flows for ``crystal-atomate run``: a structure and a few settings in, a jobflow Flow out."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobflow import Flow, Maker
from pymatgen.core import Structure

from crystal_atomate.flows.core import DoubleRelaxMaker, RelaxBandStructureMaker
from crystal_atomate.jobs.base import BaseCrystalMaker
from crystal_atomate.jobs.core import ElasticMaker, EosMaker, FreqMaker, RelaxMaker, StaticMaker

if TYPE_CHECKING:
    from crystal_atomate.mp.client import StructureOrigin

__all__ = ["FLOW_MAKERS", "UnknownFlowError", "build_flow", "load_structure", "load_structure_with_origin"]

_MATERIAL_ID = re.compile(r"^(mp|mvc)-[a-z0-9]+$", re.IGNORECASE)

FLOW_MAKERS: dict[str, type[Maker]] = {
    "static": StaticMaker,
    "relax": RelaxMaker,
    "double-relax": DoubleRelaxMaker,
    "relax-bands": RelaxBandStructureMaker,
    "frequency": FreqMaker,
    "elastic": ElasticMaker,
    "eos": EosMaker,
}


class UnknownFlowError(ValueError):
    """A flow name the command line does not know."""


def load_structure(source: str) -> Structure:
    """A structure from a CIF, POSCAR or pymatgen JSON file, or a Materials Project id."""
    return load_structure_with_origin(source)[0]


def load_structure_with_origin(source: str) -> tuple[Structure, StructureOrigin | None]:
    """The structure and, for a Materials Project id (``mp-1265``, ``mvc-...``), its origin.

    A file of that name wins. An id goes through the shared database's cache, so repeated runs
    ask the API once per material and work offline once it is cached.
    """
    path = Path(source)
    if path.is_file():
        return Structure.from_file(path), None
    if not _MATERIAL_ID.match(source.strip()):
        raise FileNotFoundError(f"No structure file {source!r} (nor a Materials Project id like mp-1265)")
    from crystal_atomate.mp.cache import MaterialsProject, default_d12
    from crystal_atomate.settings import CrystalAtomateSettings

    materials_project = MaterialsProject(CrystalAtomateSettings().DB_FILE, d12_writer=default_d12)
    try:
        record = materials_project.get_structure(source)
    finally:
        materials_project.close()
    return record.structure, record.origin


def _configured(maker: BaseCrystalMaker, overrides: dict[str, Any]) -> BaseCrystalMaker:
    generator = maker.input_set_generator
    return replace(maker, input_set_generator=replace(generator, **overrides))


def build_flow(
    name: str,
    structure: Structure,
    *,
    functional: str | None = None,
    basis: str | None = None,
    kspacing: float | None = None,
    settings: dict[str, Any] | None = None,
) -> Flow:
    """The flow ``name`` for ``structure`` with the settings applied to every CRYSTAL job in it."""
    if name not in FLOW_MAKERS:
        raise UnknownFlowError(f"Unknown flow {name!r}; choose one of {sorted(FLOW_MAKERS)}")
    overrides: dict[str, Any] = {}
    if functional:
        overrides["functional"] = functional
    if basis:
        overrides["user_basis_settings"] = basis
    if kspacing:
        overrides["user_kpoints_settings"] = {"kspacing": kspacing}
    if settings:
        overrides["user_input_settings"] = settings
    maker = FLOW_MAKERS[name]()
    if isinstance(maker, BaseCrystalMaker):
        maker = _configured(maker, overrides)
    else:
        maker = replace(
            maker,
            **{
                field: _configured(value, overrides)
                for field, value in vars(maker).items()
                if isinstance(value, BaseCrystalMaker)
            },
        )
    built = maker.make(structure)
    return built if isinstance(built, Flow) else Flow([built], output=built.output, name=name)
