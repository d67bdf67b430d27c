"""High-throughput CRYSTAL: one flow per structure, from a Materials Project query, ids or CIFs.

The builder is engine-side: Makers never know about engines. It makes one flow per structure with
the chosen flow name or Maker, tags every task document (``metadata``: the Materials Project
origin, ``tags``, ``batch_id`` and an ``ht`` block for bookkeeping), leaves out what the store
already holds, and hands the rest to an :class:`Engine`.

"Already done" means: the same structure (pymatgen's ``StructureMatcher``, without rescaling, so a
different lattice constant is a different calculation) computed with the same settings (a hash of
every job's Maker, labels and run options left out), whose flow outputs are stored and successful.
A batch of hundreds can therefore be resubmitted after a crash and only the missing ones run.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from jobflow import Flow, Job, JobStore, Maker, run_locally
from jobflow.core.reference import find_and_get_references
from monty.json import jsanitize
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure

from crystal_atomate.errors import InputError, OperationFailed, UnknownNameError
from crystal_atomate.flows.registry import build_flow, check_flow_settings
from crystal_atomate.mp.cache import MaterialsProject
from crystal_atomate.mp.client import MPQuery, MPStructure, StructureOrigin
from crystal_atomate.powerups import add_metadata_to_flow

__all__ = [
    "ENGINES",
    "ENGINE_BACKENDS",
    "AiidaEngine",
    "Batch",
    "BatchEntry",
    "Candidate",
    "Engine",
    "FireWorksEngine",
    "HighThroughputBuilder",
    "JobflowRemoteEngine",
    "LocalEngine",
    "Submission",
    "candidates_from_files",
    "candidates_from_records",
    "candidates_from_ids",
    "candidates_from_query",
    "completed_structures",
    "default_matcher",
    "failed_jobs",
    "make_engine",
    "new_batch_id",
    "origin_metadata",
    "read_structure",
    "settings_fingerprint",
    "submit_batch",
]

EntryStatus = Literal["new", "done", "duplicate", "rejected"]
SubmissionState = Literal["completed", "failed", "submitted"]

#: Maker fields that label or schedule a run without changing its numbers.
_NOT_SETTINGS = frozenset(
    {"name", "task_document_kwargs", "run_crystal_kwargs", "stop_children_kwargs", "max_restarts"}
)


def origin_metadata(origin: StructureOrigin) -> dict[str, Any]:
    """Return the task-document ``metadata`` of a Materials Project structure: id and release."""
    return {
        "material_id": origin.material_id,
        "mp_db_version": origin.db_version,
        "origin": origin.model_dump(mode="json"),
    }


@dataclass(frozen=True)
class Candidate:
    """One structure to compute: its label (material id or file stem) and where it came from."""

    label: str
    structure: Structure
    origin: StructureOrigin | None = None
    source_file: str | None = None

    @classmethod
    def from_mp(cls, record: MPStructure) -> Candidate:
        """Make a candidate of a Materials Project record, its origin kept for task documents."""
        return cls(label=record.material_id, structure=record.structure, origin=record.origin)

    @property
    def formula(self) -> str:
        """Reduced formula, for flow names and messages."""
        return self.structure.composition.reduced_formula

    def provenance(self) -> dict[str, Any]:
        """Say what the task documents should record about the structure's origin."""
        if self.origin is not None:
            return origin_metadata(self.origin)
        return {"source_file": self.source_file} if self.source_file else {}


def candidates_from_records(records: Iterable[MPStructure]) -> list[Candidate]:
    """Structures of any cached source, each keeping where it came from.

    Materials Project, OPTIMADE (:class:`crystal_atomate.mp.optimade.Optimade`) and MPContribs
    (:meth:`crystal_atomate.mp.mpcontribs.MPContribs.structures`) records share one shape, so a
    batch can be seeded from any of them; the origin (source, provider, entry id) goes into the
    task documents.

    Parameters
    ----------
    records
        Records as the sources return them.

    Returns
    -------
    list of Candidate
        One per record, in order.
    """
    return [Candidate.from_mp(record) for record in records]


