"""Failure classification: the real failed runs, fort.87, and files that are not outputs at all."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from crystal_atomate.io.errors import CrystalErrorKind, CrystalParseError, classify_line
from crystal_atomate.io.outputs import parse_output
from crystal_atomate.testing.reference import reference_file


def _copy(ref_dir: Path, folder: str, tmp_path: Path) -> Path:
    """The output alone in a temp dir, so companion files can be added or left out."""
    target = tmp_path / "OUTPUT.out"
    shutil.copyfile(ref_dir / folder / "OUTPUT.out", target)
    return target


def test_truncated_scf(ref_dir: Path) -> None:
    out = parse_output(ref_dir / "be_scf_truncated_crystal17" / "OUTPUT.out")
    assert out.state == "failed"
    assert out.terminated is False
    assert out.error_kinds == [CrystalErrorKind.TRUNCATED]
    assert out.errors[0].line_number is None
    assert out.scf_converged is None


def test_too_many_cycles_still_terminates_but_fails(ref_dir: Path) -> None:
    out = parse_output(ref_dir / "nio_scf_too_many_cycles_crystal17" / "OUTPUT.out")
    assert out.terminated is True
    assert out.state == "failed"
    error = out.errors[0]
    assert error.kind is CrystalErrorKind.SCF_NOT_CONVERGED
    assert error.line_number == 580
    assert error.line is not None and error.line.startswith("== SCF ENDED - TOO MANY CYCLES")
    assert error.recoverable and error.exit_status == 410
    assert out.scf_converged is False


def test_walltime_killed_optimisation(ref_dir: Path) -> None:
    out = parse_output(ref_dir / "nio_opt_walltime_killed_crystal17" / "OUTPUT.out")
    assert out.error_kinds == [CrystalErrorKind.WALLTIME_KILLED]
    assert out.errors[0].line_number == 1537
    assert out.opt_converged is None
    assert len(out.opt_steps) == 20
    assert out.opt_steps[18].step_rejected is True
    # the last printed cell (point 20), not the input geometry
    assert out.structure is not None
    assert out.structure.lattice.abc == pytest.approx((3.07205406, 3.07205406, 4.49934791))
    # SCFOUT.LOG beside the output carries the SCFs of points 2..
    assert sum(run.source == "SCFOUT.LOG" for run in out.scf) >= 18


def test_optimisation_not_converged(ref_dir: Path) -> None:
    out = parse_output(ref_dir / "mackinawite_opt_failed_crystal17" / "OUTPUT.out")
    assert out.state == "failed"
    assert out.opt_converged is False
    assert out.opt_points == 100 and len(out.opt_steps) == 100
    assert out.opt_energy_ha == pytest.approx(-3.323077458663e03, abs=1e-8)
    first = out.errors[0]
    assert first.kind is CrystalErrorKind.OPT_NOT_CONVERGED
    assert first.line_number == 5034  # CONVERGENCE TESTS UNSATISFIED, before OPT END / f90main
    assert CrystalErrorKind.MPI_ABORT in out.error_kinds


def test_scf_failed_inside_optimisation(ref_dir: Path) -> None:
    out = parse_output(ref_dir / "bccfe_opt_scf_failed_b3pw_crystal14" / "OUTPUT.out")
    error = out.errors[0]
    assert error.kind is CrystalErrorKind.SCF_FAILED_IN_OPT
    assert error.routine == "OPTGEOM"
    assert error.line_number == 1734
    assert out.terminated is False and out.state == "failed"


def test_elastic_scf_failed_with_mpi_abort(ref_dir: Path) -> None:
    out = parse_output(ref_dir / "elastcon_scf_failed_mpi_abort_crystal17" / "OUTPUT.out")
    assert out.error_kinds == [CrystalErrorKind.SCF_FAILED_IN_OPT, CrystalErrorKind.MPI_ABORT]
    assert out.errors[1].line_number == 1176


def test_guessp_itol_mismatch(ref_dir: Path) -> None:
    out = parse_output(ref_dir / "mgo100_slab_guessp_itol_error_crystal17" / "OUTPUT.out")
    error = out.errors[0]
    assert error.kind is CrystalErrorKind.GUESSP_MISMATCH
    assert (error.routine, error.line_number) == ("INP12B", 395)
    assert error.exit_status == 440
    assert out.state == "failed"


def test_directory_listing_named_error_is_not_an_error(ref_dir: Path) -> None:
    """quartz06 ends with ``ls -l`` showing files named ERROR: not a CRYSTAL error line."""
    out = parse_output(ref_dir / "quartz_freq_hf_crystal06" / "OUTPUT.out")
    assert out.errors == [] and out.state == "converged"


def test_fort87_turns_a_clean_output_into_a_failure(ref_dir: Path, tmp_path: Path) -> None:
    path = _copy(ref_dir, "mgo_scf_hf_sto3g_crystal17", tmp_path)
    assert parse_output(path).state == "converged"
    (tmp_path / "fort.87").write_text(
        " ERROR **** NEIGHB **** USE KEYWORD SMALLDIST TO RUN ANYWAY\n"
    )
    out = parse_output(path)
    assert out.state == "failed"
    assert out.error_kinds == [CrystalErrorKind.ATOMS_TOO_CLOSE]
    assert out.errors[0].source == "fort.87"
    assert parse_output(path, discover=False).state == "converged"


def test_fort87_unknown_text_is_kept(ref_dir: Path, tmp_path: Path) -> None:
    path = _copy(ref_dir, "mgo_scf_hf_sto3g_crystal17", tmp_path)
    fort87 = tmp_path / "elsewhere.87"
    fort87.write_text("SOMETHING ODD HAPPENED\n")
    out = parse_output(path, fort87=fort87)
    assert out.error_kinds == [CrystalErrorKind.UNKNOWN_ERROR]
    assert out.errors[0].message == "SOMETHING ODD HAPPENED"


@pytest.mark.parametrize(
    ("line", "kind", "routine"),
    [
        (
            " ERROR **** OPTGEOM **** SCF FAILED - OPTGEOM STOP",
            CrystalErrorKind.SCF_FAILED_IN_OPT,
            "OPTGEOM",
        ),
        (
            " ERROR **** ZERO **** FERMI ENERGY NOT IN INTERVAL",
            CrystalErrorKind.FERMI_NOT_IN_INTERVAL,
            "ZERO",
        ),
        (
            " ERROR **** INP12B **** INCONSISTENT ITOL SIZE",
            CrystalErrorKind.GUESSP_MISMATCH,
            "INP12B",
        ),
        (" io error", CrystalErrorKind.GUESSP_EMPTY_WAVEFUNCTION, None),
        (
            " ERROR **** Read_int_1d **** unexpected end of file",
            CrystalErrorKind.GUESSP_EMPTY_WAVEFUNCTION,
            "Read_int_1d",
        ),
        (
            " * OPT END - FAILED    * E(AU):  -3.3E+03  POINTS  100 *",
            CrystalErrorKind.OPT_NOT_CONVERGED,
            None,
        ),
        (
            " ERROR **** f90main **** GEOMETRY OPTIMIZATION FAILED",
            CrystalErrorKind.OPT_NOT_CONVERGED,
            "f90main",
        ),
        (" TOO SMALL TRUST RADIUS", CrystalErrorKind.TRUST_RADIUS_COLLAPSED, None),
        (" ERROR **** BFGS_ **** PXK TOO SMALL", CrystalErrorKind.TRUST_RADIUS_COLLAPSED, "BFGS_"),
        (
            " ERROR **** CHOLSK **** BASIS SET LINEARLY DEPENDENT",
            CrystalErrorKind.LINEAR_DEPENDENCE,
            "CHOLSK",
        ),
        (" DISTANCE BETWEEN ATOMS   13   54 TOO SMALL", CrystalErrorKind.ATOMS_TOO_CLOSE, None),
        (
            " ERROR **** CHARGE **** UNIT CELL NOT NEUTRAL",
            CrystalErrorKind.CELL_NOT_NEUTRAL,
            "CHARGE",
        ),
        (
            " ERROR **** SPINCK **** CLOSED SHELL RUN-SPIN POLARIZATION NOT ALLOWED",
            CrystalErrorKind.SPIN_NOT_ALLOWED,
            "SPINCK",
        ),
        (
            " ERROR **** HESSIA **** PARAMETERS FOR MODEL HESSIAN NOT DEFINED",
            CrystalErrorKind.MODEL_HESSIAN_UNDEFINED,
            "HESSIA",
        ),
        (" ERROR **** MONMAD **** ALLOCATION FAILED", CrystalErrorKind.MEMORY_ALLOCATION, "MONMAD"),
        (
            " ERROR **** NEIGHB **** NEIGHBOR LIST TOO BIG",
            CrystalErrorKind.NEIGHBOR_LIST_TOO_BIG,
            "NEIGHB",
        ),
        (
            " ERROR **** GCALCO **** ALL G-VECTORS USED",
            CrystalErrorKind.G_VECTORS_EXHAUSTED,
            "GCALCO",
        ),
        (
            " ERROR **** INPUT **** END OF DATA IN INPUT DECK",
            CrystalErrorKind.INPUT_END_OF_DATA,
            "INPUT",
        ),
        (
            " ERROR **** INPUT **** FORMAT ERROR IN INPUT DECK",
            CrystalErrorKind.INPUT_FORMAT_ERROR,
            "INPUT",
        ),
        (
            " ERROR **** EXTERN **** GEOMETRY DATA FILE NOT FOUND",
            CrystalErrorKind.GEOMETRY_FILE_MISSING,
            "EXTERN",
        ),
        ("forrtl: error (78): process killed (SIGTERM)", CrystalErrorKind.WALLTIME_KILLED, None),
        (
            "slurmstepd: error: *** JOB 123 CANCELLED AT 2024 DUE TO TIME LIMIT ***",
            CrystalErrorKind.WALLTIME_KILLED,
            None,
        ),
        ("[ 1.2] oom_kill_process", CrystalErrorKind.WALLTIME_KILLED, None),
        (
            "application called MPI_Abort(MPI_COMM_WORLD, 1) - process 2",
            CrystalErrorKind.MPI_ABORT,
            None,
        ),
        (" ERROR **** NEWRTN **** SOMETHING NEW", CrystalErrorKind.UNKNOWN_ERROR, "NEWRTN"),
    ],
)
def test_catalogue_rules(line: str, kind: CrystalErrorKind, routine: str | None) -> None:
    error = classify_line(line, 7)
    assert error is not None
    assert error.kind is kind
    assert error.routine == routine
    assert error.line_number == 7


def test_unknown_error_keeps_routine_and_message() -> None:
    error = classify_line(" ERROR **** NEWRTN **** SOMETHING NEW")
    assert error is not None and error.message == "SOMETHING NEW"


@pytest.mark.parametrize(
    "line",
    [
        " WARNING **** READM2 **** PROBABLE LOSS IN FREQCALC ACCURACY",
        " INFORMATION **** TOLDEE ****",
        "-rw-r--r-- 1 u g 1 ERROR",
    ],
)
def test_catalogue_ignores_harmless_lines(line: str) -> None:
    assert classify_line(line) is None


def test_error_lines_reach_the_catalogue_through_the_scanner() -> None:
    text = (
        " EEEEEEEEEE STARTING  DATE 01 01 2024\n title\n"
        " ERROR **** CHARGE **** UNIT CELL NOT NEUTRAL\n"
    )
    out = parse_output(io.StringIO(text))
    assert out.error_kinds == [CrystalErrorKind.CELL_NOT_NEUTRAL]
    assert out.errors[0].line_number == 3 and out.state == "failed"


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.out"
    path.write_text("")
    with pytest.raises(CrystalParseError, match="empty"):
        parse_output(path)
    with pytest.raises(CrystalParseError, match="empty"):
        parse_output(io.StringIO("\n\n"))


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "fort.9"
    path.write_bytes(b"\x00\x01\x02binary wavefunction\x00" * 10)
    with pytest.raises(CrystalParseError, match="binary"):
        parse_output(path)


def test_not_a_crystal_output(tmp_path: Path) -> None:
    path = tmp_path / "vasp.out"
    path.write_text(" running on 4 total cores\n vasp.6.3.0\n")
    with pytest.raises(CrystalParseError, match="not a CRYSTAL output"):
        parse_output(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CrystalParseError, match="does not exist"):
        parse_output(tmp_path / "nope.out")


def test_only_starting_and_termination_is_not_converged(tmp_path: Path) -> None:
    """The banner lines of a real output and nothing else: no calculation, never "converged"."""
    lines = (
        reference_file("mgo_scf_hf_sto3g_crystal17", "OUTPUT.out")
        .read_text()
        .splitlines(keepends=True)
    )
    kept = [
        line
        for line in lines
        if line.startswith((" EEEEEEEEEE STARTING", " EEEEEEEEEE TERMINATION"))
    ]
    assert len(kept) == 2
    path = tmp_path / "OUTPUT.out"
    path.write_text("".join(kept))
    out = parse_output(path)
    assert out.terminated
    assert out.state == "failed"
    assert out.error_kinds == [CrystalErrorKind.NO_CALCULATION]
    assert CrystalErrorKind.NO_CALCULATION.exit_status == 303


@pytest.mark.parametrize("source", [None, b" EEEEEEEEEE STARTING\n", 42])
def test_parse_output_refuses_what_is_not_a_path_or_text(source: object) -> None:
    with pytest.raises(CrystalParseError, match="needs a path or a text stream"):
        parse_output(source)  # type: ignore[arg-type]
