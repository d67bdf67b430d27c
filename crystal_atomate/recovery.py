"""The recovery rules: what to change when CRYSTAL fails, shared by every engine.

Given the error kinds of a failed run (from the one catalogue, :mod:`crystal_atomate.io.errors`),
the deck that failed and the restarts already made, :func:`plan_restart` returns either a
:class:`RestartRecord` (the settings update, which geometry and which files to start from) or a
:class:`Unrecoverable` with the reason. jobflow jobs turn a plan into ``Response(replace=...)``;
the AiiDA work chain into a new CalcJob. Rules follow section 4 of the CRYSTAL facts: escalating
SCF fixes (more cycles with GUESSP, more mixing, level shifting, Broyden), SMEAR for metals, a fresh
optimisation from the last geometry with the Hessian, and a clear stop for geometry errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from crystal_atomate.io.d12 import CrystalInput
from crystal_atomate.io.errors import CrystalErrorKind
from crystal_atomate.schemas.task import RestartRecord

__all__ = ["Unrecoverable", "plan_restart", "root_causes"]

K = CrystalErrorKind

_SCF_KINDS = {K.SCF_NOT_CONVERGED, K.SCF_FAILED_IN_OPT}
_OPT_KINDS = {K.OPT_NOT_CONVERGED, K.TRUST_RADIUS_COLLAPSED}
_GUESSP_KINDS = {K.GUESSP_MISMATCH, K.GUESSP_EMPTY_WAVEFUNCTION}
#: Kinds that report how a run ended rather than why: beside a real cause they are not the cause.
_CONSEQUENCES = {K.MPI_ABORT, K.TRUNCATED}

#: Restart budget per family of failure, before the job gives up with the reason.
MAX_OPT_RESTARTS = 3
MAX_WALLTIME_RESTARTS = 3
SMEAR_WIDTH_HA = 0.005


class Unrecoverable(BaseModel):
    """No rule can fix this failure (or the rules are exhausted): stop, saying why."""

    errors: list[CrystalErrorKind]
    reason: str


def root_causes(kinds: Sequence[CrystalErrorKind]) -> list[CrystalErrorKind]:
    """Return the kinds that say why a run failed.

    An MPI abort or a truncation beside a real error only reports how the run ended. Both engines
    rank errors with this one rule.
    """
    kinds = list(dict.fromkeys(kinds))
    return [kind for kind in kinds if kind not in _CONSEQUENCES] or kinds


def plan_restart(
    errors: Sequence[CrystalErrorKind],
    crystal_input: CrystalInput,
    history: Sequence[RestartRecord] = (),
    *,
    is_metal: bool | None = None,
    files: Sequence[str] = (),
) -> RestartRecord | Unrecoverable:
    """Plan the next restart for a run that failed with ``errors``, or say why there is none.

    ``files`` are the names present in the failed run's directory (``fort.9``, ``HESSOPT.DAT``,
    ``optc012``, ...): a restart only relies on files that exist.
    """
    kinds = list(dict.fromkeys(errors))
    if not kinds:
        return Unrecoverable(errors=[], reason="the run failed without a recognised error")
    causes = root_causes(kinds)
    fatal = [kind for kind in causes if not kind.recoverable]
    if fatal:
        return Unrecoverable(
            errors=kinds, reason="; ".join(f"{kind.message} ({kind.fix})" for kind in fatal)
        )
    attempt = len(history) + 1
    kind = causes[0]
    previous = [record for record in history if kind in record.errors]
    plan = _RULES[_family(kind)](kind, crystal_input, len(previous), is_metal, set(files))
    if isinstance(plan, Unrecoverable):
        return plan
    action, updates, geometry_from, wavefunction, hessian = plan
    return RestartRecord(
        attempt=attempt,
        errors=kinds,
        action=action,
        input_updates=updates,
        geometry_from=geometry_from,
        wavefunction=wavefunction and "fort.9" in files,
        hessian=hessian and "HESSOPT.DAT" in files,
    )


_Plan = tuple[str, dict[str, Any], str, bool, bool]


def _family(kind: CrystalErrorKind) -> str:
    for name, members in (("scf", _SCF_KINDS), ("opt", _OPT_KINDS), ("guessp", _GUESSP_KINDS)):
        if kind in members:
            return name
    return kind.value


def _scf(kind: CrystalErrorKind, deck: CrystalInput, tries: int, is_metal: bool | None,
         files: set[str]) -> _Plan | Unrecoverable:
    """Escalate: more cycles from the last density, more mixing, level shifting, then Broyden."""
    del files
    scf = deck.scf
    maxcycle = max(2 * (scf.maxcycle or 50), 100)
    ladder: list[tuple[str, dict[str, Any]]] = [
        (f"MAXCYCLE {maxcycle}, FMIXING {max(scf.fmixing or 30, 50)}, restart from the density",
         {"maxcycle": maxcycle, "fmixing": max(scf.fmixing or 30, 50)}),
        ("FMIXING 70", {"maxcycle": maxcycle, "fmixing": 70}),
        ("LEVSHIFT 5 1 (disables DIIS)", {"maxcycle": maxcycle, "levshift": [5, 1]}),
        (
            "BROYDEN 0.0001 50 2",
            {"maxcycle": maxcycle, "levshift": None, "broyden": [0.0001, 50, 2]},
        ),
    ]
    if tries >= len(ladder):
        return Unrecoverable(
            errors=[kind], reason=f"SCF still not converged after {tries} restarts"
        )
    action, scf_updates = ladder[tries]
    if is_metal and scf.smear is None:
        scf_updates = scf_updates | {"smear": SMEAR_WIDTH_HA}
        action += f", SMEAR {SMEAR_WIDTH_HA} (conducting state)"
    geometry_from = "last_step" if kind is K.SCF_FAILED_IN_OPT else "input"
    return action, {"scf": scf_updates}, geometry_from, True, kind is K.SCF_FAILED_IN_OPT


def _fermi(kind: CrystalErrorKind, deck: CrystalInput, tries: int, is_metal: bool | None,
           files: set[str]) -> _Plan | Unrecoverable:
    """FMIXING cannot cure an unbracketed Fermi level: smear the occupations, then densify k."""
    del is_metal, files
    if deck.scf.smear is None:
        return f"SMEAR {SMEAR_WIDTH_HA}", {"scf": {"smear": SMEAR_WIDTH_HA}}, "input", False, False
    shrink = deck.scf.shrink
    if tries < 2 and shrink is not None:
        mesh = shrink.mesh
        denser = [2 * n for n in mesh] if isinstance(mesh, tuple) else 2 * mesh
        isp = 2 * shrink.isp
        return (
            f"SHRINK doubled to {denser} {isp}",
            {"scf": {"shrink": {"mesh": denser, "isp": isp}}},
            "input",
            False,
            False,
        )
    return Unrecoverable(
        errors=[kind], reason="Fermi level still not bracketed with SMEAR and a denser SHRINK"
    )


def _opt(kind: CrystalErrorKind, deck: CrystalInput, tries: int, is_metal: bool | None,
         files: set[str]) -> _Plan | Unrecoverable:
    """Plan a fresh optimisation from the last geometry (RESTART keeps a collapsed trust radius)."""
    del deck, is_metal
    if tries >= MAX_OPT_RESTARTS:
        return Unrecoverable(
            errors=[kind], reason=f"optimisation not converged after {tries} restarts"
        )
    hessian = "HESSOPT.DAT" in files
    updates = {"optgeom": {"restart": None, "hessopt": True if hessian else None}}
    return ("fresh OPTGEOM from the last geometry" + (" with its Hessian" if hessian else ""),
            updates, "last_step", True, hessian)


def _walltime(kind: CrystalErrorKind, deck: CrystalInput, tries: int, is_metal: bool | None,
              files: set[str]) -> _Plan | Unrecoverable:
    """After SIGTERM fort.9 may be empty: restart from the last written geometry, no GUESSP."""
    del deck, is_metal, files
    if tries >= MAX_WALLTIME_RESTARTS:
        return Unrecoverable(errors=[kind], reason=f"killed by the scheduler {tries + 1} times")
    return "restart from the last geometry", {}, "last_step", False, False


def _linear_dependence(
    kind: CrystalErrorKind, deck: CrystalInput, tries: int, is_metal: bool | None, files: set[str]
) -> _Plan | Unrecoverable:
    """Tighter integral tolerances first, then remove the dependent functions (LDREMO)."""
    del deck, is_metal, files
    if tries == 0:
        return "TOLINTEG 8 8 8 8 16", {"scf": {"tolinteg": [8, 8, 8, 8, 16]}}, "input", False, False
    if tries == 1:
        return (
            "LDREMO 4",
            {"scf": {"tolinteg": [8, 8, 8, 8, 16], "ldremo": 4}},
            "input",
            False,
            False,
        )
    return Unrecoverable(
        errors=[kind],
        reason="basis set still linearly dependent after TOLINTEG and LDREMO: drop diffuse shells",
    )


def _guessp(kind: CrystalErrorKind, deck: CrystalInput, tries: int, is_metal: bool | None,
            files: set[str]) -> _Plan | Unrecoverable:
    """Run again from scratch: the previous density cannot be used."""
    del deck, is_metal, files
    if tries >= 1:
        return Unrecoverable(errors=[kind], reason="restart without GUESSP failed again")
    return "drop GUESSP", {"scf": {"guessp": None}}, "input", False, False


_RULES = {
    "scf": _scf,
    "opt": _opt,
    "guessp": _guessp,
    K.FERMI_NOT_IN_INTERVAL.value: _fermi,
    K.WALLTIME_KILLED.value: _walltime,
    K.LINEAR_DEPENDENCE.value: _linear_dependence,
}