def candidates_from_query(
    mp: MaterialsProject, query: MPQuery, refresh: bool = False
) -> list[Candidate]:
    """Every material of a Materials Project search (served from the cache when fresh)."""
    return candidates_from_records(mp.search_structures(query, refresh=refresh))


def candidates_from_ids(
    mp: MaterialsProject, material_ids: Iterable[str], refresh: bool = False
) -> list[Candidate]:
    """Materials Project structures by id (each served from the cache when fresh)."""
    return candidates_from_records(mp.get_structure(mid, refresh=refresh) for mid in material_ids)


def read_structure(path: Path) -> Structure:
    """Read the structure in a CIF, POSCAR or pymatgen JSON file.

    Raises
    ------
    InputError
        When the file holds no structure pymatgen can read (the message names the file and why).
    FileNotFoundError
        When there is no such file.
    """
    try:
        structure = Structure.from_file(path)
    except (OSError, ValueError, KeyError, IndexError, TypeError, StopIteration) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise InputError(f"{path}: not a structure file ({type(exc).__name__}: {exc})") from exc
    if len(structure) == 0:
        raise InputError(f"{path}: the file holds no atoms")
    return structure


def candidates_from_files(
    paths: Iterable[str | Path], on_unreadable: Callable[[Path, InputError], None] | None = None
) -> list[Candidate]:
    """Structure files; a folder stands for the CIF files in it, in name order.

    Parameters
    ----------
    paths
        Files and folders.
    on_unreadable
        Called with a file that holds no readable structure and the error, which then is skipped
        so the rest of a batch still runs; without it, the error is raised.

    Raises
    ------
    FileNotFoundError
        For a path that is neither a file nor a folder.
    InputError
        For an unreadable file, when ``on_unreadable`` is not given.
    """
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix.lower() == ".cif"))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(2, "No structure file or folder", str(path))
    candidates = []
    for file in files:
        try:
            structure = read_structure(file)
        except InputError as exc:
            if on_unreadable is None:
                raise
            on_unreadable(file, exc)
            continue
        candidates.append(
            Candidate(label=file.stem, structure=structure, source_file=str(file.resolve()))
        )
    return candidates


def default_matcher() -> StructureMatcher:
    """Match the same structure up to cell choice, origin and site order, but not up to a strain.

    ``scale=False`` and tolerances of a few thousandths: MgO at 4.217 and at 4.25 Angstrom are two
    calculations, while a CIF written from a Materials Project structure is the same one.
    """
    return StructureMatcher(ltol=0.002, stol=0.02, angle_tol=0.2, scale=False)


def _without_versions(value: Any) -> Any:
    """Drop ``@version`` keys: a package upgrade alone must not make finished work look new."""
    if isinstance(value, dict):
        return {k: _without_versions(v) for k, v in value.items() if k != "@version"}
    if isinstance(value, list):
        return [_without_versions(v) for v in value]
    return value


def _job_settings(job: Job) -> Any:
    """Return a job's Maker without labels and run options; a plain function job by its name."""
    maker = job.maker
    if maker is None:
        return f"{job.function.__module__}.{job.function.__qualname__}"
    serialized = jsanitize(maker, strict=True, enum_values=True)
    return _without_versions({k: v for k, v in serialized.items() if k not in _NOT_SETTINGS})


def settings_fingerprint(flow: Flow) -> str:
    """sha256 over the settings of every job of ``flow``: equal hashes mean equal calculations."""
    settings = [_job_settings(job) for job, _ in flow.iterflow()]
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _output_uuids(flow: Flow) -> list[str]:
    """Return the jobs whose stored, successful outputs mean the flow is finished.

    Those are the jobs of its output, else all of its jobs.
    """
    uuids = {ref.uuid for ref in find_and_get_references(flow.output)}
    return sorted(uuids or {job.uuid for job, _ in flow.iterflow()})


