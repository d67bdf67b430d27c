"""The one catalogue of CRYSTAL failures, shared by every engine.

jobflow handlers, the AiiDA parser (exit codes) and FireWorks all classify a failed run with
:class:`CrystalErrorKind`, so a failure has one name, one message, one "can we retry" answer and
one AiiDA exit status everywhere. Exit statuses follow the AiiDA convention: 3xx for failures
that no automatic restart can fix (bad input, bad geometry, resources, unknown), 4xx for the
recoverable ones (SCF, geometry optimisation, walltime, linear dependence, restart files).

CRYSTAL exits with status 0 even on fatal errors, so the only evidence is the text of the output
(and ``fort.87``): the rules below are anchored regular expressions on single lines.
"""

from __future__ import annotations

import re
from enum import Enum

from pydantic import BaseModel, ConfigDict

__all__ = [
    "CrystalError",
    "CrystalErrorKind",
    "CrystalParseError",
    "classify_line",
]

#: ``ERROR **** ROUTINE **** MESSAGE`` - the shape of every fatal message CRYSTAL prints itself.
#: The message is taken whole and stripped in code: ``(.*?)\s*$`` costs quadratic time on a
#: line with a long run of blanks.
ERROR_LINE = re.compile(r"^\s*ERROR\s+\*{4}\s*(?P<routine>[^*\s]+)\s*\*{4}\s*(?P<message>.*)")


