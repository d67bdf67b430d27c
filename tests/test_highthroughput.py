"""High-throughput end to end: the real MPRester against the local MP server, flows run through the
replay executable with ``run_locally`` into the shared database, and skipped when done.

Every MgO static replays the recorded ``mgo_scf_band_doss_b3lyp_crystal17`` run, whose deck the
settings below reproduce keyword by keyword. The Materials Project cell (a = 4.25 A) is not the
recorded one (4.217 A), but the replay compares primitive lattice lengths, 3.005 against 2.982 A:
0.023 A, inside its default 0.05 A ``lattice_tolerance``, so no step needs the tolerance raised.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from pymatgen.core import Lattice, Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer
from typer.testing import CliRunner

from crystal_atomate.cli import app
from crystal_atomate.cli.flows import load_structure, load_structure_with_origin
from crystal_atomate.demo import mgo_structure
from crystal_atomate.errors import InputError
from crystal_atomate.flows.registry import build_flow
from crystal_atomate.highthroughput import (
    Batch,
    Candidate,
    Engine,
    HighThroughputBuilder,
    LocalEngine,
    candidates_from_files,
    candidates_from_ids,
    candidates_from_query,
    make_engine,
    settings_fingerprint,
    submit_batch,
)
from crystal_atomate.mp.cache import MaterialsProject
from crystal_atomate.mp.client import MPQuery
from crystal_atomate.stores.jobstore import CrystalMathJobStore
from crystal_atomate.testing.mp_server import CORE, SUMMARY, MPServer
from crystal_atomate.testing.recipes import MGO_STATIC_RECORDING, MGO_STATIC_SETTINGS

RECORDED_ENERGY_HA = -2.7544859113743e02

pytestmark = pytest.mark.usefixtures("no_real_materials_project")

runner = CliRunner()


def _mgo_batch(
    db_file: Path, batch_id: str, candidates: list[Candidate]
) -> tuple[CrystalMathJobStore, Batch]:
    store = CrystalMathJobStore(db_file)
    builder = HighThroughputBuilder(
        "static", MGO_STATIC_SETTINGS, tags=["rocksalt"], batch_id=batch_id
    )
    return store, builder.build(candidates, store)


def _conventional_cif(structure: Structure, path: Path) -> Path:
    """The same crystal in another cell (8 atoms instead of 2) and another file format."""
    SpacegroupAnalyzer(structure).get_conventional_standard_structure().to(filename=str(path))
    return path


def test_query_to_task_documents_with_origin(
    mp_server: MPServer, db_file: Path, mock_crystal, tmp_path: Path
) -> None:
    mock_crystal({"static": MGO_STATIC_RECORDING})
    with closing(MaterialsProject(db_file)) as mp:
        candidates = candidates_from_query(mp, MPQuery(formula="MgO"))
    store, batch = _mgo_batch(db_file, "mgo-1", candidates)

    assert [(e.candidate.label, e.status) for e in batch.entries] == [("mp-1265", "new")]
    (flow,) = batch.flows
    assert flow.name == "static mp-1265 MgO"
    results = submit_batch(batch, LocalEngine(store, tmp_path / "runs"))

    assert [(r.flow_uuid, r.state) for r in results] == [(flow.uuid, "completed")]
    store.connect()
    doc = store.query_one({"output.metadata.material_id": "mp-1265"})["output"]
    metadata = doc["metadata"]
    assert metadata["mp_db_version"] == "2025.09.25"
    assert metadata["origin"]["material_id"] == "mp-1265"
    assert metadata["origin"]["endpoint"] == mp_server.url
    assert metadata["tags"] == ["rocksalt"] and metadata["batch_id"] == "mgo-1"
    assert metadata["ht"]["flow"] == "static" and metadata["ht"]["label"] == "mp-1265"
    assert doc["state"] == "successful"
    assert doc["output"]["energy_hartree"] == pytest.approx(RECORDED_ENERGY_HA, abs=1e-8)
    assert "B3LYP" in doc["input"]["d12"]
    assert doc["input"]["structure"]["lattice"]["a"] == pytest.approx(4.25 / math.sqrt(2), abs=1e-6)
    assert mp_server.hits(SUMMARY) == 1


def test_second_submit_skips_what_is_done_offline(
    mp_server: MPServer, db_file: Path, mock_crystal, tmp_path: Path
) -> None:
    mock_crystal({"static": MGO_STATIC_RECORDING})
    with closing(MaterialsProject(db_file)) as mp:
        mp_1265 = candidates_from_query(mp, MPQuery(formula="MgO"))[0]
    store, first = _mgo_batch(db_file, "first", [mp_1265])
    submit_batch(first, LocalEngine(store, tmp_path / "runs"))
    mp_server.stop()
    cifs = tmp_path / "cifs"
    cifs.mkdir()
    _conventional_cif(mp_1265.structure, cifs / "mgo_from_mp.cif")
    mgo_structure().to(filename=str(cifs / "mgo_4217.cif"))

    with closing(MaterialsProject(db_file)) as mp:
        again = candidates_from_ids(mp, ["mp-1265"]) + candidates_from_files([cifs])
    _, second = _mgo_batch(db_file, "second", again)
    results = submit_batch(second, LocalEngine(store, tmp_path / "runs"))

    statuses = [(e.candidate.label, e.status) for e in second.entries]
    assert statuses == [("mp-1265", "done"), ("mgo_4217", "new"), ("mgo_from_mp", "done")]
    assert [r.state for r in results] == ["completed"]
    batches = store.query({}, properties=["output.metadata.batch_id"])
    assert sorted(doc["output"]["metadata"]["batch_id"] for doc in batches) == ["first", "second"]


def test_other_settings_or_structures_are_not_done(
    mp_server: MPServer, db_file: Path, mock_crystal, tmp_path: Path
) -> None:
    mock_crystal({"static": MGO_STATIC_RECORDING})
    with closing(MaterialsProject(db_file)) as mp:
        mp_1265 = candidates_from_ids(mp, ["mp-1265"])
    store, batch = _mgo_batch(db_file, "base", mp_1265)
    submit_batch(batch, LocalEngine(store, tmp_path / "runs"))
    strained = Candidate("strained", mp_1265[0].structure.copy())
    strained.structure.scale_lattice(mp_1265[0].structure.volume * 1.01)

    pbe0 = HighThroughputBuilder("static", {**MGO_STATIC_SETTINGS, "functional": "PBE0"}).build(
        mp_1265, store
    )
    same = HighThroughputBuilder("static", MGO_STATIC_SETTINGS).build(
        [*mp_1265, strained, *mp_1265], store
    )

    assert [e.status for e in pbe0.entries] == ["new"]
    assert [e.status for e in same.entries] == ["done", "new", "done"]


def test_settings_fingerprint_ignores_labels_not_physics() -> None:
    structure = mgo_structure()
    first, relabelled = (build_flow("static", structure, **MGO_STATIC_SETTINGS) for _ in range(2))
    relabelled.jobs[0].maker.name = "another label"
    scf = {**MGO_STATIC_SETTINGS["settings"]["scf"], "maxcycle": 300}
    more_cycles = build_flow("static", structure, functional="B3LYP", settings={"scf": scf})

    assert settings_fingerprint(first) == settings_fingerprint(relabelled)
    assert settings_fingerprint(first) != settings_fingerprint(more_cycles)


def test_structures_crystal_cannot_run_are_rejected_not_fatal() -> None:
    overlapping = Structure(Lattice.cubic(4.0), ["Mg", "O"], [[0, 0, 0], [0.01, 0, 0]])
    batch = HighThroughputBuilder("static", MGO_STATIC_SETTINGS).build(
        [Candidate("bad", overlapping), Candidate("good", mgo_structure())]
    )

    assert [e.status for e in batch.entries] == ["rejected", "new"]
    assert "apart" in batch.entries[0].reason


def test_engines(db_file: Path, tmp_path: Path) -> None:
    store = CrystalMathJobStore(db_file)

    assert isinstance(make_engine("local", store, tmp_path), Engine)
    with pytest.raises(InputError, match="unknown engine 'slurm'") as refused:
        make_engine("slurm", store)
    assert refused.value.hint == "valid: aiida, aiida-daemon, fireworks, local, remote"


@pytest.fixture
def fireworks_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The embedded LaunchPad's folder for one test; its server is stopped afterwards (it has no
    idle timeout: left running, it would outlive the test session)."""
    from crystal_atomate.engines.embedded_db import stop_server

    db_dir = tmp_path / "fw"
    monkeypatch.setenv("CRYSTAL_ATOMATE_FW_DB", str(db_dir))
    yield db_dir
    stop_server(db_dir)


