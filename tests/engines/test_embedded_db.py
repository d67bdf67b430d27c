"""The embedded database under real FireWorks processes: concurrent ``rlaunch`` never runs a
Firework twice, and a killed launcher (or server) loses no finished work and can be rerun."""

from __future__ import annotations

import collections
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import bson
import pytest
from bson.int64 import Int64
from fireworks import Firework, LaunchPad, ScriptTask, Workflow
from pymongo.errors import OperationFailure

from crystal_atomate.engines.embedded_db import (
    connect,
    ensure_server,
    is_running,
    mongodb_uri,
    server_pid,
    socket_path,
    stop_server,
)
from crystal_atomate.engines.fireworks_launchpad import embedded_launchpad, write_launchpad_yaml
from crystal_atomate.testing.server_kills import kill_trial

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


@pytest.mark.timeout(240)
@pytest.mark.parametrize("trial", [1, 2])
def test_server_killed_under_load_comes_back_to_a_state_fireworks_recovers_from(
    tmp_path: Path, trial: int
) -> None:
    """SIGKILL the server while three launchers work a fan-out/fan-in workflow, restart it on the
    same database after a pause: the launchers carry on by themselves, every Firework ends COMPLETED
    with its script run once, and no workflow stays locked (before retryable writes: launchers
    crashed on AutoReconnect, leaving Fireworks FIZZLED or WAITING, 0 of 3 trials clean)."""
    try:
        result = kill_trial(tmp_path, width=8, launchers=3, pause=1.0, kill_after=2)
    finally:
        stop_server(tmp_path / "db")
    assert result.completed_at_kill < 10, (
        "the kill came after the work was done, so nothing was tested"
    )
    assert result.states == {"COMPLETED": 10}, result.logs
    assert result.runs == {name: 1 for name in ["root", "last", *(f"fw{i}" for i in range(8))]}
    assert result.locked == 0
    assert result.launcher_codes == [0, 0, 0], result.logs
    assert result.clean


def test_example_launchpad_files_load() -> None:
    embedded = LaunchPad.from_file(str(EXAMPLES / "my_launchpad.yaml"))
    assert embedded.host == mongodb_uri("/home/user/.crystal_atomate/fireworks")
    assert embedded.uri_mode and embedded.name == "fireworks"
    mongodb = LaunchPad.from_file(str(EXAMPLES / "my_launchpad-mongodb.yaml"))
    assert (mongodb.host, mongodb.port, mongodb.uri_mode) == ("mongodb.example.org", 27017, False)


def _op_msg(db_dir: Path, command: dict) -> dict:
    """Send one OP_MSG command on a new connection, as a client retrying after a lost reply."""
    payload = b"\x00\x00\x00\x00" + b"\x00" + bson.encode(command)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(socket_path(db_dir)))
        sock.sendall(struct.pack("<iiii", 16 + len(payload), 1, 0, 2013) + payload)
        header = sock.recv(16, socket.MSG_WAITALL)
        length = struct.unpack("<i", header[:4])[0]
        body = sock.recv(length - 16, socket.MSG_WAITALL)
    return bson.decode(body[5:])


def test_a_retried_write_is_applied_once_also_across_a_server_restart(db_dir: Path) -> None:
    """The same (lsid, txnNumber) sent again, as pymongo does when a server kill lost the reply,
    gets the first reply and changes nothing; a new txnNumber is applied; an older one is refused.
    """
    ensure_server(db_dir)
    session = {"id": bson.Binary(uuid.uuid4().bytes, 4)}
    with connect(db_dir) as client:
        client.queue.jobs.insert_one({"_id": 1, "state": "READY", "claims": 0})

    def claim(txn_number: int) -> dict:
        return _op_msg(
            db_dir,
            {
                "findAndModify": "jobs",
                "query": {"_id": 1},
                "update": {"$inc": {"claims": 1}},
                "new": True,
                "lsid": session,
                "txnNumber": Int64(txn_number),
                "$db": "queue",
            },
        )

    first = claim(1)
    assert first["ok"] == 1.0 and first["value"]["claims"] == 1
    assert claim(1) == first
    server = server_pid(db_dir)
    os.kill(server, signal.SIGKILL)
    _wait_for(lambda: not is_running(db_dir), 10, "the killed server to go away")
    ensure_server(db_dir)
    assert server_pid(db_dir) != server
    assert claim(1) == first
    assert claim(2)["value"]["claims"] == 2
    stale = claim(1)
    assert (stale["ok"], stale["codeName"]) == (0.0, "TransactionTooOld")
    with connect(db_dir) as client:
        assert client.queue.jobs.find_one({"_id": 1})["claims"] == 2


def test_clients_get_sessions_and_retryable_writes_but_no_transactions(db_dir: Path) -> None:
    """pymongo retries writes only on a server with sessions (mongos or replica set); jobflow-remote
    probes transactions and must get a clear refusal to fall back on."""
    with connect(db_dir) as client:
        client.queue.aux.insert_one({"x": 1})
        description = client.topology_description.server_descriptions()
        (server,) = description.values()
        assert server.retryable_writes_supported and server.logical_session_timeout_minutes == 30
        refused = pytest.raises(OperationFailure, match="transactions")
        with client.start_session() as session, refused, session.start_transaction():
            client.queue.aux.find_one({}, session=session)
        assert client.queue.aux.count_documents({}) == 1


def _peak_rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))


def test_a_large_find_streams_in_batches_without_holding_the_result(db_dir: Path) -> None:
    """The first batch is MongoDB's 101 documents, the rest comes by getMore in the asked batch
    size, and the server's peak memory does not grow with the size of the result."""
    n_docs, payload = 3_000, "x" * 4_000  # 12 MB of documents
    with connect(db_dir) as client:
        items = client.test.items
        for start in range(0, n_docs, 100):
            items.insert_many([{"i": i, "payload": payload} for i in range(start, start + 100)])
        first = client.test.command("find", "items", filter={"i": {"$gte": 0}})["cursor"]
        assert len(first["firstBatch"]) == 101 and first["id"] != 0
        client.test.command("killCursors", "items", cursors=[first["id"]])
        with pytest.raises(OperationFailure, match="not found"):
            client.test.command("getMore", first["id"], collection="items")

        before = _peak_rss_kib(server_pid(db_dir))
        cursor = items.find({}, {"i": 1, "payload": 1}, batch_size=100)
        seen = [doc["i"] for doc in cursor]
        assert sorted(seen) == list(range(n_docs)) and len(set(seen)) == n_docs
        growth_mib = (_peak_rss_kib(server_pid(db_dir)) - before) / 1024
        # Holding the result (as before streaming) grew it by 16 MiB; its ids and a batch take ~1-5.
        assert growth_mib < 8, (
            f"the server's peak memory grew by {growth_mib:.1f} MiB for a 12 MB result"
        )

        projected = list(items.find({"i": {"$lt": 3}}, {"_id": 0, "i": 1}).sort("i", -1))
        assert projected == [{"i": 2}, {"i": 1}, {"i": 0}]
        assert items.find_one({"i": 7}, {"_id": 0}) == {"i": 7, "payload": payload}
