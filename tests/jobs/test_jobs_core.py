"""Makers and flows end to end: real subprocesses via the replay, real parsing, the real store."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from jobflow import Flow, run_locally

from crystal_atomate.demo import DEMO_REPLAY, demo_flows, nio_structure, run_demo
from crystal_atomate.io.errors import CrystalErrorKind
from crystal_atomate.jobs.base import CrystalJobFailed
from crystal_atomate.stores.jobstore import CrystalMathJobStore


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The demo's two flows run once into a fresh shared database."""
    root = tmp_path_factory.mktemp("demo")
    store = CrystalMathJobStore(root / ".crystal_tui.db")
    run_demo(store, root / "runs")
    store.connect()
    return store, root


def _doc(store, name: str, index: int = 1) -> dict:
    return store.query_one({"name": name, "index": index})


def test_relax_static_bands_dos(demo_run):
    store, _ = demo_run
    relax, static = _doc(store, "relax")["output"], _doc(store, "static")["output"]
    assert relax["state"] == static["state"] == "successful"
    assert relax["task_type"] == "relax" and static["task_type"] == "static"
    assert relax["output"]["energy_hartree"] == pytest.approx(-2.754486980727e02, abs=1e-8)
    assert static["output"]["energy_hartree"] == pytest.approx(-2.7544859113743e02, abs=1e-8)
    assert relax["output"]["opt_points"] == 4
    assert relax["output"]["bandgap"] == pytest.approx(6.9612, abs=1e-4)
    assert relax["structure"]["lattice"]["a"] == pytest.approx(2.99828782, abs=1e-6)
    assert "GUESSP" in static["input"]["d12"]
    band = _doc(store, "band structure")["output"]
    assert band["state"] == "successful"
    assert band["output"]["bandgap"] == pytest.approx(7.1237, abs=1e-3)
    assert band["output"]["n_kpoints"] >= 200
    dos = _doc(store, "dos")["output"]
    assert dos["state"] == "successful" and dos["output"]["n_dos_points"] == 302


def test_large_objects_go_to_the_data_store(demo_run):
    store, _ = demo_run
    band = store.query_one({"name": "band structure"}, load=True)["output"]
    assert band["bandstructure"]["@class"] == "BandStructureSymmLine"
    raw = store.query_one({"name": "band structure"}, load=False)["output"]["bandstructure"]
    assert raw["@class"] == "BandStructureSymmLine" and "blob_uuid" in raw


def test_scf_failure_is_restarted_and_recorded(demo_run):
    store, _ = demo_run
    failed, recovered = (
        _doc(store, "NiO static", 1)["output"],
        _doc(store, "NiO static", 2)["output"],
    )
    assert failed["state"] == "failed"
    assert failed["errors"] == [CrystalErrorKind.SCF_NOT_CONVERGED.value]
    assert failed["output"]["energy_hartree"] == pytest.approx(-3.1282821683361e03, abs=1e-8)
    assert recovered["state"] == "successful"
    assert recovered["output"]["energy_hartree"] == pytest.approx(-3.1282821705429e03, abs=1e-8)
    (restart,) = recovered["restarts"]
    assert restart["errors"] == ["scf_not_converged"] and restart["wavefunction"] is True
    assert restart["from_dir"] == failed["dir_name"]
    assert "GUESSP" in recovered["input"]["d12"] and "MAXCYCLE\n100" in recovered["input"]["d12"]


def test_the_ui_job_list_shows_every_job(demo_run):
    store, _ = demo_run
    with sqlite3.connect(store.db_file) as conn:
        rows = dict(conn.execute("SELECT name, status FROM jobs").fetchall())
        energies = dict(conn.execute("SELECT name, final_energy FROM jobs").fetchall())
        flows = {row[0] for row in conn.execute("SELECT DISTINCT workflow_id FROM jobs")}
    assert rows == {
        "relax": "COMPLETED",
        "static": "COMPLETED",
        "band structure": "COMPLETED",
        "dos": "COMPLETED",
        "NiO static": "COMPLETED",
    }
    assert energies["static"] == pytest.approx(-2.7544859113743e02, abs=1e-8)
    assert energies["NiO static"] == pytest.approx(-3.1282821705429e03, abs=1e-8)
    assert len(flows) == 2


