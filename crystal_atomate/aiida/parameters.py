"""The ``parameters`` Dict of :class:`~crystal_atomate.aiida.calculations.CrystalCalculation`.

The Dict holds the very settings a Maker's input-set generator holds (``user_input_settings``,
``user_kpoints_settings``, ``user_basis_settings``, ``functional``, ...), plus which generator
(``generator``: ``static``, ``relax``, ...), the deck ``title`` and the starting moments per kind
(``magmoms``: a StructureData has kinds, not site properties). The CalcJob rebuilds the generator
from them and calls the same ``get_input_set`` as the Maker, so both engines write the same bytes.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from typing import Any

from pymatgen.core import Molecule, Structure

from crystal_atomate.flows.registry import generators
from crystal_atomate.io.basis import BasisSet
from crystal_atomate.sets.base import CrystalInputGenerator, CrystalInputSet, InputSettingsError

__all__ = [
    "GENERATORS",
    "ParametersError",
    "build_input_set",
    "generator_from_parameters",
    "parameters_from_generator",
]

#: The shipped generators by the flow names of :data:`crystal_atomate.flows.registry.FLOWS` (the
#: same ``static``, ``relax``, ``frequency`` ... as ``crystal-atomate run``); any other generator is
#: named by its import path.
GENERATORS: dict[str, type[CrystalInputGenerator]] = generators()

#: Keys of the Dict that are not generator fields.
_OWN_KEYS = ("generator", "title", "magmoms")
#: Marks an explicit basis set (a :class:`BasisSet` dump) in ``user_basis_settings``.
_BASIS_KEY = "basis_set"


class ParametersError(InputSettingsError):
    """The parameters Dict does not describe a valid CRYSTAL input; the message names the key."""


def generator_class(name: str) -> type[CrystalInputGenerator]:
    """Return the generator for a short name or an import path (``package.module.ClassName``)."""
    if name in GENERATORS:
        return GENERATORS[name]
    module, _, attribute = name.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), attribute) if module else None
    except (ImportError, AttributeError):
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, CrystalInputGenerator)):
        raise ParametersError(
            f"parameters.generator: {name!r} is neither one of {sorted(GENERATORS)} "
            "nor the import path of a CrystalInputGenerator"
        )
    return cls


def _generator_name(generator: CrystalInputGenerator) -> str:
    for name, cls in GENERATORS.items():
        if type(generator) is cls:
            return name
    return f"{type(generator).__module__}.{type(generator).__qualname__}"


def parameters_from_generator(
    generator: CrystalInputGenerator, title: str | None = None
) -> dict[str, Any]:
    """Return the JSON-able parameters that rebuild ``generator``.

    Only settings that differ from defaults.
    """
    cls = type(generator)
    defaults = cls()
    parameters: dict[str, Any] = {"generator": _generator_name(generator)}
    if title is not None:
        parameters["title"] = title
    for field in dataclasses.fields(cls):
        value = getattr(generator, field.name)
        if value == getattr(defaults, field.name):
            continue
        if isinstance(value, BasisSet):
            value = {_BASIS_KEY: value.model_dump(mode="json", exclude_defaults=True)}
        elif isinstance(value, tuple):
            value = list(value)
        parameters[field.name] = value
    return parameters


def generator_from_parameters(parameters: Mapping[str, Any]) -> CrystalInputGenerator:
    """Return the generator the parameters describe.

    Unknown keys raise :class:`ParametersError` naming them.
    """
    cls = generator_class(str(parameters.get("generator", "static")))
    fields = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(parameters) - fields - set(_OWN_KEYS))
    if unknown:
        raise ParametersError(
            f"parameters: unknown key(s) {unknown} for generator {cls.__name__}; "
            f"valid keys: {sorted(fields | set(_OWN_KEYS))}"
        )
    kwargs = {key: value for key, value in parameters.items() if key in fields}
    basis = kwargs.get("user_basis_settings")
    if isinstance(basis, Mapping) and _BASIS_KEY in basis:
        kwargs["user_basis_settings"] = BasisSet.model_validate(basis[_BASIS_KEY])
    if isinstance(kwargs.get("volume_range"), list):
        kwargs["volume_range"] = tuple(kwargs["volume_range"])
    return cls(**kwargs)


def build_input_set(
    parameters: Mapping[str, Any],
    structure: Structure | Molecule,
    *,
    with_wavefunction: bool = False,
) -> CrystalInputSet:
    """Return the input set a Maker with these settings writes.

    ``with_wavefunction``: a parent's fort.9 will be staged as fort.20, which makes the deck read it
    with GUESSP, as ``prev_dir`` does.
    """
    generator = generator_from_parameters(parameters)
    if with_wavefunction and generator.inherit_wavefunction:
        generator = dataclasses.replace(
            generator,
            user_input_settings=_with_guessp(generator.user_input_settings),
        )
    try:
        return generator.get_input_set(structure, title=parameters.get("title"))
    except ParametersError:
        raise
    except (InputSettingsError, ValueError, TypeError, KeyError) as exc:
        raise ParametersError(f"parameters: {exc}") from exc


def _with_guessp(user_input_settings: Mapping[str, Any]) -> dict[str, Any]:
    scf = dict(user_input_settings.get("scf", {}))
    scf.setdefault("guessp", True)
    return {**user_input_settings, "scf": scf}
