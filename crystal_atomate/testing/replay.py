"""The replay executable: stands in for the licensed CRYSTAL binary, writing real recorded outputs.

CRYSTAL is licensed and absent from CI and from new users' machines, so tests, tutorials and the
demo run it through this program instead. Only the binary is replaced: whatever calls it (a jobflow
job, FireWorks, jobflow-remote or an AiiDA CalcJob) writes the real input files, runs a real
subprocess, and parses what comes back exactly as it would with CRYSTAL.

The replay

1. reads the deck as CRYSTAL does (standard input for ``crystal``/``properties``, or the file
   ``INPUT`` when standard input is empty, as ``Pcrystal`` does);
2. names the job: ``CRYSTAL_ATOMATE_JOB_NAME`` if set, else the deck's title line (our input sets
   write the job name there, so this also works where the environment is not passed on);
3. looks the name up in a :class:`ReplayPlan` (JSON file named by ``CRYSTAL_ATOMATE_REPLAY_PLAN``):
   glob patterns mapped to a sequence of recorded runs; a name matching two patterns is an error;
4. picks the recording for this attempt (the n-th run of that name gets the n-th recording, the last
   one repeating), so a plan ``[failed run, recovered run]`` exercises the error handlers;
5. checks the deck keyword by keyword against the recorded ``INPUT.d12`` (not a file hash), so a
   wrong setting fails the run loudly instead of being silently "replayed";
6. writes the recorded output to standard output (and the recorded auxiliary files into the working
   directory) and exits 0, as CRYSTAL does even on fatal errors.
"""

from __future__ import annotations

import fcntl
import fnmatch
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from crystal_atomate.run import JOB_NAME_ENV
from crystal_atomate.testing.reference import ReferenceDataMissing, recording_dir

__all__ = [
    "PLAN_ENV",
    "JOB_NAME_ENV",
    "ReplayError",
    "ReplayStep",
    "ReplayPlan",
    "compare_decks",
    "replay",
    "main",
]

PLAN_ENV = "CRYSTAL_ATOMATE_REPLAY_PLAN"

_NOT_OUTPUTS = {"INPUT.d12", "SOURCE.md", "OUTPUT.out"}
_PROPERTIES_OUTPUTS = {"BAND.DAT", "DOSS.DAT", "fort.25"}
_PROPERTIES_KEYWORDS = {"NEWK", "BAND", "DOSS", "PDIDE", "ECHG", "ECH3", "POTM", "PPAN", "RDFMWF"}


class ReplayError(RuntimeError):
    """The replay cannot stand in for CRYSTAL on this deck (unknown job, other input, bad plan)."""


class ReplayStep(BaseModel):
    """One recorded run to replay, and how strictly to check the deck that asks for it."""

    model_config = ConfigDict(extra="forbid")

    recording: str = Field(
        description="Folder name of a recorded run (crystal_atomate.testing.reference)."
    )
    output: str = Field("OUTPUT.out", description="The recorded standard output to write.")
    deck: str | None = Field(
        "INPUT.d12",
        description="The recorded deck to check against; None skips the check (recordings without "
        "a deck), which the plan must say explicitly.",
    )
    ignore: list[str] = Field(
        default_factory=list,
        description="Dotted keyword paths allowed to differ, e.g. 'scf.maxcycle' when the recorded "
        "restart used other mixing settings than our handler chooses.",
    )
    files: list[str] | None = Field(
        None,
        description="Auxiliary files to write; None = every recorded file that CRYSTAL writes.",
    )
    lattice_tolerance: float = Field(
        0.05, description="Largest allowed difference (Angstrom) in lattice lengths."
    )
    stall_seconds: float = Field(
        0.0,
        ge=0,
        description="Write the first half of the output, then wait this long before the rest: a "
        "run that outlives its walltime, for a scheduler to kill mid-run.",
    )


