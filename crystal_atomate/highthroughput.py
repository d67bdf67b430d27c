"""High-throughput CRYSTAL: one flow per structure, from a Materials Project query, ids or CIF files.

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
import importlib.util
import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from jobflow import Flow, Job, JobStore, Maker, run_locally
from jobflow.core.reference import find_and_get_references
from monty.json import jsanitize
from pymatgen.analysis.structure_matcher import StructureMatcher
from pymatgen.core import Structure

from crystal_atomate.mp.cache import MaterialsProject
from crystal_atomate.mp.client import MPQuery, MPStructure, StructureOrigin
from crystal_atomate.powerups import add_metadata_to_flow

__all__ = [
    "AiidaEngine",
    "Batch",
    "BatchEntry",
    "Candidate",
    "ENGINES",
    "Engine",
    "FireWorksEngine",
    "HighThroughputBuilder",
    "JobflowRemoteEngine",
    "LocalEngine",
    "Submission",
    "candidates_from_files",
    "candidates_from_ids",
    "candidates_from_query",
    "completed_structures",
    "default_matcher",
    "make_engine",
    "new_batch_id",
    "origin_metadata",
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
    """The task-document ``metadata`` of a Materials Project structure, queryable by id and release."""
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
        """A Materials Project record, keeping its origin for the task documents."""
        return cls(label=record.material_id, structure=record.structure, origin=record.origin)

    @property
    def formula(self) -> str:
        """Reduced formula, for flow names and messages."""
        return self.structure.composition.reduced_formula

    def provenance(self) -> dict[str, Any]:
        """What the task documents should say about the structure's origin."""
        if self.origin is not None:
            return origin_metadata(self.origin)
        return {"source_file": self.source_file} if self.source_file else {}


def candidates_from_query(
    mp: MaterialsProject, query: MPQuery, refresh: bool = False
) -> list[Candidate]:
    """Every material of a Materials Project search (served from the cache when fresh)."""
    return [Candidate.from_mp(record) for record in mp.search_structures(query, refresh=refresh)]


def candidates_from_ids(
    mp: MaterialsProject, material_ids: Iterable[str], refresh: bool = False
) -> list[Candidate]:
    """Materials Project structures by id (each served from the cache when fresh)."""
    return [Candidate.from_mp(mp.get_structure(mid, refresh=refresh)) for mid in material_ids]


def candidates_from_files(paths: Iterable[str | Path]) -> list[Candidate]:
    """Structure files; a folder stands for the CIF files in it, in name order."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix.lower() == ".cif"))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"No structure file or folder {str(path)!r}")
    return [
        Candidate(label=file.stem, structure=Structure.from_file(file), source_file=str(file.resolve()))
        for file in files
    ]


def default_matcher() -> StructureMatcher:
    """Same structure up to cell choice, origin and site order, but not up to a strain.

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
    """A job's Maker without labels and run options; a plain function job by its name."""
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
    """The jobs whose stored, successful outputs mean the flow is finished: those of its output,
    else all of its jobs."""
    uuids = {ref.uuid for ref in find_and_get_references(flow.output)}
    return sorted(uuids or {job.uuid for job, _ in flow.iterflow()})


def _finished_uuids(store: JobStore, uuids: set[str]) -> set[str]:
    """Jobs whose latest run is stored and, when it is a task document, successful."""
    latest: dict[str, tuple[int, Any]] = {}
    docs = store.query({"uuid": {"$in": sorted(uuids)}}, properties=["uuid", "index", "output.state"])
    for doc in docs:
        if doc["uuid"] not in latest or doc["index"] > latest[doc["uuid"]][0]:
            latest[doc["uuid"]] = (doc["index"], doc.get("output"))
    return {
        job_uuid
        for job_uuid, (_, output) in latest.items()
        if not isinstance(output, dict) or output.get("state", "successful") == "successful"
    }


