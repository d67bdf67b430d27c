"""Parsers for the CRYSTAL CalcJobs, built on the package's streaming output parser.

A run that failed still gets its ``output_parameters`` (and the last geometry), then ends with the
exit code of its error from the catalogue; an output that is missing, empty or not CRYSTAL's ends
with a parser exit code. Nothing a calculation writes can make the parser raise: an excepted
process would hide the reason from the restart work chain and from ``verdi process list``.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from aiida import orm
from aiida.engine import ExitCode
from aiida.orm.nodes.repository import NodeRepository
from aiida.parsers import Parser
from pymatgen.core import Structure

from crystal_atomate.aiida.calculations import OUTPUT_FILE, exit_code_label
from crystal_atomate.io.errors import CrystalError, CrystalErrorKind, classify_line
from crystal_atomate.io.fort34 import Fort34
from crystal_atomate.io.outputs import CrystalOutput, parse_output
from crystal_atomate.io.outputs.properties import parse_properties_output
from crystal_atomate.recovery import root_causes
from crystal_atomate.schemas.task import CrystalOutputDoc
from crystal_atomate.sets.base import RESTART_FILES

#: Where AiiDA's schedulers leave the job's standard error among the retrieved files.
SCHEDULER_STDERR = "_scheduler-stderr.txt"

__all__ = ["CrystalParser", "PropertiesParser", "primary_error", "summarise"]

_OPT_STEP = re.compile(r"^opt[ca]\d{3,}$")
#: What ``parse_output`` reads: the output and, found beside it, fort.87 and SCFOUT.LOG.
_READ_BESIDE_OUTPUT = frozenset({OUTPUT_FILE, "fort.87", "SCFOUT.LOG"})


def primary_error(kinds: Sequence[CrystalErrorKind]) -> CrystalErrorKind:
    """Return the error that names the exit code.

    A cause before a consequence (an MPI abort or a truncation follows the real error), and an
    unrecoverable cause before a recoverable one, so a 3xx code means exactly what ``plan_restart``
    will answer: no restart.
    """
    causes = root_causes(kinds)
    fatal = [kind for kind in causes if not kind.recoverable]
    return (fatal or causes)[0]


def summarise(out: CrystalOutput, restart_files: Sequence[str]) -> dict[str, Any]:
    """``output_parameters``.

    The task document's output block (eV, Angstrom, kbar) without the structure, the verdict and
    errors, and which restart files the run left behind.
    """
    results = CrystalOutputDoc.from_crystal_output(out).model_dump(
        mode="json", exclude={"structure"}
    )
    results = {key: value for key, value in results.items() if value is not None}
    return results | {
        "state": "successful" if out.state == "converged" else "failed",
        "errors": [kind.value for kind in out.error_kinds],
        "error_messages": [error.message for error in out.errors],
        "crystal_version": out.crystal_version,
        "crystal_release": out.crystal_release,
        "title": out.title,
        "wall_time_seconds": out.telapse_s,
        "restart_files": sorted(restart_files),
    }


class CrystalParser(Parser):
    """``OUTPUT`` (+ fort.87, SCFOUT.LOG, optc*) -> output_parameters, structure, trajectory."""

    def parse(self, **kwargs: Any) -> ExitCode | None:
        """Parse the retrieved files; the exit code comes from the catalogue."""
        repository = self.retrieved.base.repository
        names = set(repository.list_object_names())
        if OUTPUT_FILE not in names:
            return self.exit_codes.ERROR_OUTPUT_FILE_MISSING
        temporary = kwargs.get("retrieved_temporary_folder")
        left_behind = _restart_files_present(names, Path(temporary) if temporary else None)
        with _copied(repository, sorted(name for name in names if _is_read(name))) as directory:
            try:
                out = parse_output(directory / OUTPUT_FILE)
            except Exception as exc:  # noqa: BLE001 - any failure to read the output is the run's, not ours
                reason = f"{type(exc).__name__}: {exc}"
                self.logger.error(f"cannot parse {OUTPUT_FILE}: {reason}\n{traceback.format_exc()}")
                return self.exit_codes.ERROR_OUTPUT_FILE_UNREADABLE.format(reason=reason)
            trajectory = _trajectory(directory, out)
        if out.state != "converged":
            out.errors = [*_scheduler_kills(repository, names), *out.errors]
        self.out("output_parameters", orm.Dict(summarise(out, left_behind)))
        if isinstance(out.structure, Structure):
            self.out("output_structure", orm.StructureData(pymatgen=out.structure))
        if trajectory is not None:
            self.out("output_trajectory", trajectory)
        if out.state == "converged":
            return None
        return self.exit_codes[
            exit_code_label(primary_error(out.error_kinds or [CrystalErrorKind.TRUNCATED]))
        ]


def _scheduler_kills(repository: NodeRepository, names: set[str]) -> list[CrystalError]:
    """Return what the scheduler said when it killed the run (walltime, memory), if it did.

    A job killed at its time limit leaves CRYSTAL's output cut short with nothing in it saying
    why; SLURM writes the reason (``... CANCELLED AT ... DUE TO TIME LIMIT ***``) to the job's
    standard error, which AiiDA retrieves as ``_scheduler-stderr.txt``. Classified by the same
    catalogue as the output, so the restart rules see ``walltime_killed`` either way.
    """
    if SCHEDULER_STDERR not in names:
        return []
    text = repository.get_object_content(SCHEDULER_STDERR, mode="r")
    found = (classify_line(line, number, source="scheduler") for number, line in
             enumerate(text.splitlines(), start=1))
    return [error for error in found
            if error is not None and error.kind is CrystalErrorKind.WALLTIME_KILLED][:1]


def _is_read(name: str) -> bool:
    """Whether the parser reads this retrieved file.

    The output, the companions ``parse_output`` finds beside it, the optimisation steps (not the
    scheduler's files, fort.34 or restart files).
    """
    return name in _READ_BESIDE_OUTPUT or bool(_OPT_STEP.match(name))


@contextmanager
def _copied(repository: NodeRepository, names: Sequence[str]) -> Iterator[Path]:
    """Return these files of the repository in a temporary directory.

    Not ``as_path()`` of the whole folder: every object copied is a disk-objectstore lookup, and
    most retrieved files are not read.
    """
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        for name in names:
            with (
                repository.open(name, mode="rb") as source,
                (directory / name).open("wb") as target,
            ):
                shutil.copyfileobj(source, target)
        yield directory


def _restart_files_present(retrieved: set[str], temporary: Path | None) -> list[str]:
    """Non-empty restart files of the run (fort.9 is looked at in the temporary retrieval)."""
    present = [name for name in RESTART_FILES if name in retrieved and name != "fort.9"]
    if (
        temporary is not None
        and (temporary / "fort.9").is_file()
        and (temporary / "fort.9").stat().st_size
    ):
        present.append("fort.9")
    return present


def _trajectory(directory: Path, out: CrystalOutput) -> orm.TrajectoryData | None:
    """Return the optimisation's geometries (optcNNN files), with step energies if they match."""
    steps = sorted(path for path in directory.iterdir() if _OPT_STEP.match(path.name))
    structures = [Fort34.from_file(path) for path in steps]
    structures = [fort34.to_structure() for fort34 in structures if fort34.dimensionality == 3]
    if not structures or len({len(s) for s in structures}) != 1:
        return None
    trajectory = orm.TrajectoryData()
    trajectory.set_trajectory(
        symbols=[site.specie.symbol for site in structures[0]],
        positions=np.array([s.cart_coords for s in structures]),
        cells=np.array([s.lattice.matrix for s in structures]),
        stepids=np.arange(1, len(structures) + 1),
        pbc=(True, True, True),
    )
    energies = [step.energy_ha for step in out.opt_steps]
    if len(energies) == len(structures) and all(energy is not None for energy in energies):
        trajectory.set_array("energies_hartree", np.array(energies, dtype=float))
    return trajectory


class PropertiesParser(Parser):
    """``properties`` output -> verdict, Fermi level; BAND.DAT/DOSS.DAT as files."""

    def parse(self, **kwargs: Any) -> ExitCode | None:
        """Parse the output, attach the data files; a failure maps to the catalogue's exit code."""
        del kwargs
        names = set(self.retrieved.base.repository.list_object_names())
        if OUTPUT_FILE not in names:
            return self.exit_codes.ERROR_OUTPUT_FILE_MISSING
        with self.retrieved.base.repository.as_path() as directory:
            try:
                out = parse_properties_output(directory / OUTPUT_FILE)
            except Exception as exc:  # noqa: BLE001 - as in CrystalParser
                return self.exit_codes.ERROR_OUTPUT_FILE_UNREADABLE.format(
                    reason=f"{type(exc).__name__}: {exc}"
                )
            for name, port in (("BAND.DAT", "output_bands"), ("DOSS.DAT", "output_dos")):
                if name in names:
                    self.out(port, orm.SinglefileData(directory / name))
        self.out(
            "output_parameters",
            orm.Dict(
                {
                    "state": "successful" if out.successful else "failed",
                    "errors": [error.kind.value for error in out.errors],
                    "efermi": out.efermi,
                    "crystal_version": out.version,
                }
            ),
        )
        if out.successful:
            return None
        return self.exit_codes[exit_code_label(primary_error([error.kind for error in out.errors]))]