def _finished_uuids(store: JobStore, uuids: set[str]) -> set[str]:
    """Jobs whose latest run is stored and, when it is a task document, successful."""
    latest: dict[str, tuple[int, Any]] = {}
    docs = store.query(
        {"uuid": {"$in": sorted(uuids)}}, properties=["uuid", "index", "output.state"]
    )
    for doc in docs:
        if doc["uuid"] not in latest or doc["index"] > latest[doc["uuid"]][0]:
            latest[doc["uuid"]] = (doc["index"], doc.get("output"))
    return {
        job_uuid
        for job_uuid, (_, output) in latest.items()
        if not isinstance(output, dict) or output.get("state", "successful") == "successful"
    }


def completed_structures(store: JobStore, settings_hash: str) -> list[Structure]:
    """Return the structures whose flows with these settings finished successfully in ``store``."""
    store.connect()
    flows: dict[tuple[str, ...], dict[str, Any]] = {}
    docs = store.query(
        {"output.metadata.ht.settings_hash": settings_hash}, properties=["output.metadata.ht"]
    )
    for doc in docs:
        ht = doc["output"]["metadata"]["ht"]
        flows.setdefault(tuple(ht["output_uuids"]), ht)
    if not flows:
        return []
    finished = _finished_uuids(store, {u for key in flows for u in key})
    return [_structure(ht["structure"]) for key, ht in flows.items() if set(key) <= finished]


def _structure(value: Structure | dict[str, Any]) -> Structure:
    return value if isinstance(value, Structure) else Structure.from_dict(value)


def new_batch_id(flow_name: str) -> str:
    """'static-20251001-120000-3f9a2c': sortable by time, unique across machines."""
    return f"{flow_name}-{datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


@dataclass
class BatchEntry:
    """One candidate and what the builder decided.

    A new flow, already done, a duplicate of an earlier candidate of the same batch, or rejected
    (the reason says why).
    """

    candidate: Candidate
    status: EntryStatus
    flow: Flow | None = None
    reason: str = ""


@dataclass
class Batch:
    """The entries of one submission, all tagged with ``batch_id``."""

    batch_id: str
    flow_name: str
    entries: list[BatchEntry]

    @property
    def flows(self) -> list[Flow]:
        """The flows still to run."""
        return [entry.flow for entry in self.entries if entry.status == "new" and entry.flow]

    def count(self, status: EntryStatus) -> int:
        """How many entries have ``status``."""
        return sum(1 for entry in self.entries if entry.status == status)


@dataclass
class HighThroughputBuilder:
    """One tagged flow per structure with a chosen flow name (``crystal-atomate run``'s) or Maker.

    Parameters
    ----------
    flow
        A name of :data:`crystal_atomate.flows.registry.FLOWS` or a Maker.
    flow_settings
        With a flow name: ``build_flow``'s ``functional``, ``basis``, ``kspacing``, ``settings``.
    tags
        Stored in each task document's ``metadata.tags``.
    batch_id
        Stored in ``metadata.batch_id``; a new one by default.
    matcher
        Decides "same structure"; :func:`default_matcher` by default.
    """

    flow: str | Maker = "static"
    flow_settings: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    batch_id: str | None = None
    matcher: StructureMatcher = field(default_factory=default_matcher)

    @property
    def flow_name(self) -> str:
        """The flow's name, or the Maker's."""
        return self.flow if isinstance(self.flow, str) else self.flow.name

    def build(self, candidates: Sequence[Candidate], store: JobStore | None = None) -> Batch:
        """Decide each candidate; with a ``store``, what it already holds is marked done."""
        if isinstance(self.flow, str):
            settings = self.flow_settings
            check_flow_settings(
                self.flow, functional=settings.get("functional"), settings=settings.get("settings")
            )
        batch_id = self.batch_id or new_batch_id(self.flow_name)
        done: dict[str, list[Structure]] = {}
        accepted: dict[str, list[Structure]] = {}
        entries = []
        for candidate in candidates:
            try:
                flow = self._make(candidate.structure)
            except ValueError as exc:
                entries.append(BatchEntry(candidate, "rejected", reason=str(exc)))
                continue
            settings_hash = settings_fingerprint(flow)
            if store is not None and settings_hash not in done:
                done[settings_hash] = completed_structures(store, settings_hash)
            if self._matches(candidate.structure, done.get(settings_hash, [])):
                entries.append(
                    BatchEntry(candidate, "done", reason="same structure and settings stored")
                )
                continue
            if self._matches(candidate.structure, accepted.get(settings_hash, [])):
                entries.append(
                    BatchEntry(candidate, "duplicate", reason="same structure earlier in the batch")
                )
                continue
            accepted.setdefault(settings_hash, []).append(candidate.structure)
            entries.append(
                BatchEntry(candidate, "new", self._tagged(flow, candidate, batch_id, settings_hash))
            )
        return Batch(batch_id, self.flow_name, entries)

    def _make(self, structure: Structure) -> Flow:
        if isinstance(self.flow, str):
            return build_flow(self.flow, structure, **self.flow_settings)
        made = self.flow.make(structure)
        return made if isinstance(made, Flow) else Flow([made], output=made.output)

    def _matches(self, structure: Structure, others: list[Structure]) -> bool:
        return any(self.matcher.fit(structure, other) for other in others)

    def _tagged(self, flow: Flow, candidate: Candidate, batch_id: str, settings_hash: str) -> Flow:
        """Every CRYSTAL task document of the flow learns its origin, batch and bookkeeping."""
        metadata = {
            **candidate.provenance(),
            "tags": list(self.tags),
            "batch_id": batch_id,
            "ht": {
                "flow": self.flow_name,
                "label": candidate.label,
                "settings_hash": settings_hash,
                "output_uuids": _output_uuids(flow),
                "structure": candidate.structure.as_dict(),
            },
        }
        tagged = add_metadata_to_flow(flow, metadata)
        tagged.name = f"{self.flow_name} {candidate.label} {candidate.formula}"
        return tagged