class CrystalErrorKind(str, Enum):
    """A class of CRYSTAL failure.

    Each member carries ``pattern`` (anchored regex matched against one output line, ``None``
    for kinds derived from the absence of landmarks), ``message``, ``recoverable``,
    ``exit_status`` (AiiDA convention) and ``fix`` (what a handler or a human should do).
    """

    pattern: re.Pattern[str] | None
    message: str
    recoverable: bool
    exit_status: int
    fix: str

    def __new__(
        cls,
        value: str,
        pattern: str | None,
        message: str,
        recoverable: bool,
        exit_status: int,
        fix: str,
    ) -> CrystalErrorKind:
        """Build a member carrying its rule; the enum value stays the plain string."""
        member = str.__new__(cls, value)
        member._value_ = value
        member.pattern = re.compile(pattern) if pattern is not None else None
        member.message = message
        member.recoverable = recoverable
        member.exit_status = exit_status
        member.fix = fix
        return member

    UNKNOWN_ERROR = (
        "unknown_error",
        r"^\s*ERROR\s+\*{4}",
        "CRYSTAL stopped with an ERROR line not in the catalogue",
        False,
        300,
        "read the routine and message; add the case to the catalogue",
    )
    TRUNCATED = (
        "truncated",
        None,
        "the output ends without TERMINATION and without any error line",
        False,
        301,
        "check the scheduler log (walltime, memory, node failure) and the disk quota",
    )
    NO_CALCULATION = (
        "no_calculation",
        None,
        (
            "the output terminated but shows no calculation (no SCF, optimisation, frequencies, "
            "EOS, "
            "elastic constants, geometry or wave-function energy)"
        ),
        False,
        303,
        "check the deck and the program that ran: CRYSTAL printed no result to read",
    )
    MPI_ABORT = (
        "mpi_abort",
        r"^\s*(?:application called MPI_Abort|MPI_ABORT was invoked)",
        "the MPI run was aborted",
        False,
        302,
        "look for the CRYSTAL error that caused it (output, fort.87)",
    )
    INPUT_END_OF_DATA = (
        "input_end_of_data",
        r"^.*END OF DATA IN INPUT DECK",
        "the input deck ended before CRYSTAL expected it to (missing END or arguments)",
        False,
        310,
        "fix the .d12: a block is missing its END or a keyword its arguments",
    )
    INPUT_FORMAT_ERROR = (
        "input_format_error",
        r"^.*FORMAT ERROR IN INPUT DECK",
        "a line of the input deck could not be read",
        False,
        311,
        "fix the .d12 line named before the error (wrong keyword or argument count)",
    )
    GEOMETRY_FILE_MISSING = (
        "geometry_file_missing",
        r"^.*GEOMETRY DATA FILE NOT FOUND",
        "EXTERNAL was requested but fort.34 is missing",
        False,
        312,
        "stage the geometry as fort.34 in the run directory",
    )
    ATOMS_TOO_CLOSE = (
        "atoms_too_close",
        r"^(?:.*DISTANCE BETWEEN ATOMS\s+\d+\s+\d+\s+TOO SMALL"
        r"|\s*ERROR\s+\*{4}\s*NEIGHB\s*\*{4}\s*USE KEYWORD SMALLDIST)",
        "two atoms are closer than CRYSTAL accepts",
        False,
        320,
        "the geometry is wrong: reject the structure (SMALLDIST only if it is really intended)",
    )
    CELL_NOT_NEUTRAL = (
        "cell_not_neutral",
        r"^.*UNIT CELL NOT NEUTRAL",
        "the unit cell carries a net charge",
        False,
        321,
        "check the basis-set shell occupations (CHE) and the atoms",
    )
    SPIN_NOT_ALLOWED = (
        "spin_not_allowed",
        r"^.*CLOSED SHELL RUN-SPIN POLARIZATION NOT ALLOWED",
        "a spin setting was given to a closed-shell (restricted) run",
        False,
        322,
        "add SPIN (DFT) or UHF, or remove ATOMSPIN/SPINLOCK",
    )
    MODEL_HESSIAN_UNDEFINED = (
        "model_hessian_undefined",
        r"^.*PARAMETERS FOR MODEL HESSIAN NOT DEFINED",
        "the model Hessian has no parameters for an element",
        False,
        323,
        "choose another initial Hessian (HESSIDEN) in OPTGEOM",
    )
    MEMORY_ALLOCATION = (
        "memory_allocation",
        r"^\s*ERROR\s+\*{4}.*ALLOCAT",
        "a memory allocation failed",
        False,
        330,
        "run on more nodes / fewer processes per node, or reduce the basis and k-mesh",
    )
    NEIGHBOR_LIST_TOO_BIG = (
        "neighbor_list_too_big",
        r"^.*NEIGHBOR LIST TOO BIG",
        "the neighbour list exceeds CRYSTAL's limit",
        False,
        331,
        "check the geometry for collapsed cells; loosen TOLINTEG only if the cell is right",
    )
    G_VECTORS_EXHAUSTED = (
        "g_vectors_exhausted",
        r"^.*ALL G-VECTORS USED",
        "all direct-lattice vectors were used",
        False,
        332,
        "check the cell (too small or distorted); loosen TOLINTEG only if it is right",
    )
    WALLTIME_KILLED = (
        "walltime_killed",
        r"^(?:\s*forrtl: error \(78\): process killed \(SIGTERM\)"
        r"|.*DUE TO TIME LIMIT|.*oom[-_]kill)",
        "the run was killed by the scheduler (walltime or memory)",
        True,
        400,
        "restart from the last optc/fort.34 geometry; fort.9 may be empty after SIGTERM",
    )
    SCF_NOT_CONVERGED = (
        "scf_not_converged",
        r"^\s*==\s*SCF ENDED - TOO MANY CYCLES",
        "the SCF did not converge within MAXCYCLE",
        True,
        410,
        "raise MAXCYCLE and restart with GUESSP; FMIXING 50-80; LEVSHIFT 5 1 or BROYDEN",
    )
    SCF_FAILED_IN_OPT = (
        "scf_failed_in_opt",
        r"^\s*ERROR\s+\*{4}\s*OPTGEOM\s*\*{4}\s*SCF FAILED",
        "an SCF inside the geometry optimisation (or ELASTCON/EOS) did not converge",
        True,
        411,
        "restart from the last geometry with more SCF cycles / mixing, GUESSP",
    )
    FERMI_NOT_IN_INTERVAL = (
        "fermi_not_in_interval",
        r"^\s*ERROR\s+\*{4}\s*\S+\s*\*{4}\s*FERMI ENERGY NOT IN INTERVAL",
        "the Fermi level could not be bracketed (metal)",
        True,
        412,
        "add SMEAR ~0.005 or a denser SHRINK; FMIXING does not cure it",
    )
    OPT_NOT_CONVERGED = (
        "opt_not_converged",
        r"^\s*(?:\*\s*OPT END - FAILED|CONVERGENCE TESTS UNSATISFIED"
        r"|ERROR\s+\*{4}\s*f90main\s*\*{4}\s*GEOMETRY OPTIMIZATION FAILED)",
        "the geometry optimisation did not converge within its steps",
        True,
        420,
        "restart from the last optc/fort.34 via EXTERNAL with HESSOPT and GUESSP",
    )
    TRUST_RADIUS_COLLAPSED = (
        "trust_radius_collapsed",
        r"^(?:.*TOO SMALL TRUST RADIUS|\s*ERROR\s+\*{4}\s*BFGS_\s*\*{4}\s*PXK TOO SMALL)",
        "the optimiser's trust radius collapsed",
        True,
        421,
        "start a fresh optimisation from the last geometry (RESTART inherits the radius)",
    )
    LINEAR_DEPENDENCE = (
        "linear_dependence",
        r"^.*BASIS SET LINEARLY DEPENDENT",
        "the basis set is linearly dependent at this geometry",
        True,
        430,
        "TOLINTEG 8 8 8 8 16, LDREMO, or drop the most diffuse shells",
    )
    GUESSP_MISMATCH = (
        "guessp_mismatch",
        r"^\s*ERROR\s+\*{4}\s*\S+\s*\*{4}\s*INCONSISTENT ITOL SIZE",
        "the GUESSP density (fort.20) was computed with different TOLINTEG",
        True,
        440,
        "keep TOLINTEG identical to the run that wrote fort.9, or drop GUESSP",
    )
    GUESSP_EMPTY_WAVEFUNCTION = (
        "guessp_empty_wavefunction",
        r"^(?:\s*io error\b|.*\bRead_int_1d\b)",
        "the GUESSP wavefunction (fort.20) is empty or unreadable",
        True,
        441,
        "drop GUESSP (the previous fort.9 is empty, e.g. after SIGTERM)",
    )


