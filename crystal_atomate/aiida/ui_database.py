"""The CrystalMath UI's data layer on AiiDA: the job methods of its ``Database``, backed by QueryBuilder.

:class:`AiidaDatabase` answers ``get_all_jobs``, ``get_job``, ``get_jobs_by_status``,
``get_job_statuses_batch``, ``job_exists_batch``, ``get_job_result`` and ``create_job`` with the
UI's own records (:class:`Job`, :class:`JobResult`: the fields and types of the UI's dataclasses),
so the UI could swap it in for its SQLite ``Database``. A job is a CRYSTAL CalcJob (its id is the
node's pk): the ones run through AiiDA, the ones imported from the UI, and drafts made by
``create_job`` (a node without process state holding the deck, PENDING) that :meth:`submit_job`
runs as a real CalcJob. Listing is projections only (no node loads).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import run_get_node, submit

from crystal_atomate.aiida.calculations import INPUT_FILE, CrystalCalculation
from crystal_atomate.aiida.errors import AiidaUserError
from crystal_atomate.aiida.query import CRYSTAL_PROCESS_TYPES, check_status, tui_status
from crystal_atomate.run import JOB_NAME_ENV

__all__ = ["AiidaDatabase", "Job", "JobResult", "NotADraft"]

_DRAFT_EXTRA = "ui_draft"
_PROJECTION = [
    "id", "label", "ctime", "mtime", "attributes.process_state", "attributes.exit_status",
    "attributes.scheduler_state", "extras.jobflow_directory", "extras.jobflow_uuid", "extras.tui_job",
    f"extras.{_DRAFT_EXTRA}",
]


@dataclass
class Job:
    """A job as the UI's ``Database`` returns it (same fields, same order)."""

    id: int | None
    name: str
    work_dir: str
    status: str
    workflow_id: str | None = None
    created_at: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    pid: int | None = None
    input_file: str | None = None
    final_energy: float | None = None
    key_results: dict[str, Any] | None = None
    cluster_id: int | None = None
    runner_type: str = "local"
    parallelism_config: dict[str, Any] | None = None
    queue_time: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    dft_code: str = "crystal"


@dataclass
class JobResult:
    """A job's detailed results as the UI's ``Database`` returns them."""

    id: int | None
    job_id: int
    key_results: dict[str, Any] | None = None
    convergence_status: str | None = None
    scf_cycles: int | None = None
    cpu_time_seconds: float | None = None
    wall_time_seconds: float | None = None
    created_at: str | None = None


class NotADraft(AiidaUserError):
    """Only a job made by ``create_job`` and not yet submitted can be submitted."""


