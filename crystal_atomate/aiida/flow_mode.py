"""Flow mode: a whole jobflow Flow run by the AiiDA daemon as one work chain.

:class:`JobflowWorkChain` is a jobflow manager written as an AiiDA work chain. It walks the flow's
graph as ``run_locally`` does (references resolved from the JobStore, ``Response`` replace, detour,
addition, ``stop_children`` and ``stop_jobflow``, children of a failed job not run), and every
finished job's output goes to the JobStore, so the task documents are the ones every other engine
writes. What differs is how a CRYSTAL step runs: the flow's Makers use the ``aiida`` executor, and a
job reaching its CRYSTAL step raises :class:`~crystal_atomate.aiida.executor.CalcJobPending`; the
work chain submits that CalcJob (a child in the provenance graph, as in ``verdi process show``) and
returns to the daemon, and when the CalcJob has finished it runs the job again, which now takes the
finished CalcJob's files and parses them. A job therefore runs twice, its input writing must be
deterministic (it is, for our Makers), and nothing blocks a daemon worker while CRYSTAL runs.

Jobs that are ready together start together; the work chain then waits for all the CalcJobs it
started in that step before it looks again, so independent branches advance in waves.

The state (jobs to run, their parents, the CalcJobs each has run, the outcomes) is plain data in the
work chain's context, checkpointed by AiiDA at every step: a daemon restart resumes the flow.
"""

from __future__ import annotations

import json
import re
import traceback
from collections.abc import Callable
from contextlib import chdir
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiida import orm
from aiida.engine import ToContext, WorkChain, run_get_node, submit, while_
from jobflow import CURRENT_JOB, Flow, Job, JobStore, Response
from jobflow.core.flow import get_flow
from jobflow.core.reference import OnMissing
from monty.json import MontyDecoder, MontyEncoder

from crystal_atomate.aiida.errors import ensure_loaded, resolve_code
from crystal_atomate.aiida.executor import CalcJobPending, finished_calcjobs, use_aiida_executor

__all__ = ["FlowPlan", "JobflowWorkChain", "flow_builder", "run_flow", "step_label", "submit_flow"]

COMPLETED, FAILED, STOPPED = "COMPLETED", "FAILED", "STOPPED"
#: The CalcJob outputs a work chain returns for each completed step.
RETURNED_OUTPUTS = ("output_parameters", "output_structure")


def _encode(obj: Any) -> str:
    return json.dumps(obj, cls=MontyEncoder)


def _decode(text: str) -> Any:
    return json.loads(text, cls=MontyDecoder)


