"""Run flows through the real FireWorks and jobflow-remote engines from a test.

The engine tests and the engine parity matrix share these: ``rlaunch`` processes on the embedded
LaunchPad, and a jobflow-remote project (written by ``crystal-atomate remote init``) with its
``jf runner`` daemon, both with CRYSTAL replaced by the replay executable. Every wait has a
deadline and every process started here is stopped again, so a hung engine fails a test with its
log instead of hanging CI.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from fireworks import LaunchPad
from jobflow import Flow

from crystal_atomate.engines.embedded_db import stop_server
from crystal_atomate.engines.fireworks import open_launchpad, start_launchers
from crystal_atomate.engines.remote import submit_flows
from crystal_atomate.engines.remote_store import EmbeddedMongoStore
from crystal_atomate.stores.jobstore import CrystalMathJobStore
from crystal_atomate.testing.replay_setup import use_replay

__all__ = [
    "LAUNCH_TIMEOUT",
    "REMOTE_PROJECT",
    "RUNNER_SHUTDOWN_TIMEOUT",
    "RemoteProject",
    "fresh_launchpad",
    "remote_project",
    "run_launchers",
    "shutdown_runner",
    "wait_for_runner",
]

#: Seconds the launchers get to run every Firework of a test's flows.
LAUNCH_TIMEOUT = 180
#: The jobflow-remote project name the tests use (in a temporary projects folder).
REMOTE_PROJECT = "crystal_atomate_test"
#: Seconds a runner daemon gets to shut down: each runner process first finishes the step it is
#: in, and on a loaded 2-core machine ``jf`` alone takes seconds to import.
RUNNER_SHUTDOWN_TIMEOUT = 120


@contextmanager
def fresh_launchpad(db_dir: Path) -> Iterator[LaunchPad]:
    """Open an empty LaunchPad on the embedded database in ``db_dir`` for one test (reset first).

    Its server is stopped on exit. The LaunchPad itself comes from :func:`open_launchpad`
    (``crystal_atomate.engines.fireworks_launchpad.embedded_launchpad`` underneath).
    """
    launchpad = open_launchpad(db_dir=db_dir)
    try:
        launchpad.reset("", require_password=False)
        yield launchpad
    finally:
        stop_server(db_dir)


def run_launchers(
    count: int,
    launchpad_yaml: str | Path,
    launch_dir: Path,
    fworker_yaml: str | Path,
    env: Mapping[str, str],
    timeout: float = LAUNCH_TIMEOUT,
) -> None:
    """Run ``count`` rapidfire launchers until the LaunchPad has nothing left for them.

    Raises ``TimeoutError`` (with the launcher logs) if they are not done within ``timeout``
    seconds and ``RuntimeError`` if one fails; launchers still running then are killed together
    with the CRYSTAL run they started (each has its own process group).
    """
    processes = start_launchers(count, launchpad_yaml, launch_dir, fworker_yaml, env)
    try:
        deadline = time.monotonic() + timeout
        for process in processes:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                raise TimeoutError(
                    f"rlaunch did not finish within {timeout} s:\n{_logs(launch_dir)}"
                ) from None
        if any(process.returncode for process in processes):
            codes = [process.returncode for process in processes]
            raise RuntimeError(f"rlaunch exited with {codes}:\n{_logs(launch_dir)}")
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def _logs(launch_dir: Path) -> str:
    return "\n".join(log.read_text()[-2000:] for log in sorted(launch_dir.glob("launcher-*.log")))


def _runner_log(base_dir: Path) -> str:
    """Return the tail of the runner log of the project in ``base_dir``."""
    log = base_dir / "log" / "runner.log"
    return log.read_text()[-3000:] if log.exists() else "(no runner log)"


def wait_for_runner(
    states: Callable[[], dict],
    wanted: Callable[[dict], bool],
    timeout: float,
    what: str,
    base_dir: Path,
) -> None:
    """Poll ``states()`` until ``wanted`` holds.

    After ``timeout`` seconds raise ``TimeoutError`` with the states and the tail of the runner log
    in ``base_dir``.
    """
    deadline = time.monotonic() + timeout
    current = states()
    while not wanted(current):
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"timed out after {timeout:.0f} s waiting for {what}: {current}\n"
                f"{_runner_log(base_dir)}"
            )
        time.sleep(0.5)
        current = states()


def shutdown_runner(
    jf: list[str],
    env: Mapping[str, str],
    base_dir: Path,
    timeout: float = RUNNER_SHUTDOWN_TIMEOUT,
) -> str:
    """Shut a project's runner daemon down and wait for supervisord and its runners to exit.

    ``jf runner shutdown`` asks supervisord to stop; the wait is on the processes themselves
    (supervisord's pid file in ``base_dir``), not on ``jf runner shutdown --wait``, whose polling
    of the daemon through the queue database and supervisord's XML-RPC costs a loaded machine
    more than the shutdown itself. Processes still there after ``timeout`` seconds are killed.

    Parameters
    ----------
    jf
        The ``jf`` command with its project options, e.g. ``["jf", "-p", name]``.
    env
        The environment that finds the project.
    base_dir
        The project's ``base_dir`` (its ``daemon/supervisord.pid``).
    timeout
        Seconds for the command and the processes together.

    Returns
    -------
    str
        What went wrong, with the tail of the runner log: empty after a clean shutdown (or
        when no daemon runs).
    """
    pid_file = base_dir / "daemon" / "supervisord.pid"
    try:
        daemon = psutil.Process(int(pid_file.read_text().strip()))
        if "supervisord" not in " ".join(daemon.cmdline()):  # a stale file, its pid reused
            return ""
        processes = [daemon, *daemon.children(recursive=True)]
    except (FileNotFoundError, ValueError, psutil.NoSuchProcess):
        return ""
    deadline = time.monotonic() + timeout
    problems = []
    try:
        result = subprocess.run(
            [*jf, "runner", "shutdown"], env=env, capture_output=True, text=True, timeout=timeout
        )
        if result.returncode:
            problems.append(f"jf runner shutdown failed:\n{result.stdout}\n{result.stderr}")
    except subprocess.TimeoutExpired:
        problems.append(f"jf runner shutdown did not return within {timeout:.0f} s")
    _, alive = psutil.wait_procs(processes, timeout=max(deadline - time.monotonic(), 1))
    if alive:
        problems.append(f"still running after {timeout:.0f} s, killed: {alive}")
        for process in alive:
            process.kill()
        psutil.wait_procs(alive, timeout=10)
    return "\n".join([*problems, _runner_log(base_dir)]) if problems else ""


@dataclass
class RemoteProject:
    """A crystal_atomate project in a temporary projects folder, its flows submitted."""

    env: dict[str, str]
    project_file: Path
    db_dir: Path
    base_dir: Path
    store: CrystalMathJobStore
    plan_dir: Path
    flows: dict[str, Flow]
    name: str = REMOTE_PROJECT

    def jf(self, *args: str, timeout: float = 60) -> str:
        """Run ``jf ARGS``; raise ``RuntimeError`` with its output if it fails."""
        result = subprocess.run(
            ["jf", "-p", self.name, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode:
            raise RuntimeError(f"jf {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def states(self) -> dict[tuple[str, int], str]:
        """Return the queue's state of every job, by job name and index."""
        jobs = EmbeddedMongoStore(self.db_dir, collection_name="jobs")
        jobs.connect()
        try:
            docs = jobs.query(properties=["uuid", "index", "state", "job.name"])
            return {(doc["job"]["name"], doc["index"]): doc["state"] for doc in docs}
        finally:
            jobs.close()

    def wait_for(self, wanted: Callable[[dict], bool], timeout: float, what: str) -> None:
        """Poll :meth:`states` until ``wanted(states)`` (see :func:`wait_for_runner`)."""
        wait_for_runner(self.states, wanted, timeout, what, self.base_dir)

    def ui_rows(self) -> dict[str, tuple]:
        """Return the UI's ``jobs`` rows by name: (status, final_energy, workflow_id)."""
        with sqlite3.connect(self.store.db_file) as conn:
            rows = conn.execute("SELECT name, status, final_energy, workflow_id FROM jobs")
            return {name: tuple(rest) for name, *rest in rows.fetchall()}

    def shutdown_runner(self) -> str:
        """Shut the runner daemon down (see :func:`shutdown_runner`); return what went wrong."""
        return shutdown_runner(["jf", "-p", self.name], self.env, self.base_dir)


def _init_project(
    root: Path, name: str, env: dict[str, str], replay_env: dict[str, str], runner_delay: float
) -> Path:
    """Write the project file ``crystal-atomate remote init`` writes, by the same library calls.

    It goes into the temporary projects folder.
    """
    from crystal_atomate.engines.remote import project_config, runner_delays, write_project

    config = project_config(
        name=name,
        db_dir=root / "db",
        ui_db_file=root / ".crystal_tui.db",
        work_dir=root / "work",
        base_dir=root / "base",
        env=replay_env,
        runner=runner_delays(runner_delay),
    )
    return write_project(config, folder=env["JFREMOTE_PROJECTS_FOLDER"])


@contextmanager
def remote_project(
    root: Path,
    flows: Mapping[str, Flow],
    plan: Mapping[str, Any],
    name: str = REMOTE_PROJECT,
    runner_delay: float = 1,
) -> Iterator[RemoteProject]:
    """Set up a project in ``root`` replaying ``plan``, the queue reset and ``flows`` submitted.

    The plan is exported by the project's ``crystal`` exec config. The runner is not started yet (a
    test may want to see the QUEUED rows first). On exit the runner is shut down and the embedded
    database server stopped.

    ``runner_delay`` (seconds between the runner's steps) is short: replayed jobs take a second.
    """
    env = {**os.environ, "JFREMOTE_PROJECTS_FOLDER": str(root / "projects")}
    replay_env = use_replay(plan, root / "replay")
    project_file = _init_project(root, name, env, replay_env, runner_delay)
    store = CrystalMathJobStore(root / ".crystal_tui.db")
    remote = RemoteProject(
        env, project_file, root / "db", root / "base", store, root / "replay", dict(flows), name
    )
    try:
        remote.jf("admin", "reset", "-y")
        submit_flows(flows.values(), project_file)
        yield remote
    finally:
        remote.shutdown_runner()
        stop_server(remote.db_dir)
