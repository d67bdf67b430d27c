"""One structure followed from a Maker to the files CRYSTAL reads: each check runs once per job.

The structure check (all pairs of sites) belongs to the input set
(``CrystalInputGenerator.check_structure``, which calls ``sets.base.check_structure``); the io
writers take the structure as given. The spin signs are read once, where the geometry is built
(``io.geometry.geometry_from_structure``). Both are counted on every module attribute they could
be looked up through, on real jobs replaying real CRYSTAL runs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from jobflow import Flow, JobStore, job, run_locally
from maggma.stores import MemoryStore
from pymatgen.core import Lattice, Structure

import crystal_atomate.io.fort34 as fort34_module
import crystal_atomate.io.geometry as geometry_module
import crystal_atomate.sets.base as sets_module
from crystal_atomate.demo import DEMO_REPLAY, demo_flows, mgo_makers, mgo_structure, nio_structure
from crystal_atomate.io.fort34 import Fort34
from crystal_atomate.io.geometry import StructureError

MGO_STATIC_HARTREE = -2.7544859113743e02
MGO_RELAX_HARTREE = -2.754486980727e02


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Calls of ``check_structure`` and ``spin_signs`` through any module that holds them."""
    counts: Counter[str] = Counter()

    def count(module: Any, name: str) -> None:
        original: Callable[..., Any] = getattr(module, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, counted)

    count(sets_module, "check_structure")
    count(geometry_module, "check_structure")
    count(geometry_module, "spin_signs")
    count(fort34_module, "spin_signs")
    return counts


def _run(flow: Flow, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.chdir(workdir)
    return run_locally(flow, create_folders=True, log=False, ensure_success=False)


def test_a_static_job_checks_its_structure_once(
    mock_crystal: Callable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calls: Counter[str]
) -> None:
    mock_crystal({"static": DEMO_REPLAY["static"]})
    job = mgo_makers()["static"].make(mgo_structure())

    assert calls == {"check_structure": 1}
    responses = _run(Flow([job]), tmp_path, monkeypatch)

    doc = responses[job.uuid][1].output
    assert doc.state == "successful"
    assert doc.output.energy_hartree == pytest.approx(MGO_STATIC_HARTREE, abs=1e-8)
    assert calls == {"check_structure": 1, "spin_signs": 1}


def test_a_magnetic_structure_reads_its_spins_once(
    mock_crystal: Callable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calls: Counter[str]
) -> None:
    """NiO goes through EXTERNAL: the same signs make up/down Ni inequivalent and fill ATOMSPIN."""
    mock_crystal({"NiO static": DEMO_REPLAY["NiO static"][0]})
    maker = replace(demo_flows()[1].jobs[0].maker, max_restarts=0,
                    stop_children_kwargs={"handle_unsuccessful": True})
    calls.clear()
    job = maker.make(nio_structure())
    responses = _run(Flow([job]), tmp_path, monkeypatch)

    assert responses[job.uuid][1].output.state == "failed"
    assert calls == {"check_structure": 1, "spin_signs": 1}
    [folder] = [path for path in tmp_path.iterdir() if (path / "fort.34").is_file()]
    assert Fort34.from_file(folder / "fort.34").space_group == (123, 16)
    assert "ATOMSPIN\n2\n1 1\n2 -1\n" in (folder / "INPUT").read_text()


def test_a_parents_structure_is_checked_when_the_child_runs(
    mock_crystal: Callable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calls: Counter[str]
) -> None:
    mock_crystal({"relax": DEMO_REPLAY["relax"], "static": DEMO_REPLAY["static"]})
    makers = mgo_makers()
    relax = makers["relax"].make(mgo_structure())
    static = makers["static"].make(relax.output.structure, prev_dir=relax.output.dir_name)

    assert calls == {"check_structure": 1}
    assert (
        relax.function_kwargs["structure_checked"],
        static.function_kwargs["structure_checked"],
    ) == (True, False)
    responses = _run(Flow([relax, static]), tmp_path, monkeypatch)

    energies = [responses[job.uuid][1].output.output.energy_hartree for job in (relax, static)]
    assert energies == pytest.approx([MGO_RELAX_HARTREE, MGO_STATIC_HARTREE], abs=1e-8)
    assert calls == {"check_structure": 2, "spin_signs": 2}


def test_a_bad_parent_structure_is_refused_when_the_child_runs(
    mock_crystal: Callable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run-time check is real: a child handed overlapping atoms fails before writing a deck."""

    @job
    def overlapping() -> Structure:
        return Structure(Lattice.cubic(4.0), ["Mg", "O"], [[0, 0, 0], [0.02, 0, 0]])

    mock_crystal({"static": DEMO_REPLAY["static"]})
    monkeypatch.chdir(tmp_path)
    store = JobStore(MemoryStore())
    store.connect()
    parent = overlapping()
    child = mgo_makers()["static"].make(parent.output)
    parent.run(store)

    with pytest.raises(StructureError, match=r"sites 0 \(Mg\) and 1 \(O\) are only 0.080 A apart"):
        child.run(store)
    assert not list(tmp_path.iterdir())
