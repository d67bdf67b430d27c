"""The warm executor (``crystal_atomate.engines.remote_exec``) with real processes: the client as
jobflow-remote's shell worker runs it (``execution_cmd`` with the run dir, output redirected to
``queue.out``/``queue.err``), real servers forked from, real job folders read by jobflow-remote's
``run_remote_job``. The jobs are a replayed crystal_atomate SCF and stdlib callables (a shell
command, ``sys.exit``, ``os._exit``) that show output, exit status and cancelling plainly.

Every server started here lives in a per-test folder and is stopped (and checked gone) at the end.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from jobflow import Job, JobStore
from maggma.stores import JSONStore
from monty.serialization import dumpfn, loadfn

from crystal_atomate.demo import DEMO_REPLAY, demo_flows, nio_structure
from crystal_atomate.engines.remote_exec import (
    EXEC_DIR_ENV,
    execution_command,
    running_servers,
    stop_servers,
)
from crystal_atomate.testing.replay_setup import use_replay

pytestmark = pytest.mark.timeout(180)

NIO_CONVERGED = DEMO_REPLAY["NiO static"][1]
NIO_ENERGY = -3.1282821705429e03


@pytest.fixture
def exec_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment of a job whose servers live in a fresh folder; they are stopped after."""
    folder = tmp_path_factory.mktemp("exec")
    yield {**os.environ, EXEC_DIR_ENV: str(folder)}
    stop_servers(str(folder))
    assert running_servers(str(folder)) == {}
    assert not [
        p
        for p in psutil.process_iter(["cmdline"])
        if str(folder) in " ".join(p.info["cmdline"] or [])
    ]


def _run_dir(path: Path, job: Job) -> Path:
    """A job folder as jobflow-remote uploads it: job and file store in ``jfremote_in.json``."""
    path.mkdir(parents=True)
    store = JobStore(JSONStore(str(path / "remote_job_data.json"), read_only=False, key="uuid"))
    dumpfn({"job": job, "store": store}, path / "jfremote_in.json")
    return path


def _client(run_dir: Path, env: dict[str, str], command: str | None = None) -> subprocess.Popen:
    """The worker's command on ``run_dir``, output to ``queue.out``/``queue.err`` as the shell
    scheduler redirects it."""
    argv = shlex.split((command or execution_command()).format(run_dir))
    with open(run_dir / "queue.out", "wb") as out, open(run_dir / "queue.err", "wb") as err:
        return subprocess.Popen(argv, cwd=run_dir, env=env, stdout=out, stderr=err)


def _run(run_dir: Path, env: dict[str, str], command: str | None = None) -> int:
    return _client(run_dir, env, command).wait(timeout=120)


def _logs(env: dict[str, str]) -> str:
    return "".join(log.read_text() for log in sorted(Path(env[EXEC_DIR_ENV]).glob("*.log")))


def _shell_job(script: str) -> Job:
    return Job(os.system, function_args=(script,), name="shell")