@dataclass(frozen=True)
class Submission:
    """What an engine did with one flow: ran it (completed/failed) or queued it (submitted)."""

    flow_uuid: str
    flow_name: str
    state: SubmissionState
    detail: str = ""
    job_uuids: tuple[str, ...] = ()


@runtime_checkable
class Engine(Protocol):
    """Where flows run. Makers never see it; the builder hands it finished, tagged flows."""

    name: str

    def submit(self, flows: Sequence[Flow]) -> list[Submission]:
        """Run or queue ``flows``; one :class:`Submission` each, in order."""
        ...


def _succeeded(runs: dict[int, Any] | None) -> bool:
    """Tell whether a job's last run exists and, if it made a task document, is successful."""
    return bool(runs) and getattr(runs[max(runs)].output, "state", "successful") == "successful"


def failed_jobs(flow: Flow, responses: dict[str, dict[int, Any]]) -> list[Job]:
    """Return the jobs of ``flow`` that ran and failed: every parent succeeded, the job did not.

    Jobs that never ran because a parent failed are not listed: they did not fail themselves.
    """
    jobs = list(flow.iterflow())
    return [
        job
        for job, parents in jobs
        if not _succeeded(responses.get(job.uuid))
        and all(_succeeded(responses.get(p)) for p in parents)
    ]


class _JobErrors(logging.Handler):
    """The last line of each "NAME failed with exception" traceback jobflow's run_locally logs.

    It is the only place where run_locally reports why a job raised.
    """

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.by_name: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        name, marker, trace = record.getMessage().partition(" failed with exception:")
        lines = [line for line in trace.splitlines() if line.strip()]
        if marker and lines:
            self.by_name[name] = lines[-1].strip()