def _nio_job(**maker_kwargs):
    """The demo's NiO static (the recorded failing SCF), with other maker settings."""
    return replace(demo_flows()[1].jobs[0].maker, **maker_kwargs).make(nio_structure())


def test_unfixable_failure_stops_children_when_asked(mock_crystal, tmp_path, monkeypatch):
    mock_crystal({"NiO static": DEMO_REPLAY["NiO static"][0]})
    monkeypatch.chdir(tmp_path)
    job = _nio_job(max_restarts=0, stop_children_kwargs={"handle_unsuccessful": True})
    responses = run_locally(Flow([job]), create_folders=True, log=False)
    doc = responses[job.uuid][1].output
    assert doc.state == "failed" and responses[job.uuid][1].stop_children
    assert any("restarts already made" in message for message in doc.error_messages)


def test_unfixable_failure_raises_by_default(mock_crystal, tmp_path, monkeypatch):
    mock_crystal({"NiO static": DEMO_REPLAY["NiO static"][0]})
    monkeypatch.chdir(tmp_path)
    job = _nio_job(max_restarts=0)
    with pytest.raises(CrystalJobFailed, match="scf_not_converged"):
        job.run(store=_memory_store())


def _memory_store():
    from jobflow import JobStore
    from maggma.stores import MemoryStore

    store = JobStore(MemoryStore())
    store.connect()
    return store


def test_cli_demo_prints_the_results_table(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from crystal_atomate.cli import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["demo", "--db", str(tmp_path / "ui.db")])
    assert result.exit_code == 0, result.output
    assert "replayed" in result.output
    assert "NiO static" in result.output and "COMPLETED" in result.output
    assert "-275.4485911374" in result.output
    shown = CliRunner().invoke(app, ["show", "5", "--db", str(tmp_path / "ui.db")])
    assert shown.exit_code == 0, shown.output
    assert "restart 1: scf_not_converged" in shown.output
    listed = CliRunner().invoke(
        app, ["jobs", "--db", str(tmp_path / "ui.db"), "--status", "completed"]
    )
    assert listed.output.count("COMPLETED") == 5


def test_tutorial_outputs_are_the_recorded_values(tmp_path):
    """The first two tutorials, run in-process: their numbers are the recorded CRYSTAL results."""
    import importlib.util

    root = Path(__file__).parent.parent.parent / "tutorials"
    modules = {}
    for name in ("01_first_static", "02_relax_bands_dos"):
        spec = importlib.util.spec_from_file_location(name, root / f"{name}.py")
        modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(modules[name])
    energy = modules["01_first_static"].main(tmp_path / "one")
    assert energy == pytest.approx(-2.7544859113743e02, abs=1e-8)
    png = tmp_path / "bands.png"
    numbers = modules["02_relax_bands_dos"].main(tmp_path / "two", png)
    assert numbers["a"] == pytest.approx(2.99828782, abs=1e-6)
    assert numbers["gap"] == pytest.approx(7.1237, abs=1e-3)
    assert png.stat().st_size > 20_000


def test_eos_tutorial_refit_agrees_with_crystal(tmp_path, ref_dir):
    """Tutorial 3 refits CRYSTAL's E(V) points with pymatgen: the same Birch-Murnaghan fit."""
    import importlib.util

    from crystal_atomate.io.outputs import parse_output

    path = Path(__file__).parent.parent.parent / "tutorials" / "03_equation_of_state.py"
    spec = importlib.util.spec_from_file_location("eos_tutorial", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    png = tmp_path / "eos.png"
    numbers = module.main(tmp_path / "run", png)
    crystal = {
        fit.equation: fit
        for fit in parse_output(ref_dir / "hTaAs_eos_lda_ecp_crystal23" / "OUTPUT.out").eos.fits
    }
    birch = next(fit for name, fit in crystal.items() if name.startswith("BIRCH-MURNAGHAN"))
    assert numbers["n_points"] == 14
    assert numbers["v0"] == pytest.approx(birch.volume_a3, abs=5e-3)
    assert numbers["b0_GPa"] == pytest.approx(birch.bulk_modulus_gpa, rel=5e-3)
    assert png.stat().st_size > 20_000
