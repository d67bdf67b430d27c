"""The base CRYSTAL job Maker and the ``crystal_job`` decorator, following atomate2's VASP jobs.

A job writes its input set into the current directory, runs CRYSTAL, parses the directory into a
:class:`~crystal_atomate.schemas.task.CrystalTaskDoc`, and, when the run failed with a recoverable
error, replaces itself (jobflow ``Response(replace=...)``) by the same Maker with the fix applied,
started from the failed run's directory. The chain of restarts is bounded and recorded in the task
document; what cannot be fixed ends the job according to ``handle_unsuccessful``, as in atomate2.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import wraps
from pathlib import Path
from typing import Any

from jobflow import Job, Maker, Response, job
from pymatgen.core import Molecule, Structure
from pymatgen.core.trajectory import Trajectory
from pymatgen.electronic_structure.bandstructure import BandStructure, BandStructureSymmLine
from pymatgen.electronic_structure.dos import CompleteDos, Dos

from crystal_atomate.io.fort34 import Fort34
from crystal_atomate.recovery import Unrecoverable, plan_restart
from crystal_atomate.run import run_crystal
from crystal_atomate.schemas.task import CrystalTaskDoc, RestartRecord
from crystal_atomate.sets.base import CrystalInputGenerator, deep_update
from crystal_atomate.sets.core import StaticSetGenerator
from crystal_atomate.settings import CrystalAtomateSettings

__all__ = [
    "BaseCrystalMaker",
    "CrystalJobFailed",
    "crystal_job",
    "last_geometry",
    "should_stop_children",
]

#: Large objects that jobflow routes to the JobStore's ``data`` store.
_DATA_OBJECTS: list[Any] = [
    BandStructure,
    BandStructureSymmLine,
    Dos,
    CompleteDos,
    Trajectory,
    "trajectory",
]

_OPT_STEP_FILE = re.compile(r"^opt[ca]\d{3,}$")


class CrystalJobFailed(RuntimeError):
    """CRYSTAL failed and could not be fixed, and ``handle_unsuccessful`` is ``"error"``."""


def crystal_job(method: Callable) -> Callable[..., Job]:
    """Decorate the ``make`` method of CRYSTAL job Makers (large objects go to the data store).

    Unlike a bare ``@job``, the structure is checked when the job is *created* (overlapping atoms,
    partial occupancies, an element the basis set lacks), so a bad structure fails at once with
    its reason instead of hours later on a worker. That is the job's only check: the job is told
    so (``structure_checked``), and a structure that is a parent's output, known only when the job
    runs, is checked then by the input set.
    """
    get_job = job(method, data=_DATA_OBJECTS, output_schema=CrystalTaskDoc)

    @wraps(method)
    def make(self: BaseCrystalMaker, structure: Any, *args: Any, **kwargs: Any) -> Job:
        kwargs["structure_checked"] = isinstance(structure, Structure | Molecule)
        if kwargs["structure_checked"]:
            self.input_set_generator.check_structure(structure)
        return get_job(self, structure, *args, **kwargs)

    make.original = method  # type: ignore[attr-defined]  # how jobflow finds the undecorated method
    return make


def should_stop_children(
    task_document: CrystalTaskDoc, handle_unsuccessful: bool | str = "error"
) -> bool:
    """Apply atomate2's switch: ``True`` stops children, ``False`` goes on, ``"error"`` raises."""
    if task_document.state == "successful":
        return False
    if isinstance(handle_unsuccessful, bool):
        return handle_unsuccessful
    if handle_unsuccessful == "error":
        kinds = ", ".join(kind.value for kind in task_document.errors) or "no recognised error"
        raise CrystalJobFailed(
            f"CRYSTAL run in {task_document.dir_name} failed ({kinds}): "
            + "; ".join(task_document.error_messages)
        )
    raise ValueError(f"Unknown option for handle_unsuccessful={handle_unsuccessful!r}")


def last_geometry(directory: Path, task_document: CrystalTaskDoc) -> Structure | Molecule | None:
    """Return the newest geometry of a (maybe killed) run: the last optcNNN file, else parsed."""
    steps = sorted(path for path in directory.iterdir() if _OPT_STEP_FILE.match(path.name))
    if steps:
        fort34 = Fort34.from_file(steps[-1])
        return fort34.to_molecule() if fort34.dimensionality == 0 else fort34.to_structure()
    return task_document.output.structure or task_document.structure


