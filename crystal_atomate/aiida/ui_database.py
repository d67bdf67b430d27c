"""The CrystalMath UI's data layer on AiiDA, backed by QueryBuilder.

These are the job and cluster methods of the UI's ``Database``.

:class:`AiidaDatabase` answers ``get_all_jobs``, ``get_job``, ``get_jobs_by_status``,
``get_job_statuses_batch``, ``job_exists_batch``, ``get_job_result``, ``create_job``,
``update_status``, ``update_results`` and the cluster methods with the UI's own records
(:class:`Job`, :class:`JobResult`, :class:`Cluster`: the fields and types of the UI's dataclasses),
so the UI could swap it in for its SQLite ``Database``. A job is a CRYSTAL CalcJob (its id is the
node's pk): the ones run through AiiDA, the ones imported from the UI, and drafts made by
``create_job`` (a node without process state holding the deck, PENDING) that :meth:`submit_job`
runs as a real CalcJob. A cluster is an AiiDA computer (its id is the computer's pk). Listing is
projections only (no node loads).

What the UI writes is stored where it cannot rewrite provenance:

- ``update_status`` moves only a job no AiiDA process owns (a draft, or a UI job imported while it
  ran): its scheduler state while active, then its process state and exit status when the UI says
  it finished, and the node is sealed, as the import does. A CalcJob that AiiDA runs has the
  engine's status; changing it through the UI is refused (:class:`StatusOwnedByAiida`).
- ``pid``, the start and end times the UI stamps, and ``update_results``' energy and key results
  go to the node's ``ui`` extra (extras are not provenance and stay writable on sealed nodes); a
  job's ``final_energy`` is the UI's value when it set one, else ``output_parameters``'
  ``energy_hartree``, which :meth:`get_job_result` always reports as the parser stored it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import run_get_node, submit

from crystal_atomate.aiida.calculations import INPUT_FILE, CrystalCalculation
from crystal_atomate.aiida.computers import cluster_from_ui, ensure_ssh_computer
from crystal_atomate.aiida.errors import AiidaUserError
from crystal_atomate.aiida.query import (
    CRYSTAL_PROCESS_TYPES,
    UI_ACTIVE_STATES,
    UI_FINISHED_STATES,
    calculation_energies,
    check_status,
    tui_status,
)
from crystal_atomate.errors import EXIT_USAGE
from crystal_atomate.run import JOB_NAME_ENV
from crystal_atomate.stores.ui_clusters import UICluster

__all__ = [
    "AiidaDatabase",
    "Cluster",
    "Job",
    "JobResult",
    "NotADraft",
    "NotAJob",
    "StatusOwnedByAiida",
]

_DRAFT_EXTRA = "ui_draft"
#: The extra holding what the UI wrote: pid, started_at, completed_at, final_energy, key_results.
_UI_EXTRA = "ui"
#: One cell per column a job needs: every projected cell costs aiida a conversion, so the extras
#: (directory, jobflow uuid, import record, draft mark, the UI's values) come as one dict.
_PROJECTION = [
    "id", "label", "ctime", "mtime", "attributes.process_state", "attributes.exit_status",
    "attributes.scheduler_state", "extras",
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


@dataclass
class Cluster:
    """A cluster as the UI's ``Database`` returns it (same fields, same order)."""

    id: int | None
    name: str
    type: str
    hostname: str
    port: int
    username: str
    connection_config: dict[str, Any]
    status: str
    cry23_root: str | None = None
    vasp_root: str | None = None
    setup_commands: list[str] | None = None
    created_at: str | None = None
    updated_at: str | None = None


class NotADraft(AiidaUserError):
    """Only a job made by ``create_job`` and not yet submitted can be submitted."""


class NotAJob(AiidaUserError, LookupError):
    """No CRYSTAL job has this id."""

    exit_code = EXIT_USAGE


class StatusOwnedByAiida(AiidaUserError):
    """The job is an AiiDA process: its status is the engine's, not the UI's to set."""

    exit_code = EXIT_USAGE