@dataclass
class FlowPlan:
    """jobflow's flow semantics on plain, checkpointable data (the work chain's ``ctx.plan``).

    ``state["jobs"]`` are the jobs still to finish, in the order jobflow's ``iterflow`` gives, each
    ``{"key", "uuid", "index", "name", "job" (JSON), "parents", "calcs", "waiting", "on_missing"}``;
    ``state["outcomes"]`` maps a settled uuid to COMPLETED, FAILED or STOPPED; ``state["done"]``
    records every finished job for the work chain's ``jobs`` output.
    """

    state: dict[str, Any]

    @classmethod
    def start(cls, flow: Flow) -> FlowPlan:
        """Plan ``flow`` from the start: every job queued, none settled."""
        plan = cls(
            {"jobs": [], "outcomes": {}, "stops_children": [], "done": {}, "stop_all": False}
        )
        plan.add(flow)
        return plan

    @property
    def jobs(self) -> list[dict[str, Any]]:
        """Return the queued jobs (JSON-able entries, in the order they were added)."""
        return self.state["jobs"]

    def add(self, flow: Flow) -> list[str]:
        """Queue the jobs of ``flow`` (a response's replace/detour/addition too); their uuids."""
        added = []
        for job, parents in flow.iterflow():
            self.jobs.append(
                {
                    "key": f"{job.uuid}_{job.index}",
                    "uuid": job.uuid,
                    "index": job.index,
                    "name": job.name,
                    "job": _encode(job),
                    "parents": list(parents),
                    "calcs": [],
                    "waiting": False,
                    "on_missing": OnMissing(job.config.on_missing_references).value,
                }
            )
            added.append(job.uuid)
        return added

    def waiting(self) -> list[dict[str, Any]]:
        """Jobs whose CalcJob the work chain has been waiting for (finished when a step starts)."""
        return [entry for entry in self.jobs if entry["waiting"]]

    def next_ready(self) -> dict[str, Any] | None:
        """Return the first job whose parents have all settled; None when no job is ready.

        The jobs that can no longer run (a parent stopped its children, or failed) are settled
        first.
        """
        while True:
            open_uuids = {entry["uuid"] for entry in self.jobs}
            for entry in self.jobs:
                if entry["waiting"]:
                    continue
                verdict = self._verdict(entry, open_uuids)
                if verdict == "ready":
                    return entry
                if verdict in (STOPPED, FAILED):
                    self.finish(
                        entry,
                        verdict,
                        "parent " + ("stopped its children" if verdict == STOPPED else "failed"),
                    )
                    break
            else:
                return None

    def _verdict(self, entry: dict[str, Any], open_uuids: set[str]) -> str:
        """``ready``, ``wait`` (a parent's uuid still has jobs to run), or why it will never run."""
        if self.state["stop_all"]:
            return STOPPED
        if any(parent in open_uuids for parent in entry["parents"]):
            return "wait"
        outcomes = [self.state["outcomes"].get(parent) for parent in entry["parents"]]
        if STOPPED in outcomes or set(entry["parents"]) & set(self.state["stops_children"]):
            return STOPPED
        if FAILED in outcomes and entry["on_missing"] == OnMissing.ERROR.value:
            return FAILED
        return "ready"

    def respond(self, entry: dict[str, Any], response: Response) -> None:
        """Apply a finished job's response as ``run_locally`` does.

        Replacements, detours (which the job's children then wait for too) and additions join the
        plan; stops take effect.
        """
        self.finish(entry, COMPLETED)
        if response.stop_children:
            self.state["stops_children"].append(entry["uuid"])
        if response.stop_jobflow:
            self.state["stop_all"] = True
            return
        if response.replace is not None:
            self.add(response.replace)
        if response.detour is not None:
            detours = self.add(response.detour)
            for other in self.jobs:
                if entry["uuid"] in other["parents"]:
                    other["parents"].extend(detours)
        if response.addition is not None:
            self.add(response.addition)

    def finish(self, entry: dict[str, Any], outcome: str, message: str = "") -> None:
        """Take ``entry`` off the plan; its uuid's outcome is the latest index's."""
        self.jobs.remove(entry)
        self.state["outcomes"][entry["uuid"]] = outcome
        self.state["done"][entry["key"]] = {
            "name": entry["name"],
            "uuid": entry["uuid"],
            "index": entry["index"],
            "state": outcome,
            "calcjobs": entry["calcs"],
            "message": message,
        }

    def failed_names(self) -> list[str]:
        """Return the names of the jobs that failed themselves (not because a parent failed)."""
        return sorted(
            {
                done["name"]
                for done in self.state["done"].values()
                if done["state"] == FAILED and not done["message"]
            }
        )


