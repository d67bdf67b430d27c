"""Throughput of crystal_atomate static jobs through run_locally, FireWorks and jobflow-remote.

Run: ``python benchmarks/bench_engines.py [--n 500] [--plain-executor] [--runner-delay 1]
[--json results.json]``

Every engine runs the same ``--n`` one-job flows: the demo's NiO static SCF (UHF, replayed from the
recorded converged run, so each job is a real CRYSTAL-replay subprocess, a real output parse and a
real task document) into its own ``CrystalMathJobStore``, timed with ``time.perf_counter`` from
the first submission to the last stored document:

* ``run_locally``: one flow after the other in this process (the reference);
* FireWorks, 1 launcher: ``add_flows`` to the embedded LaunchPad, one ``rlaunch rapidfire``;
* FireWorks, 2 launchers: the same with two concurrent launchers;
* jobflow-remote, local worker: ``submit_flows`` to the embedded queue, the real ``jf runner``
  daemon (``--runner-delay``, default 1 s polling), a local shell worker running 1 or 2 jobs at a
  time, each job forked from the warm executor's server (``crystal_atomate.engines.remote_exec``;
  its start-up is timed); with ``--plain-executor`` also one worker with jobflow-remote's own ``jf
  -fe execution run``.

Engine overhead per job is measured where it is unambiguous, on one worker:
``(engine wall time - run_locally wall time) / n``. With two workers on this 2-core machine the
figure reported is throughput; two replays then share the cores with the engine's own processes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from jobflow import Flow, run_locally

from crystal_atomate.demo import DEMO_REPLAY, demo_flows, nio_structure
from crystal_atomate.engines.embedded_db import stop_server
from crystal_atomate.engines.fireworks import (
    add_flows,
    launchpad_file,
    open_launchpad,
    start_launchers,
)
from crystal_atomate.engines.remote import (
    project_config,
    runner_delays,
    submit_flows,
    write_project,
)
from crystal_atomate.engines.remote_exec import EXEC_DIR_ENV, stop_servers
from crystal_atomate.engines.remote_store import EmbeddedMongoStore
from crystal_atomate.stores.jobstore import CrystalMathJobStore
from crystal_atomate.testing.replay_setup import use_replay

JOB_NAME = "bench static"
_RECOVERED = DEMO_REPLAY["NiO static"][1]
#: The converged NiO recording, for a first-attempt deck (no GUESSP, the demo's first mixing).
REPLAY = {JOB_NAME: {**_RECOVERED, "ignore": [*_RECOVERED["ignore"], "scf.guessp"]}}
TIMEOUT = 4 * 3600


def static_flows(n: int) -> list[Flow]:
    """``n`` one-job flows of the NiO static SCF (no restarts: the replay gives the converged
    run)."""
    (template,) = demo_flows()[1].jobs
    maker = dataclasses.replace(template.maker, name=JOB_NAME, max_restarts=0)
    structure = nio_structure()
    return [Flow([maker.make(structure)], name=f"{JOB_NAME} {i}") for i in range(n)]


def _successful(store: CrystalMathJobStore, n: int) -> None:
    store.connect()
    done = store.count({"name": JOB_NAME, "output.state": "successful"})
    store.close()
    if done != n:
        raise RuntimeError(f"{done} of {n} jobs stored as successful")


def bench_local(root: Path, n: int, env: dict[str, str]) -> tuple[float, float]:
    os.environ.update(env)
    store = CrystalMathJobStore(root / "ui.db")
    flows = static_flows(n)
    start = time.perf_counter()
    for flow in flows:
        run_locally(flow, store=store, create_folders=True, root_dir=root / "runs", log=False)
    elapsed = time.perf_counter() - start
    _successful(store, n)
    return elapsed, 0.0


def bench_fireworks(
    root: Path, n: int, env: dict[str, str], launchers: int
) -> tuple[float, float]:
    """Wall time from the first ``add_flows`` to the launchers' exit, and the adding alone."""
    db_dir = root / "db"
    store = CrystalMathJobStore(root / "ui.db")
    flows = static_flows(n)
    try:
        launchpad = open_launchpad(db_dir=db_dir)
        launchpad.reset("", require_password=False)
        start = time.perf_counter()
        add_flows(flows, launchpad, store)
        added = time.perf_counter() - start
        pad_file = launchpad_file(db_dir=db_dir)
        processes = start_launchers(launchers, pad_file, root / "launches", env=env)
        for process in processes:
            process.wait(timeout=TIMEOUT)
        elapsed = time.perf_counter() - start
    finally:
        stop_server(db_dir)
    _successful(store, n)
    return elapsed, added


