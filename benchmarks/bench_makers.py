"""Per-job overhead of our Maker machinery against atomate2's VASP ``StaticMaker`` under its mock.

Run: ``python benchmarks/bench_makers.py [--jobs 100] [--repeat 3] [--json results.json]``

Every configuration runs ``--jobs`` independent static jobs in one ``Flow`` through jobflow's
``run_locally`` (``create_folders=True``), in this one process, and the configurations are
interleaved round by round so a busy neighbour on the machine hurts them alike; the figures are
medians over ``--repeat`` rounds. Configurations:

* ``ours subprocess``: our ``StaticMaker`` with the demo's MgO static settings (taken from
  ``crystal_atomate.demo.demo_flows()``), the replay *executable* as "the CRYSTAL binary" (a real
  subprocess per job, set up by ``replay_setup.use_replay`` with the demo's plan entry for
  ``static``); once with ``CrystalMathJobStore`` (a fresh SQLite file) and once with a
  ``MemoryStore`` JobStore;
* ``ours in-process``: the same, but ``run_crystal`` is monkeypatched to call
  ``crystal_atomate.testing.replay.replay`` in-process (deck check and file copies included), as
  atomate2's mock patches ``run_vasp``: the like-for-like comparison;
* ``atomate2 VASP``: ``atomate2.vasp.jobs.core.StaticMaker`` under
  ``atomate2.utils.testing.vasp.monkeypatch_vasp`` (the machinery of atomate2's ``mock_vasp``
  fixture), with a ``MemoryStore`` JobStore (atomate2's usual) and with ``CrystalMathJobStore``.

The mock's reference folder is built at run time in a temp dir from the real VASP outputs that
ASE ships (no VASP file is stored in this repository):

* ``inputs/`` and ``outputs/``: ``POSCAR`` (the initial structure of ``vasprun_pstress.xml``,
  diamond C, 2 atoms, a static run: NSW=0), ``INCAR`` (the vasprun's own INCAR block:
  ``PSTRESS = 1``), ``KPOINTS`` (the vasprun's 4x4x4 Monkhorst-Pack mesh), ``POTCAR.spec``
  (``C``); ``outputs/`` adds ``vasprun.xml`` (that file), ``CONTCAR`` (its final structure) and
  ``OUTCAR``;
* emmet's ``TaskDoc.from_directory`` cannot run without an OUTCAR (``Calculation.from_vasp_files``
  always parses one) and ASE ships only one full OUTCAR, ``OUTCAR_example_1``, of a *different*
  run (an 18-atom Ni cluster, VASP 5.3.3). It is used as is: the cost of parsing a real 160 kB
  OUTCAR is paid, but the task document's run statistics and OUTCAR-derived fields describe that
  other run. The figures measure cost, not physics.
* The Maker is atomate2's ``StaticMaker`` with ``user_incar_settings={"PSTRESS": 1.0}`` and
  ``user_kpoints_settings`` = the recorded mesh, so that all four input checks of the mock run
  and pass: INCAR (``incar_settings=["PSTRESS"]``, the only key the recorded INCAR has), KPOINTS,
  POSCAR and POTCAR(.spec); ``nelect=8`` (diamond C) is what the mock patches in for the POTCAR
  it does not have. atomate2's own ``gzip_output_folder`` (``VASP_ZIP_FILES="atomate"``) runs,
  as in any atomate2 job.

Stage timers wrap, for ours: ``CrystalInputGenerator.get_input_set`` + ``CrystalInputSet.
write_input`` (inputs), ``run_crystal`` (executable), ``CrystalTaskDoc.from_directory`` (parse);
for atomate2: ``write_vasp_input_set`` (inputs), ``run_vasp`` (the mock: input checks + copies),
``get_vasp_task_document`` (parse), ``gzip_output_folder`` (gzip); for both ``JobStore.update``
(store: serialisation + insert). "jobflow" is the rest of ``run_locally``'s wall time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from jobflow import Flow, JobStore, run_locally
from maggma.stores import MemoryStore

STAGES = ("inputs", "executable", "parse", "gzip", "store", "jobflow")


# --------------------------------------------------------------------------- stage timers


class StageTimer:
    """Accumulates wall time spent inside wrapped functions, by stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._depth = 0

    def wrap(self, stage: str, function: Callable) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if self._depth:  # a timed call inside another one counts once, in the outer stage
                return function(*args, **kwargs)
            self._depth += 1
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - start
                self._depth -= 1

        return timed


