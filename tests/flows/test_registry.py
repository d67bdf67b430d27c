"""The one flow registry: its names, how settings reach every CRYSTAL Maker, and who uses it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from crystal_atomate.aiida.parameters import GENERATORS
from crystal_atomate.demo import mgo_structure
from crystal_atomate.errors import InputError, UnknownNameError
from crystal_atomate.flows.registry import FLOWS, build_flow, check_flow_settings, generators
from crystal_atomate.jobs.base import BaseCrystalMaker
from crystal_atomate.sets.core import FreqSetGenerator, TightRelaxSetGenerator

PACKAGE = Path(__file__).resolve().parents[2] / "crystal_atomate"


def _crystal_makers(flow) -> dict[str, BaseCrystalMaker]:
    return {
        job.name: job.maker for job, _ in flow.iterflow() if isinstance(job.maker, BaseCrystalMaker)
    }


def test_aiida_generators_are_the_registry_names():
    assert GENERATORS == generators()
    assert GENERATORS["frequency"] is FreqSetGenerator and "freq" not in GENERATORS
    assert GENERATORS["tight-relax"] is TightRelaxSetGenerator
    assert set(GENERATORS) == {"static", "relax", "tight-relax", "frequency", "elastic", "eos"}
    assert list(FLOWS)[:2] == ["static", "relax"]


def test_settings_reach_every_crystal_maker_merged_key_by_key():
    flow = build_flow(
        "relax-bands", mgo_structure(), functional="PBE0", kspacing=0.2,
        settings={"scf": {"maxcycle": 300}, "hamiltonian": {"dft": {"grid": "XXLGRID"}}},
    )
    makers = _crystal_makers(flow)
    assert sorted(makers) == ["relax", "static"]
    for maker in makers.values():
        generator = maker.input_set_generator
        assert generator.functional == "PBE0"
        assert generator.user_kpoints_settings == {"kspacing": 0.2}
        assert generator.user_input_settings == {
            "scf": {"maxcycle": 300},
            "hamiltonian": {"dft": {"grid": "XXLGRID"}},
        }


def test_a_single_job_is_a_one_job_flow_named_after_the_registry():
    flow = build_flow("frequency", mgo_structure(), basis="POB-TZVP-REV2")
    (maker,) = _crystal_makers(flow).values()
    assert (
        flow.name == "frequency"
        and maker.input_set_generator.user_basis_settings == "POB-TZVP-REV2"
    )
    assert isinstance(maker.input_set_generator, FreqSetGenerator)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "statc"}, "unknown flow 'statc'; did you mean 'static'?"),
        (
            {"name": "static", "functional": "PBE-0"},
            "unknown functional 'PBE-0'; did you mean 'PBE0'?",
        ),
        (
            {"name": "static", "settings": {"optgeom": {"toldeg": 1e-4, "maxcycl": 9}}},
            "unknown optgeom setting 'maxcycl'; did you mean 'maxcycle'?",
        ),
        (
            {"name": "static", "settings": {"hamiltonian": {"dft": {"grd": "XLGRID"}}}},
            "unknown hamiltonian.dft setting 'grd'; did you mean 'grid'?",
        ),
    ],
)
def test_unknown_names_are_refused_before_building(kwargs, message):
    with pytest.raises(UnknownNameError) as refused:
        check_flow_settings(kwargs.pop("name"), **kwargs)
    assert str(refused.value) == message
    assert isinstance(refused.value, InputError) and refused.value.hint.startswith("valid: ")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    found |= {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    return found


def test_nothing_below_the_cli_imports_it():
    """Back-arrows of issue 17: high throughput, the testing helpers, every module outside cli/."""
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "cli" not in path.relative_to(PACKAGE).parts
        and any(
            name == "crystal_atomate.cli" or name.startswith("crystal_atomate.cli.")
            for name in _imports(path)
        )
    ]
    assert offenders == []


def test_the_registry_imports_no_maker_until_asked():
    probe = (
        "import sys, crystal_atomate.flows.registry as r; r.FLOWS; "
        "print(sorted(m for m in sys.modules if m.startswith(('jobflow', 'pymatgen'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]"