def _wait_until(condition: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return found


def _processes(marker: str) -> list[psutil.Process]:
    return [
        p for p in psutil.process_iter(["cmdline"]) if marker in " ".join(p.info["cmdline"] or [])
    ]


def test_crystal_jobs_run_on_one_warm_server(tmp_path: Path, exec_env: dict[str, str]) -> None:
    (template,) = demo_flows()[1].jobs
    maker = dataclasses.replace(template.maker, name="warm static", max_restarts=0)
    fixed = {**NIO_CONVERGED, "ignore": [*NIO_CONVERGED["ignore"], "scf.guessp"]}
    env = {**exec_env, **use_replay({"warm static": fixed}, tmp_path / "replay")}
    for name in ("first", "second"):
        run_dir = _run_dir(tmp_path / name, maker.make(nio_structure()))
        assert _run(run_dir, env) == 0, (run_dir / "queue.err").read_text()
        out = loadfn(run_dir / "jfremote_out.json")
        assert out["error"] is None and out["response"] is not None
        store = JSONStore(str(run_dir / "remote_job_data.json"), key="uuid")
        store.connect()
        doc = store.query_one({"name": "warm static"})["output"]
        assert doc["state"] == "successful"
        assert doc["output"]["energy_hartree"] == pytest.approx(NIO_ENERGY, abs=1e-8)
        assert "Traceback" not in (run_dir / "queue.err").read_text()
    (pid,) = running_servers(exec_env[EXEC_DIR_ENV]).values()
    logs = _logs(exec_env)
    assert logs.count("serving on") == 1 and logs.count(f"[{pid}] job") == 4


def test_output_and_exit_status_reach_the_shell(tmp_path: Path, exec_env: dict[str, str]) -> None:
    shell = _run_dir(tmp_path / "shell", _shell_job("echo to-stdout; echo to-stderr >&2"))
    assert _run(shell, exec_env) == 0
    assert "to-stdout" in (shell / "queue.out").read_text()
    assert "to-stderr" in (shell / "queue.err").read_text()
    assert loadfn(shell / "jfremote_out.json")["response"].output is None
    exits = _run_dir(tmp_path / "exit", Job(sys.exit, function_args=(3,)))
    assert _run(exits, exec_env) == 3
    assert _run(exits, exec_env, "jf -fe execution run {}") == 3  # the same as without the server
    hard = _run_dir(tmp_path / "hard", Job(os._exit, function_args=(7,)))
    assert _run(hard, exec_env) == 7


@pytest.mark.parametrize("killed", ["client", "shell"])
def test_killing_the_client_or_its_shell_kills_the_job(
    tmp_path: Path, exec_env: dict[str, str], killed: str
) -> None:
    marker = f"sleep 97.{os.getpid()}"
    run_dir = _run_dir(tmp_path / "sleep", _shell_job(marker))
    if killed == "client":
        target = _client(run_dir, exec_env)
    else:  # jobflow-remote cancels a shell job with kill -9 on its bash script
        command = execution_command().format(run_dir)
        target = subprocess.Popen(["bash", "-c", f"{command}; true"], cwd=run_dir, env=exec_env)
    _wait_until(lambda: _processes(marker), "the job to start")
    target.send_signal(signal.SIGKILL)
    target.wait(timeout=10)
    _wait_until(lambda: not _processes(marker), "the job to die", timeout=15)
    _wait_until(lambda: "exited -9" in _logs(exec_env), "the server to reap the job", timeout=15)


def test_a_changed_environment_gets_its_own_server(
    tmp_path: Path, exec_env: dict[str, str]
) -> None:
    job = _shell_job("true")
    first = {**exec_env, "CRYSTAL_ATOMATE_TEST_SETTING": "a", "PWD": "/", "SHLVL": "1"}
    same = {**first, "PWD": str(tmp_path), "SHLVL": "7"}
    changed = {**first, "CRYSTAL_ATOMATE_TEST_SETTING": "b"}
    for index, env in enumerate([first, same, changed]):
        assert _run(_run_dir(tmp_path / f"job{index}", job), env) == 0
    assert len(running_servers(exec_env[EXEC_DIR_ENV])) == 2
    assert _logs(exec_env).count(" started: ") == 3


def test_racing_clients_start_one_server(tmp_path: Path, exec_env: dict[str, str]) -> None:
    clients = [
        _client(_run_dir(tmp_path / f"job{i}", _shell_job("true")), exec_env) for i in range(3)
    ]
    assert [client.wait(timeout=120) for client in clients] == [0, 0, 0]
    assert len(running_servers(exec_env[EXEC_DIR_ENV])) == 1
    assert _logs(exec_env).count("serving on") == 1


def test_changed_code_retires_the_server(tmp_path: Path, exec_env: dict[str, str]) -> None:
    """A module the server imported changes: the next job gets a new server with the new code."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("")
    env = {**exec_env, "PYTHONPATH": str(site)}
    assert _run(_run_dir(tmp_path / "before", _shell_job("true")), env) == 0
    (old,) = running_servers(exec_env[EXEC_DIR_ENV]).values()
    os.utime(site / "sitecustomize.py", ns=(0, 0))
    assert _run(_run_dir(tmp_path / "after", _shell_job("true")), env) == 0
    (new,) = running_servers(exec_env[EXEC_DIR_ENV]).values()
    assert new != old
    assert f"[{old}] stopped (a module file changed)" in _logs(exec_env)


def test_falls_back_to_running_in_the_client(tmp_path: Path, exec_env: dict[str, str]) -> None:
    """A socket path too long for Linux: no server can listen, the client runs the job itself."""
    too_long = tmp_path / ("x" * 120)
    env = {**exec_env, EXEC_DIR_ENV: str(too_long)}
    run_dir = _run_dir(tmp_path / "job", _shell_job("echo ran"))
    assert _run(run_dir, env) == 0
    assert "running the job in this process" in (run_dir / "queue.err").read_text()
    assert "ran" in (run_dir / "queue.out").read_text()
    assert loadfn(run_dir / "jfremote_out.json")["error"] is None
    assert running_servers(str(too_long)) == {}
