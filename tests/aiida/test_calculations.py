"""CrystalCalculation run for real (core.direct on localhost, the replay as CRYSTAL): the Makers'
decks byte for byte, energies from the real recorded outputs, and the exit code of every failure."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from aiida import orm
from aiida.engine import run_get_node
from aiida.plugins import CalculationFactory, ParserFactory, WorkflowFactory

from crystal_atomate.aiida.calculations import PARSER_EXIT_CODES, CrystalCalculation
from crystal_atomate.aiida.setup import ensure_code
from crystal_atomate.aiida.structures import structure_to_node
from crystal_atomate.demo import DEMO_REPLAY, mgo_structure, nio_structure
from crystal_atomate.io.errors import CrystalErrorKind
from crystal_atomate.testing.recipes import (
    MGO_RELAX_HA,
    MGO_STATIC_HA,
    NIO_FAILED_HA,
    crystal_inputs,
    demo_generators,
)


def maker_files(job_name: str, structure, directory: Path) -> dict[str, bytes]:
    """What the Maker writes for ``structure``: INPUT and (EXTERNAL geometry) fort.34."""
    demo_generators()[job_name].get_input_set(structure, title=job_name).write_input(directory)
    return {path.name: path.read_bytes() for path in directory.iterdir()}


def test_entry_points_load():
    assert CalculationFactory("crystal_atomate.crystal") is CrystalCalculation
    assert CalculationFactory("crystal_atomate.properties").__name__ == "PropertiesCalculation"
    assert ParserFactory("crystal_atomate.crystal").__name__ == "CrystalParser"
    assert WorkflowFactory("crystal_atomate.base").__name__ == "CrystalBaseWorkChain"


def test_exit_codes_are_the_catalogue():
    codes = CrystalCalculation.exit_codes
    for kind in CrystalErrorKind:
        assert codes[f"ERROR_{kind.name}"].status == kind.exit_status
        assert codes[f"ERROR_{kind.name}"].message == kind.message
    catalogue = {kind.exit_status for kind in CrystalErrorKind}
    assert not catalogue & {status for status, _ in PARSER_EXIT_CODES.values()}


@pytest.mark.parametrize(
    ("job_name", "structure", "names"),
    [("relax", mgo_structure, {"INPUT"}), ("NiO static", nio_structure, {"INPUT", "fort.34"})],
)
def test_calcjob_writes_the_makers_files_byte_for_byte(
    codes, tmp_path, monkeypatch, job_name, structure, names
):
    monkeypatch.chdir(tmp_path)  # a dry run leaves its submit_test/ folder in the working directory
    expected = maker_files(job_name, structure(), tmp_path)
    assert set(expected) == names
    inputs = crystal_inputs(codes["crystal"], job_name, structure(), metadata={"dry_run": True})
    _, node = run_get_node(CrystalCalculation, **inputs)
    written = {name: node.base.repository.get_object_content(name, mode="rb") for name in names}
    assert written == expected


def test_mgo_relax(codes, replay):
    replay({"relax": DEMO_REPLAY["relax"]})
    results, node = run_get_node(
        CrystalCalculation, **crystal_inputs(codes["crystal"], "relax", mgo_structure())
    )
    assert node.is_finished_ok, node.exit_message
    parameters = results["output_parameters"].get_dict()
    assert parameters["energy_hartree"] == pytest.approx(MGO_RELAX_HA, abs=1e-8)
    assert parameters["opt_points"] == 4 and parameters["state"] == "successful"
    assert results["output_structure"].get_pymatgen().lattice.a == pytest.approx(
        2.99828782, abs=1e-6
    )
    trajectory = results["output_trajectory"]
    assert trajectory.numsteps == 4
    assert trajectory.get_array("energies_hartree")[-1] == pytest.approx(MGO_RELAX_HA, abs=1e-6)
    assert "fort.9" in parameters["restart_files"]


def test_mgo_static(codes, replay):
    replay({"static": DEMO_REPLAY["static"]})
    results, node = run_get_node(
        CrystalCalculation, **crystal_inputs(codes["crystal"], "static", mgo_structure())
    )
    assert node.is_finished_ok, node.exit_message
    assert results["output_parameters"]["energy_hartree"] == pytest.approx(MGO_STATIC_HA, abs=1e-8)
    assert "output_trajectory" not in results


def test_failed_scf_ends_with_the_catalogue_exit_code(codes, replay):
    replay({"NiO static": DEMO_REPLAY["NiO static"][0]})
    results, node = run_get_node(
        CrystalCalculation, **crystal_inputs(codes["crystal"], "NiO static", nio_structure())
    )
    assert node.exit_status == CrystalErrorKind.SCF_NOT_CONVERGED.exit_status == 410
    parameters = results["output_parameters"].get_dict()
    assert parameters["energy_hartree"] == pytest.approx(NIO_FAILED_HA, abs=1e-8)
    assert parameters["errors"] == ["scf_not_converged"]


def test_truncated_output_ends_with_truncated(codes, replay):
    replay({"static": {"recording": "be_scf_truncated_crystal17", "deck": None}})
    _, node = run_get_node(
        CrystalCalculation, **crystal_inputs(codes["crystal"], "static", mgo_structure())
    )
    assert node.is_finished and node.exit_status == CrystalErrorKind.TRUNCATED.exit_status


def _script(path: Path, body: str) -> str:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


@pytest.mark.parametrize(
    ("body", "label"),
    [
        ("rm -f OUTPUT", "ERROR_OUTPUT_FILE_MISSING"),
        ("true", "ERROR_OUTPUT_FILE_UNREADABLE"),
        ("head -c 3000 /dev/urandom", "ERROR_OUTPUT_FILE_UNREADABLE"),
        ("echo 'Segmentation fault (core dumped)'", "ERROR_OUTPUT_FILE_UNREADABLE"),
    ],
    ids=["missing", "empty", "binary", "not-crystal"],
)
def test_bad_output_is_an_exit_code_not_an_exception(localhost, tmp_path, body, label):
    code = ensure_code(
        f"broken-{tmp_path.name}",
        localhost,
        _script(tmp_path / "broken", body),
        "crystal_atomate.crystal",
    )
    _, node = run_get_node(CrystalCalculation, **crystal_inputs(code, "static", mgo_structure()))
    assert not node.is_excepted
    assert node.exit_status == CrystalCalculation.exit_codes[label].status


@pytest.mark.parametrize(
    ("parameters", "named"),
    [
        ({"user_input_settings": {"scf": {"maxcycle": "lots"}}}, "scf.maxcycle"),
        ({"user_input_settings": {"scff": {}}}, "scff"),
        ({"functionl": "PBE"}, "functionl"),
        ({"generator": "nonsense"}, "parameters.generator"),
        ({"user_basis_settings": "NO-SUCH-BASIS"}, "NO-SUCH-BASIS"),
    ],
)
def test_invalid_parameters_fail_at_validation_naming_the_key(codes, parameters, named):
    node, _ = structure_to_node(mgo_structure())
    inputs = {"code": codes["crystal"], "structure": node, "parameters": orm.Dict(parameters)}
    with pytest.raises(ValueError, match=named):
        run_get_node(CrystalCalculation, **inputs)
