"""Typed result of parsing a CRYSTAL output: :class:`CrystalOutput` and its parts.

Raw fields keep CRYSTAL's own units and name them (``_ha``, ``_ha_per_bohr``, ``_gpa``,
``_cm1``); computed fields give the task-document view (eV, eV/Angstrom, kbar) so both the
faithful numbers and the converted ones travel together in one JSON document.
"""

from __future__ import annotations

import dataclasses
from array import array
from dataclasses import field
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    computed_field,
    field_serializer,
)
from pymatgen.core import Molecule, Structure

from crystal_atomate.io.errors import CrystalError, CrystalErrorKind
from crystal_atomate.io.units import (
    GPA_TO_KBAR,
    HARTREE_PER_BOHR3_TO_GPA,
    HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM,
    HARTREE_TO_EV,
)

__all__ = [
    "BandEdges",
    "CalculationKind",
    "CrystalOutput",
    "EosFit",
    "EosResult",
    "FrequencyMode",
    "MullikenAnalysis",
    "OptStep",
    "ScfCycle",
    "ScfRun",
]

Matrix = list[list[float]]


class CalculationKind(str, Enum):
    """What the run did, from the landmarks the program printed (not from the deck)."""

    SINGLE_POINT = "single_point"
    OPTIMISATION = "optimisation"
    FREQUENCY = "frequency"
    ELASTIC = "elastic"
    EOS = "eos"
    PROPERTIES = "properties"
    TESTGEOM = "testgeom"


class ScfCycle(BaseModel):
    """One ``CYC n ETOT(AU) ... DETOT ...`` line (built on demand by :attr:`ScfRun.cycles`)."""

    cycle: int
    energy_ha: float
    delta_energy_ha: float


def _doubles() -> array:
    return array("d")


def _integers() -> array:
    return array("q")


def _packed(typecode: str) -> Any:
    """Annotate a packed ``array`` field: it serialises as a JSON list and validates from one."""

    def read(value: Any) -> array:
        return value if isinstance(value, array) else array(typecode, value)

    listed = PlainSerializer(lambda value: value.tolist(), return_type=list)
    return Annotated[array, BeforeValidator(read), listed]


@dataclasses.dataclass(slots=True)
class ScfRun:
    """One SCF: its cycles and how it ended (``converged`` is None when it never ended).

    A plain slotted dataclass (an optimisation has one per point; nothing to validate while
    scanning). The cycles are kept as three packed arrays (cycle number, ETOT, DETOT: 24 bytes
    a cycle), not as one object per cycle, so that an output of 200,000 cycles costs ~5 MB, not
    ~180 MB. They serialise as plain lists and validate back from them; :attr:`cycles` gives
    them as :class:`ScfCycle` objects.
    """

    cycle_numbers: _packed("q") = field(default_factory=_integers)  # type: ignore[valid-type]
    cycle_energies_ha: _packed("d") = field(default_factory=_doubles)  # type: ignore[valid-type]
    cycle_deltas_ha: _packed("d") = field(default_factory=_doubles)  # type: ignore[valid-type]
    converged: bool | None = None
    n_cycles: int | None = None
    energy_ha: float | None = None
    source: str = "output"

    def add_cycle(self, cycle: int, energy_ha: float, delta_energy_ha: float) -> None:
        """Append one ``CYC`` line."""
        self.cycle_numbers.append(cycle)
        self.cycle_energies_ha.append(energy_ha)
        self.cycle_deltas_ha.append(delta_energy_ha)

    @property
    def cycle_count(self) -> int:
        """How many ``CYC`` lines were read (``n_cycles`` is what CRYSTAL printed at the end)."""
        return len(self.cycle_numbers)

    @property
    def cycles(self) -> list[ScfCycle]:
        """The cycles as objects, built on each call (for small runs and tests)."""
        return [
            ScfCycle(cycle=number, energy_ha=energy, delta_energy_ha=delta)
            for number, energy, delta in zip(
                self.cycle_numbers, self.cycle_energies_ha, self.cycle_deltas_ha, strict=True
            )
        ]