def test_fireworks_engine_queues_the_tagged_flows(
    db_file: Path, tmp_path: Path, fireworks_db: Path
) -> None:
    from crystal_atomate.engines.fireworks import open_launchpad

    open_launchpad().reset("", require_password=False)  # a new LaunchPad, as 'lpad reset' makes
    store = CrystalMathJobStore(db_file)
    batch = HighThroughputBuilder("static", MGO_STATIC_SETTINGS, batch_id="fw").build(
        [Candidate("mgo", mgo_structure())]
    )

    (result,) = submit_batch(batch, make_engine("fireworks", store, tmp_path))

    assert result.state == "submitted" and result.flow_uuid == batch.flows[0].uuid
    assert len(open_launchpad().get_wf_ids()) == 1
    with sqlite3.connect(db_file) as conn:
        assert conn.execute("SELECT name, status FROM jobs").fetchall() == [("static", "QUEUED")]


def test_run_accepts_a_material_id(
    mp_server: MPServer, db_file: Path, mock_crystal, tmp_path: Path
) -> None:
    mock_crystal({"static": MGO_STATIC_RECORDING})
    structure, origin = load_structure_with_origin("MP-1265")
    result = runner.invoke(
        app,
        [
            "run", "static", "mp-1265", "--functional", "B3LYP",
            "--settings", json.dumps(MGO_STATIC_SETTINGS["settings"]), "--work-dir", str(tmp_path),
        ],
    )

    assert (structure.composition.reduced_formula, origin.material_id) == ("MgO", "mp-1265")
    assert origin.db_version == "2025.09.25"
    assert result.exit_code == 0, result.output
    assert "COMPLETED" in result.output and mp_server.hits(CORE) == 1
    with pytest.raises(InputError, match="nor a Materials Project id"):
        load_structure("no-such-file.cif")