class JobflowWorkChain(WorkChain):
    """Run a jobflow Flow of crystal_atomate jobs.

    CRYSTAL steps as CalcJobs it calls (see the module docstring). Inputs: the flow (JSON), the
    JobStore (its ``as_dict``) and the folder the job directories are made in, on the daemon's
    machine.
    """

    @classmethod
    def define(cls, spec: Any) -> None:
        """Define the inputs (flow, JobStore, root folder), the outline, outputs and exit codes."""
        super().define(spec)
        spec.input(
            "flow",
            valid_type=orm.SinglefileData,
            validator=_validate_flow,
            help="The flow, as JSON.",
        )
        spec.input(
            "store",
            valid_type=orm.Dict,
            validator=_validate_store,
            help="The JobStore's as_dict().",
        )
        spec.input("root_dir", valid_type=orm.Str, help="Where the job directories are made.")
        spec.outline(cls.setup, while_(cls.has_jobs)(cls.advance), cls.results)
        spec.output(
            "jobs", valid_type=orm.Dict, help="Every job run: name, uuid, index, state, CalcJobs."
        )
        spec.output_namespace(
            "steps",
            dynamic=True,
            valid_type=orm.Data,
            help="Each completed CRYSTAL step's last CalcJob outputs (output_parameters, "
            "output_structure), under the job's name, index and uuid prefix.",
        )
        spec.exit_code(401, "ERROR_JOBS_FAILED", message="jobs failed: {names}")
        spec.exit_code(402, "ERROR_FLOW_STALLED", message="jobs could not start: {names}")

    def setup(self) -> None:
        """Plan the ``flow`` input; the plan lives in the context, so it is checkpointed."""
        self.ctx.plan = FlowPlan.start(_flow(self.inputs.flow)).state

    def has_jobs(self) -> bool:
        """Tell the outline whether any job is still queued."""
        return bool(self.ctx.plan["jobs"])

    def advance(self) -> Any:
        """Finish the jobs whose CalcJobs are done, then start every job that is ready.

        Wait for the CalcJobs started.
        """
        plan = FlowPlan(self.ctx.plan)
        store = _store(self.inputs.store)
        store.connect()
        started: dict[str, orm.ProcessNode] = {}
        try:
            for entry in plan.waiting():
                self._run_job(plan, entry, store, started)
            while (entry := plan.next_ready()) is not None:
                self._run_job(plan, entry, store, started)
        finally:
            store.close()
        self.ctx.plan = plan.state
        if plan.jobs and not started:
            names = ", ".join(sorted({entry["name"] for entry in plan.jobs}))
            return self.exit_codes.ERROR_FLOW_STALLED.format(names=names)
        return ToContext(**{f"calcjob_{node.pk}": node for node in started.values()})

    def _run_job(
        self,
        plan: FlowPlan,
        entry: dict[str, Any],
        store: JobStore,
        started: dict[str, orm.ProcessNode],
    ) -> None:
        """Run one job in its directory: it finishes, fails, or asks for a CalcJob (submitted)."""
        job: Job = _decode(entry["job"])
        workdir = Path(self.inputs.root_dir.value) / f"job_{entry['key']}"
        workdir.mkdir(parents=True, exist_ok=True)
        entry["waiting"] = False
        try:
            with chdir(workdir), finished_calcjobs(entry["calcs"]):
                response = job.run(store=store, job_dir=workdir)
        except CalcJobPending as pending:
            node = self.submit(pending.builder)
            entry["calcs"].append(node.uuid)
            entry["waiting"] = True
            started[entry["key"]] = node
            self.report(
                f"{job.name} ({entry['key']}): CRYSTAL step as {node.process_label}<{node.pk}>"
            )
            return
        except Exception:  # noqa: BLE001 - as run_locally: the job failed, its children don't run
            self.report(f"{job.name} ({entry['key']}) failed:\n{traceback.format_exc()}")
            plan.finish(entry, FAILED)
            return
        finally:
            CURRENT_JOB.reset()
        self._return_step(entry)
        plan.respond(entry, response)

    def _return_step(self, entry: dict[str, Any]) -> None:
        """Return the job's last CalcJob outputs, so the flow's results hang off the work chain."""
        if not entry["calcs"]:
            return
        calcjob = orm.load_node(entry["calcs"][-1])
        label = step_label(entry["name"], entry["index"], entry["uuid"])
        for name in RETURNED_OUTPUTS:
            if name in calcjob.outputs:
                self.out(f"steps.{label}.{name}", calcjob.outputs[name])

    def results(self) -> Any:
        """Output every job's outcome; exit with ``ERROR_JOBS_FAILED`` naming the failed jobs."""
        plan = FlowPlan(self.ctx.plan)
        self.out("jobs", orm.Dict(plan.state["done"]).store())
        failed = plan.failed_names()
        if failed:
            return self.exit_codes.ERROR_JOBS_FAILED.format(names=", ".join(failed))
        return None


