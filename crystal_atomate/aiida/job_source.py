"""The job browser on an AiiDA profile (``crystal-atomate tui --backend aiida``).

The CRYSTAL calculations of the profile, read through
:class:`~crystal_atomate.aiida.ui_database.AiidaDatabase` (the UI's data layer on AiiDA), answering
the browser's :class:`~crystal_atomate.tui.sources.JobSource` questions. It lives with the AiiDA
code, not in :mod:`crystal_atomate.tui`: the browser knows no backend (the layers keep ``tui`` and
``aiida`` apart), and the command line picks this one only for ``--backend aiida``.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from operator import attrgetter

from aiida import orm
from aiida.manage import get_manager

from crystal_atomate.aiida.errors import ensure_loaded, load_profile_or_fail
from crystal_atomate.aiida.query import CRYSTAL_PROCESS_TYPES
from crystal_atomate.aiida.ui_database import AiidaDatabase, Job
from crystal_atomate.stores.ui_queries import SORT_COLUMNS, JobDetail, JobRow

__all__ = ["AiidaJobs"]

#: The sort keys of the browser -> the field of the UI's ``Job`` they sort by.
_SORT_FIELDS = {
    "id": "id",
    "name": "name",
    "status": "status",
    "energy": "final_energy",
    "workflow": "workflow_id",
    "created": "created_at",
}


class AiidaJobs:
    """The CRYSTAL calculations of an AiiDA profile, as a job source for the browser.

    Parameters
    ----------
    profile
        The profile to load; None keeps the loaded one (or loads AiiDA's default).

    Raises
    ------
    ProfileNotFound
        No such profile (or no default).
    StorageUnavailable
        The profile's storage cannot be opened.
    """

    def __init__(self, profile: str | None = None) -> None:
        if profile is None:
            ensure_loaded()
        else:
            load_profile_or_fail(profile)
        self.label = f"AiiDA profile {get_manager().get_profile().name}"
        self.database = AiidaDatabase()

    def change_token(self) -> Hashable:
        """Return the count of CRYSTAL calculations, the newest id and the latest change.

        One aggregate query; a state change, or the UI's extras, moves ``mtime``.
        """
        query = orm.QueryBuilder().append(
            orm.CalcJobNode,
            filters={"process_type": {"in": list(CRYSTAL_PROCESS_TYPES)}},
            project=[
                {"uuid": {"func": "count"}},
                {"id": {"func": "max"}},
                {"mtime": {"func": "max"}},
            ],
        )
        return tuple(query.first() or ())

    def list_jobs(
        self,
        *,
        statuses: Sequence[str] = (),
        name: str | None = None,
        sort: str = "created",
        descending: bool = True,
        limit: int | None = None,
    ) -> list[JobRow]:
        """Return the calculations as job rows.

        Newest first (the default) pages in the query; another order sorts every matching job
        first, as the SQLite source does (jobs without a value last).

        Raises
        ------
        ValueError
            ``sort`` is not one of the browser's sort keys.
        """
        if sort not in SORT_COLUMNS:
            raise ValueError(f"sort must be one of {sorted(SORT_COLUMNS)}, got {sort!r}")
        if sort == "created" and descending:
            return [_row(job) for job in self.database.find_jobs(statuses, name, limit)]
        jobs = _sorted(self.database.find_jobs(statuses, name), _SORT_FIELDS[sort], descending)
        return [_row(job) for job in jobs[:limit]]

    def job_detail(self, job_id: int) -> JobDetail | None:
        """Return the calculation, its deck and ``output_parameters`` (no jobflow documents)."""
        job = self.database.get_job(job_id)
        if job is None:
            return None
        result = self.database.get_job_result(job_id)
        key_results = (result.key_results if result else None) or {}
        return JobDetail(
            row=_row(job),
            work_dir=job.work_dir,
            input_file=job.input_file,
            started_at=job.started_at,
            completed_at=job.completed_at,
            key_results=key_results | (job.key_results or {}),
            convergence_status=result.convergence_status if result else None,
            scf_cycles=result.scf_cycles if result else None,
            wall_time_seconds=result.wall_time_seconds if result else None,
        )

    def close(self) -> None:
        """Nothing to release: AiiDA keeps the profile's storage for the process."""


def _row(job: Job) -> JobRow:
    return JobRow(
        id=job.id,
        name=job.name,
        status=job.status,
        final_energy=job.final_energy,
        workflow_id=job.workflow_id,
        created_at=job.created_at,
        job_uuid=job.workflow_id,
    )


def _sorted(jobs: list[Job], field: str, descending: bool) -> list[Job]:
    """Jobs by ``field`` then id, in the given direction, those without a value last."""
    present = [job for job in jobs if getattr(job, field) is not None]
    absent = [job for job in jobs if getattr(job, field) is None]
    return sorted(present, key=attrgetter(field, "id"), reverse=descending) + sorted(
        absent, key=attrgetter("id"), reverse=descending
    )
