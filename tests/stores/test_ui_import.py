"""Documents of the UI's own runs: built in one walk, equal to what the slow path stored."""

from __future__ import annotations

import math
import random
import uuid
from pathlib import Path

import orjson
import pytest
from pydantic_core import to_jsonable_python
from pymatgen.core import DummySpecies, Lattice, Molecule, Structure

from crystal_atomate.io.outputs import parse_output
from crystal_atomate.stores.sqlite_store import encode_document
from crystal_atomate.stores.ui_import import (
    _lattice_dict,
    _structure_dict,
    find_output,
    imported_document,
    parse_result_document,
    tui_job_uuid,
)
from crystal_atomate.stores.ui_read import UIJob

LATTICE_PARAMETERS = ("a", "b", "c", "alpha", "beta", "gamma", "volume")
COORDS = [[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]


def _split_lattice_parameters(doc: dict) -> tuple[list[float], bytes]:
    """The lattice parameters of a stored parse result, and its JSON text without their values.

    The parameters are computed with the math module on our side and with numpy by pymatgen:
    equal to the last bit or two, so they are compared apart.
    """
    copy = orjson.loads(orjson.dumps(doc))
    lattice = (copy.get("structure") or {}).get("lattice") or {}
    values = [lattice[name] for name in LATTICE_PARAMETERS if name in lattice]
    for name in LATTICE_PARAMETERS:
        if name in lattice:
            lattice[name] = None
    return values, orjson.dumps(copy)


def test_parse_results_are_stored_as_model_dump_gives_them(ref_dir: Path) -> None:
    """Every recorded output: same JSON (keys, order, types, values), same or more list paths."""
    fast_paths = 0
    runs = sorted(p.parent for p in ref_dir.glob("*/OUTPUT.out"))
    assert len(runs) >= 20
    for run in runs:
        model = parse_output(run / "OUTPUT.out")
        fast_arrays: set[str] = set()
        slow_arrays: set[str] = set()
        fast = parse_result_document(model, "output.parsed", fast_arrays)
        slow = encode_document(model.model_dump(mode="json"), "output.parsed", slow_arrays)
        fast_parameters, fast_text = _split_lattice_parameters(fast)
        slow_parameters, slow_text = _split_lattice_parameters(slow)
        assert fast_text == slow_text, run.name
        assert fast_parameters == pytest.approx(slow_parameters, rel=1e-14, abs=0), run.name
        assert fast_arrays >= slow_arrays, run.name
        fast_paths += isinstance(model.structure, Structure) and _structure_dict(
            model.structure
        ) is not None
    assert fast_paths >= 20  # the fast path is the one these outputs take


def _pymatgen_json(structure: Structure) -> dict:
    return to_jsonable_python(structure.as_dict())


def _assert_same_structure(ours: dict | None, structure: Structure) -> None:
    theirs = _pymatgen_json(structure)
    assert ours is not None
    for name in LATTICE_PARAMETERS:
        assert ours["lattice"].pop(name) == pytest.approx(theirs["lattice"].pop(name), rel=1e-14)
    assert orjson.dumps(ours) == orjson.dumps(theirs)


@pytest.mark.parametrize(
    "structure",
    [
        Structure(Lattice.cubic(4.21), ["Mg", "O"], COORDS),
        Structure(Lattice.cubic(4.21), ["Mg", "O"], COORDS, labels=["Mg_1", "O_1"]),
        Structure(Lattice.cubic(4.21), [{"Mg": 0.5, "Ca": 0.5}, "O"], COORDS),
        Structure(Lattice.hexagonal(2.46, 500.0, pbc=(True, True, False)), ["C", "C"], COORDS),
        Structure(Lattice([[3.0, 0.2, 0.1], [-1.4, 2.9, 0.3], [0.2, -0.1, 7.5]]), ["Fe", "S"],
                  [[0.1, 0.7, 0.3], [-0.2, 1.4, 0.95]]),
    ],
    ids=["plain", "labels", "disordered", "slab", "triclinic"],
)
def test_plain_structures_match_pymatgen(structure: Structure) -> None:
    _assert_same_structure(_structure_dict(structure), structure)


@pytest.mark.parametrize(
    "structure",
    [
        Structure(Lattice.cubic(4.21), ["Mg2+", "O2-"], COORDS),
        Structure(Lattice.cubic(4.21), ["Mg", "O"], COORDS, charge=1),
        Structure(Lattice.cubic(4.21), ["Mg", "O"], COORDS, site_properties={"magmom": [1, -1]}),
        Structure(Lattice.cubic(4.21), ["Mg", DummySpecies("X")], COORDS),
        Structure(Lattice.cubic(4.21), ["Mg", "O"], [[0.0, 0.0, 0.0], [math.inf, 0.5, 0.5]]),
    ],
    ids=["oxidation-states", "charge", "site-properties", "dummy-species", "infinite"],
)
def test_other_structures_are_left_to_pymatgen(structure: Structure) -> None:
    assert _structure_dict(structure) is None


def test_structure_properties_are_left_to_pymatgen() -> None:
    structure = Structure(Lattice.cubic(4.21), ["Mg", "O"], COORDS, properties={"origin": "mp"})
    assert _structure_dict(structure) is None


def test_lattice_parameters_follow_pymatgen() -> None:
    """Random cells, hexagonal-like and general: pymatgen's parameters to 1e-14."""
    rng = random.Random(7)
    for i in range(2000):
        if i % 2:
            matrix = [[rng.uniform(-9, 9) for _ in range(3)] for _ in range(3)]
        else:
            a = rng.uniform(2, 20)
            matrix = [[a, 0.0, 0.0], [rng.uniform(-a, a) / 2, rng.uniform(2, 20), 0.0],
                      [0.0, 0.0, rng.uniform(2, 500)]]
        lattice = Lattice(matrix)
        ours = _lattice_dict(lattice)
        expected = (*lattice.parameters, lattice.volume)
        assert [ours[name] for name in LATTICE_PARAMETERS] == pytest.approx(expected, rel=1e-14)
        assert ours["matrix"] == lattice.matrix.tolist()


def test_a_molecule_takes_the_slow_path(ref_dir: Path) -> None:
    model = parse_output(ref_dir / "s2_molecule_opt_hse06_crystal17" / "OUTPUT.out")
    assert isinstance(model.structure, Molecule)
    arrays: set[str] = set()
    doc = parse_result_document(model, "p", arrays)
    assert doc == encode_document(model.model_dump(mode="json"))
    assert doc["structure"]["@class"] == "Molecule" and "p.structure.sites" in arrays


@pytest.mark.parametrize("work_dir", ["/scratch/ui/mgo", "", "é/ü/漢字", "/x" * 300])
def test_tui_job_uuid_is_uuid5(work_dir: str) -> None:
    assert tui_job_uuid(work_dir) == str(uuid.uuid5(uuid.NAMESPACE_URL, f"crystal-tui:{work_dir}"))


def test_find_output_prefers_the_uis_name(tmp_path: Path) -> None:
    (tmp_path / "a.out").write_text("x")
    (tmp_path / "job[1].out").write_text("x")
    (tmp_path / "OUTPUT").write_text("x")
    assert find_output(str(tmp_path), "job[1]") == tmp_path / "job[1].out"
    assert find_output(str(tmp_path), "other") == tmp_path / "a.out"
    assert find_output(str(tmp_path), "../a") == tmp_path / "a.out"  # never outside the folder
    (tmp_path / "a.out").unlink()
    (tmp_path / "job[1].out").unlink()
    assert find_output(str(tmp_path), "other") == tmp_path / "OUTPUT"
    (tmp_path / "OUTPUT").unlink()
    (tmp_path / "run.log").write_text("x")
    assert find_output(str(tmp_path), "other") == tmp_path / "run.log"
    (tmp_path / "run.log").unlink()
    assert find_output(str(tmp_path), "other") is None
    assert find_output(str(tmp_path / "missing"), "other") is None


def _ui_job(work_dir: str, **values) -> UIJob:
    row = dict.fromkeys(UIJob.__dataclass_fields__)
    row.update(id=4, name="mgo", work_dir=work_dir, status="COMPLETED", **values)
    return UIJob(**row)


def test_imported_document_fields_and_list_paths(ref_dir: Path) -> None:
    model = parse_output(ref_dir / "nio_scf_too_many_cycles_crystal17" / "OUTPUT.out")
    job = _ui_job("/scratch/nio", final_energy=-3000.5, workflow_id="wf-1",
                  completed_at="2026-01-02 03:04:05")
    encoded = imported_document(job, model)
    doc = encoded.doc
    assert doc["uuid"] == tui_job_uuid("/scratch/nio") and doc["index"] == 1
    assert doc["metadata"] == {"tui_job_id": 4, "imported_from": "crystal_tui", "flow_uuid": "wf-1"}
    assert doc["output"]["state"] == "failed"
    assert doc["output"]["errors"] == ["scf_not_converged"]
    assert doc["output"]["output"]["energy_hartree"] == pytest.approx(-3128.2821683361, abs=1e-8)
    assert doc["output"]["output"]["scf_cycles"] == 10
    assert doc["completed_at"] == "2026-01-02 03:04:05"
    assert list(doc["output"])[-1] == "parsed"
    assert {"hosts", "output.errors", "output.parsed.scf"} <= encoded.arrays
    assert orjson.loads(orjson.dumps(doc)) == doc  # JSON as it is
