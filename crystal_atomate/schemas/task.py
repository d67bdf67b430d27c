"""The CRYSTAL task document: what every crystal_atomate job returns and every engine stores.

Shaped like emmet's VASP ``TaskDoc`` so atomate2's common flows (EOS, elastic, phonons) read it
unchanged: ``structure``, ``dir_name``, ``state``, ``task_label``, ``calcs_reversed`` and an
``output`` with ``energy`` (eV), ``forces`` (eV/Angstrom) and ``stress`` (kbar, VASP sign). The raw
Hartree energy is kept too, for the terminal UI's ``jobs.final_energy``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from emmet.core.structure import StructureMetadata
from pydantic import BaseModel, Field
from pymatgen.core import Molecule, Structure

from crystal_atomate.io.d12 import CrystalInput, ExternalGeometry
from crystal_atomate.io.errors import CrystalError, CrystalErrorKind
from crystal_atomate.io.fort34 import Fort34
from crystal_atomate.io.outputs import CrystalOutput, parse_output
from crystal_atomate.io.outputs.model import EosResult
from crystal_atomate.io.units import BOHR_TO_ANGSTROM, HARTREE_PER_BOHR3_TO_GPA, HARTREE_TO_EV
from crystal_atomate.run import OUTPUT_FILE, CrystalRunRecord

__all__ = [
    "Calculation",
    "CrystalEosDoc",
    "CrystalInputDoc",
    "CrystalOutputDoc",
    "CrystalTaskDoc",
    "RestartRecord",
    "TaskState",
    "TaskType",
    "input_structure",
    "task_type_of",
]

TaskState = Literal["successful", "failed"]


class TaskType(str, Enum):
    """What a CRYSTAL run computed (from the deck, not guessed from the output)."""

    STATIC = "static"
    RELAX = "relax"
    FREQUENCY = "frequency"
    ELASTIC = "elastic"
    EOS = "eos"
    PROPERTIES = "properties"


class RestartRecord(BaseModel):
    """One automatic restart made by the error handlers (recorded in the task document)."""

    attempt: int = Field(description="1 for the first restart of the job.")
    errors: list[CrystalErrorKind] = Field(
        description="What went wrong in the run being restarted."
    )
    action: str = Field(description="What was changed, for humans.")
    input_updates: dict[str, Any] = Field(
        default_factory=dict,
        description="The settings update applied (a None value removes a key).",
    )
    from_dir: str | None = Field(None, description="Directory of the failed run.")
    geometry_from: Literal["input", "last_step"] = "input"
    wavefunction: bool = Field(
        False, description="Restarted from the failed run's fort.9 (GUESSP)."
    )
    hessian: bool = Field(False, description="Restarted with the failed run's HESSOPT.DAT.")


class CrystalInputDoc(BaseModel):
    """The input of a run: the deck as written and its parsed settings."""

    d12: str = Field(description="The .d12 deck exactly as CRYSTAL read it.")
    fort34: str | None = Field(None, description="The EXTERNAL geometry file, when used.")
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="The deck's settings (all but geometry and basis)."
    )
    basis: str | None = Field(
        None, description="Library name, or the elements of an explicit basis."
    )
    structure: Structure | Molecule | None = None


#: pymatgen's EOS names (``pymatgen.analysis.eos.EOS``) for CRYSTAL's fits; others are slugified.
_PYMATGEN_EOS_NAMES = {
    "MURNAGHAN": "murnaghan",
    "BIRCH-MURNAGHAN": "birch_murnaghan",
    "POIRIER-TARANTOLA": "pourier_tarantola",
    "VINET": "vinet",
}
_GPA_PER_EV_PER_A3 = HARTREE_PER_BOHR3_TO_GPA * BOHR_TO_ANGSTROM**3 / HARTREE_TO_EV


class CrystalEosDoc(BaseModel):
    """CRYSTAL's native EOS in the layout of atomate2's EOS flow output (eV, Angstrom^3).

    The same keys as ``CommonEosMaker``'s ``{"energy", "volume", "EOS": {name: {e0, b0, b1, v0,
    "b0 GPa"}}}``, so a native EOS job and an atomate2-style EOS flow can be compared directly.
    """

    volume: list[float] = Field(description="Volumes (Angstrom^3), sorted, the restart's included.")
    energy: list[float] = Field(description="Total energies (eV) at those volumes.")
    EOS: dict[str, dict[str, float | None]] = Field(
        default_factory=dict,
        description="Fit name -> e0 (eV), v0 (Angstrom^3), b0 (eV/Angstrom^3), b1, 'b0 GPa'.",
    )

    @classmethod
    def from_eos_result(cls, eos: EosResult) -> CrystalEosDoc:
        """Convert the parser's Hartree/GPa tables."""
        fits = {}
        for fit in eos.fits:
            equation = (
                fit.equation.rsplit(" ", 1)[0] if fit.equation[-4:].isdigit() else fit.equation
            )
            name = _PYMATGEN_EOS_NAMES.get(
                equation, equation.lower().replace(" ", "_").replace("-", "_")
            )
            fits[name] = {
                "e0": fit.energy_ha * HARTREE_TO_EV,
                "v0": fit.volume_a3,
                "b0": fit.bulk_modulus_gpa / _GPA_PER_EV_PER_A3,
                "b1": fit.bulk_modulus_derivative,
                "b0 GPa": fit.bulk_modulus_gpa,
            }
        return cls(
            volume=eos.volumes_a3,
            energy=[energy * HARTREE_TO_EV for energy in eos.energies_ha],
            EOS=fits,
        )