@contextmanager
def _recording_job_errors() -> Iterator[_JobErrors]:
    logger = logging.getLogger("jobflow.managers.local")
    handler = _JobErrors()
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(min(level or logging.INFO, logging.INFO))
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@dataclass
class LocalEngine:
    """jobflow's ``run_locally`` into ``store``, one job folder each under ``root_dir``.

    A failing flow is recorded as failed and the batch goes on: one bad material must not stop
    the hundreds after it. A job that failed is marked FAILED in the UI's job list (a job that
    raised stores no document, so nothing else would tell the UI), and the submission's detail
    says why.
    """

    store: JobStore
    root_dir: Path = Path(".")
    name: str = "local"

    def submit(self, flows: Sequence[Flow]) -> list[Submission]:
        """Run each flow to its end before the next."""
        self.root_dir.mkdir(parents=True, exist_ok=True)
        return [self._run(flow) for flow in flows]

    def _run(self, flow: Flow) -> Submission:
        with _recording_job_errors() as errors:
            responses = run_locally(
                flow,
                store=self.store,
                create_folders=True,
                root_dir=self.root_dir.resolve(),
                log=False,
            )
        uuids = tuple(dict.fromkeys([*(job.uuid for job, _ in flow.iterflow()), *responses]))
        failed = failed_jobs(flow, responses)
        for job in failed:
            self._mark_failed(job)
        if not failed and all(_succeeded(responses.get(job.uuid)) for job, _ in flow.iterflow()):
            return Submission(flow.uuid, flow.name, "completed", job_uuids=uuids)
        detail = "; ".join(
            f"{job.name}: {errors.by_name.get(job.name, 'failed')}" for job in failed
        )
        return Submission(flow.uuid, flow.name, "failed", detail, job_uuids=uuids)

    def _mark_failed(self, job: Job) -> None:
        """FAILED in the UI's job list, when the store keeps one (CrystalMathJobStore does)."""
        mark = getattr(self.store, "mark_job_state", None)
        if mark is not None:
            mark(job.uuid, "FAILED", name=job.name)


#: What each optional engine calls to submit, as ``module:function``. FireWorks, jobflow-remote and
#: AiiDA are extras, so these are imported when an engine first submits, not with this module.
ENGINE_BACKENDS: dict[str, dict[str, str]] = {
    "fireworks": {
        "open_launchpad": "crystal_atomate.engines.fireworks:open_launchpad",
        "add_flows": "crystal_atomate.engines.fireworks:add_flows",
    },
    "remote": {"submit_flows": "crystal_atomate.engines.remote:submit_flows"},
    "aiida": {
        "use_aiida_executor": "crystal_atomate.aiida.executor:use_aiida_executor",
        "resolved_code_label": "crystal_atomate.aiida.errors:resolved_code_label",
    },
    "aiida-daemon": {
        "submit_flow": "crystal_atomate.aiida.flow_mode:submit_flow",
        "resolved_code_label": "crystal_atomate.aiida.errors:resolved_code_label",
    },
}


def _engine_function(engine: str, function: str) -> Callable[..., Any]:
    """Import now the ``function`` of :data:`ENGINE_BACKENDS` for ``engine``.

    Raises
    ------
    OperationFailed
        When this installation lacks the engine's extra (the hint names the way out).
    """
    module, _, attribute = ENGINE_BACKENDS[engine][function].partition(":")
    try:
        return getattr(importlib.import_module(module), attribute)
    except ImportError as exc:
        raise OperationFailed(
            f"the {engine} engine needs {exc.name or module}, which is not installed",
            hint="install the extra of that engine (see docs/index.md), or use --engine local",
        ) from exc


def _queued(flows: Sequence[Flow], ids: dict[str, list[Any]], what: str) -> list[Submission]:
    return [
        Submission(
            flow.uuid, flow.name, "submitted", f"{what} {', '.join(map(str, ids[flow.uuid]))}"
        )
        for flow in flows
    ]


@dataclass
class FireWorksEngine:
    """FireWorks: each flow becomes a workflow on the LaunchPad; launchers run them later.

    The LaunchPad is ``launchpad_yaml``, else the embedded one, through
    :mod:`crystal_atomate.engines.fireworks`.
    """

    store: JobStore
    root_dir: Path = Path(".")
    launchpad_yaml: Path | None = None
    name: str = "fireworks"

    def submit(self, flows: Sequence[Flow]) -> list[Submission]:
        """Add each flow to the LaunchPad and mark its jobs QUEUED in the UI."""
        open_launchpad = _engine_function("fireworks", "open_launchpad")
        add_flows = _engine_function("fireworks", "add_flows")
        ids = add_flows(flows, open_launchpad(self.launchpad_yaml), store=self.store)
        return _queued(flows, ids, "Fireworks")