class ReplayPlan(BaseModel):
    """Which recordings answer which job names."""

    model_config = ConfigDict(extra="forbid")

    jobs: dict[str, list[ReplayStep]]
    state_dir: Path | None = Field(
        None, description="Where attempt counters live; default: beside the plan file."
    )

    @classmethod
    def from_file(cls, path: str | Path) -> ReplayPlan:
        """Read a plan file; without a ``state_dir`` its counters live in a folder beside it.

        The default folder is named after the plan, so two plans in one folder never share
        attempt counters.
        """
        path = Path(path)
        plan = cls.model_validate_json(path.read_text())
        if plan.state_dir is None:
            plan.state_dir = path.parent / f".{path.stem}-state"
        return plan

    def steps_for(self, job_name: str) -> list[ReplayStep]:
        """Return the recordings for ``job_name``; unknown or ambiguous names raise, never guess."""
        matches = [pattern for pattern in self.jobs if fnmatch.fnmatchcase(job_name, pattern)]
        if not matches:
            raise ReplayError(
                f"No recorded run for job {job_name!r}; the replay plan knows {sorted(self.jobs)}"
            )
        if len(matches) > 1:
            raise ReplayError(f"Job {job_name!r} matches several replay entries: {matches}")
        return self.jobs[matches[0]]


def _deck_title(deck: str) -> str:
    for line in deck.splitlines():
        if line.strip():
            return line.strip()
    raise ReplayError("The input deck is empty")