class CrystalOutputDoc(BaseModel):
    """Headline results in the units of the Materials Project stack (eV, Angstrom, kbar)."""

    structure: Structure | Molecule | None = None
    energy: float | None = Field(None, description="Final total energy (eV), dispersion included.")
    energy_per_atom: float | None = Field(None, description="eV/atom.")
    energy_hartree: float | None = Field(None, description="Final total energy as printed (Ha).")
    forces: list[list[float]] | None = Field(None, description="eV/Angstrom.")
    stress: list[list[float]] | None = Field(None, description="kbar, positive when compressed.")
    bandgap: float | None = Field(None, description="eV.")
    efermi: float | None = Field(None, description="eV (conducting states only).")
    is_metal: bool | None = None
    scf_cycles: int | None = None
    opt_points: int | None = None
    frequencies: list[float] | None = Field(None, description="Gamma-point modes (cm^-1).")
    ir_intensities: list[float | None] | None = Field(
        None,
        description="IR intensity of each mode in ``frequencies`` (km/mol); None where "
        "not printed.",
    )
    elastic_tensor: list[list[float]] | None = Field(None, description="Voigt 6x6 (GPa).")
    eos: CrystalEosDoc | None = Field(None, description="CRYSTAL's native equation of state (EOS).")
    mulliken_charges: list[float] | None = None
    mulliken_spins: list[float] | None = None

    @classmethod
    def from_crystal_output(cls, out: CrystalOutput) -> CrystalOutputDoc:
        """Convert the parser's raw result at the boundary (units named in the parser's fields)."""
        structure = out.structure
        energy = out.energy_ev
        n_atoms = len(structure) if structure is not None else out.n_atoms
        efermi_ha = out.fermi_energy_ha
        return cls(
            structure=structure,
            energy=energy,
            energy_per_atom=energy / n_atoms if energy is not None and n_atoms else None,
            energy_hartree=out.energy_ha,
            forces=out.forces_ev_per_angstrom,
            stress=out.stress_kbar,
            bandgap=out.band_gap_ev,
            efermi=None if efermi_ha is None else efermi_ha * HARTREE_TO_EV,
            is_metal=out.is_conducting,
            scf_cycles=out.scf_cycles,
            opt_points=out.opt_points,
            frequencies=out.frequencies_cm1 or None,
            ir_intensities=_per_mode_ir_intensities(out),
            elastic_tensor=out.elastic_constants,
            eos=None if out.eos is None else CrystalEosDoc.from_eos_result(out.eos),
            mulliken_charges=out.mulliken.net_charges if out.mulliken else None,
            mulliken_spins=out.mulliken.spins if out.mulliken else None,
        )


class Calculation(BaseModel):
    """One execution of CRYSTAL (a task may hold several after restarts: newest first)."""

    dir_name: str
    task_type: TaskType
    crystal_version: int | None = None
    crystal_release: str | None = None
    has_crystal_completed: Literal["converged", "failed"]
    input: CrystalInputDoc
    output: CrystalOutputDoc
    errors: list[CrystalError] = Field(default_factory=list)
    run: CrystalRunRecord | None = None
    wall_time_seconds: float | None = None
    cpu_time_seconds: float | None = None
    completed_at: datetime | None = None


