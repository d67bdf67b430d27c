"""Readers of what CRYSTAL writes.

The crystal run's output (``parse_output(path_or_stream) -> CrystalOutput``, here), the
properties run's stdout, BAND.DAT, DOSS.DAT and fort.25 (:mod:`.properties`).

One pass over the lines, constant memory (the file is never read whole), plus the two files
CRYSTAL writes beside the output that change the verdict: ``SCFOUT.LOG`` (the SCFs of every
optimisation step after the first, unless ONELOG) and ``fort.87`` (the error report; in
Pcrystal runs the error may be only there). CRYSTAL exits with status 0 even on fatal errors,
so ``CrystalOutput.state`` is decided from the text alone - see :func:`derive_state`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from crystal_atomate.io.errors import (
    CrystalError,
    CrystalErrorKind,
    CrystalParseError,
    classify_line,
)
from crystal_atomate.io.outputs.model import (
    BandEdges,
    CalculationKind,
    CrystalOutput,
    FrequencyMode,
    MullikenAnalysis,
    OptStep,
    ScfCycle,
    ScfRun,
)
from crystal_atomate.io.outputs.scanner import OutputScanner

__all__ = [
    "BandEdges",
    "CalculationKind",
    "CrystalOutput",
    "FrequencyMode",
    "MullikenAnalysis",
    "OptStep",
    "ScfCycle",
    "ScfRun",
    "derive_state",
    "parse_output",
]

_SNIFF_BYTES = 8192
Source = str | os.PathLike[str] | IO[str] | Iterable[str]


def parse_output(
    source: Source,
    *,
    fort87: str | os.PathLike[str] | None = None,
    scfout: str | os.PathLike[str] | None = None,
    discover: bool = True,
) -> CrystalOutput:
    """Parse one CRYSTAL output (a path, or an open text stream / iterable of lines).

    With a path and ``discover=True``, ``fort.87`` and ``SCFOUT.LOG`` in the same directory are
    read too unless given explicitly. Raises :class:`CrystalParseError` for files that are empty,
    binary or not CRYSTAL output, and for a source that is neither a path nor a text stream
    (``None``, bytes); a truncated or failed run returns ``state == "failed"``.
    """
    if not isinstance(source, str | os.PathLike | Iterable) or isinstance(
        source, bytes | bytearray
    ):
        raise CrystalParseError(
            "parse_output needs a path or a text stream of a CRYSTAL output, not "
            f"{type(source).__name__}"
        )
    scanner = OutputScanner()
    path: Path | None = None
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        _check_readable_text(path)
        with path.open("rb") as handle:
            scanner.feed_file(handle)
    else:
        scanner.feed_lines(_guard_stream(source))
    if scanner.out.crystal_version is None and "started" not in scanner.flags:
        where = f"{path}" if path is not None else "the stream"
        raise CrystalParseError(
            f"{where} is not a CRYSTAL output: no CRYSTAL banner and no 'EEEEEEEEEE STARTING' line"
        )
    output = scanner.result()
    output.source_path = None if path is None else str(path)
    if path is not None and discover:
        fort87 = fort87 if fort87 is not None else _beside(path, "fort.87")
        scfout = scfout if scfout is not None else _beside(path, "SCFOUT.LOG")
    if scfout is not None:
        _merge_scfout(output, Path(scfout))
    if fort87 is not None:
        _merge_fort87(output, Path(fort87))
    derive_state(output)
    return output


def _beside(path: Path, name: str) -> Path | None:
    """Return a companion file in the output's folder, if there is one and it is not the output."""
    candidate = path.parent / name
    return candidate if candidate.is_file() and candidate.resolve() != path.resolve() else None


def _check_readable_text(path: Path) -> None:
    """Refuse missing, empty and binary files before scanning, naming which it is."""
    if not path.is_file():
        raise CrystalParseError(f"{path} does not exist or is not a file")
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    if not head.strip():
        raise CrystalParseError(f"{path} is empty")
    if b"\x00" in head:
        raise CrystalParseError(f"{path} is binary (NUL bytes), not a CRYSTAL text output")


