"""The kill-under-load loop: SIGKILL the embedded database server while FireWorks launchers work.

One trial runs a small fan-out/fan-in workflow of quick ``ScriptTask`` Fireworks with concurrent
``rlaunch rapidfire`` launchers, kills the server with SIGKILL once a few Fireworks are done,
restarts it on the same database directory after a pause and lets the launchers finish by
themselves (no ``detect_lostruns``, no ``lpad admin unlock``). A clean trial ends with every
Firework COMPLETED, each script run exactly once, no workflow left locked and every launcher
exited 0. ``tests/engines/test_embedded_db.py`` runs a few trials in CI;
``python -m crystal_atomate.testing.server_kills --trials N`` runs the larger loop whose figures
are in ``docs/embedded-database.md``.
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fireworks import Firework, LaunchPad, ScriptTask, Workflow

from crystal_atomate.engines.embedded_db import (
    connect,
    ensure_server,
    is_running,
    server_pid,
    stop_server,
)
from crystal_atomate.engines.fireworks import launchpad_file, open_launchpad, start_launchers

__all__ = ["KillTrial", "kill_trial", "main"]

_DATABASE = "fireworks"


@dataclass
class KillTrial:
    """What one trial left behind.

    Attributes
    ----------
    states
        How many Fireworks ended in each state.
    runs
        How many times each Firework's script ran, by Firework name.
    locked
        Workflows still ``locked`` after the launchers exited.
    launcher_codes
        Exit code of every launcher (None: killed at the deadline).
    completed_at_kill
        Fireworks COMPLETED when the server was killed (0 means the kill came too early to test).
    seconds
        Wall time of the trial.
    """

    states: dict[str, int]
    runs: dict[str, int]
    locked: int
    launcher_codes: list[int | None]
    completed_at_kill: int
    seconds: float
    logs: str = field(default="", repr=False)

    @property
    def clean(self) -> bool:
        """Every Firework COMPLETED once, nothing locked, every launcher exited 0."""
        total = sum(self.states.values())
        return (
            self.states == {"COMPLETED": total}
            and set(self.runs.values()) == {1}
            and len(self.runs) == total
            and self.locked == 0
            and self.launcher_codes == [0] * len(self.launcher_codes)
        )


def _workflow(runs_log: Path, width: int, sleep: float) -> Workflow:
    """Build a root, ``width`` parallel Fireworks and a last one; each completion takes the lock."""

    def firework(name: str) -> Firework:
        return Firework(
            ScriptTask.from_str(f"sleep {sleep:g}; echo {name} >> {runs_log}"), name=name
        )

    root, last = firework("root"), firework("last")
    middle = [firework(f"fw{i}") for i in range(width)]
    links = {root: middle, **{fw: [last] for fw in middle}}
    return Workflow([root, *middle, last], links_dict=links, name="kill-under-load")


def _completed(db_dir: Path) -> int:
    with connect(db_dir, serverSelectionTimeoutMS=2_000) as client:
        return client[_DATABASE].fireworks.count_documents({"state": "COMPLETED"})


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def kill_trial(
    root: Path,
    width: int = 8,
    launchers: int = 2,
    pause: float = 3.0,
    kill_after: int = 3,
    sleep: float = 0.0,
    timeout: float = 120.0,
) -> KillTrial:
    """Run one kill-under-load trial in the empty folder ``root``.

    Parameters
    ----------
    root
        Folder for the database, the launch folders and the scripts' log.
    width
        Parallel Fireworks between the first and the last one.
    launchers
        Concurrent ``rlaunch rapidfire`` processes.
    pause
        Seconds between the SIGKILL of the server and its restart.
    kill_after
        Kill the server once this many Fireworks are COMPLETED.
    sleep
        Seconds each Firework's script sleeps.
    timeout
        Seconds the launchers get to finish after the restart; still running then, they are killed.

    Returns
    -------
    KillTrial
        The states, script runs, locks and launcher exit codes the trial left behind.

    Raises
    ------
    TimeoutError
        If the launchers never complete ``kill_after`` Fireworks (within ``timeout``).
    """
    start = time.monotonic()
    db_dir, runs_log, launch_dir = root / "db", root / "runs.log", root / "launches"
    launchpad: LaunchPad = open_launchpad(db_dir=db_dir)
    launchpad.add_wf(_workflow(runs_log, width, sleep))
    processes = start_launchers(launchers, launchpad_file(db_dir=db_dir), launch_dir)
    try:
        _wait(
            lambda: _completed(db_dir) >= kill_after, timeout, f"{kill_after} completed Fireworks"
        )
        completed_at_kill = _completed(db_dir)
        pid = server_pid(db_dir)
        if pid is None:
            raise RuntimeError(f"no embedded database server holds {db_dir}")
        os.kill(pid, signal.SIGKILL)
        _wait(lambda: not is_running(db_dir), 10, "the killed server to go away")
        time.sleep(pause)
        ensure_server(db_dir)
        deadline = time.monotonic() + timeout
        for process in processes:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
    with connect(db_dir) as client:
        database = client[_DATABASE]
        states = collections.Counter(
            doc["state"] for doc in database.fireworks.find({}, {"state": 1})
        )
        locked = database.workflows.count_documents({"locked": {"$exists": True}})
    runs = collections.Counter(runs_log.read_text().split()) if runs_log.exists() else {}
    logs = "\n".join(log.read_text()[-3000:] for log in sorted(launch_dir.glob("launcher-*.log")))
    return KillTrial(
        dict(states),
        dict(runs),
        locked,
        [process.returncode for process in processes],
        completed_at_kill,
        time.monotonic() - start,
        logs,
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m crystal_atomate.testing.server_kills --trials N``: print one line per trial.

    Then print the count of clean ones; exit 1 unless every trial was clean.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--launchers", type=int, default=2)
    parser.add_argument("--pause", type=float, default=3.0)
    args = parser.parse_args(argv)
    clean = 0
    for trial in range(args.trials):
        with tempfile.TemporaryDirectory(prefix="kill-under-load-") as folder:
            try:
                result = kill_trial(Path(folder), args.width, args.launchers, args.pause)
            finally:
                stop_server(Path(folder) / "db")
        clean += result.clean
        print(
            f"trial {trial + 1}: clean={result.clean} states={result.states} "
            f"locked={result.locked} runs>1={sum(n > 1 for n in result.runs.values())} "
            f"launchers={result.launcher_codes} "
            f"completed at kill={result.completed_at_kill} {result.seconds:.1f} s",
            flush=True,
        )
    print(f"{clean} of {args.trials} trials clean")
    return 0 if clean == args.trials else 1


if __name__ == "__main__":
    sys.exit(main())
