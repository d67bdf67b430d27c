"""AiiDA overhead, in one run on an embedded profile (core.sqlite_dos, core.direct on localhost):

1. a bare ``core.arithmetic.add`` CalcJob vs our CrystalCalculation with the replay as CRYSTAL
   (``run_get_node``, median of ``--repeat`` runs each);
2. an N-job flow of MgO statics through jobflow's ``run_locally`` vs the same flow in executor mode
   (every CRYSTAL step an AiiDA CalcJob): the difference per job is the cost of provenance.

    python benchmarks/bench_aiida.py [--jobs 20] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path


def _profile(root: Path):
    os.environ["AIIDA_PATH"] = str(root)
    from crystal_atomate.aiida.setup import ensure_codes, ensure_localhost, ensure_profile

    ensure_profile("bench", broker=None)
    computer = ensure_localhost("localhost", root / "run")
    replay = shutil.which("crystal-atomate-replay")
    return computer, ensure_codes(computer, replay, replay)


def _timed(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _static_maker(name: str):
    from crystal_atomate.demo import demo_flows

    static = next(job.maker for job, _ in demo_flows()[0].iterflow() if job.name == "static")
    return static.__class__(name=name, input_set_generator=static.input_set_generator)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-aiida-"))
    computer, codes = _profile(root)

    from aiida import orm
    from aiida.engine import run_get_node
    from aiida.plugins import CalculationFactory
    from jobflow import Flow, run_locally
    from jobflow import JobStore
    from maggma.stores import MemoryStore

    from crystal_atomate.aiida.calculations import CrystalCalculation
    from crystal_atomate.aiida.executor import use_aiida_executor
    from crystal_atomate.aiida.parameters import parameters_from_generator
    from crystal_atomate.aiida.setup import ensure_code, replay_prepend_text
    from crystal_atomate.demo import DEMO_REPLAY, mgo_structure
    from crystal_atomate.testing.replay_setup import use_replay

    env = use_replay({"bench*": DEMO_REPLAY["static"], "static": DEMO_REPLAY["static"]}, root / "replay")
    os.environ.update(env)
    computer.set_prepend_text(replay_prepend_text(env["CRYSTAL_ATOMATE_REPLAY_PLAN"]))

    add = CalculationFactory("core.arithmetic.add")
    bash = ensure_code("bash", computer, "bash", "core.arithmetic.add")
    bare = _timed(lambda: run_get_node(add, code=bash, x=orm.Int(1), y=orm.Int(2)), args.repeat)

    maker = _static_maker("static")
    from crystal_atomate.aiida.structures import structure_to_node

    structure, _ = structure_to_node(mgo_structure())
    parameters = orm.Dict(parameters_from_generator(maker.input_set_generator, title="static"))
    ours = _timed(lambda: run_get_node(CrystalCalculation, code=codes["crystal"], structure=structure,
                                       parameters=parameters), args.repeat)
    replay_alone = _timed(lambda: _replay_once(root, maker), args.repeat)

    def flow(executor: bool) -> float:
        jobs = [_static_maker(f"bench {i}").make(mgo_structure()) for i in range(args.jobs)]
        work = Flow(jobs)
        if executor:
            work = use_aiida_executor(work)
        store = JobStore(MemoryStore())
        start = time.perf_counter()
        run_locally(work, store=store, create_folders=True, root_dir=root / ("aiida" if executor else "local"),
                    ensure_success=True, log=False)
        return time.perf_counter() - start

    local, on_aiida = flow(False), flow(True)
    print(f"bare core.arithmetic.add CalcJob (median of {args.repeat}): {bare:.2f} s")
    print(f"CrystalCalculation, replay code (median of {args.repeat}): {ours:.2f} s "
          f"(ratio {ours / bare:.2f}; replay executable alone {replay_alone:.2f} s, "
          f"ratio net of it {(ours - replay_alone) / bare:.2f})")
    print(f"{args.jobs}-job flow, run_locally: {local:.1f} s ({local / args.jobs:.2f} s/job)")
    print(f"{args.jobs}-job flow, AiiDA executor: {on_aiida:.1f} s ({on_aiida / args.jobs:.2f} s/job)")
    print(f"provenance cost per job: {(on_aiida - local) / args.jobs:.2f} s")


def _replay_once(root: Path, maker) -> None:
    """The replay executable on its own in a fresh directory: the 'CRYSTAL' part of each run."""
    import subprocess

    from crystal_atomate.demo import mgo_structure

    workdir = Path(tempfile.mkdtemp(dir=root))
    maker.input_set_generator.get_input_set(mgo_structure(), title="static").write_input(workdir)
    with open(workdir / "INPUT") as deck, open(workdir / "OUTPUT", "w") as out:
        subprocess.run(["crystal-atomate-replay"], stdin=deck, stdout=out, cwd=workdir, check=True)


if __name__ == "__main__":
    main()