def _store_timer(monkeypatch: pytest.MonkeyPatch, timer: StageTimer) -> None:
    monkeypatch.setattr(JobStore, "update", timer.wrap("store", JobStore.update))


# --------------------------------------------------------------------------- ours


def our_static_maker() -> Any:
    """The demo's MgO static Maker (the settings that reproduce the recorded deck)."""
    from crystal_atomate.demo import demo_flows

    for flow in demo_flows():
        for job in flow.iterflow():
            job = job[0] if isinstance(job, tuple) else job
            if job.name == "static":
                return job.maker
    raise RuntimeError("crystal_atomate.demo has no job named 'static'")


def _run_crystal_in_process(plan_file: Path) -> Callable:
    """Stand in for ``run_crystal`` with the in-process replay, as atomate2's mock does for VASP."""
    from crystal_atomate.run import OUTPUT_FILE, CrystalRunRecord
    from crystal_atomate.testing.replay import ReplayPlan, replay

    def run_crystal(
        directory: str | Path = ".",
        *,
        program: str = "crystal",
        job_name: str | None = None,
        **_kwargs: Any,
    ) -> CrystalRunRecord:
        workdir = Path(directory).resolve()
        start = time.perf_counter()
        output = replay(
            (workdir / "INPUT").read_text(), workdir, ReplayPlan.from_file(plan_file), job_name
        )
        (workdir / OUTPUT_FILE).write_text(output)
        return CrystalRunRecord(
            command="in-process replay", program=program, mpi=False, exit_code=0,
            wall_time_seconds=time.perf_counter() - start, output_file=OUTPUT_FILE,
        )

    return run_crystal


@contextlib.contextmanager
def ours(work: Path, timer: StageTimer, in_process: bool) -> Iterator[Callable[[int], Flow]]:
    import crystal_atomate.jobs.base as base
    from crystal_atomate.demo import DEMO_REPLAY, mgo_structure
    from crystal_atomate.schemas.task import CrystalTaskDoc
    from crystal_atomate.sets.base import CrystalInputGenerator, CrystalInputSet
    from crystal_atomate.testing.replay_setup import use_replay

    env = use_replay({"static": DEMO_REPLAY["static"]}, work / "replay")
    maker, structure = our_static_maker(), mgo_structure()
    with pytest.MonkeyPatch.context() as monkeypatch:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        run = (
            _run_crystal_in_process(Path(env["CRYSTAL_ATOMATE_REPLAY_PLAN"]))
            if in_process
            else base.run_crystal
        )
        monkeypatch.setattr(base, "run_crystal", timer.wrap("executable", run))
        monkeypatch.setattr(
            CrystalInputGenerator,
            "get_input_set",
            timer.wrap("inputs", CrystalInputGenerator.get_input_set),
        )
        monkeypatch.setattr(
            CrystalInputSet, "write_input", timer.wrap("inputs", CrystalInputSet.write_input)
        )
        monkeypatch.setattr(
            base.CrystalTaskDoc,
            "from_directory",
            staticmethod(timer.wrap("parse", CrystalTaskDoc.from_directory)),
        )
        _store_timer(monkeypatch, timer)
        yield lambda n: Flow([maker.make(structure) for _ in range(n)], name="ours")


# --------------------------------------------------------------------------- atomate2 VASP


def build_vasp_reference(root: Path) -> tuple[Path, Any]:
    """Build the mock's reference folder (inputs/ + outputs/) from ASE's real VASP files."""
    import ase
    from pymatgen.io.vasp import Incar, Poscar, Vasprun

    data = Path(ase.__file__).parent / "test" / "testdata" / "vasp"
    vasprun = Vasprun(data / "vasprun_pstress.xml", parse_potcar_file=False)
    ref = root / "C_static"
    for sub in ("inputs", "outputs"):
        (ref / sub).mkdir(parents=True)
        Poscar(vasprun.initial_structure).write_file(ref / sub / "POSCAR")
        Incar(vasprun.incar).write_file(ref / sub / "INCAR")
        vasprun.kpoints.write_file(ref / sub / "KPOINTS")
        symbols = [
            symbol.split()[1] for symbol in vasprun.potcar_symbols
        ]  # "PAW C 22Mar2012" -> "C"
        (ref / sub / "POTCAR.spec").write_text("\n".join(symbols) + "\n")
    shutil.copyfile(data / "vasprun_pstress.xml", ref / "outputs" / "vasprun.xml")
    shutil.copyfile(data / "OUTCAR_example_1", ref / "outputs" / "OUTCAR")
    Poscar(vasprun.final_structure).write_file(ref / "outputs" / "CONTCAR")
    return ref, vasprun