@dataclass
class BaseCrystalMaker(Maker):
    """Base CRYSTAL job Maker.

    Parameters
    ----------
    name
        The job name; also the title line of the deck.
    input_set_generator
        Makes the input set (see :mod:`crystal_atomate.sets`).
    run_crystal_kwargs
        Passed to :func:`~crystal_atomate.run.run_crystal` (``mpi_procs``, ``timeout``).
    task_document_kwargs
        Passed to :meth:`CrystalTaskDoc.from_directory` (e.g. ``metadata``).
    stop_children_kwargs
        ``{"handle_unsuccessful": True | False | "error"}``; default from the settings.
    max_restarts
        Restarts the error handlers may make; default ``MAX_ERRORS`` from the settings.
    """

    name: str = "base crystal job"
    input_set_generator: CrystalInputGenerator = field(default_factory=StaticSetGenerator)
    run_crystal_kwargs: dict = field(default_factory=dict)
    task_document_kwargs: dict = field(default_factory=dict)
    stop_children_kwargs: dict = field(default_factory=dict)
    max_restarts: int | None = None

    @crystal_job
    def make(
        self,
        structure: Structure | Molecule,
        prev_dir: str | Path | None = None,
        restarts: list[RestartRecord] | None = None,
        structure_checked: bool = False,
    ) -> Response:
        """Run CRYSTAL on ``structure`` (continuing from ``prev_dir``); restart on known failures.

        ``structure_checked`` is set by :func:`crystal_job`: the structure passed the input set's
        check when the job was created, so building the input does not check it again.
        """
        workdir = Path.cwd()
        restarts = list(restarts or [])
        input_set = self.input_set_generator.get_input_set(
            structure, prev_dir=prev_dir, title=self.name, checked=structure_checked
        )
        input_set.write_input(workdir)
        record = run_crystal(
            workdir, program="crystal", job_name=self.name, **self.run_crystal_kwargs
        )
        task_doc = CrystalTaskDoc.from_directory(
            workdir,
            task_label=self.name,
            restarts=restarts,
            run=record,
            **self.task_document_kwargs,
        )
        if task_doc.state == "failed":
            restart = self._restart(task_doc, input_set.crystal_input, restarts, workdir, structure)
            if restart is not None:
                return Response(output=task_doc, replace=restart)
        settings = CrystalAtomateSettings()
        handle = self.stop_children_kwargs.get("handle_unsuccessful", settings.HANDLE_UNSUCCESSFUL)
        return Response(output=task_doc, stop_children=should_stop_children(task_doc, handle))

    def _restart(
        self,
        task_doc: CrystalTaskDoc,
        crystal_input: Any,
        restarts: list[RestartRecord],
        workdir: Path,
        structure: Structure | Molecule,
    ) -> Any:
        """Return the job replacing a fixable failure, or None (the reason goes in the document)."""
        limit = (
            self.max_restarts
            if self.max_restarts is not None
            else CrystalAtomateSettings().MAX_ERRORS
        )
        files = [
            path.name for path in workdir.iterdir() if path.is_file() and path.stat().st_size > 0
        ]
        plan = plan_restart(
            task_doc.errors, crystal_input, restarts, is_metal=task_doc.output.is_metal, files=files
        )
        if isinstance(plan, Unrecoverable):
            task_doc.error_messages.append(f"not restarted: {plan.reason}")
            return None
        if len(restarts) >= limit:
            task_doc.error_messages.append(f"not restarted: {limit} restarts already made")
            return None
        plan.from_dir = str(workdir)
        next_structure = structure
        if plan.geometry_from == "last_step":
            next_structure = last_geometry(workdir, task_doc) or structure
        generator = replace(
            self.input_set_generator,
            user_input_settings=deep_update(
                self.input_set_generator.user_input_settings, plan.input_updates
            ),
            inherit_wavefunction=plan.wavefunction,
        )
        maker = replace(self, input_set_generator=generator)
        uses_files = plan.wavefunction or plan.hessian
        return maker.make(
            next_structure, prev_dir=workdir if uses_files else None, restarts=[*restarts, plan]
        )
