"""A UI row waits for the blobs its job document names, whatever order the two stores are written.

A job store rebuilt from a jobflow-remote project file writes ``CrystalMathJobStore``'s two stores
separately, each write its own transaction. jobflow's ``JobStore.update`` splits a document and
its blobs into memory here, and each part is then stored alone, in the order a writer (or a kill)
leaves them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from jobflow import JobStore
from maggma.stores import MemoryStore

from crystal_atomate.io.outputs.properties import read_doss_dat
from crystal_atomate.stores import CrystalMathJobStore
from crystal_atomate.stores.tui_completion import blob_references
from crystal_atomate.stores.tui_schema import WAITS_TABLE

MGO = "mgo_scf_band_doss_b3lyp_crystal17"
SAVE = {"data": ["dos", "projected"]}


@pytest.fixture
def ui(tmp_path: Path) -> Iterator[CrystalMathJobStore]:
    store = CrystalMathJobStore(tmp_path / ".crystal_tui.db")
    store.connect()
    yield store
    store.close()


def _document(ref_dir: Path, index: int, state: str = "successful") -> dict:
    """A DOS job's document with two large objects (the total and the Mg-projected DOS)."""
    data = read_doss_dat(ref_dir / MGO / "DOSS.DAT")
    return {
        "uuid": "dos-job",
        "index": index,
        "name": "dos",
        "output": {
            "state": state,
            "output": {"energy_hartree": -2.7e2 - index},
            "dos": data.to_dos().as_dict(),
            "projected": data.to_projected_dos(0).as_dict(),
        },
        "metadata": {},
        "hosts": [],
    }


def _split(doc: dict) -> tuple[dict, list[dict]]:
    """Run jobflow's ``JobStore.update`` on ``doc`` into memory: the stored document, its blobs."""
    store = JobStore(MemoryStore(), additional_stores={"data": MemoryStore()})
    store.connect()
    store.update(doc, save=SAVE)
    (stored,) = store.docs_store.query()
    blobs = list(store.additional_stores["data"].query())
    return _without_id(stored), [_without_id(blob) for blob in blobs]


def _without_id(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k != "_id"}


def _document_first(ui: CrystalMathJobStore, doc: dict) -> list[dict]:
    """Store ``doc`` as jobflow's ``JobStore.update`` does, its blobs held back; return them."""
    stored, blobs = _split(doc)
    ui.docs_store.update(stored, key=["uuid", "index"])
    return blobs


def _row(ui: CrystalMathJobStore) -> tuple[str, float | None]:
    with closing(sqlite3.connect(ui.db_file)) as conn:
        found = conn.execute(
            "SELECT j.status, j.final_energy FROM jobs j JOIN jobflow_job_links l "
            "ON l.tui_job_id = j.id WHERE l.job_uuid = 'dos-job'"
        ).fetchone()
    return found or ("no row", None)


def _waits(ui: CrystalMathJobStore) -> int:
    with closing(sqlite3.connect(ui.db_file)) as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {WAITS_TABLE}").fetchone()[0]


def test_the_row_completes_with_the_last_blob(ui: CrystalMathJobStore, ref_dir: Path) -> None:
    ui.mark_job_state("dos-job", "QUEUED", name="dos")
    first, second = _document_first(ui, _document(ref_dir, 1))
    assert len(blob_references(ui.docs_store.query_one({"uuid": "dos-job"}))) == 2
    assert (_row(ui), _waits(ui)) == (("QUEUED", None), 2)
    with pytest.raises(KeyError):
        ui.get_output("dos-job", load=True)

    ui.additional_stores["data"].update(first)
    assert (_row(ui), _waits(ui)) == (("QUEUED", None), 1)
    ui.additional_stores["data"].update(second)
    assert (_row(ui), _waits(ui)) == (("COMPLETED", -271.0), 0)
    output = ui.get_output("dos-job", load=True)
    assert len(output["dos"]["energies"]) == len(output["projected"]["energies"]) == 302


def test_a_failed_job_waits_too(ui: CrystalMathJobStore, ref_dir: Path) -> None:
    blobs = _document_first(ui, _document(ref_dir, 1, state="failed"))
    assert _row(ui) == ("no row", None)
    ui.additional_stores["data"].update(blobs)
    assert _row(ui) == ("FAILED", -271.0)


def test_a_new_run_supersedes_what_an_older_one_waited_for(
    ui: CrystalMathJobStore, ref_dir: Path
) -> None:
    """Run 1 is left without its blobs, run 2 is stored whole: run 1's late blobs do not bring
    the row back to run 1."""
    late = _document_first(ui, _document(ref_dir, 1, state="failed"))
    ui.update(_document(ref_dir, 2), save=SAVE)
    assert (_row(ui), _waits(ui)) == (("COMPLETED", -272.0), 0)
    ui.additional_stores["data"].update(late)
    assert _row(ui) == ("COMPLETED", -272.0)


def test_blobs_stored_first_complete_the_row_with_the_document(
    ui: CrystalMathJobStore, ref_dir: Path
) -> None:
    """jobflow-remote's order: its runner copies the blobs, then the document."""
    doc, blobs = _split(_document(ref_dir, 1))
    for blob in blobs:
        ui.additional_stores["data"].update(blob)
    assert _row(ui) == ("no row", None)
    ui.docs_store.update(doc, key=["uuid", "index"])
    assert (_row(ui), _waits(ui)) == (("COMPLETED", -271.0), 0)


def test_one_transaction_leaves_nothing_waiting(ui: CrystalMathJobStore, ref_dir: Path) -> None:
    ui.update(_document(ref_dir, 1), save=SAVE)
    assert (_row(ui), _waits(ui)) == (("COMPLETED", -271.0), 0)
    assert ui.additional_stores["data"].count() == 2