@contextlib.contextmanager
def atomate2_vasp(work: Path, timer: StageTimer) -> Iterator[Callable[[int], Flow]]:
    import atomate2.vasp.jobs.base as vbase
    from atomate2.utils.testing.vasp import monkeypatch_vasp
    from atomate2.vasp.jobs.core import StaticMaker
    from atomate2.vasp.sets.core import StaticSetGenerator

    ref, vasprun = build_vasp_reference(work / "vasp_ref")
    maker = StaticMaker(
        input_set_generator=StaticSetGenerator(
            user_incar_settings={"PSTRESS": 1.0}, user_kpoints_settings=vasprun.kpoints
        )
    )
    with pytest.MonkeyPatch.context() as monkeypatch:
        mock = monkeypatch_vasp(monkeypatch, ref.parent, nelect=8)
        next(mock)({"static": ref.name}, {"static": {"incar_settings": ["PSTRESS"]}})
        monkeypatch.setattr(
            vbase, "write_vasp_input_set", timer.wrap("inputs", vbase.write_vasp_input_set)
        )
        monkeypatch.setattr(vbase, "run_vasp", timer.wrap("executable", vbase.run_vasp))
        monkeypatch.setattr(
            vbase, "get_vasp_task_document", timer.wrap("parse", vbase.get_vasp_task_document)
        )
        monkeypatch.setattr(
            vbase, "gzip_output_folder", timer.wrap("gzip", vbase.gzip_output_folder)
        )
        _store_timer(monkeypatch, timer)
        try:
            yield lambda n: Flow(
                [maker.make(vasprun.initial_structure) for _ in range(n)], name="atomate2"
            )
        finally:
            with contextlib.suppress(StopIteration):
                next(mock)  # the generator's own clean-up (clears its reference paths)


# --------------------------------------------------------------------------- running


def memory_store(_work: Path) -> JobStore:
    return JobStore(MemoryStore())


def sqlite_store(work: Path) -> JobStore:
    from crystal_atomate.stores import CrystalMathJobStore

    return CrystalMathJobStore(work / "bench.db")


CONFIGS: dict[str, tuple[Callable, Callable]] = {
    "ours, replay subprocess, CrystalMathJobStore": (
        lambda w, t: ours(w, t, in_process=False),
        sqlite_store,
    ),
    "ours, replay subprocess, MemoryStore": (
        lambda w, t: ours(w, t, in_process=False),
        memory_store,
    ),
    "ours, replay in-process, CrystalMathJobStore": (
        lambda w, t: ours(w, t, in_process=True),
        sqlite_store,
    ),
    "ours, replay in-process, MemoryStore": (
        lambda w, t: ours(w, t, in_process=True),
        memory_store,
    ),
    "atomate2 VASP mock, MemoryStore": (atomate2_vasp, memory_store),
    "atomate2 VASP mock, CrystalMathJobStore": (atomate2_vasp, sqlite_store),
}


def run_config(name: str, jobs: int, scratch: Path, profile: Path | None = None) -> dict[str, Any]:
    """One round of one configuration: build the flow, run it, return the timings."""
    setup, make_store = CONFIGS[name]
    work = Path(tempfile.mkdtemp(dir=scratch))
    timer = StageTimer()
    try:
        with setup(work, timer) as make_flow:
            store = make_store(work)
            start = time.perf_counter()
            flow = make_flow(jobs)
            build = time.perf_counter() - start
            profiler = None
            if profile is not None:
                import cProfile

                profiler = cProfile.Profile()
                profiler.enable()
            start, cpu_start = time.perf_counter(), time.process_time()
            responses = run_locally(flow, store=store, create_folders=True, root_dir=work / "run",
                                    ensure_success=True, log=False)
            total = time.perf_counter() - start
            cpu = time.process_time() - cpu_start
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(profile)
        if len(responses) != jobs:
            raise RuntimeError(f"{name}: {len(responses)} of {jobs} jobs finished")
        energies = {round(float(r[1].output.output.energy), 6) for r in responses.values()}
        stages = dict(timer.seconds)
        stages["jobflow"] = total - sum(stages.values())
        return {
            "total": total,
            "cpu": cpu,
            "build": build,
            "stages": stages,
            "energies_eV": sorted(energies),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def replay_startup(repeat: int) -> float:
    """Median wall time of the replay command doing nothing (no plan: it exits at once)."""
    import shlex

    from crystal_atomate.testing.replay_setup import replay_command

    command = shlex.split(replay_command())
    env = {k: v for k, v in os.environ.items() if k != "CRYSTAL_ATOMATE_REPLAY_PLAN"}
    times = []
    for _ in range(max(repeat, 5)):
        start = time.perf_counter()
        subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, env=env, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    packages = ("crystal_atomate", "atomate2", "jobflow", "emmet-core", "pymatgen", "maggma")
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "versions": {p: version(p) for p in packages},
    }


