"""``CrystalMathJobStore``: jobflow's JobStore in the SQLite file the terminal UI shares.

``CrystalMathJobStore("path/.crystal_tui.db")`` is the whole setup: job documents go to a
:class:`SQLiteStore` (``docs_store``) that mirrors each of them into the UI's ``jobs`` table in
the same transaction, and large objects (band structures, DOS, trajectories) to a second
collection of the same file, the ``data`` additional store. Engines report states as jobs move
(:meth:`CrystalMathJobStore.mark_job_state`), and calculations the UI ran by itself can be turned
into job documents (:meth:`CrystalMathJobStore.import_tui_jobs`).
"""

from __future__ import annotations

import uuid as uuid_lib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jobflow import JobStore

from crystal_atomate.io.units import HARTREE_TO_EV
from crystal_atomate.stores.sqlite_store import SQLiteStore
from crystal_atomate.stores.tui_mirror import mark_job_state

__all__ = ["CrystalMathJobStore", "tui_job_uuid"]

_OUTPUT_GLOBS = ("{name}.out", "*.out", "OUTPUT", "*.log")


def _default_db_file() -> Path:
    from crystal_atomate.settings import CrystalAtomateSettings

    return CrystalAtomateSettings().DB_FILE


def _default_parser() -> Callable[[Path], Any]:
    """The CRYSTAL output parser, imported only when needed."""
    from crystal_atomate.io.outputs import parse_output

    return parse_output


def tui_job_uuid(work_dir: str) -> str:
    """A stable jobflow uuid for a job the UI ran, so importing twice finds the same document."""
    return str(uuid_lib.uuid5(uuid_lib.NAMESPACE_URL, f"crystal-tui:{work_dir}"))


def _find_output(work_dir: Path, name: str) -> Path | None:
    if not work_dir.is_dir():
        return None
    for pattern in _OUTPUT_GLOBS:
        try:
            hits = sorted(work_dir.glob(pattern.format(name=name)))
        except ValueError:  # a name that is not a valid glob pattern
            hits = []
        files = [h for h in hits if h.is_file()]
        if files:
            return files[0]
    return None


def _as_dict(parsed: Any) -> dict:
    if hasattr(parsed, "model_dump"):
        return parsed.model_dump(mode="json")
    return dict(parsed)


class CrystalMathJobStore(JobStore):
    """A JobStore whose documents and data blobs live in the UI's SQLite database.

    Args:
        db_file: the shared database; default ``CrystalAtomateSettings().DB_FILE`` (which honours
            ``CRYSTAL_TUI_DB``). Stored as an absolute path so a serialised store (FireWorks,
            jobflow-remote) opens the same file from any working directory.
        collection_name: collection of job documents.
        data_collection_name: collection of the ``data`` additional store.
        save, load: as for :class:`jobflow.JobStore`.
        timeout: seconds a writer waits for the database lock.
    """

    def __init__(
        self,
        db_file: str | Path | None = None,
        collection_name: str = "outputs",
        data_collection_name: str = "outputs_blobs",
        save: dict | None = None,
        load: bool | dict = False,
        timeout: float = 10.0,
    ) -> None:
        self.db_file = str(Path(db_file or _default_db_file()).expanduser().absolute())
        self.collection_name = collection_name
        self.data_collection_name = data_collection_name
        self.timeout = timeout
        docs = SQLiteStore(self.db_file, collection_name, key="uuid", tui_mirror=True, timeout=timeout)
        data = SQLiteStore(self.db_file, data_collection_name, key="blob_uuid", timeout=timeout)
        super().__init__(docs, additional_stores={"data": data}, save=save, load=load)

    def _ensure_connected(self) -> None:
        if self.docs_store._conn is None:
            self.connect()

    def mark_job_state(
        self,
        uuid: str,
        state: str,
        work_dir: str | None = None,
        name: str | None = None,
        workflow_id: str | None = None,
    ) -> int:
        """Record a job's state (PENDING, QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED) in the
        UI's ``jobs`` table, creating its row if needed; returns the UI job id."""
        self._ensure_connected()
        with self.docs_store._write() as conn:
            return mark_job_state(conn, uuid, state, work_dir, name, workflow_id)

    def tui_job_id(self, uuid: str) -> int | None:
        """The UI's job number for a jobflow job uuid, if mirrored."""
        self._ensure_connected()
        row = self.docs_store._connection().execute(
            "SELECT tui_job_id FROM jobflow_job_links WHERE job_uuid = ?", (uuid,)
        ).fetchone()
        return row[0] if row else None

    def import_tui_jobs(self, parse: Callable[[Path], Any] | None = None) -> list[str]:
        """Turn jobs the UI ran by itself into job documents; returns their uuids.

        Rows already linked to a jobflow document, and rows without an output file in their
        ``work_dir``, are skipped. ``parse`` reads a CRYSTAL output file into a pydantic model
        (default: ``crystal_atomate.io.outputs.parse_output``); the headline values land where our
        task documents keep them, the whole result under ``output.parsed``.
        """
        self._ensure_connected()
        parse = parse or _default_parser()
        rows = self.docs_store._connection().execute(
            "SELECT id, name, work_dir, status, input_file, final_energy, workflow_id, "
            "completed_at FROM jobs WHERE id NOT IN (SELECT tui_job_id FROM jobflow_job_links) "
            "AND status IN ('COMPLETED', 'FAILED') ORDER BY id"
        ).fetchall()
        imported = []
        for job_id, name, work_dir, status, deck, energy, workflow_id, completed in rows:
            output_file = _find_output(Path(work_dir), name)
            if output_file is None:
                continue
            doc = _imported_document(
                job_id, name, work_dir, status, deck, energy, workflow_id, completed,
                _as_dict(parse(output_file)),
            )
            self.update(doc)
            imported.append(doc["uuid"])
        return imported


def _imported_document(
    job_id: int, name: str, work_dir: str, status: str, deck: str | None,
    energy_ha: float | None, workflow_id: str | None, completed: str | None, parsed: dict,
) -> dict:
    """A job document with our task documents' field names (``output.output.energy_hartree`` ...),
    so imported runs answer the same queries; the parser's full result is kept under ``parsed``."""
    parsed_ha = parsed.get("energy_ha")
    energy_ha = parsed_ha if isinstance(parsed_ha, (int, float)) else energy_ha
    parsed_state = parsed.get("state")
    if parsed_state is None:
        state = "successful" if status == "COMPLETED" else "failed"
    else:
        state = "successful" if parsed_state == "converged" else "failed"
    output = {
        "state": state,
        "dir_name": work_dir,
        "task_label": name,
        "input": {"d12": deck},
        "errors": parsed.get("error_kinds", []),
        "output": {
            "energy_hartree": energy_ha,
            "energy": None if energy_ha is None else energy_ha * HARTREE_TO_EV,
            "bandgap": parsed.get("band_gap_ev"),
            "scf_cycles": parsed.get("scf_cycles"),
        },
        "parsed": parsed,
    }
    metadata: dict[str, Any] = {"tui_job_id": job_id, "imported_from": "crystal_tui"}
    if workflow_id:
        metadata["flow_uuid"] = workflow_id
    return {
        "uuid": tui_job_uuid(work_dir),
        "index": 1,
        "name": name,
        "output": output,
        "completed_at": completed,
        "metadata": metadata,
        "hosts": [],
    }

