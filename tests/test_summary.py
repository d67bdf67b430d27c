"""The batch summary from the store: values checked against the recorded CRYSTAL output itself.

One batch is run once for the module: mp-1265 from the local MP server (a = 4.25 A) and the demo's
MgO from a CIF file (a = 4.217 A), both replaying the recorded MgO static (see
``tests/test_highthroughput.py`` for why the settings and the geometry are accepted by the replay).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from matplotlib.image import imread
from typer.testing import CliRunner

from crystal_atomate.cli import app
from crystal_atomate.demo import mgo_structure
from crystal_atomate.highthroughput import (
    HighThroughputBuilder,
    LocalEngine,
    candidates_from_files,
    candidates_from_ids,
    submit_batch,
)
from crystal_atomate.io.outputs import parse_output
from crystal_atomate.io.units import HARTREE_TO_EV
from crystal_atomate.mp.cache import MaterialsProject
from crystal_atomate.stores.jobstore import CrystalMathJobStore
from crystal_atomate.summary import SummaryRow, batch_rows, plot_batch, write_csv, write_json
from crystal_atomate.testing.mp_server import VALID_KEY, start_server
from crystal_atomate.testing.recipes import MGO_STATIC_RECORDING, MGO_STATIC_SETTINGS
from crystal_atomate.testing.reference import reference_file
from crystal_atomate.testing.replay_setup import use_replay

BATCH = "summary-test"
pytestmark = pytest.mark.usefixtures("no_real_materials_project")
runner = CliRunner()


@pytest.fixture(scope="module")
def batch_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The shared database after the two-structure batch ran through the replay."""
    root = tmp_path_factory.mktemp("summary")
    server, thread = start_server()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MP_API_ENDPOINT", server.url)
        patch.setenv("MP_API_KEY", VALID_KEY)
        patch.setenv("NO_PROXY", "127.0.0.1,localhost")
        for key, value in use_replay({"static": MGO_STATIC_RECORDING}, root / "replay").items():
            patch.setenv(key, value)
        mgo_structure().to(filename=str(root / "mgo_4217.cif"))
        db_file = root / "crystal_tui.db"
        with closing(MaterialsProject(db_file)) as mp:
            candidates = candidates_from_ids(mp, ["mp-1265"]) + candidates_from_files(
                [root / "mgo_4217.cif"]
            )
        store = CrystalMathJobStore(db_file)
        batch = HighThroughputBuilder("static", MGO_STATIC_SETTINGS, batch_id=BATCH).build(
            candidates, store
        )
        results = submit_batch(batch, LocalEngine(store, root / "runs"))
    server.stop()
    thread.join(timeout=5)
    assert [r.state for r in results] == ["completed", "completed"]
    yield db_file


@pytest.fixture(scope="module")
def recorded() -> dict[str, float]:
    """Energy and gap straight from the recorded CRYSTAL output, not through the store."""
    out = parse_output(reference_file(MGO_STATIC_RECORDING, "OUTPUT.out"))
    return {"energy_ha": out.energy_ha, "gap": out.band_gap_ev}


def _rows(db_file: Path) -> dict[str, SummaryRow]:
    return {row.label: row for row in batch_rows(CrystalMathJobStore(db_file), BATCH)}


def test_rows_hold_the_recorded_values(batch_db: Path, recorded: dict[str, float]) -> None:
    rows = _rows(batch_db)

    assert sorted(rows) == ["mgo_4217", "mp-1265"]
    assert (
        rows["mp-1265"].material_id == "mp-1265" and rows["mp-1265"].mp_db_version == "2025.09.25"
    )
    assert rows["mgo_4217"].material_id is None
    for row in rows.values():
        assert (row.state, row.formula, row.job, row.flow, row.nsites) == (
            "successful",
            "MgO",
            "static",
            "static",
            2,
        )
        assert row.energy_hartree == pytest.approx(recorded["energy_ha"], abs=1e-8)
        assert row.energy_hartree == pytest.approx(-2.7544859113743e02, abs=1e-8)
        assert row.energy_ev == pytest.approx(recorded["energy_ha"] * HARTREE_TO_EV, abs=1e-6)
        assert row.energy_per_atom_ev == pytest.approx(row.energy_ev / 2, abs=1e-9)
        assert row.bandgap_ev == pytest.approx(recorded["gap"], abs=1e-6)
        assert row.e_above_lowest_ev_per_atom == pytest.approx(0.0, abs=1e-12)


def test_csv_and_json_exports(batch_db: Path, tmp_path: Path, recorded: dict[str, float]) -> None:
    rows = batch_rows(CrystalMathJobStore(batch_db), BATCH)
    with write_csv(rows, tmp_path / "batch.csv").open() as handle:
        from_csv = {line["label"]: line for line in csv.DictReader(handle)}
    from_json = {
        item["label"]: item
        for item in json.loads(write_json(rows, tmp_path / "b.json").read_text())
    }

    assert from_csv["mp-1265"]["material_id"] == from_json["mp-1265"]["material_id"] == "mp-1265"
    assert (
        from_json["mgo_4217"]["material_id"] is None and from_csv["mgo_4217"]["material_id"] == ""
    )
    for label in ("mp-1265", "mgo_4217"):
        assert float(from_csv[label]["energy_hartree"]) == pytest.approx(
            recorded["energy_ha"], abs=1e-8
        )
        assert from_json[label]["energy_hartree"] == pytest.approx(recorded["energy_ha"], abs=1e-8)
        assert float(from_csv[label]["bandgap_ev"]) == from_json[label]["bandgap_ev"]
        assert from_csv[label]["state"] == from_json[label]["state"] == "successful"
        assert (
            float(from_csv[label]["energy_per_atom_ev"]) == from_json[label]["energy_per_atom_ev"]
        )


def test_plot_is_a_real_png(batch_db: Path, tmp_path: Path) -> None:
    path = plot_batch(batch_rows(CrystalMathJobStore(batch_db), BATCH), tmp_path / "batch.png")

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000
    pixels = imread(path)
    assert pixels.shape[0] > 400 and pixels.shape[1] > 1000
    assert pixels[..., :3].std() > 0.1


def test_cli_summary(batch_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRYSTAL_TUI_DB", str(batch_db))
    files = {
        "--csv": tmp_path / "s.csv",
        "--json": tmp_path / "s.json",
        "--plot": tmp_path / "s.png",
    }
    args = [item for flag, path in files.items() for item in (flag, str(path))]

    result = runner.invoke(app, ["ht", "summary", "--batch", BATCH, *args])
    missing = runner.invoke(app, ["ht", "summary", "--batch", "no-such-batch"])

    assert result.exit_code == 0, result.output
    assert (
        "mp-1265" in result.output
        and "mgo_4217" in result.output
        and "-275.44859114" in result.output
    )
    assert all(path.stat().st_size > 0 for path in files.values())
    assert len(json.loads(files["--json"].read_text())) == 2
    assert (
        missing.exit_code == 2
        and "error: no high-throughput jobs in batch 'no-such-batch'" in missing.output
    )
