"""Powerups: change the settings of every CRYSTAL Maker in a Job, Flow or Maker, as atomate2's.

Each powerup returns an updated deep copy and leaves its argument unchanged. ``name_filter`` keeps
the Makers whose name contains it, ``class_filter`` those of that class (default: every CRYSTAL
Maker). Nested settings are merged key by key, never replaced whole: ``{"scf": {"maxcycle": 300}}``
changes MAXCYCLE and keeps every other SCF setting; a ``None`` value removes the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from copy import deepcopy
from typing import Any, TypeVar

from jobflow import Flow, Job, Maker

from crystal_atomate.jobs.base import BaseCrystalMaker

__all__ = [
    "add_metadata_to_flow",
    "update_crystal_makers",
    "update_handle_unsuccessful",
    "update_run_crystal_kwargs",
    "update_user_basis_settings",
    "update_user_input_settings",
    "update_user_kpoints_settings",
]

JobType = TypeVar("JobType", Job, Flow, Maker)


def _arrow_paths(prefix: str, updates: Mapping[str, Any]) -> dict[str, Any]:
    """``{"scf": {"maxcycle": 3}}`` -> ``{"prefix->scf->maxcycle": 3}`` (jobflow's nested _set)."""
    paths: dict[str, Any] = {}
    for key, value in updates.items():
        path = f"{prefix}->{key}"
        if isinstance(value, Mapping) and value:
            paths.update(_arrow_paths(path, value))
        else:
            paths[path] = value
    return paths


def update_crystal_makers(
    flow: JobType,
    dict_mod_updates: dict[str, Any],
    name_filter: str | None = None,
    class_filter: type[Maker] | None = BaseCrystalMaker,
) -> JobType:
    """Apply ``{"a->b->c": value}`` settings to the matching Makers of a copy of ``flow``."""
    updated = deepcopy(flow)
    kwargs = {
        "update": {"_set": dict_mod_updates},
        "name_filter": name_filter,
        "class_filter": class_filter,
        "dict_mod": True,
    }
    if isinstance(updated, Maker):
        return updated.update_kwargs(**kwargs)
    updated.update_maker_kwargs(**kwargs)
    return updated


def update_user_input_settings(
    flow: JobType,
    input_updates: dict[str, Any],
    name_filter: str | None = None,
    class_filter: type[Maker] | None = BaseCrystalMaker,
) -> JobType:
    """Deck settings by section: ``{"scf": {"maxcycle": 300}, "optgeom": {"type": "CVOLOPT"}}``.

    Lists (``scf.extra``) are replaced, not appended to: include the keywords a Maker sets there
    (``GRADCAL``, ``STRESS``) when changing them.
    """
    paths = _arrow_paths("input_set_generator->user_input_settings", input_updates)
    return update_crystal_makers(flow, paths, name_filter, class_filter)


def update_user_kpoints_settings(
    flow: JobType,
    kpoints_updates: dict[str, Any],
    name_filter: str | None = None,
    class_filter: type[Maker] | None = BaseCrystalMaker,
) -> JobType:
    """k-points, e.g. ``{"kspacing": 0.15}`` or ``{"shrink": [8, 16]}``."""
    paths = _arrow_paths("input_set_generator->user_kpoints_settings", kpoints_updates)
    return update_crystal_makers(flow, paths, name_filter, class_filter)


def update_user_basis_settings(
    flow: JobType,
    basis: str | dict[str, Any],
    name_filter: str | None = None,
    class_filter: type[Maker] | None = BaseCrystalMaker,
) -> JobType:
    """Replace the basis set whole: a library name or a ``user_basis_settings`` dict.

    A basis is one choice, so unlike the other settings it is not merged key by key.
    """
    return update_crystal_makers(
        flow, {"input_set_generator->user_basis_settings": basis}, name_filter, class_filter
    )


def update_run_crystal_kwargs(
    flow: JobType,
    run_crystal_kwargs: dict[str, Any],
    name_filter: str | None = None,
    class_filter: type[Maker] | None = BaseCrystalMaker,
) -> JobType:
    """Arguments of :func:`~crystal_atomate.run.run_crystal`, e.g. ``{"mpi_procs": 32}``."""
    paths = _arrow_paths("run_crystal_kwargs", run_crystal_kwargs)
    return update_crystal_makers(flow, paths, name_filter, class_filter)


def update_handle_unsuccessful(
    flow: JobType,
    handle_unsuccessful: bool | str,
    name_filter: str | None = None,
    class_filter: type[Maker] | None = BaseCrystalMaker,
) -> JobType:
    """atomate2's switch for failed runs: ``"error"`` raises, True stops children, False goes on."""
    update = {"stop_children_kwargs->handle_unsuccessful": handle_unsuccessful}
    return update_crystal_makers(flow, update, name_filter, class_filter)


def add_metadata_to_flow(
    flow: JobType,
    additional_fields: dict[str, Any],
    name_filter: str | None = None,
    class_filter: type[Maker] | None = BaseCrystalMaker,
) -> JobType:
    """Fields stored in each task document's ``metadata`` (project, batch, ...), for querying."""
    paths = _arrow_paths("task_document_kwargs->metadata", additional_fields)
    return update_crystal_makers(flow, paths, name_filter, class_filter)
