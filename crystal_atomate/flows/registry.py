"""The named flows: one registry for the command line, high throughput and AiiDA.

``crystal-atomate run static MgO.cif``, ``ht submit --flow relax``, ``fw add``, ``remote submit``
and the AiiDA ``parameters.generator`` all name a calculation the same way, here. Each name maps
to the Maker that builds it and, for a single CRYSTAL job, the input-set generator that writes its
deck (the AiiDA CalcJob rebuilds that generator from its parameters).

Entries are import paths, so reading the names costs nothing: the command line lists them in
``--help`` without importing pymatgen or jobflow. Settings are applied in one way only, the
powerups' key-by-key merge (:mod:`crystal_atomate.powerups`), after they are checked by name
(:func:`check_flow_settings`) so a typo fails before anything is queued.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crystal_atomate.errors import UnknownNameError

if TYPE_CHECKING:
    from jobflow import Flow, Maker
    from pymatgen.core import Structure

    from crystal_atomate.sets.base import CrystalInputGenerator

__all__ = ["FLOWS", "FlowEntry", "build_flow", "check_flow_settings", "flow_entry", "generators"]


def _resolve(path: str) -> Any:
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class FlowEntry:
    """One named calculation.

    Parameters
    ----------
    maker
        ``"module:Class"`` of the Maker that builds the flow.
    generator
        ``"module:Class"`` of the input-set generator of a single-job flow; None for a flow of
        several jobs (its Makers bring their own).
    """

    maker: str
    generator: str | None = None

    def maker_class(self) -> type[Maker]:
        """Import and return the Maker class (on first use, so the registry itself stays light)."""
        return _resolve(self.maker)

    def generator_class(self) -> type[CrystalInputGenerator] | None:
        """Import and return the input-set generator class, or None if the flow has none."""
        return _resolve(self.generator) if self.generator else None


_JOBS = "crystal_atomate.jobs.core"
_SETS = "crystal_atomate.sets.core"
_FLOWS = "crystal_atomate.flows.core"

#: Every named flow, in the order ``--help`` lists them.
FLOWS: dict[str, FlowEntry] = {
    "static": FlowEntry(f"{_JOBS}:StaticMaker", f"{_SETS}:StaticSetGenerator"),
    "relax": FlowEntry(f"{_JOBS}:RelaxMaker", f"{_SETS}:RelaxSetGenerator"),
    "tight-relax": FlowEntry(f"{_JOBS}:TightRelaxMaker", f"{_SETS}:TightRelaxSetGenerator"),
    "double-relax": FlowEntry(f"{_FLOWS}:DoubleRelaxMaker"),
    "relax-bands": FlowEntry(f"{_FLOWS}:RelaxBandStructureMaker"),
    "frequency": FlowEntry(f"{_JOBS}:FreqMaker", f"{_SETS}:FreqSetGenerator"),
    "elastic": FlowEntry(f"{_JOBS}:ElasticMaker", f"{_SETS}:ElasticSetGenerator"),
    "eos": FlowEntry(f"{_JOBS}:EosMaker", f"{_SETS}:EosSetGenerator"),
}


def flow_entry(name: str) -> FlowEntry:
    """Return the registry entry of ``name``.

    Raises
    ------
    UnknownNameError
        For a name not in :data:`FLOWS`, naming the closest one.
    """
    if name not in FLOWS:
        raise UnknownNameError("flow", name, FLOWS)
    return FLOWS[name]


def generators() -> dict[str, type[CrystalInputGenerator]]:
    """Flow name -> input-set generator class, for the single-job flows (imported now)."""
    found = {name: entry.generator_class() for name, entry in FLOWS.items()}
    return {name: cls for name, cls in found.items() if cls is not None}


def check_flow_settings(
    name: str, *, functional: str | None = None, settings: dict[str, Any] | None = None
) -> None:
    """Refuse an unknown flow, functional, settings section or keyword before anything is built.

    Raises
    ------
    UnknownNameError
        Naming what is unknown and the closest valid name.
    """
    from crystal_atomate.sets.base import check_functional, check_input_settings

    flow_entry(name)
    if functional:
        check_functional(functional)
    if settings:
        check_input_settings(settings)


def build_flow(
    name: str,
    structure: Structure,
    *,
    functional: str | None = None,
    basis: str | None = None,
    kspacing: float | None = None,
    settings: dict[str, Any] | None = None,
) -> Flow:
    """Build the flow ``name`` for ``structure``, the settings merged into every CRYSTAL Maker.

    Parameters
    ----------
    name
        A key of :data:`FLOWS`.
    structure
        The structure every job starts from.
    functional
        A functional preset (``PBE0``, ``HSE06``, ...).
    basis
        A basis-set library name, replacing the Makers' basis.
    kspacing
        k-point spacing in 1/Angstrom (2 pi included).
    settings
        Deck settings by section, merged key by key into each Maker's (a ``None`` value removes a
        key).

    Returns
    -------
    Flow
        The flow, a single job wrapped in a one-job flow named ``name``.

    Raises
    ------
    UnknownNameError
        For an unknown flow, functional or setting (see :func:`check_flow_settings`).
    """
    from jobflow import Flow

    from crystal_atomate.powerups import (
        update_crystal_makers,
        update_user_basis_settings,
        update_user_input_settings,
        update_user_kpoints_settings,
    )

    check_flow_settings(name, functional=functional, settings=settings)
    maker = flow_entry(name).maker_class()()
    if functional:
        maker = update_crystal_makers(maker, {"input_set_generator->functional": functional})
    if basis:
        maker = update_user_basis_settings(maker, basis)
    if kspacing:
        maker = update_user_kpoints_settings(maker, {"kspacing": kspacing})
    if settings:
        maker = update_user_input_settings(maker, settings)
    built = maker.make(structure)
    return built if isinstance(built, Flow) else Flow([built], output=built.output, name=name)