@dataclasses.dataclass(slots=True)
class OptStep:
    """One optimisation point with its convergence tests (None when not printed).

    A plain slotted dataclass, not a model nor a pydantic dataclass: long optimisations print
    tens of thousands of points and the scanner fills them field by field (nothing to validate).
    Pydantic serialises it with the output like any dataclass.
    """

    point: int
    energy_ha: float | None = None
    max_gradient: float | None = None
    max_gradient_converged: bool | None = None
    rms_gradient: float | None = None
    rms_gradient_converged: bool | None = None
    max_displacement: float | None = None
    max_displacement_converged: bool | None = None
    rms_displacement: float | None = None
    rms_displacement_converged: bool | None = None
    step_rejected: bool = False


class BandEdges(BaseModel):
    """Electronic state printed for one spin channel at the last SCF cycle."""

    spin: Literal["both", "alpha", "beta"]
    insulating: bool | None = None
    band_gap_ev: float | None = None
    direct: bool | None = None
    fermi_energy_ha: float | None = None


class MullikenAnalysis(BaseModel):
    """Mulliken electron populations per atom (not charges) and the net charges derived.

    ``net_charges`` = reference electron count - population, the reference being the
    neutral-atom electron count (valence electrons for ECP atoms) when the output shows the
    atomic guess, else the printed Z.
    """

    labels: list[str]
    atomic_numbers: list[int]
    populations: list[float]
    net_charges: list[float] | None = None
    spins: list[float] | None = None


class FrequencyMode(BaseModel):
    """One row of the ``MODES EIGV FREQUENCIES IRREP IR INTENS RAMAN`` table at Gamma.

    ``first_mode``-``last_mode`` are the degenerate modes the row stands for.
    """

    first_mode: int
    last_mode: int
    frequency_cm1: float
    irrep: str
    ir_active: bool | None = None
    ir_intensity_km_mol: float | None = None
    raman_active: bool | None = None


class EosFit(BaseModel):
    """One row of CRYSTAL's EOS fit tables: the equilibrium found by one equation of state.

    Polynomial fits print no bulk-modulus derivative, so ``bulk_modulus_derivative`` is None there.
    """

    equation: str
    volume_a3: float
    energy_ha: float
    bulk_modulus_gpa: float
    bulk_modulus_derivative: float | None = None


class EosResult(BaseModel):
    """CRYSTAL's native equation of state: the sorted energy-volume points and the fits."""

    volumes_a3: list[float]
    energies_ha: list[float]
    fits: list[EosFit] = []


