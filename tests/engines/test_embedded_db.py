"""The embedded database under real FireWorks processes: concurrent ``rlaunch`` never runs a
Firework twice, and a killed launcher (or server) loses no finished work and can be rerun."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fireworks import Firework, LaunchPad, ScriptTask, Workflow

from crystal_atomate.engines.embedded_db import (
    connect,
    ensure_server,
    is_running,
    mongodb_uri,
    stop_server,
)
from crystal_atomate.engines.fireworks_launchpad import embedded_launchpad, write_launchpad_yaml

pytestmark = [
    pytest.mark.timeout(120),
    # FireWorks imports its own test modules while looking up task classes by name.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnknownMarkWarning"),
]

Spawn = Callable[..., subprocess.Popen]
EXAMPLES = Path(__file__).parents[2] / "stores" / "fireworks"


@pytest.fixture
def db_dir(tmp_path: Path) -> Iterator[Path]:
    """A database directory whose server is always stopped afterwards."""
    path = tmp_path / "db"
    yield path
    stop_server(path)


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start processes in their own process group; kill whatever is left of them at the end."""
    started: list[subprocess.Popen] = []

    def _spawn(args: list[str], cwd: Path) -> subprocess.Popen:
        cwd.mkdir(parents=True, exist_ok=True)
        with open(cwd / "output.log", "ab") as log:
            proc = subprocess.Popen(
                args, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        started.append(proc)
        return proc

    yield _spawn
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def _fresh_launchpad(db_dir: Path) -> LaunchPad:
    launchpad = embedded_launchpad(db_dir, strm_lvl="ERROR")
    launchpad.reset("", require_password=False)
    return launchpad


def _output(proc_dir: Path) -> str:
    return (proc_dir / "output.log").read_text()


def test_server_start_is_idempotent_across_processes(db_dir: Path) -> None:
    starters = [
        subprocess.Popen(
            [sys.executable, "-m", "crystal_atomate.engines.embedded_db", "start", str(db_dir)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    uris = {proc.communicate(timeout=60)[0].strip() for proc in starters}
    assert uris == {mongodb_uri(db_dir)}
    assert is_running(db_dir)
    assert (db_dir / "server.lock").read_text().strip().isdigit()
    with connect(db_dir) as client:
        client.test.items.insert_one({"x": 1})
        assert client.test.items.count_documents({}) == 1
    assert stop_server(db_dir)
    assert not is_running(db_dir)
    assert not stop_server(db_dir)


def test_indexes_rebuilt_after_a_reset_survive_a_server_restart(db_dir: Path) -> None:
    """``jf admin reset`` and ``lpad reset`` drop a collection and its indexes, then build them
    again; after a restart the unique ones must still refuse a duplicate job id, and queries keep
    their index."""
    from pymongo.errors import DuplicateKeyError

    def jobs():
        return connect(db_dir)["queue"]["jobs"]

    before = jobs()
    before.insert_one({"db_id": "0"})
    before.create_index("state")
    before.drop()
    before.drop_indexes()
    before.create_index("db_id", unique=True)
    before.create_index("state")
    before.insert_one({"db_id": "1", "state": "READY"})
    rebuilt = sorted(before.index_information())
    before.database.client.close()
    stop_server(db_dir)

    after = jobs()
    assert sorted(after.index_information()) == rebuilt == ["_id_", "db_id_1", "state_1"]
    with pytest.raises(DuplicateKeyError):
        after.insert_one({"db_id": "1"})
    after.drop_indexes()
    after.database.client.close()
    stop_server(db_dir)
    assert sorted(jobs().index_information()) == ["_id_"]


def test_concurrent_rlaunch_runs_every_firework_exactly_once(
    db_dir: Path, tmp_path: Path, spawn: Spawn
) -> None:
    n_fireworks, n_launchers = 24, 3
    launchpad = _fresh_launchpad(db_dir)
    runs = tmp_path / "runs.log"
    fireworks = [
        Firework(ScriptTask.from_str(f"sleep 0.25; echo fw{i} >> {runs}"), name=f"fw{i}")
        for i in range(n_fireworks)
    ]
    launchpad.add_wf(Workflow(fireworks, name="concurrency"))
    yaml_path = write_launchpad_yaml(db_dir, tmp_path / "my_launchpad.yaml", strm_lvl="INFO")

    launchers = [
        spawn(["rlaunch", "-l", str(yaml_path), "-s", "rapidfire"], tmp_path / f"launcher{k}")
        for k in range(n_launchers)
    ]
    _wait_for(lambda: all(p.poll() is not None for p in launchers), 90, "the rlaunch processes")

    for k, proc in enumerate(launchers):
        assert proc.returncode == 0, _output(tmp_path / f"launcher{k}")
    executions = collections.Counter(runs.read_text().split())
    assert executions == {f"fw{i}": 1 for i in range(n_fireworks)}
    states = {
        fw["fw_id"]: fw["state"] for fw in launchpad.fireworks.find({}, {"fw_id": 1, "state": 1})
    }
    assert set(states.values()) == {"COMPLETED"} and len(states) == n_fireworks
    launches = list(launchpad.launches.find({}, {"fw_id": 1, "launch_dir": 1}))
    assert sorted(launch["fw_id"] for launch in launches) == sorted(states)
    launcher_dirs = {Path(launch["launch_dir"]).parent.name for launch in launches}
    assert len(launcher_dirs) >= 2, "the launchers did not overlap, so nothing was tested"
    assert launchpad.get_wf_summary_dict(1)["state"] == "COMPLETED"


def test_killed_launcher_keeps_finished_work_and_lost_run_is_rerun(
    db_dir: Path, tmp_path: Path, spawn: Spawn
) -> None:
    launchpad = _fresh_launchpad(db_dir)
    runs, marker = tmp_path / "runs.log", tmp_path / "started-once"
    quick = [
        Firework(ScriptTask.from_str(f"echo q{i} >> {runs}"), name=f"q{i}", spec={"_priority": 10})
        for i in range(3)
    ]
    # Sleeps only on its first run, so the rerun after the kill finishes at once.
    slow_script = f"if [ ! -e {marker} ]; then touch {marker}; sleep 120; fi; echo slow >> {runs}"
    slow = Firework(ScriptTask.from_str(slow_script), name="slow", spec={"_priority": 1})
    launchpad.add_wf(Workflow([*quick, slow], name="kill"))
    yaml_path = write_launchpad_yaml(db_dir, tmp_path / "my_launchpad.yaml")
    slow_id = launchpad.fireworks.find_one({"name": "slow"})["fw_id"]

    launcher = spawn(["rlaunch", "-l", str(yaml_path), "-s", "rapidfire"], tmp_path / "launcher")
    _wait_for(marker.exists, 60, "the slow firework to start")
    _wait_for(lambda: launchpad.get_fw_by_id(slow_id).state == "RUNNING", 30, "state RUNNING")
    os.killpg(launcher.pid, signal.SIGKILL)
    launcher.wait(timeout=10)

    # A crash of the database server too must not lose what was acknowledged.
    server_pid = int((db_dir / "server.lock").read_text())
    os.kill(server_pid, signal.SIGKILL)
    _wait_for(lambda: not is_running(db_dir), 10, "the killed server to go away")
    ensure_server(db_dir)

    assert sorted(runs.read_text().split()) == ["q0", "q1", "q2"]
    states = {fw.name: fw.state for fw in map(launchpad.get_fw_by_id, launchpad.get_fw_ids())}
    assert states == {**{f"q{i}": "COMPLETED" for i in range(3)}, "slow": "RUNNING"}

    time.sleep(1.5)  # let the killed launch age past --time 1
    lpad = subprocess.run(
        ["lpad", "-l", str(yaml_path), "detect_lostruns", "--time", "1", "--rerun"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert f"[{slow_id}]" in lpad.stdout + lpad.stderr, lpad.stdout + lpad.stderr
    assert launchpad.get_fw_by_id(slow_id).state == "READY"

    rerun = spawn(["rlaunch", "-l", str(yaml_path), "-s", "singleshot"], tmp_path / "rerun")
    _wait_for(lambda: rerun.poll() is not None, 60, "the rerun")
    assert rerun.returncode == 0, _output(tmp_path / "rerun")
    assert launchpad.get_fw_by_id(slow_id).state == "COMPLETED"
    assert sorted(runs.read_text().split()) == ["q0", "q1", "q2", "slow"]
    assert launchpad.get_wf_summary_dict(slow_id)["state"] == "COMPLETED"


def test_example_launchpad_files_load() -> None:
    embedded = LaunchPad.from_file(str(EXAMPLES / "my_launchpad.yaml"))
    assert embedded.host == mongodb_uri("/home/user/.crystal_atomate/fireworks")
    assert embedded.uri_mode and embedded.name == "fireworks"
    mongodb = LaunchPad.from_file(str(EXAMPLES / "my_launchpad-mongodb.yaml"))
    assert (mongodb.host, mongodb.port, mongodb.uri_mode) == ("mongodb.example.org", 27017, False)