def test_cli_submit_twice(mp_server: MPServer, db_file: Path, mock_crystal, tmp_path: Path) -> None:
    mock_crystal({"static": MGO_STATIC_RECORDING})
    args = [
        "ht",
        "submit",
        "--query",
        "formula=MgO",
        "--flow",
        "static",
        "--functional",
        "B3LYP",
        "--settings",
        json.dumps(MGO_STATIC_SETTINGS["settings"]),
        "--batch",
        "cli",
        "--tag",
        "cli-test",
        "--work-dir",
        str(tmp_path / "runs"),
    ]
    first = runner.invoke(app, args)
    mp_server.stop()
    second = runner.invoke(app, args)

    assert first.exit_code == 0, first.output
    assert "completed" in first.output and "1 to run, 0 skipped" in first.output
    assert second.exit_code == 0, second.output
    assert "done" in second.output and "0 to run, 1 skipped" in second.output
    bad = runner.invoke(app, ["ht", "submit", "--query", "colour=blue"])
    assert bad.exit_code == 2 and "colour" in bad.output


def test_cli_batch_from_optimade_and_mpcontribs(
    optimade_server, mpcontribs_server, db_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OPTIMADE and MPContribs seed a batch as the Materials Project does (dry run: no CRYSTAL)."""
    from crystal_atomate.testing.mpcontribs_server import VALID_KEY as MPCONTRIBS_KEY

    monkeypatch.setenv("MPCONTRIBS_API_HOST", mpcontribs_server.host)
    monkeypatch.setenv("MPCONTRIBS_API_KEY", MPCONTRIBS_KEY)
    result = runner.invoke(app, [
        "ht", "submit", "--optimade", "Fe2O3", "--provider", optimade_server.url,
        "--mpcontribs", "crystal_oxides", "--flow", "static", "--batch", "sources", "--dry-run",
    ], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    host = optimade_server.url.removeprefix("http://")
    assert f"{host}:hematite-1" in result.output
    assert "mpcontribs:" in result.output
    assert "3 to run, 0 skipped, 0 rejected" in result.output
    with closing(sqlite3.connect(db_file)) as conn:
        sources = {row[0] for row in conn.execute("SELECT source FROM materials_cache")}
    assert sources == {"optimade", "mpcontribs"}