class CrystalTaskDoc(StructureMetadata):
    """The result of one crystal_atomate job, for jobflow stores and atomate2's common flows."""

    dir_name: str
    state: TaskState
    task_label: str | None = None
    task_type: TaskType
    structure: Structure | Molecule | None = None
    input: CrystalInputDoc
    output: CrystalOutputDoc
    calcs_reversed: list[Calculation]
    errors: list[CrystalErrorKind] = Field(default_factory=list)
    error_messages: list[str] = Field(default_factory=list)
    restarts: list[RestartRecord] = Field(default_factory=list)
    crystal_version: int | None = None
    run_stats: dict[str, float] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="Provenance from outside CRYSTAL: Materials Project id, AiiDA node uuid, ...",
    )
    completed_at: datetime | None = None
    last_updated: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def from_directory(
        cls,
        dir_name: str | Path,
        *,
        task_label: str | None = None,
        restarts: list[RestartRecord] | None = None,
        run: CrystalRunRecord | None = None,
        metadata: dict[str, Any] | None = None,
        output_file: str = OUTPUT_FILE,
    ) -> CrystalTaskDoc:
        """Parse a finished CRYSTAL folder (``INPUT``, the output, fort.34/fort.87/SCFOUT.LOG)."""
        directory = Path(dir_name).resolve()
        # the deck this run used: keywords a user passed through ``extra`` are read back, not
        # refused
        crystal_input = CrystalInput.from_file(directory / "INPUT", allow_unknown=True)
        input_doc = _input_doc(crystal_input, directory)
        out = parse_output(directory / output_file)
        calc = Calculation(
            dir_name=str(directory),
            task_type=task_type_of(crystal_input),
            crystal_version=out.crystal_version,
            crystal_release=out.crystal_release,
            has_crystal_completed=out.state,
            input=input_doc,
            output=CrystalOutputDoc.from_crystal_output(out),
            errors=out.errors,
            run=run,
            wall_time_seconds=out.telapse_s,
            cpu_time_seconds=out.tcpu_s,
            completed_at=datetime.now(UTC),
        )
        structure = calc.output.structure or input_doc.structure
        fields = _structure_metadata(structure)
        return cls(
            **fields,
            dir_name=str(directory),
            state="successful" if out.state == "converged" else "failed",
            task_label=task_label,
            task_type=calc.task_type,
            structure=structure,
            input=input_doc,
            output=calc.output,
            calcs_reversed=[calc],
            errors=out.error_kinds,
            error_messages=[error.message for error in out.errors],
            restarts=list(restarts or []),
            crystal_version=out.crystal_version,
            run_stats=_run_stats(calc),
            metadata=dict(metadata or {}),
            completed_at=calc.completed_at,
        )


def _per_mode_ir_intensities(out: CrystalOutput) -> list[float | None] | None:
    """IR intensities aligned with ``frequencies_cm1`` (degenerate rows expanded the same way)."""
    if not any(mode.ir_intensity_km_mol is not None for mode in out.frequencies):
        return None
    return [
        mode.ir_intensity_km_mol
        for mode in out.frequencies
        for _ in range(mode.last_mode - mode.first_mode + 1)
    ]


def task_type_of(crystal_input: CrystalInput) -> TaskType:
    """Return the calculation a deck asks for."""
    if crystal_input.freqcalc is not None:
        return TaskType.FREQUENCY
    if crystal_input.elastcon is not None:
        return TaskType.ELASTIC
    if crystal_input.eos is not None:
        return TaskType.EOS
    if crystal_input.optgeom is not None:
        return TaskType.RELAX
    return TaskType.STATIC


def input_structure(crystal_input: CrystalInput, directory: Path) -> Structure | Molecule | None:
    """Return the structure a deck describes; EXTERNAL decks read the fort.34 beside them."""
    geometry = crystal_input.geometry
    if isinstance(geometry, ExternalGeometry):
        fort34 = geometry.fort34
        path = directory / "fort.34"
        if fort34 is None and path.is_file():
            fort34 = Fort34.from_file(path)
        if fort34 is None:
            return None
        return fort34.to_molecule() if fort34.dimensionality == 0 else fort34.to_structure()
    return geometry.to_structure()


def _input_doc(crystal_input: CrystalInput, directory: Path) -> CrystalInputDoc:
    fort34_path = directory / "fort.34"
    external = isinstance(crystal_input.geometry, ExternalGeometry)
    basis = crystal_input.basis
    return CrystalInputDoc(
        d12=(directory / "INPUT").read_text(),
        fort34=fort34_path.read_text() if external and fort34_path.is_file() else None,
        parameters=crystal_input.model_dump(mode="json", exclude={"title", "geometry", "basis"}),
        basis=None if basis is None else (basis.library or " ".join(sorted(basis.elements))),
        structure=input_structure(crystal_input, directory),
    )


def _structure_metadata(structure: Structure | Molecule | None) -> dict[str, Any]:
    """Return emmet's structure metadata for periodic structures (molecules have no lattice)."""
    if isinstance(structure, Structure):
        return StructureMetadata.from_structure(structure).model_dump()
    return {}


def _run_stats(calc: Calculation) -> dict[str, float]:
    stats = {}
    if calc.wall_time_seconds is not None:
        stats["wall_time_seconds"] = calc.wall_time_seconds
    if calc.cpu_time_seconds is not None:
        stats["cpu_time_seconds"] = calc.cpu_time_seconds
    return stats