@dataclass
class JobflowRemoteEngine:
    """jobflow-remote: each flow joins the project's queue; the runner executes them.

    It goes through :mod:`crystal_atomate.engines.remote`; the project's job store is the UI's
    database.
    """

    store: JobStore
    root_dir: Path = Path(".")
    project: str | None = None
    name: str = "remote"

    def submit(self, flows: Sequence[Flow]) -> list[Submission]:
        """Queue each flow for the jobflow-remote runner."""
        submit_flows = _engine_function("remote", "submit_flows")
        return _queued(flows, submit_flows(flows, project=self.project), "jobflow-remote jobs")


@dataclass
class AiidaEngine(LocalEngine):
    """AiiDA: jobflow runs the flows here while every CRYSTAL and properties step runs as a CalcJob.

    This is executor mode (:func:`crystal_atomate.aiida.executor.use_aiida_executor`), so each
    calculation has its provenance node and its task document lands in the store as usual.
    """

    name: str = "aiida"
    profile: str | None = None
    code: str | None = None

    def __post_init__(self) -> None:
        """Load the profile and pin the code now: an unknown or ambiguous one fails first."""
        resolve = _engine_function("aiida", "resolved_code_label")
        self.code = resolve(self.code, self.profile)

    def submit(self, flows: Sequence[Flow]) -> list[Submission]:
        """Run each flow with its CRYSTAL steps as CalcJobs on ``profile`` with ``code``."""
        use_aiida_executor = _engine_function("aiida", "use_aiida_executor")
        return super().submit(
            [use_aiida_executor(flow, code=self.code, profile=self.profile) for flow in flows]
        )


@dataclass
class AiidaDaemonEngine:
    """AiiDA flow mode: each flow becomes a work chain on the daemon.

    It goes through :func:`crystal_atomate.aiida.flow_mode.submit_flow`, with its job folders under
    ``root_dir`` and its task documents in ``store``; the call returns once the work chains are
    submitted.
    """

    store: JobStore
    root_dir: Path = Path(".")
    name: str = "aiida-daemon"
    profile: str | None = None
    code: str | None = None

    def __post_init__(self) -> None:
        """Load the profile and pin the code now: an unknown or ambiguous one fails first."""
        resolve = _engine_function("aiida-daemon", "resolved_code_label")
        self.code = resolve(self.code, self.profile)

    def submit(self, flows: Sequence[Flow]) -> list[Submission]:
        """Submit each flow to the daemon of ``profile`` (None: AiiDA's default), with ``code``."""
        submit_flow = _engine_function("aiida-daemon", "submit_flow")
        nodes = {
            flow.uuid: [
                submit_flow(
                    flow,
                    store=self.store,
                    root_dir=self.root_dir,
                    profile=self.profile,
                    code=self.code,
                ).pk
            ]
            for flow in flows
        }
        return _queued(flows, nodes, "AiiDA work chain")


ENGINES: dict[str, Callable[..., Engine]] = {
    "local": LocalEngine,
    "fireworks": FireWorksEngine,
    "remote": JobflowRemoteEngine,
    "aiida": AiidaEngine,
    "aiida-daemon": AiidaDaemonEngine,
}


def make_engine(name: str, store: JobStore, root_dir: Path = Path("."), **options: Any) -> Engine:
    """Return the engine called ``name``, built with ``options`` (None ones left out).

    ``name`` is ``local``, ``fireworks``, ``remote``, ``aiida`` or ``aiida-daemon``; ``options``
    are its own fields (``profile`` and ``code`` for the AiiDA engines).
    """
    if name not in ENGINES:
        raise UnknownNameError("engine", name, ENGINES)
    return ENGINES[name](
        store=store, root_dir=root_dir, **{k: v for k, v in options.items() if v is not None}
    )


def submit_batch(
    batch: Batch, engine: Engine, on_submitted: Callable[[Submission], None] | None = None
) -> list[Submission]:
    """Hand the batch's new flows to ``engine`` one at a time.

    This lets progress be shown, and a crash loses only the flow in hand (the next submit skips what
    finished).
    """
    results = []
    for flow in batch.flows:
        (result,) = engine.submit([flow])
        results.append(result)
        if on_submitted is not None:
            on_submitted(result)
    return results
