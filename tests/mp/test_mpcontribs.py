"""MPContribs: the real ``mpcontribs-client`` against the recorded local API; contribution documents
from a real recorded CRYSTAL run."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from types import ModuleType

import pytest

from crystal_atomate.mp.cache import ui_cache_key
from crystal_atomate.mp.errors import MPContribsError, MPOfflineError
from crystal_atomate.mp.mpcontribs import MPContribs, contribution_document
from crystal_atomate.schemas.task import CrystalTaskDoc
from crystal_atomate.testing.mpcontribs_server import VALID_KEY, MPContribsServer

HARTREE_EV = 27.211386245988


def contribs(db_file: Path, server: MPContribsServer, **kwargs) -> MPContribs:
    return MPContribs(
        db_file, api_key=kwargs.pop("api_key", VALID_KEY), host=server.host, timeout=2, **kwargs
    )


def test_project_contributions_with_structures(
    mpcontribs_server: MPContribsServer, db_file: Path
) -> None:
    found = contribs(db_file, mpcontribs_server).contributions("crystal_oxides")

    assert [(c.identifier, c.formula, c.data["gap"]["value"]) for c in found] == [
        ("mp-1265", "MgO", 7.83),
        ("mp-149", "Si", 1.17),
    ]
    [mgo] = found[0].structures
    assert (mgo.formula, mgo.nsites, mgo.origin.source) == ("MgO", 2, "mpcontribs")
    assert mgo.structure.lattice.a == pytest.approx(4.2112 / 2**0.5, abs=1e-8)
    assert mgo.origin.url == f"{mpcontribs_server.url}/structures/6650a1b2c3d4e5f601234567/"
    assert "/apispec.json" in mpcontribs_server.paths


def test_by_material_is_the_uis_row_and_served_offline(
    mpcontribs_server: MPContribsServer, db_file: Path, ui_materials: ModuleType
) -> None:
    contribs(db_file, mpcontribs_server).contributions("crystal_oxides", identifier="mp-149")
    mpcontribs_server.stop()

    [si] = contribs(db_file, mpcontribs_server).contributions("crystal_oxides", identifier="mp-149")
    assert (si.formula, si.structures[0].from_cache, si.structures[0].nsites) == ("Si", True, 2)

    async def ui_reads() -> list:
        async with ui_materials.MaterialsService(db_path=db_file) as materials:
            return await materials.get_contributions("mp-149", project="crystal_oxides")

    [record] = asyncio.run(ui_reads())
    assert (record.project, record.material_id, record.data["method"]) == (
        "crystal_oxides",
        "mp-149",
        "experiment",
    )
    assert ui_cache_key(
        {"material_id": "mp-149", "project": "crystal_oxides"}, "get_contributions"
    ) == (
        ui_materials.generate_cache_key(
            {"material_id": "mp-149", "project": "crystal_oxides"}, prefix="get_contributions"
        )
    )


def test_unknown_project_is_empty(mpcontribs_server: MPContribsServer, db_file: Path) -> None:
    assert contribs(db_file, mpcontribs_server).contributions("no_such_project") == []


@pytest.mark.parametrize(
    ("setup", "error", "message"),
    [
        ("bad_key", MPContribsError, "refused the API key (HTTP 401)."),
        ("status_500", MPContribsError, "answered HTTP 500."),
        ("offline", MPOfflineError, "Cannot reach MPContribs at http://127.0.0.1:"),
        ("no_key", MPContribsError, "No MPContribs API key."),
    ],
)
def test_failures_are_one_line(
    mpcontribs_server: MPContribsServer,
    db_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    setup: str,
    error: type,
    message: str,
) -> None:
    kwargs = {"api_key": {"bad_key": "0" * 32, "no_key": ""}.get(setup, VALID_KEY)}
    if setup == "no_key":
        monkeypatch.delenv("MP_API_KEY")
        monkeypatch.delenv("MPCONTRIBS_API_KEY", raising=False)
    elif setup == "status_500":
        mpcontribs_server.fail(500)
    elif setup == "offline":
        mpcontribs_server.stop()
    with pytest.raises(error) as raised:
        contribs(db_file, mpcontribs_server, **kwargs).contributions("crystal_oxides")
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert VALID_KEY not in str(raised.value) and "0" * 32 not in str(raised.value)
    assert not db_file.exists()


def test_contribution_document_from_a_recorded_run(tmp_path: Path) -> None:
    from crystal_atomate.testing.reference import reference_dir

    run = tmp_path / "mgo"
    source = reference_dir() / "mgo_scf_hf_sto3g_crystal17"
    run.mkdir()
    shutil.copy(source / "INPUT.d12", run / "INPUT")
    shutil.copy(source / "OUTPUT.out", run / "OUTPUT")
    task = CrystalTaskDoc.from_directory(run, metadata={"material_id": "mp-1265"})

    document = contribution_document(task, "crystal_oxides")

    assert (document["project"], document["identifier"], document["formula"]) == (
        "crystal_oxides",
        "mp-1265",
        "MgO",
    )
    assert document["is_public"] is False
    energy = float(document["data"]["energy"].removesuffix(" eV"))
    assert energy == pytest.approx(-2.7121814374931e02 * HARTREE_EV, rel=1e-7)
    assert (
        document["data"]["code"] == "CRYSTAL17" and document["data"]["task"] == task.task_type.value
    )
    assert document["structures"][0].composition.reduced_formula == "MgO"


def test_no_energy_no_document(tmp_path: Path) -> None:
    from crystal_atomate.testing.reference import reference_dir

    run = tmp_path / "failed"
    source = reference_dir() / "mgo100_slab_guessp_itol_error_crystal17"
    shutil.copytree(source, run)
    deck = next(run.glob("*.d12"))
    deck.rename(run / "INPUT")
    next(run.glob("*.out")).rename(run / "OUTPUT")
    task = CrystalTaskDoc.from_directory(run)
    with pytest.raises(MPContribsError, match="has no final energy or structure to contribute"):
        contribution_document(task, "crystal_oxides")


def test_structures_seed_a_batch(mpcontribs_server: MPContribsServer, db_file: Path) -> None:
    from crystal_atomate.highthroughput import Candidate

    candidates = [
        Candidate.from_mp(s)
        for s in contribs(db_file, mpcontribs_server).structures("crystal_oxides")
    ]
    assert [(c.label, c.formula) for c in candidates] == [
        ("mpcontribs:6650a1b2c3d4e5f601234567", "MgO"),
        ("mpcontribs:6650a1b2c3d4e5f601234568", "Si"),
    ]
    assert candidates[0].provenance()["origin"]["source"] == "mpcontribs"


def test_cli_lists_contributions(
    mpcontribs_server: MPContribsServer, db_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from crystal_atomate.cli.structures import app

    monkeypatch.setenv("MPCONTRIBS_API_HOST", mpcontribs_server.host)
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(app, ["contributions", "crystal_oxides", "--identifier", "mp-1265"])

    assert result.exit_code == 0, result.output
    assert "1 contributions: crystal_oxides" in result.stdout and "MgO (2 sites)" in result.stdout
    mpcontribs_server.fail(500)
    failed = CliRunner().invoke(app, ["contributions", "crystal_oxides", "--refresh"])
    assert failed.exit_code == 1
    assert failed.stderr.splitlines() == [
        f"error: MPContribs at {mpcontribs_server.url} answered HTTP 500."
    ]
