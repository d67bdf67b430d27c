"""The base CRYSTAL input set and its generator, following atomate2's VASP input sets.

A generator holds *settings* (YAML defaults plus user overrides); ``get_input_set(structure,
prev_dir)`` turns them into a :class:`CrystalInputSet`, which holds the validated
:class:`~crystal_atomate.io.d12.CrystalInput` and the restart files to carry over, and writes
``INPUT``, ``fort.34`` and ``fort.20`` into a directory. Every engine (jobflow, FireWorks,
jobflow-remote, AiiDA) goes through this one path, so the files are byte-identical whichever runs.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from monty.serialization import loadfn
from pydantic import BaseModel, ValidationError
from pymatgen.core import Molecule, Structure
from pymatgen.io.core import InputGenerator, InputSet

from crystal_atomate.errors import InputError, UnknownNameError
from crystal_atomate.io.basis import BasisSet
from crystal_atomate.io.d12 import (
    CrystalInput,
    Elastcon,
    Eos,
    FreqCalc,
    Hamiltonian,
    OptGeom,
    Scf,
    Shrink,
)
from crystal_atomate.io.geometry import check_structure

__all__ = [
    "CrystalInputGenerator",
    "CrystalInputSet",
    "InputSettingsError",
    "RESTART_FILES",
    "deep_update",
    "load_config",
]

_MODULE_DIR = Path(__file__).parent

#: Files a job copies from ``prev_dir``, with the name CRYSTAL reads them under in the new run.
RESTART_FILES: dict[str, str] = {
    "fort.9": "fort.20",
    "HESSOPT.DAT": "HESSOPT.DAT",
    "OPTINFO.DAT": "OPTINFO.DAT",
    "FREQINFO.DAT": "FREQINFO.DAT",
    "EOSINFO.DAT": "EOSINFO.DAT",
}

#: The sections a user may override; each is a field of CrystalInput (plus k-points and basis).
SETTINGS_SECTIONS = (
    "hamiltonian",
    "scf",
    "optgeom",
    "freqcalc",
    "elastcon",
    "eos",
    "geometry_keywords",
)

FUNCTIONAL_PRESETS: dict[str, dict[str, Any]] = {
    "HF": {"dft": None},
    "B3LYP": {"dft": {"functional": "B3LYP"}},
    "PBE0": {"dft": {"functional": "PBE0"}},
    "HSE06": {"dft": {"functional": "HSE06"}},
    "PBE": {"dft": {"functional": "PBEXC"}},
    "PBESOL": {"dft": {"functional": "PBESOLXC"}},
    "B3LYP-D3": {"dft": {"functional": "B3LYP-D3"}},
    "PBE0-D3": {"dft": {"functional": "PBE0-D3"}},
}


class InputSettingsError(InputError):
    """User settings that do not make a valid CRYSTAL input; the message names the key."""


def load_config(name: str) -> dict[str, Any]:
    """Return a YAML settings file shipped beside this module (``BaseCrystalSet`` etc.)."""
    return loadfn(_MODULE_DIR / f"{name}.yaml")


def deep_update(base: Mapping[str, Any], updates: Mapping[str, Any]) -> dict[str, Any]:
    """Nested update where a ``None`` value removes the key (atomate2's convention)."""
    merged = dict(base)
    for key, value in updates.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_update(merged[key], value)
        else:
            merged[key] = value
    return merged


class CrystalInputSet(InputSet):
    """The files of one CRYSTAL run: ``INPUT`` (+ ``fort.34``), restart files from ``prev_dir``."""

    def __init__(
        self, crystal_input: CrystalInput, restart_files: Mapping[str, str | Path] | None = None
    ):
        self.crystal_input = crystal_input
        self.restart_files = {name: Path(src) for name, src in (restart_files or {}).items()}
        super().__init__(inputs={"INPUT": crystal_input.to_string()})

    def write_input(
        self,
        directory: str | Path,
        make_dir: bool = True,
        overwrite: bool = True,
        zip_inputs: bool = False,
    ) -> None:
        """Write the deck (checking the basis first), its fort.34, and copy the restart files."""
        del overwrite, zip_inputs
        directory = Path(directory)
        self.crystal_input.write_input(directory, make_dir=make_dir)
        for name, source in self.restart_files.items():
            shutil.copyfile(source, directory / name)


@dataclass
class CrystalInputGenerator(InputGenerator):
    """Settings in, :class:`CrystalInputSet` out.

    Parameters
    ----------
    user_input_settings
        Overrides of the deck, by section: ``{"scf": {"maxcycle": 200}, "hamiltonian":
        {"dft": {"functional": "HSE06"}}, "optgeom": {"toldeg": 1e-4}}``. ``None`` removes a key.
        Unknown sections or keywords raise :class:`InputSettingsError` naming them.
    user_kpoints_settings
        ``{"kspacing": 0.15}`` (1/Angstrom, 2 pi included), ``{"shrink": [8, 16]}`` or
        ``{"mesh": [8, 8, 4], "isp": 16}``.
    user_basis_settings
        A library name (``"POB-TZVP-REV2"``), a :class:`BasisSet`, ``{"library": name}``,
        ``{"files": [paths]}`` or ``{"directory": path}`` (per-element CRYSTAL-format files).
    functional
        A preset (``HF``, ``B3LYP``, ``PBE0``, ``HSE06``, ``PBE``, ``PBESOL``, ``-D3`` variants).
    auto_spin
        Spin-polarise when the structure has ``magmom`` site properties, or contains elements
        with default moments in the config (ferromagnetic start).
    geometry
        ``"external"`` (fort.34 with all atoms and symmetry operators: robust for any structure)
        or ``"symmetrized"`` (the CRYSTAL keyword with space group and asymmetric unit).
    inherit_wavefunction
        Start from ``prev_dir``'s ``fort.9`` (copied to ``fort.20``, ``GUESSP``) when it exists.
    primitive
        Run periodic structures in their primitive cell (magnetic order kept), as CRYSTAL users
        do: a conventional cell multiplies the cost for nothing.
    """

    config_dict: dict = field(default_factory=lambda: load_config("BaseCrystalSet"))
    user_input_settings: dict = field(default_factory=dict)
    user_kpoints_settings: dict = field(default_factory=dict)
    user_basis_settings: str | dict | BasisSet | None = None
    functional: str | None = None
    auto_spin: bool = True
    geometry: Literal["external", "symmetrized"] = "external"
    inherit_wavefunction: bool = True
    primitive: bool = True
    symprec: float = 1e-3

    def get_input_set(
        self,
        structure: Structure | Molecule | None = None,
        prev_dir: str | Path | None = None,
        title: str | None = None,
        *,
        checked: bool = False,
    ) -> CrystalInputSet:
        """Return the input set for ``structure``, continuing from ``prev_dir`` when given.

        The structure is checked here (:meth:`check_structure`), once, unless the caller already
        did: a job checks its structure when it is created and says so with ``checked``.

        Parameters
        ----------
        structure
            What to run.
        prev_dir
            A previous run's folder, whose restart files are carried over.
        title
            The deck's first line; Makers pass the job name, which the replay executable and a
            person reading the output both use to tell runs apart.
        checked
            ``structure`` has passed :meth:`check_structure` already.

        Returns
        -------
        CrystalInputSet
            The deck and the restart files to stage.

        Raises
        ------
        InputSettingsError
            No structure, or settings that make no valid deck.
        StructureError, UnknownBasisElementError
            From :meth:`check_structure`.
        """
        if structure is None:
            raise InputSettingsError("A CRYSTAL input set needs a structure")
        if not checked:
            self.check_structure(structure)
        restart_files = self._restart_files(prev_dir)
        structure = self._with_spin(structure)
        if self.primitive and isinstance(structure, Structure) and self.geometry == "external":
            structure = structure.get_primitive_structure(use_site_props=True)
        sections = self._sections(structure, bool(restart_files.get("fort.20")))
        try:
            crystal_input = CrystalInput.from_structure(
                structure,
                title=title or structure.composition.reduced_formula,
                geometry=self.geometry,
                basis=self._basis(),
                symprec=self.symprec,
                **_validated_sections(sections),
            )
        except ValidationError as exc:
            raise InputSettingsError(_explain(exc)) from exc
        return CrystalInputSet(crystal_input, restart_files)

    def check_structure(self, structure: Structure | Molecule) -> None:
        """Reject what CRYSTAL cannot run, before anything is written.

        The one structure check of a job (the io writers take the structure as given): run by
        :meth:`get_input_set`, or by the job decorator when the job is created.

        Parameters
        ----------
        structure
            The structure the job was given.

        Raises
        ------
        StructureError
            Empty, disordered or overlapping (the sites are named).
        UnknownBasisElementError
            An element the basis set lacks.
        """
        check_structure(structure)
        self._basis().check_elements({site.specie.symbol for site in structure})

    def calculation_updates(self, structure: Structure | Molecule) -> dict[str, Any]:
        """Return the section updates of this calculation type (subclasses override it)."""
        del structure
        return {}

    def _sections(self, structure: Structure | Molecule, has_wavefunction: bool) -> dict[str, Any]:
        unknown = sorted(set(self.user_input_settings) - set(SETTINGS_SECTIONS))
        if unknown:
            raise InputSettingsError(
                f"Unknown input settings section(s) {unknown}; valid sections: "
                f"{list(SETTINGS_SECTIONS)}"
            )
        sections = {
            key: self.config_dict[key] for key in SETTINGS_SECTIONS if key in self.config_dict
        }
        if self.functional is not None:
            sections = deep_update(sections, {"hamiltonian": _functional_preset(self.functional)})
        sections = deep_update(sections, self.calculation_updates(structure))
        scf = dict(sections.get("scf", {}))
        if "shrink" not in self.user_input_settings.get("scf", {}):
            scf["shrink"] = self.shrink(structure).model_dump(exclude_none=True)
        if has_wavefunction:
            scf["guessp"] = True
        sections["scf"] = scf
        return deep_update(sections, self.user_input_settings)

    def shrink(self, structure: Structure | Molecule) -> Shrink:
        """SHRINK from the k-point settings: an explicit mesh, or a density along each b_i."""
        settings = deep_update(self.config_dict.get("kpoints", {}), self.user_kpoints_settings)
        if isinstance(structure, Molecule):
            return Shrink(mesh=1, isp=1)
        if "shrink" in settings:
            mesh, isp = settings["shrink"]
            return Shrink(mesh=mesh, isp=isp)
        gilat = int(settings.get("gilat_factor", 2))
        if "mesh" in settings:
            mesh = tuple(int(n) for n in settings["mesh"])
            return Shrink(mesh=mesh, isp=int(settings.get("isp", gilat * max(mesh))))
        spacing = float(settings["kspacing"])
        divisions = [
            max(1, math.ceil(length / spacing))
            for length in structure.lattice.reciprocal_lattice.abc
        ]
        if len(set(divisions)) == 1:
            return Shrink(mesh=divisions[0], isp=gilat * divisions[0])
        return Shrink(mesh=tuple(divisions), isp=gilat * max(divisions))

    def _basis(self) -> BasisSet:
        setting = (
            self.user_basis_settings
            if self.user_basis_settings is not None
            else self.config_dict["basis"]
        )
        if isinstance(setting, BasisSet):
            return setting
        if isinstance(setting, str):
            return BasisSet.from_library(setting)
        if "library" in setting:
            return BasisSet.from_library(setting["library"])
        if "files" in setting:
            return BasisSet.from_files(setting["files"])
        if "directory" in setting:
            return BasisSet.from_directory(setting["directory"], setting["elements"])
        raise InputSettingsError(
            f"user_basis_settings {setting!r}: give a library name, a BasisSet, or a dict with "
            "'library', 'files' or 'directory' (+ 'elements')"
        )

    def _with_spin(self, structure: Structure | Molecule) -> Structure | Molecule:
        """Add ferromagnetic starting moments for magnetic elements (auto_spin), as MP sets do."""
        if not self.auto_spin or "magmom" in structure.site_properties:
            return structure
        defaults = self.config_dict.get("default_magmoms", {})
        moments = [float(defaults.get(site.specie.symbol, 0.0)) for site in structure]
        if not any(moments):
            return structure
        return structure.copy(site_properties={"magmom": moments})

    def _restart_files(self, prev_dir: str | Path | None) -> dict[str, Path]:
        if prev_dir is None:
            return {}
        prev = Path(prev_dir)
        files = {}
        for source, target in RESTART_FILES.items():
            path = prev / source
            if path.is_file() and path.stat().st_size > 0:
                files[target] = path
        if not self.inherit_wavefunction:
            files.pop("fort.20", None)
        return files


def check_functional(name: str) -> None:
    """Refuse a functional that is not a preset before anything runs.

    Raises
    ------
    UnknownNameError
        Naming the closest preset (``B3LPY`` -> ``B3LYP``).
    """
    if name.upper() not in FUNCTIONAL_PRESETS:
        raise UnknownNameError("functional", name, FUNCTIONAL_PRESETS)


def check_input_settings(settings: Mapping[str, Any]) -> None:
    """Refuse unknown sections and keywords of ``user_input_settings`` before anything runs.

    The generators find them too, but only when a job writes its deck: in a queue, hours later.
    This looks at the names only; values are validated when the deck is written.

    Parameters
    ----------
    settings
        ``{"scf": {"maxcycle": 200}, ...}`` as a generator's ``user_input_settings``.

    Raises
    ------
    UnknownNameError
        Naming the unknown section or keyword and the closest valid one.
    """
    for section, value in settings.items():
        if section not in SETTINGS_SECTIONS:
            raise UnknownNameError("input settings section", section, SETTINGS_SECTIONS)
        model = _SECTION_MODELS.get(section)
        if model is not None and isinstance(value, Mapping):
            _check_keys(model, value, section)


def _submodel(annotation: Any) -> type[BaseModel] | None:
    """Return the pydantic model inside ``annotation`` (``Dft``, ``Dft | None``), if any."""
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _check_keys(model: type[BaseModel], value: Mapping[str, Any], path: str) -> None:
    for key, item in value.items():
        field_info = model.model_fields.get(key)
        if field_info is None:
            raise UnknownNameError(f"{path} setting", key, model.model_fields)
        nested = _submodel(field_info.annotation)
        if nested is not None and isinstance(item, Mapping):
            _check_keys(nested, item, f"{path}.{key}")


def _functional_preset(name: str) -> dict[str, Any]:
    try:
        return FUNCTIONAL_PRESETS[name.upper()]
    except KeyError:
        raise InputSettingsError(
            f"Unknown functional preset {name!r}; presets: {sorted(FUNCTIONAL_PRESETS)} "
            "(or set user_input_settings={'hamiltonian': {'dft': {'functional': ...}}})"
        ) from None


_SECTION_MODELS = {
    "hamiltonian": Hamiltonian,
    "scf": Scf,
    "optgeom": OptGeom,
    "freqcalc": FreqCalc,
    "elastcon": Elastcon,
    "eos": Eos,
}


def _validated_sections(sections: dict[str, Any]) -> dict[str, Any]:
    """Turn sections into the typed sub-models ``CrystalInput.from_structure`` takes."""
    typed: dict[str, Any] = {}
    for key, value in sections.items():
        if key == "geometry_keywords":
            typed[key] = list(value)
            continue
        try:
            typed[key] = _SECTION_MODELS[key].model_validate(value)
        except ValidationError as exc:
            raise InputSettingsError(_explain(exc, key)) from exc
    return typed


def _explain(exc: ValidationError, section: str | None = None) -> str:
    """One line per problem, naming the settings path, so users see which key to fix."""
    problems = []
    for error in exc.errors():
        path = ".".join(str(part) for part in (section, *error["loc"]) if part is not None)
        problems.append(f"{path}: {error['msg']}")
    return "Invalid CRYSTAL input settings:\n  " + "\n  ".join(problems)
