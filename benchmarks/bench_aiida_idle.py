"""Idle time of AiiDA work chains: the MgO relax -> static flow in flow mode (one JobflowWorkChain,
two CalcJobs in two waves), on the profile ``crystal-atomate aiida setup`` makes (core.sqlite_dos +
ZeroMQ broker, replay code), run three ways:

- in process, with the poll interval setup sets (1 s);
- in process, with AiiDA's default poll interval (60 s), i.e. what a profile not made or found by
  setup does, and what every setup profile did before;
- submitted to the daemon (1 worker), which learns of finished CalcJobs from the broker.

Each mode runs in its own process on a fresh profile in a temporary AIIDA_PATH (wall seconds, from
the call to the finished work chain).

    python benchmarks/bench_aiida_idle.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = ("in process, poll 1 s", "in process, poll 60 s", "daemon")


def _run(mode: str, root: Path) -> float:
    """One mode, in this process (AIIDA_PATH already points at ``root``)."""
    from aiida import orm
    from aiida.engine.daemon.client import DaemonClient
    from jobflow import Flow

    from crystal_atomate.aiida.flow_mode import run_flow, submit_flow
    from crystal_atomate.aiida.setup import (
        ensure_codes,
        ensure_localhost,
        ensure_profile,
        replay_prepend_text,
    )
    from crystal_atomate.demo import DEMO_REPLAY, mgo_makers, mgo_structure
    from crystal_atomate.stores.jobstore import CrystalMathJobStore
    from crystal_atomate.testing.replay_setup import replay_command, use_replay

    profile = ensure_profile("bench")
    if mode == "in process, poll 60 s":
        from aiida.manage import get_manager
        from aiida.manage.configuration import get_config

        config = get_config()
        profile.set_option("runner.poll.interval", 60)
        config.update_profile(profile)
        config.store()
        get_manager().unload_profile()
        get_manager().load_profile("bench")
    computer = ensure_localhost("localhost", root / "run")
    ensure_codes(computer, replay_command(), replay_command())
    plan = use_replay(
        {"relax": DEMO_REPLAY["relax"], "static": DEMO_REPLAY["static"]}, root / "replay"
    )
    computer.set_prepend_text(replay_prepend_text(plan["CRYSTAL_ATOMATE_REPLAY_PLAN"]))
    makers = mgo_makers()
    relax = makers["relax"].make(mgo_structure())
    static = makers["static"].make(relax.output.structure, prev_dir=relax.output.dir_name)
    flow = Flow([relax, static], name="relax static")
    store = CrystalMathJobStore(root / "jobs.db")
    if mode == "daemon":
        from aiida.manage.configuration import get_config

        profile.set_option(
            "daemon.timeout", 60
        )  # a busy machine starts workers slowly (default 2 s)
        get_config().update_profile(profile)
        get_config().store()
        client = DaemonClient(profile)
        client.start_daemon(number_workers=1)
        try:
            start = time.perf_counter()
            node = submit_flow(flow, store=store, root_dir=root / "flows")
            while not orm.load_node(node.pk).is_terminated:
                time.sleep(0.2)
            elapsed = time.perf_counter() - start
        finally:
            client.stop_daemon(wait=True)
        node = orm.load_node(node.pk)
    else:
        start = time.perf_counter()
        node = run_flow(flow, store=store, root_dir=root / "flows")
        elapsed = time.perf_counter() - start
    assert node.is_finished_ok, node.exit_message
    return elapsed


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--mode":
        print(f"{_run(sys.argv[2], Path(os.environ['AIIDA_PATH'])):.1f}")
        return
    print("| mode | relax -> static, flow mode (s) |\n|---|---|")
    for mode in [
        m for m in MODES if len(sys.argv) < 3 or sys.argv[1] != "--only" or m == sys.argv[2]
    ]:
        with tempfile.TemporaryDirectory() as root:
            env = dict(os.environ, AIIDA_PATH=root)
            env.pop("AIIDA_PROFILE", None)
            result = subprocess.run(
                [sys.executable, __file__, "--mode", mode],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            seconds = (
                result.stdout.strip().splitlines()[-1]
                if result.returncode == 0
                else "failed: " + (result.stderr.strip().splitlines() or ["?"])[-1]
            )
            print(f"| {mode} | {seconds} |", flush=True)


if __name__ == "__main__":
    main()