def _is_properties_deck(deck: str) -> bool:
    first = _deck_title(deck).split()[0].upper()
    return first in _PROPERTIES_KEYWORDS


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted paths to leaf values, so two decks can be compared keyword by keyword."""
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): value}


def _crystal_keywords(model: Any) -> dict[str, Any]:
    """Flat keywords of a crystal deck: everything but the title, the geometry and the basis."""
    return _flatten(model.model_dump(mode="json", exclude={"title", "geometry", "basis"}))


def _elements(structure: Any) -> frozenset[str]:
    return frozenset(str(el) for el in structure.composition.elements)


@dataclass(frozen=True)
class _RecordedCrystalDeck:
    """The recorded side of a crystal-deck comparison, parsed and expanded once per recording.

    Recordings do not change while a process replays them, and parsing the recorded deck, expanding
    its geometry and reducing it to a primitive cell cost more than the rest of the check.
    """

    keywords: dict[str, Any]
    geometry: Any
    structure: Any
    elements: frozenset[str]

    @cached_property
    def primitive(self) -> Any:
        return self.structure.get_primitive_structure()


@lru_cache(maxsize=32)
def _recorded_crystal_deck(deck: str, recorded_dir: Path, output: str) -> _RecordedCrystalDeck:
    """Parse a deck, cached on its text (not only its path): an edited recording is never stale."""
    from crystal_atomate.io.d12 import CrystalInput

    model = CrystalInput.from_string(deck)
    structure = _deck_structure(model, recorded_dir, recorded_dir / output)
    return _RecordedCrystalDeck(
        _crystal_keywords(model), model.geometry, structure, _elements(structure)
    )


def _same_expandable_geometry(mine: Any, theirs: Any) -> bool:
    """Identical ``CRYSTAL`` blocks expand to identical structures: nothing to expand or compare.

    Only blocks that expand on their own qualify: EXTERNAL ones point at different fort.34 files,
    and other kinds must still fail as uncomparable.
    """
    from crystal_atomate.io.geometry import CrystalGeometry

    return isinstance(mine, CrystalGeometry) and mine == theirs


def _deck_structure(model: Any, workdir: Path, recorded_output: Path | None) -> Any:
    """Return the geometry a deck describes, without site properties (spins compare as ATOMSPIN).

    EXTERNAL decks read fort.34 beside them. A recorded fort.34 that carries an energy header was
    written by CRYSTAL at the end of that run, not read by it: the recorded output's own geometry
    is then the truth.
    """
    from crystal_atomate.io.d12 import ExternalGeometry
    from crystal_atomate.io.fort34 import Fort34
    from crystal_atomate.io.outputs import parse_output

    geometry = model.geometry
    if not isinstance(geometry, ExternalGeometry):
        if hasattr(geometry, "to_structure"):
            structure = geometry.to_structure()
        elif recorded_output is not None:
            structure = parse_output(recorded_output, discover=False).structure
        else:
            raise ReplayError(
                f"Cannot compare a {geometry.kind} geometry block: write it as EXTERNAL"
            )
    else:
        fort34 = geometry.fort34 or Fort34.from_file(workdir / "fort.34")
        if fort34.energy is not None and recorded_output is not None:
            structure = parse_output(recorded_output, discover=False).structure
        else:
            structure = (
                fort34.to_molecule() if fort34.dimensionality == 0 else fort34.to_structure()
            )
    return _bare(structure)


def _bare(structure: Any) -> Any:
    """Return the same atoms and cell with every site property dropped."""
    bare = structure.copy()
    for name in list(bare.site_properties):
        bare.remove_site_property(name)
    return bare


def _properties_keywords(deck: str) -> dict[str, Any]:
    from crystal_atomate.io.properties import PropertiesInput

    return _flatten(PropertiesInput.from_string(deck).model_dump(mode="json", exclude={"layout"}))


def compare_decks(
    ours: str, recorded: str, *, our_dir: Path, recorded_dir: Path, step: ReplayStep
) -> list[str]:
    """Every difference between our deck and the recorded one that the step does not allow."""
    if _is_properties_deck(ours) != _is_properties_deck(recorded):
        return ["one deck is a properties deck and the other a crystal deck"]
    if _is_properties_deck(ours):
        mine, theirs = _properties_keywords(ours), _properties_keywords(recorded)
        return _keyword_differences(mine, theirs, step.ignore)
    from crystal_atomate.io.d12 import CrystalInput

    model = CrystalInput.from_string(ours)
    recorded_deck = _recorded_crystal_deck(recorded, recorded_dir, step.output)
    problems = _keyword_differences(_crystal_keywords(model), recorded_deck.keywords, step.ignore)
    if _same_expandable_geometry(model.geometry, recorded_deck.geometry):
        return problems
    my_geometry = _deck_structure(model, our_dir, None)
    my_elements = _elements(my_geometry)
    if my_elements != recorded_deck.elements:
        problems.append(
            f"elements differ: ours {sorted(my_elements)}, recorded "
            f"{sorted(recorded_deck.elements)}"
        )
    problems.extend(_geometry_differences(my_geometry, recorded_deck, step.lattice_tolerance))
    return problems


def _ignored(path: str, ignore: list[str]) -> bool:
    return any(path == item or path.startswith(f"{item}.") for item in ignore)


def _keyword_differences(
    mine: dict[str, Any], theirs: dict[str, Any], ignore: list[str]
) -> list[str]:
    problems = []
    for path in sorted(set(mine) | set(theirs)):
        if _ignored(path, ignore):
            continue
        if mine.get(path) != theirs.get(path):
            problems.append(f"{path}: ours {mine.get(path)!r}, recorded {theirs.get(path)!r}")
    return problems


def _geometry_differences(mine: Any, recorded: _RecordedCrystalDeck, tolerance: float) -> list[str]:
    theirs = recorded.structure
    if mine.composition.reduced_formula != theirs.composition.reduced_formula:
        return [f"formula: ours {mine.composition.formula}, recorded {theirs.composition.formula}"]
    if not hasattr(mine, "lattice"):
        return (
            [] if len(mine) == len(theirs) else [f"atoms: ours {len(mine)}, recorded {len(theirs)}"]
        )
    if mine == theirs:  # the same sites in the same cell: no primitive reduction needed to compare
        return []
    ours_prim = mine.get_primitive_structure()
    theirs_prim = recorded.primitive
    if len(ours_prim) != len(theirs_prim):
        return [f"atoms in the primitive cell: ours {len(ours_prim)}, recorded {len(theirs_prim)}"]
    volume_ratio = (ours_prim.volume / theirs_prim.volume) ** (1 / 3)
    if abs(volume_ratio - 1) * max(theirs_prim.lattice.abc) > tolerance:
        return [
            f"cell: ours {ours_prim.volume:.4f} A^3, recorded {theirs_prim.volume:.4f} A^3 "
            f"(tolerance {tolerance} A in lattice lengths)"
        ]
    return []


@contextmanager
def _locked_counter(state_dir: Path, job_name: str) -> Iterator[int]:
    """Return the attempt number of ``job_name``, counted under a file lock (runs are parallel)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in job_name)
    path = state_dir / f"{safe}.count"
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        attempt = int(handle.read() or 0)
        handle.seek(0)
        handle.truncate()
        handle.write(str(attempt + 1))
        handle.flush()
        yield attempt