class AiidaDatabase:
    """The UI's job interface on the loaded AiiDA profile (see the module docstring)."""

    def get_all_jobs(self) -> list[Job]:
        """Every CRYSTAL job, newest first."""
        return self._jobs()

    def get_job(self, job_id: int) -> Job | None:
        """The job with this id (node pk), or None."""
        found = self._jobs({"id": job_id})
        return found[0] if found else None

    def get_jobs_by_status(self, status: str) -> list[Job]:
        """Jobs with this UI status, newest first."""
        wanted = check_status(status)
        return [job for job in self._jobs() if job.status == wanted]

    def get_job_statuses_batch(self, job_ids: list[int]) -> dict[int, str]:
        """Statuses of these jobs (ids that are not jobs are left out)."""
        return {job.id: job.status for job in self._jobs({"id": {"in": list(job_ids)}})} if job_ids else {}

    def job_exists_batch(self, job_ids: list[int]) -> dict[int, bool]:
        """Whether each id is a job."""
        present = set(self.get_job_statuses_batch(job_ids))
        return {job_id: job_id in present for job_id in job_ids}

    def get_job_result(self, job_id: int) -> JobResult | None:
        """The job's ``output_parameters`` as the UI's detailed result, or None before it has one."""
        query = orm.QueryBuilder().append(orm.CalcJobNode, filters={"id": job_id}, tag="calc")
        query.append(orm.Dict, with_incoming="calc", edge_filters={"label": "output_parameters"},
                     project=["attributes", "ctime"])
        found = query.first()
        if found is None:
            return None
        results, ctime = found
        return JobResult(
            id=job_id,
            job_id=job_id,
            key_results=results,
            convergence_status=results.get("state"),
            scf_cycles=results.get("scf_cycles"),
            wall_time_seconds=results.get("wall_time_seconds"),
            created_at=ctime.isoformat(),
        )

    def create_job(self, name: str, work_dir: str, input_content: str, **_: Any) -> int:
        """A PENDING job holding the deck (``input.d12``); returns its id. The UI's other
        arguments (cluster, runner, parallelism) are the computer's and code's business in AiiDA."""
        deck = orm.SinglefileData.from_string(input_content, filename="input.d12").store()
        node = orm.CalcJobNode(process_type=CRYSTAL_PROCESS_TYPES[0])
        node.label = name
        node.base.links.add_incoming(deck, LinkType.INPUT_CALC, "deck")
        node.base.extras.set_many({_DRAFT_EXTRA: True, "jobflow_directory": work_dir})
        return node.store().pk

    def submit_job(self, job_id: int, code: str = "crystal", wait: bool = False) -> int:
        """Run the draft ``job_id`` as a CrystalCalculation on its deck (to the end in this process
        when ``wait``, else through the daemon); the draft is closed and the CalcJob's id returned.

        Raises
        ------
        NotADraft
            ``job_id`` is not a job made by :meth:`create_job`, or was submitted already.
        """
        draft = orm.load_node(job_id)
        if not draft.base.extras.get(_DRAFT_EXTRA, False) or draft.is_sealed:
            raise NotADraft(f"job {job_id} is not a pending job made by create_job")
        folder = orm.FolderData()
        folder.base.repository.put_object_from_bytes(draft.inputs.deck.get_content(mode="rb"), INPUT_FILE)
        builder = CrystalCalculation.get_builder()
        builder.code = orm.load_code(code)
        builder.input_folder = folder
        builder.metadata.label = draft.label
        builder.metadata.options.environment_variables = {JOB_NAME_ENV: draft.label}
        node = run_get_node(builder)[1] if wait else submit(builder)
        node.base.extras.set("jobflow_directory", draft.base.extras.get("jobflow_directory"))
        draft.base.extras.set(_DRAFT_EXTRA, node.uuid)
        draft.set_process_state("killed")
        draft.seal()
        return node.pk

    def _jobs(self, filters: dict[str, Any] | None = None) -> list[Job]:
        """Jobs matching ``filters`` (on the node), newest first: one projection and one energy query."""
        query = orm.QueryBuilder().append(
            orm.CalcJobNode,
            filters={"process_type": {"in": list(CRYSTAL_PROCESS_TYPES)}, **(filters or {})},
            project=_PROJECTION,
        ).order_by({orm.CalcJobNode: {"ctime": "desc"}})
        rows = [row for row in query.iterall() if not isinstance(row[10], str)]
        energies = _energies([row[0] for row in rows])
        return [_job(row, energies.get(row[0])) for row in rows]


def _energies(pks: list[int]) -> dict[int, float | None]:
    if not pks:
        return {}
    return dict(
        orm.QueryBuilder()
        .append(orm.CalcJobNode, filters={"id": {"in": pks}}, project="id", tag="calc")
        .append(orm.Dict, with_incoming="calc", edge_filters={"label": "output_parameters"},
                project="attributes.energy_hartree")
        .all()
    )


def _job(row: list[Any], energy: float | None) -> Job:
    pk, label, ctime, mtime, state, exit_status, scheduler_state, directory, jobflow_uuid, imported, _ = row
    status = tui_status(state, exit_status, scheduler_state)
    imported = imported or {}
    work_dir = directory or imported.get("work_dir") or f"aiida://{pk}"
    finished = status in ("COMPLETED", "FAILED", "CANCELLED")
    return Job(
        id=pk,
        name=label or "",
        work_dir=work_dir,
        status=status,
        workflow_id=jobflow_uuid,
        created_at=ctime.isoformat(),
        completed_at=imported.get("completed_at") or (mtime.isoformat() if finished else None),
        final_energy=energy,
        runner_type="local",
    )