class CrystalOutput(BaseModel):
    """Everything :func:`parse_output` read from one CRYSTAL run."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    source_path: str | None = None
    crystal_version: int | None = None
    crystal_release: str | None = None
    calculation: CalculationKind = CalculationKind.SINGLE_POINT
    includes_properties: bool = False
    optimisation_type: str | None = None
    title: str | None = None
    hamiltonian: Literal["HF", "DFT"] | None = None
    functional_exchange: str | None = None
    functional_correlation: str | None = None
    hybrid_exchange_percent: float | None = None
    calculation_type: str | None = None
    spin_polarized: bool | None = None
    dimensionality: int | None = None
    n_atoms: int | None = None
    n_ao: int | None = None
    n_electrons: int | None = None
    shrink: list[int] | None = None
    shrink_gilat: int | None = None

    energy_ha: float | None = None
    scf_energy_ha: float | None = None
    dispersion_energy_ha: float | None = None
    energy_with_dispersion_ha: float | None = None
    scf: list[ScfRun] = []
    opt_steps: list[OptStep] = []
    opt_converged: bool | None = None
    opt_energy_ha: float | None = None
    opt_points: int | None = None

    structure: Structure | Molecule | None = None

    band_edges: list[BandEdges] = []
    final_band_gap_ev: float | None = None
    final_band_gap_alpha_ev: float | None = None
    final_band_gap_beta_ev: float | None = None
    mulliken: MullikenAnalysis | None = None

    forces_ha_per_bohr: Matrix | None = None
    cell_gradient_ha_per_bohr: Matrix | None = None
    stress_ha_per_bohr3: Matrix | None = None
    pressure_gpa: float | None = None

    frequencies: list[FrequencyMode] = []
    elastic_constants: Matrix | None = None
    elastic_constants_unit: str | None = None
    compliance_tpa_inv: Matrix | None = None
    eos: EosResult | None = None

    telapse_s: float | None = None
    tcpu_s: float | None = None
    terminated: bool = False
    errors: list[CrystalError] = []
    state: Literal["converged", "failed"] = "failed"

    @field_serializer("structure")
    def _serialize_structure(self, value: Structure | Molecule | None) -> dict[str, Any] | None:
        """Pymatgen objects travel as their ``as_dict()`` (MSON), as everywhere in the MP stack."""
        return None if value is None else value.as_dict()

    @computed_field  # type: ignore[prop-decorator]
    @property
    def error_kinds(self) -> list[CrystalErrorKind]:
        """The kinds of the errors found, in order of appearance."""
        return [error.kind for error in self.errors]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def scf_converged(self) -> bool | None:
        """Whether the last SCF ended with CONVERGENCE (None when no SCF ran in this output)."""
        return self.scf[-1].converged if self.scf else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def scf_cycles(self) -> int | None:
        """Cycle count of the last SCF as CRYSTAL printed it."""
        return self.scf[-1].n_cycles if self.scf else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def band_gap_ev(self) -> float | None:
        """The band gap (eV): the final ``BAND GAP`` line if printed, else the last SCF cycle's.

        The post-optimisation line is the smaller of ``ALPHA`` and ``BETA BAND GAP`` for
        spin-polarised runs; the fallback is the smallest spin channel gap of the last SCF cycle,
        0.0 for a conducting state, None when unknown.
        """
        if self.final_band_gap_ev is not None:
            return self.final_band_gap_ev
        if self.is_conducting:
            return 0.0
        gaps = [edge.band_gap_ev for edge in self.band_edges if edge.band_gap_ev is not None]
        return min(gaps) if gaps else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def is_conducting(self) -> bool | None:
        """True when any spin channel was ``POSSIBLY CONDUCTING`` at the last SCF cycle."""
        flags = [edge.insulating for edge in self.band_edges if edge.insulating is not None]
        return (not all(flags)) if flags else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def fermi_energy_ha(self) -> float | None:
        """EFERMI of the last SCF cycle (printed for conducting states only)."""
        values = [e.fermi_energy_ha for e in self.band_edges if e.fermi_energy_ha is not None]
        return values[-1] if values else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def frequencies_cm1(self) -> list[float]:
        """Gamma-point frequencies, one entry per mode (degenerate rows expanded)."""
        return [
            mode.frequency_cm1
            for mode in self.frequencies
            for _ in range(mode.last_mode - mode.first_mode + 1)
        ]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def energy_ev(self) -> float | None:
        """``energy_ha`` in eV."""
        return None if self.energy_ha is None else self.energy_ha * HARTREE_TO_EV

    @computed_field  # type: ignore[prop-decorator]
    @property
    def forces_ev_per_angstrom(self) -> Matrix | None:
        """``forces_ha_per_bohr`` in eV/Angstrom."""
        if self.forces_ha_per_bohr is None:
            return None
        factor = HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM
        return [[value * factor for value in row] for row in self.forces_ha_per_bohr]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def stress_kbar(self) -> Matrix | None:
        """Stress in kbar with the VASP/atomate2 sign (positive when compressed).

        CRYSTAL prints the physical stress (negative under compression: its printed pressure is
        minus a third of the trace), so the sign is flipped here; the raw tensor is
        ``stress_ha_per_bohr3``.
        """
        if self.stress_ha_per_bohr3 is None:
            return None
        factor = -HARTREE_PER_BOHR3_TO_GPA * GPA_TO_KBAR
        return [[value * factor for value in row] for row in self.stress_ha_per_bohr3]
