"""Task document of a ``properties`` run (band structure, density of states)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from pymatgen.core import Structure
from pymatgen.electronic_structure.bandstructure import BandStructureSymmLine
from pymatgen.electronic_structure.dos import Dos

from crystal_atomate.io.errors import CrystalErrorKind
from crystal_atomate.schemas.task import TaskState

__all__ = ["CrystalPropertiesTaskDoc", "PropertiesOutputDoc"]


class PropertiesOutputDoc(BaseModel):
    """Headline electronic-structure results (eV); the large objects live in the data store."""

    bandgap: float | None = None
    direct_gap: bool | None = None
    efermi: float | None = Field(None, description="eV, as the pymatgen objects carry it.")
    is_metal: bool | None = None
    n_kpoints: int | None = None
    n_bands: int | None = None
    n_dos_points: int | None = None


class CrystalPropertiesTaskDoc(BaseModel):
    """The result of a crystal_atomate band-structure or DOS job."""

    dir_name: str
    state: TaskState
    task_label: str | None = None
    task_type: Literal["band structure", "dos"]
    structure: Structure | None = None
    input: dict[str, Any] = Field(
        default_factory=dict, description="{'d3': deck text, 'prev_dir': ...}"
    )
    output: PropertiesOutputDoc = Field(default_factory=PropertiesOutputDoc)
    bandstructure: BandStructureSymmLine | None = None
    dos: Dos | None = None
    errors: list[CrystalErrorKind] = Field(default_factory=list)
    error_messages: list[str] = Field(default_factory=list)
    crystal_version: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    completed_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