class AiidaDatabase:
    """The UI's job interface on the loaded AiiDA profile (see the module docstring)."""

    def get_all_jobs(self) -> list[Job]:
        """Every CRYSTAL job, newest first."""
        return self._jobs()

    def get_job(self, job_id: int) -> Job | None:
        """Return the job with this id (node pk), or None.

        Unlike the lists (projections only), it carries the deck as ``input_file``: the ``INPUT``
        AiiDA wrote, else the ``deck`` input.
        """
        found = self._jobs({"id": job_id})
        if not found:
            return None
        return dataclasses.replace(found[0], input_file=_deck(orm.load_node(job_id)))

    def get_jobs_by_status(self, status: str) -> list[Job]:
        """Jobs with this UI status, newest first."""
        return self.find_jobs([status])

    def find_jobs(
        self, statuses: Sequence[str] = (), name: str | None = None, limit: int | None = None
    ) -> list[Job]:
        """Find jobs with one of ``statuses`` (any if empty) named like ``name``, newest first.

        Without a status filter the limit goes into the SQL; with one, rows stream until enough
        match. Energies are fetched for the listed jobs only, so a page of 50 costs two queries
        whatever the size of the profile.
        """
        wanted = {check_status(status) for status in statuses}
        filters = {"label": {"ilike": f"%{name}%"}} if name else {}
        return self._jobs(filters, limit=limit, wanted=wanted)

    def get_job_statuses_batch(self, job_ids: list[int]) -> dict[int, str]:
        """Statuses of these jobs (ids that are not jobs are left out)."""
        return (
            {job.id: job.status for job in self._jobs({"id": {"in": list(job_ids)}})}
            if job_ids
            else {}
        )

    def job_exists_batch(self, job_ids: list[int]) -> dict[int, bool]:
        """Whether each id is a job."""
        present = set(self.get_job_statuses_batch(job_ids))
        return {job_id: job_id in present for job_id in job_ids}

    def get_job_result(self, job_id: int) -> JobResult | None:
        """Return the job's ``output_parameters`` as the UI's detailed result (None before then)."""
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
        """Create a PENDING job holding the deck (``input.d12``) and return its id.

        The UI's other arguments (cluster, runner, parallelism) are the computer's and code's
        business in AiiDA.
        """
        deck = orm.SinglefileData.from_string(input_content, filename="input.d12").store()
        node = orm.CalcJobNode(process_type=CRYSTAL_PROCESS_TYPES[0])
        node.label = name
        node.base.links.add_incoming(deck, LinkType.INPUT_CALC, "deck")
        node.base.extras.set_many({_DRAFT_EXTRA: True, "jobflow_directory": work_dir})
        return node.store().pk

    def submit_job(self, job_id: int, code: str = "crystal", wait: bool = False) -> int:
        """Run the draft ``job_id`` as a CrystalCalculation on its deck; return the CalcJob's id.

        It runs to the end in this process when ``wait``, else through the daemon; the draft is
        closed.

        Raises
        ------
        NotADraft
            ``job_id`` is not a job made by :meth:`create_job`, or was submitted already.
        """
        draft = orm.load_node(job_id)
        if not draft.base.extras.get(_DRAFT_EXTRA, False) or draft.is_sealed:
            raise NotADraft(f"job {job_id} is not a pending job made by create_job")
        folder = orm.FolderData()
        folder.base.repository.put_object_from_bytes(
            draft.inputs.deck.get_content(mode="rb"), INPUT_FILE
        )
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

    def update_status(self, job_id: int, status: str, pid: int | None = None) -> None:
        """Set the UI status of a job no AiiDA process owns.

        ``pid`` and the UI's start (RUNNING) or end (COMPLETED, FAILED, CANCELLED) time go into the
        job's ``ui`` extra.

        Raises
        ------
        NotAJob
            No CRYSTAL job has this id.
        StatusOwnedByAiida
            The job is a process AiiDA runs (or ran), and ``status`` is not the one it has.
        """
        status = check_status(status)
        node = self._node(job_id)
        now = datetime.now(UTC).isoformat()
        stamp = {"completed_at": now} if status in UI_FINISHED_STATES else {}
        if status == "RUNNING":
            stamp = {"started_at": now}
        if node.process_state is not None or node.is_sealed:
            current = tui_status(node.process_state and node.process_state.value, node.exit_status,
                                 node.base.attributes.get("scheduler_state", None))
            if current != status:
                raise StatusOwnedByAiida(
                    f"job {job_id} is an AiiDA process ({current}); its status is AiiDA's to set, "
                    f"not {status}"
                )
            _set_ui(node, pid=pid)
            return
        _set_ui(node, pid=pid, **stamp)
        if status in UI_ACTIVE_STATES:
            node.base.attributes.set("scheduler_state", UI_ACTIVE_STATES[status])
            return
        state, exit_status = UI_FINISHED_STATES[status]
        node.base.attributes.set("scheduler_state", "done")
        node.set_process_state(state)
        if exit_status is not None:
            node.set_exit_status(exit_status)
        node.seal()

    def update_results(
        self,
        job_id: int,
        final_energy: float | None = None,
        key_results: dict[str, Any] | None = None,
    ) -> None:
        """Record the UI's energy and key results in the job's ``ui`` extra.

        As the UI does, both are replaced; the node's ``output_parameters`` stay as the parser
        stored them.

        Raises
        ------
        NotAJob
            No CRYSTAL job has this id.
        """
        _set_ui(self._node(job_id), final_energy=final_energy, key_results=key_results or None)

    def create_cluster(
        self,
        name: str,
        type: str,  # noqa: A002 - the UI's argument name
        hostname: str,
        username: str,
        port: int = 22,
        connection_config: dict[str, Any] | None = None,
        cry23_root: str | None = None,
        vasp_root: str | None = None,
        setup_commands: list[str] | None = None,
    ) -> int:
        """Create (or check) the computer for this UI cluster and return its id.

        :func:`~crystal_atomate.aiida.computers.cluster_from_ui` makes it: SLURM for ``slurm``,
        direct for ``ssh``.

        ``cry23_root`` and ``vasp_root`` are the codes' business in AiiDA (``aiida computer add``
        makes the CRYSTAL codes); they are not kept on the computer.

        Raises
        ------
        ComputerMismatch
            A computer with this name exists for another host, scheduler or transport.
        """
        del vasp_root
        config = connection_config or {}
        cluster = UICluster(
            name=name, kind=type, hostname=hostname, port=port, username=username,
            key_file=config.get("key_file"), slurm=config.get("slurm") or {}, cry23_root=cry23_root,
            setup_commands=tuple(setup_commands or ()),
        )
        return ensure_ssh_computer(cluster_from_ui(cluster)).pk

    def get_cluster(self, cluster_id: int) -> Cluster | None:
        """Return the computer with this id as a UI cluster, or None."""
        found = orm.QueryBuilder().append(orm.Computer, filters={"id": cluster_id}).first(flat=True)
        return _cluster(found) if found is not None else None

    def get_cluster_by_name(self, name: str) -> Cluster | None:
        """Return the computer with this label as a UI cluster, or None."""
        found = orm.QueryBuilder().append(orm.Computer, filters={"label": name}).first(flat=True)
        return _cluster(found) if found is not None else None

    def get_all_clusters(self) -> list[Cluster]:
        """Every computer as a UI cluster, ordered by name as the UI lists them."""
        query = orm.QueryBuilder().append(orm.Computer).order_by({orm.Computer: {"label": "asc"}})
        return [_cluster(computer) for computer in query.all(flat=True)]

    def _node(self, job_id: int) -> orm.CalcJobNode:
        """Load the job's node.

        Raises
        ------
        NotAJob
            No CRYSTAL CalcJob has this id.
        """
        query = orm.QueryBuilder().append(
            orm.CalcJobNode,
            filters={"id": job_id, "process_type": {"in": list(CRYSTAL_PROCESS_TYPES)}},
        )
        node = query.first(flat=True)
        if node is None:
            raise NotAJob(f"no CRYSTAL job has id {job_id}")
        return node

    def _jobs(
        self,
        filters: dict[str, Any] | None = None,
        limit: int | None = None,
        wanted: set[str] | None = None,
    ) -> list[Job]:
        """List jobs matching ``filters`` with a status in ``wanted`` (any if empty), newest first.

        At most ``limit``: one projection, streamed, then one energy query for the listed jobs.
        """
        if limit is not None and limit <= 0:
            return []
        query = orm.QueryBuilder().append(
            orm.CalcJobNode,
            filters={"process_type": {"in": list(CRYSTAL_PROCESS_TYPES)}, **(filters or {})},
            project=_PROJECTION,
        ).order_by({orm.CalcJobNode: [{"ctime": "desc"}, {"id": "desc"}]})
        if not wanted and limit is not None:
            query.limit(limit)
        listed: list[tuple[str, list[Any]]] = []
        for row in query.iterall():
            status = tui_status(row[4], row[5], row[6])
            if isinstance(row[7].get(_DRAFT_EXTRA), str) or (wanted and status not in wanted):
                continue
            listed.append((status, row))
            if limit is not None and len(listed) >= limit:
                break
        energies = calculation_energies([row[0] for _, row in listed])
        return [_job(row, status, energies.get(row[0])) for status, row in listed]