def step_label(name: str, index: int, uuid: str) -> str:
    """Return a link label for a job.

    Its name as an identifier, its index and the start of its uuid.
    """
    slug = re.sub(r"\W+", "_", name).strip("_").lower() or "job"
    return f"{slug}_{index}_{uuid.split('-')[0]}"


def _flow(value: orm.SinglefileData) -> Flow:
    flow = _decode(value.get_content())
    if not isinstance(flow, Flow | Job):
        raise TypeError(f"got {type(flow).__name__}")
    return get_flow(flow)


def _store(value: orm.Dict) -> JobStore:
    store = MontyDecoder().process_decoded(value.get_dict())
    if not isinstance(store, JobStore):
        raise TypeError(f"{type(store).__name__} is not a jobflow JobStore")
    return store


def _validator(read: Callable[[Any], Any], what: str) -> Callable[[Any, Any], str | None]:
    """Return a port validator.

    None when ``read`` takes the value, else why not, naming the input.
    """

    def validate(value: Any, _: Any) -> str | None:
        try:
            read(value)
        except Exception as error:  # noqa: BLE001 - any failure means the same: not what it must be
            return f"the {what}: {error}"
        return None

    return validate


_validate_flow = _validator(_flow, "flow input is not a jobflow Flow or Job in JSON")
_validate_store = _validator(_store, "store input is not a JobStore's as_dict()")


def flow_builder(
    flow: Flow | Job | list[Job],
    store: JobStore | None = None,
    root_dir: str | Path | None = None,
    code: str | None = None,
    profile: str | None = None,
    **options: Any,
) -> Any:
    """Return the work chain's inputs for ``flow``.

    Every CRYSTAL and properties step switched to the ``aiida`` executor (``code`` and ``options``
    as :func:`use_aiida_executor` takes them), the store (default: ``CrystalMathJobStore`` on the
    settings' database) and the job folder (default: ``./aiida_flows``). ``profile`` is loaded if no
    profile is (AiiDA's default when None); the code is checked here, so an unknown or ambiguous
    label fails before anything is submitted.
    """
    from crystal_atomate.stores.jobstore import CrystalMathJobStore

    ensure_loaded(profile)
    if code is not None:
        code = resolve_code(code).full_label
    flow = use_aiida_executor(get_flow(flow), code=code, profile=profile, **options)
    store = store if store is not None else CrystalMathJobStore()
    root = Path(root_dir if root_dir is not None else "aiida_flows").expanduser().absolute()
    builder = JobflowWorkChain.get_builder()
    builder.flow = orm.SinglefileData.from_string(_encode(flow), filename="flow.json")
    builder.store = orm.Dict(json.loads(_encode(store.as_dict())))
    builder.root_dir = orm.Str(str(root))
    builder.metadata.label = flow.name
    return builder


def submit_flow(flow: Flow | Job | list[Job], **kwargs: Any) -> orm.WorkChainNode:
    """Submit ``flow`` to the daemon (non-blocking); ``kwargs`` as :func:`flow_builder`."""
    return submit(flow_builder(flow, **kwargs))


def run_flow(flow: Flow | Job | list[Job], **kwargs: Any) -> orm.WorkChainNode:
    """Run ``flow`` to the end in this process; ``kwargs`` as :func:`flow_builder`."""
    _, node = run_get_node(flow_builder(flow, **kwargs))
    return node