def completed_structures(store: JobStore, settings_hash: str) -> list[Structure]:
    """The structures whose flows with these settings finished successfully in ``store``."""
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
    """One candidate and what the builder decided: a new flow, already done, a duplicate of an
    earlier candidate of the same batch, or rejected (the reason says why)."""

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
        A name of :data:`crystal_atomate.cli.flows.FLOW_MAKERS` or a Maker.
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
                entries.append(BatchEntry(candidate, "done", reason="same structure and settings stored"))
                continue
            if self._matches(candidate.structure, accepted.get(settings_hash, [])):
                entries.append(BatchEntry(candidate, "duplicate", reason="same structure earlier in the batch"))
                continue
            accepted.setdefault(settings_hash, []).append(candidate.structure)
            entries.append(BatchEntry(candidate, "new", self._tagged(flow, candidate, batch_id, settings_hash)))
        return Batch(batch_id, self.flow_name, entries)

    def _make(self, structure: Structure) -> Flow:
        if isinstance(self.flow, str):
            from crystal_atomate.cli.flows import build_flow

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


@runtime_checkable
class Engine(Protocol):
    """Where flows run. Makers never see it; the builder hands it finished, tagged flows."""

    name: str

    def submit(self, flows: Sequence[Flow]) -> list[Submission]:
        """Run or queue ``flows``; one :class:`Submission` each, in order."""
        ...


def _finished(flow: Flow, responses: dict[str, dict[int, Any]]) -> bool:
    """Every job ran and no task document among the last runs failed."""
    for job, _ in flow.iterflow():
        runs = responses.get(job.uuid)
        if not runs:
            return False
        state = getattr(runs[max(runs)].output, "state", "successful")
        if state != "successful":
            return False
    return True


@dataclass
class LocalEngine:
    """jobflow's ``run_locally`` into ``store``, one job folder each under ``root_dir``.

    A failing flow is recorded as failed and the batch goes on: one bad material must not stop
    the hundreds after it.
    """

    store: JobStore
    root_dir: Path = Path(".")
    name: str = "local"

    def submit(self, flows: Sequence[Flow]) -> list[Submission]:
        """Run each flow to its end before the next."""
        self.root_dir.mkdir(parents=True, exist_ok=True)
        results = []
        for flow in flows:
            responses = run_locally(
                flow, store=self.store, create_folders=True, root_dir=self.root_dir.resolve(), log=False
            )
            state: SubmissionState = "completed" if _finished(flow, responses) else "failed"
            results.append(Submission(flow.uuid, flow.name, state))
        return results


def _engine_function(module: str, function: str, engine: str) -> Callable[..., Any]:
    """``module.function``, imported only now (engines are optional extras), or NotImplementedError
    naming what is missing."""
    found = importlib.util.find_spec(module) is not None
    attribute = getattr(importlib.import_module(module), function, None) if found else None
    if attribute is None:
        raise NotImplementedError(
            f"The {engine} engine submits through {module}.{function}, which this installation "
            "does not provide; use --engine local."
        )
    return attribute


def _queued(flows: Sequence[Flow], ids: dict[str, list[Any]], what: str) -> list[Submission]:
    return [
        Submission(flow.uuid, flow.name, "submitted", f"{what} {', '.join(map(str, ids[flow.uuid]))}")
        for flow in flows
    ]


@dataclass
class FireWorksEngine:
    """FireWorks: each flow becomes a workflow on the LaunchPad (``launchpad_yaml``, else the
    embedded one), through :mod:`crystal_atomate.engines.fireworks`; launchers run them later."""

    store: JobStore
    root_dir: Path = Path(".")
    launchpad_yaml: Path | None = None
    name: str = "fireworks"

    def submit(self, flows: Sequence[Flow]) -> list[Submission]:
        """Add each flow to the LaunchPad and mark its jobs QUEUED in the UI."""
        open_launchpad = _engine_function("crystal_atomate.engines.fireworks", "open_launchpad", "FireWorks")
        add_flows = _engine_function("crystal_atomate.engines.fireworks", "add_flows", "FireWorks")
        ids = add_flows(flows, open_launchpad(self.launchpad_yaml), store=self.store)
        return _queued(flows, ids, "Fireworks")