def summarise(name: str, rounds: list[dict[str, Any]], jobs: int) -> dict[str, Any]:
    med = statistics.median
    stages = {s: med(r["stages"].get(s, 0.0) for r in rounds) / jobs * 1e3 for s in STAGES}
    return {
        "config": name,
        "total_s": med(r["total"] for r in rounds),
        "per_job_ms": med(r["total"] for r in rounds) / jobs * 1e3,
        "min_per_job_ms": min(r["total"] for r in rounds) / jobs * 1e3,
        "cpu_per_job_ms": med(r["cpu"] for r in rounds) / jobs * 1e3,
        "build_per_job_ms": med(r["build"] for r in rounds) / jobs * 1e3,
        "stages_per_job_ms": stages,
        "energies_eV": rounds[0]["energies_eV"],
        "rounds": len(rounds),
    }


def table(summaries: list[dict[str, Any]]) -> str:
    head = (
        "| configuration | total s | per job ms | min per job ms | CPU per job ms | "
        + " | ".join(STAGES)
        + " | flow build ms/job |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for s in summaries:
        st = s["stages_per_job_ms"]
        cells = " | ".join(f"{st[k]:.0f}" if st[k] else "-" for k in STAGES)
        lines.append(
            f"| {s['config']} | {s['total_s']:.1f} | {s['per_job_ms']:.0f} | "
            f"{s['min_per_job_ms']:.0f} | {s['cpu_per_job_ms']:.0f} | "
            f"{cells} | {s['build_per_job_ms']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", action="append", help="substring of configuration names to run")
    parser.add_argument(
        "--profile", type=Path, help="cProfile the first selected configuration into this file"
    )
    parser.add_argument("--json", type=Path, help="write all rounds and summaries here")
    args = parser.parse_args()

    warnings.filterwarnings("ignore")
    logging.getLogger("jobflow").setLevel(logging.ERROR)
    logging.getLogger("atomate2").setLevel(logging.ERROR)
    names = [n for n in CONFIGS if not args.only or any(o in n for o in args.only)]
    scratch = Path(tempfile.mkdtemp(prefix="bench_makers_"))
    rounds: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    try:
        for name in names:  # warm-up: imports, caches, first-call costs are not per-job overhead
            run_config(name, 2, scratch)
        if args.profile:
            run_config(names[0], args.jobs, scratch, profile=args.profile)
            print(f"profile of {names[0]!r} written to {args.profile}")
            return
        for index in range(args.repeat):
            for name in names:
                result = run_config(name, args.jobs, scratch)
                rounds[name].append(result)
                print(
                    f"round {index + 1}/{args.repeat} {name}: {result['total']:.1f} s "
                    f"({result['total'] / args.jobs * 1e3:.0f} ms/job)",
                    file=sys.stderr,
                    flush=True,
                )
        startup = replay_startup(args.repeat) if any("subprocess" in n for n in names) else None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    summaries = [summarise(n, rounds[n], args.jobs) for n in names]
    info = machine()
    print(f"\n{args.jobs} jobs per flow, median of {args.repeat} rounds; Python {info['python']}, "
          f"{info['cpu']}, {info['cores']} cores, load {info['load_average']}")
    print(f"versions: {info['versions']}")
    if startup is not None:
        print(f"replay command start-up alone (no plan, exits at once): {startup * 1e3:.0f} ms")
    print(table(summaries))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": info,
                    "jobs": args.jobs,
                    "replay_startup_s": startup,
                    "summaries": summaries,
                    "rounds": rounds,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