def _files_to_write(folder: Path, step: ReplayStep, properties: bool, external: bool) -> list[Path]:
    if step.files is not None:
        return [folder / name for name in step.files]
    chosen = []
    for path in sorted(folder.iterdir()):
        name = path.name
        if name in _NOT_OUTPUTS or name == step.output or path.suffix in {".d3", ".outp", ".d12"}:
            continue
        if (name in _PROPERTIES_OUTPUTS) != properties:
            continue
        if name == "fort.34" and external:
            continue
        chosen.append(path)
    return chosen


def _write_wavefunction_marker(workdir: Path, recording: str) -> None:
    """CRYSTAL leaves fort.9 behind; the recordings carry none, so mark where one would be."""
    marker = workdir / "fort.9"
    if not marker.exists():
        marker.write_text(
            f"replayed run of {recording}: CRYSTAL's binary wavefunction is not recorded\n"
        )


def replay(deck: str, workdir: Path, plan: ReplayPlan, job_name: str | None = None) -> str:
    """Check ``deck`` on the plan's recording, write its files to ``workdir``, return stdout."""
    name = job_name or _deck_title(deck)
    steps = plan.steps_for(name)
    assert plan.state_dir is not None
    with _locked_counter(plan.state_dir, name) as attempt:
        step = steps[min(attempt, len(steps) - 1)]
    try:
        folder = recording_dir(step.recording)
    except ReferenceDataMissing as exc:
        raise ReplayError(str(exc)) from exc
    properties = _is_properties_deck(deck)
    if step.deck is not None:
        recorded = (folder / step.deck).read_text(errors="replace")
        problems = compare_decks(deck, recorded, our_dir=workdir, recorded_dir=folder, step=step)
        if problems:
            raise ReplayError(
                f"Job {name!r} (attempt {attempt + 1}) asked for a deck that differs from the "
                f"recording {step.recording}/{step.deck}:\n  " + "\n  ".join(problems)
            )
    external = not properties and "EXTERNAL" in deck.upper().split()
    for path in _files_to_write(folder, step, properties, external):
        shutil.copyfile(path, workdir / path.name)
    if not properties:
        _write_wavefunction_marker(workdir, step.recording)
    output = (folder / step.output).read_text(errors="replace")
    if step.stall_seconds:
        return _stalled(output, step.stall_seconds)
    return output


def _stalled(output: str, seconds: float) -> str:
    """Write the first half of ``output`` to standard output, wait, and return the rest.

    A scheduler's time limit then kills the replay while it waits, leaving a truncated output, as
    it would leave a real CRYSTAL run's.
    """
    lines = output.splitlines(keepends=True)
    head = "".join(lines[: len(lines) // 2])
    sys.stdout.write(head)
    sys.stdout.flush()
    time.sleep(seconds)
    return output[len(head) :]


def _read_deck(workdir: Path) -> str:
    stdin_text = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    if stdin_text.strip():
        return stdin_text
    input_file = workdir / "INPUT"
    if input_file.is_file():
        return input_file.read_text()
    raise ReplayError("No input deck: nothing on standard input and no file INPUT")


def main(argv: list[str] | None = None) -> int:
    """Console entry point ``crystal-atomate-replay``; behaves like ``crystal < INPUT``."""
    del argv
    plan_file = os.environ.get(PLAN_ENV)
    try:
        if not plan_file:
            raise ReplayError(
                f"Set {PLAN_ENV} to a replay plan (JSON) to use the replay executable"
            )
        workdir = Path.cwd()
        deck = _read_deck(workdir)
        output = replay(
            deck, workdir, ReplayPlan.from_file(plan_file), os.environ.get(JOB_NAME_ENV)
        )
    except ReplayError as exc:
        print(f"crystal-atomate-replay: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