@dataclass
class JobflowRemoteEngine:
    """jobflow-remote: each flow joins the project's queue (:mod:`crystal_atomate.engines.remote`),
    whose job store is the UI's database; the runner executes them."""

    store: JobStore
    root_dir: Path = Path(".")
    project: str | None = None
    name: str = "remote"

    def submit(self, flows: Sequence[Flow]) -> list[Submission]:
        """Queue each flow for the jobflow-remote runner."""
        submit_flows = _engine_function("crystal_atomate.engines.remote", "submit_flows", "jobflow-remote")
        return _queued(flows, submit_flows(flows, project=self.project), "jobflow-remote jobs")


@dataclass
class AiidaEngine(LocalEngine):
    """AiiDA: jobflow runs the flows here while every CRYSTAL and properties step runs as an AiiDA
    CalcJob (executor mode, :func:`crystal_atomate.aiida.executor.use_aiida_executor`), so each
    calculation has its provenance node and its task document lands in the store as usual."""

    name: str = "aiida"
    profile: str | None = None
    code: str | None = None

    def __post_init__(self) -> None:
        """Load the profile and pin the code now: an unknown or ambiguous one fails before any flow."""
        resolve = _engine_function("crystal_atomate.aiida.errors", "resolved_code_label", "AiiDA")
        self.code = resolve(self.code, self.profile)

    def submit(self, flows: Sequence[Flow]) -> list[Submission]:
        """Run each flow with its CRYSTAL steps as CalcJobs on ``profile`` with ``code``."""
        use_aiida_executor = _engine_function("crystal_atomate.aiida.executor", "use_aiida_executor", "AiiDA")
        return super().submit([use_aiida_executor(flow, code=self.code, profile=self.profile) for flow in flows])


@dataclass
class AiidaDaemonEngine:
    """AiiDA flow mode: each flow becomes a work chain on the daemon
    (:func:`crystal_atomate.aiida.flow_mode.submit_flow`), its job folders under ``root_dir`` and its
    task documents in ``store``; the call returns once the work chains are submitted."""

    store: JobStore
    root_dir: Path = Path(".")
    name: str = "aiida-daemon"
    profile: str | None = None
    code: str | None = None

    def __post_init__(self) -> None:
        """Load the profile and pin the code now: an unknown or ambiguous one fails before any flow."""
        resolve = _engine_function("crystal_atomate.aiida.errors", "resolved_code_label", "AiiDA daemon")
        self.code = resolve(self.code, self.profile)

    def submit(self, flows: Sequence[Flow]) -> list[Submission]:
        """Submit each flow to the daemon of ``profile`` (AiiDA's default when None), with ``code``."""
        submit_flow = _engine_function("crystal_atomate.aiida.flow_mode", "submit_flow", "AiiDA daemon")
        nodes = {
            flow.uuid: [submit_flow(flow, store=self.store, root_dir=self.root_dir, profile=self.profile,
                                    code=self.code).pk]
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
    """The engine called ``name`` (``local``, ``fireworks``, ``remote``, ``aiida``, ``aiida-daemon``);
    ``options`` are its own fields (``profile`` and ``code`` for the AiiDA engines), None ones left out."""
    if name not in ENGINES:
        raise ValueError(f"Unknown engine {name!r}; choose one of {sorted(ENGINES)}")
    return ENGINES[name](store=store, root_dir=root_dir, **{k: v for k, v in options.items() if v is not None})


def submit_batch(
    batch: Batch, engine: Engine, on_submitted: Callable[[Submission], None] | None = None
) -> list[Submission]:
    """Hand the batch's new flows to ``engine`` one at a time, so progress can be shown and a
    crash loses only the flow in hand (the next submit skips what finished)."""
    results = []
    for flow in batch.flows:
        (result,) = engine.submit([flow])
        results.append(result)
        if on_submitted is not None:
            on_submitted(result)
    return results