def _deck(node: orm.CalcJobNode) -> str | None:
    """Return the deck the job ran or will run.

    That is the ``INPUT`` AiiDA wrote (kept in the node's repository), the one of its
    ``input_folder`` (copied as it is, so not kept twice), or its ``deck`` input.
    """
    repositories = [node.base.repository]
    if "input_folder" in node.inputs:
        repositories.append(node.inputs.input_folder.base.repository)
    for repository in repositories:
        if INPUT_FILE in repository.list_object_names():
            return repository.get_object_content(INPUT_FILE)
    return node.inputs.deck.get_content() if "deck" in node.inputs else None


def _set_ui(node: orm.CalcJobNode, **values: Any) -> None:
    """Merge ``values`` into the node's ``ui`` extra."""
    node.base.extras.set(_UI_EXTRA, node.base.extras.get(_UI_EXTRA, {}) | values)


def _cluster(computer: orm.Computer) -> Cluster:
    """Describe a computer as the UI's cluster.

    ``slurm`` under SLURM, else ``ssh``; the login from the current user's configuration; its
    prepend text as the setup commands.
    """
    config = computer.get_configuration() if computer.is_configured else {}
    key_file = config.get("key_filename") or None
    prepend = computer.get_prepend_text()
    return Cluster(
        id=computer.pk,
        name=computer.label,
        type="slurm" if computer.scheduler_type == "core.slurm" else "ssh",
        hostname=computer.hostname,
        port=int(config.get("port", 22)),
        username=config.get("username") or "",
        connection_config={"key_file": key_file} if key_file else {},
        status="active" if computer.is_configured else "inactive",
        setup_commands=prepend.splitlines() if prepend else [],
    )


def _job(row: list[Any], status: str, energy: float | None) -> Job:
    pk, label, ctime, mtime, _, _, _, extras = row
    imported = extras.get("tui_job") or {}
    ui = extras.get(_UI_EXTRA) or {}
    work_dir = extras.get("jobflow_directory") or imported.get("work_dir") or f"aiida://{pk}"
    completed = ui.get("completed_at") or imported.get("completed_at")
    return Job(
        id=pk,
        name=label or "",
        work_dir=work_dir,
        status=status,
        workflow_id=extras.get("jobflow_uuid"),
        created_at=ctime.isoformat(),
        started_at=ui.get("started_at"),
        completed_at=completed or (mtime.isoformat() if status in UI_FINISHED_STATES else None),
        pid=ui.get("pid"),
        final_energy=ui["final_energy"] if ui.get("final_energy") is not None else energy,
        key_results=ui.get("key_results"),
        runner_type="local",
    )