def _jf(env: dict[str, str], *args: str) -> None:
    subprocess.run(["jf", *args], env=env, check=True, capture_output=True, timeout=300)


def _wait(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.5)


def bench_remote(
    root: Path, n: int, env: dict[str, str], max_jobs: int, delay: float, warm: bool = True
) -> tuple[float, float]:
    """Wall time from the first submission to the last job COMPLETED, and the submitting alone."""
    name = "bench"
    config = project_config(
        name=name,
        db_dir=root / "db",
        ui_db_file=root / "ui.db",
        work_dir=root / "work",
        base_dir=root / "base",
        env=env,
        runner=runner_delays(delay),
        max_jobs=max_jobs,
        warm_executor=warm,
    )
    project_file = write_project(config, root / "projects")
    jf_env = {
        **os.environ,
        "JFREMOTE_PROJECTS_FOLDER": str(root / "projects"),
        "JFREMOTE_PROJECT": name,
        EXEC_DIR_ENV: str(root / "exec"),
    }
    queue = EmbeddedMongoStore(root / "db", collection_name="jobs")
    flows = static_flows(n)
    try:
        _jf(jf_env, "admin", "reset", "-y")
        start = time.perf_counter()
        submit_flows(flows, project_file)
        submitted = time.perf_counter() - start
        _jf(jf_env, "runner", "start")
        queue.connect()
        _wait(lambda: queue.count({"state": "COMPLETED"}) == n, f"{n} jobs COMPLETED")
        elapsed = time.perf_counter() - start
    finally:
        queue.close()
        _jf(jf_env, "runner", "shutdown", "--wait")
        stop_servers(str(root / "exec"))
        stop_server(root / "db")
    _successful(CrystalMathJobStore(root / "ui.db"), n)
    return elapsed, submitted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="static jobs per engine")
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument(
        "--runner-delay", type=float, default=1.0, help="seconds between the runner's polls"
    )
    parser.add_argument(
        "--plain-executor",
        action="store_true",
        help="also run jobflow-remote with `jf -fe execution run` per job (no warm executor)",
    )
    args = parser.parse_args()
    n, delay = args.n, args.runner_delay
    with tempfile.TemporaryDirectory(prefix="bench-engines-") as tmp:
        base = Path(tmp)
        env = use_replay(REPLAY, base / "replay")
        runs: dict[str, tuple[int, Callable[[Path], tuple[float, float]]]] = {
            "run_locally": (1, lambda root: bench_local(root, n, env)),
            "FireWorks, 1 launcher": (1, lambda root: bench_fireworks(root, n, env, 1)),
            "FireWorks, 2 launchers": (2, lambda root: bench_fireworks(root, n, env, 2)),
            "jobflow-remote, 1 job at a time": (
                1,
                lambda root: bench_remote(root, n, env, 1, delay),
            ),
            "jobflow-remote, 2 jobs at a time": (
                2,
                lambda root: bench_remote(root, n, env, 2, delay),
            ),
        }
        if args.plain_executor:
            runs["jobflow-remote, plain jf execution run, 1 job at a time"] = (
                1,
                lambda root: bench_remote(root, n, env, 1, delay, warm=False),
            )
        results = {}
        for index, (label, (workers, run)) in enumerate(runs.items()):
            root = base / f"engine-{index}"
            root.mkdir()
            elapsed, submit = run(root)
            results[label] = {"workers": workers, "n": n, "seconds": elapsed, "submit": submit}
            rate = 60 * n / elapsed
            print(f"{label}: {n} jobs in {elapsed:.1f} s ({rate:.1f} jobs/min)", flush=True)
    reference = results["run_locally"]["seconds"]
    print("\n| engine | workers | jobs | wall time | of which submitting | jobs/minute | s/job "
          "| overhead/job vs run_locally |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, result in results.items():
        seconds = result["seconds"]
        overhead = f"{(seconds - reference) / n:+.2f} s" if result["workers"] == 1 else "—"
        print(
            f"| {label} | {result['workers']} | {n} | {seconds:.1f} s | {result['submit']:.1f} s "
            f"| {60 * n / seconds:.1f} | {seconds / n:.2f} | {overhead} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