def _guard_stream(lines: Iterable[str]) -> Iterable[str]:
    """Apply the empty/binary checks to a stream as it is consumed (no read-ahead)."""
    seen_text = False
    for number, line in enumerate(lines):
        if not isinstance(line, str):
            raise CrystalParseError("the stream yields bytes: open the output in text mode")
        if number < 200 and "\x00" in line:
            raise CrystalParseError("the stream is binary (NUL bytes), not a CRYSTAL text output")
        seen_text = seen_text or bool(line.strip())
        yield line
    if not seen_text:
        raise CrystalParseError("the stream is empty")


def _merge_scfout(output: CrystalOutput, path: Path) -> None:
    """Put the SCFs of SCFOUT.LOG after the first SCF of the main output, where they ran.

    Forces, cell gradient and stress printed there belong to later optimisation points than
    the main output's (point 1), so they replace them.
    """
    if not path.is_file() or path.stat().st_size == 0:
        return
    scanner = OutputScanner(source="SCFOUT.LOG")
    with path.open("rb") as handle:
        scanner.feed_file(handle)
    extra = scanner.result()
    cut = 1 if output.scf else 0
    output.scf = output.scf[:cut] + extra.scf + output.scf[cut:]
    energies = [run.energy_ha for run in output.scf if run.energy_ha is not None]
    if energies:
        output.scf_energy_ha = energies[-1]
    for name in (
        "forces_ha_per_bohr",
        "cell_gradient_ha_per_bohr",
        "stress_ha_per_bohr3",
        "pressure_gpa",
    ):
        if getattr(extra, name) is not None:
            setattr(output, name, getattr(extra, name))
    known = {error.kind for error in output.errors}
    output.errors.extend(error for error in extra.errors if error.kind not in known)


def _merge_fort87(output: CrystalOutput, path: Path) -> None:
    """fort.87's first non-blank line is CRYSTAL's own error report; unknown text is kept."""
    if not path.is_file():
        return
    with path.open(encoding="utf-8", errors="replace") as handle:
        first = next((line for line in handle if line.strip()), None)
    if first is None:
        return
    error = classify_line(first, None, "fort.87") or CrystalError(
        kind=CrystalErrorKind.UNKNOWN_ERROR,
        message=first.strip(),
        line=first.strip(),
        source="fort.87",
    )
    if all(known.kind is not error.kind for known in output.errors):
        output.errors.append(error)


def derive_state(output: CrystalOutput) -> CrystalOutput:
    """Set ``state`` (and the implied errors) from the landmarks, in place.

    "converged" needs ``EEEEEEEEEE TERMINATION``, no error (output, SCFOUT.LOG, fort.87), the
    last SCF ended ``CONVERGENCE`` when an SCF ran in this output (restarts that only read
    FREQINFO/EOSINFO run none), and ``OPT END - CONVERGED`` when optimisation points were
    printed. A run with neither TERMINATION nor an error line is TRUNCATED; a terminated
    optimisation without OPT END is OPT_NOT_CONVERGED; a terminated output with no result at all
    (only the STARTING and TERMINATION lines, say) is NO_CALCULATION, never "converged".
    """
    if not output.terminated and not output.errors:
        output.errors.append(
            CrystalError(
                kind=CrystalErrorKind.TRUNCATED, message=CrystalErrorKind.TRUNCATED.message
            )
        )
    if output.terminated and output.opt_steps and output.opt_converged is None:
        output.errors.append(
            CrystalError(
                kind=CrystalErrorKind.OPT_NOT_CONVERGED,
                message="optimisation points were printed but no OPT END line",
            )
        )
    ran_scf = [run for run in output.scf if run.cycle_numbers or run.converged is not None]
    if output.terminated and not output.errors and not (ran_scf or _has_result(output)):
        output.errors.append(
            CrystalError(
                kind=CrystalErrorKind.NO_CALCULATION,
                message=CrystalErrorKind.NO_CALCULATION.message,
            )
        )
    scf_ok = not ran_scf or ran_scf[-1].converged is True
    opt_ok = not output.opt_steps or output.opt_converged is True
    converged = output.terminated and not output.errors and scf_ok and opt_ok
    output.state = "converged" if converged else "failed"
    return output


def _has_result(output: CrystalOutput) -> bool:
    """Whether the output shows anything computed besides an SCF (checked by the caller)."""
    return bool(
        output.opt_steps
        or output.opt_converged is not None
        or output.frequencies
        or output.eos is not None
        or output.elastic_constants is not None
        or output.structure is not None
        or output.energy_ha is not None
    )