#: Specific kinds first, the catch-all ERROR rule last: order decides which rule names a line.
_RULES: tuple[CrystalErrorKind, ...] = tuple(
    kind
    for kind in CrystalErrorKind
    if kind.pattern is not None and kind is not CrystalErrorKind.UNKNOWN_ERROR
) + (CrystalErrorKind.UNKNOWN_ERROR,)


class CrystalError(BaseModel):
    """One failure found in a CRYSTAL output (or ``fort.87``), with where it was found."""

    model_config = ConfigDict(frozen=True)

    kind: CrystalErrorKind
    message: str
    line_number: int | None = None
    line: str | None = None
    routine: str | None = None
    source: str = "output"

    @property
    def recoverable(self) -> bool:
        """Whether an automatic restart can fix it (from the catalogue)."""
        return self.kind.recoverable

    @property
    def exit_status(self) -> int:
        """AiiDA exit status of the kind."""
        return self.kind.exit_status


class CrystalParseError(Exception):
    """The file cannot be read as a CRYSTAL output at all (empty, binary, or something else)."""


def classify_line(
    line: str, line_number: int | None = None, source: str = "output"
) -> CrystalError | None:
    """Classify one line against the catalogue; ``None`` when it reports no failure.

    Unknown ``ERROR ****`` lines keep their routine and message so that nothing CRYSTAL
    reports is lost, even when the catalogue does not know it yet.
    """
    for kind in _RULES:
        pattern = kind.pattern
        if pattern is not None and pattern.match(line):
            stripped = line.strip()
            found = ERROR_LINE.match(line)
            routine = found.group("routine") if found else None
            if kind is CrystalErrorKind.UNKNOWN_ERROR and found:
                message = found.group("message").rstrip()
            else:
                message = kind.message
            return CrystalError(
                kind=kind,
                message=message,
                line_number=line_number,
                line=stripped,
                routine=routine,
                source=source,
            )
    return None
