"""Scaled-out AiiDA: PostgreSQL (core.psql_dos) + RabbitMQ started by ``.ci/services.sh``.

The daemon through ``verdi``, several CRYSTAL work chains submitted, the daemon restarted while they
run, and every result checked and written to the jobflow store (CrystalMathJobStore); then the
demo's flows in flow mode, the daemon restarted mid-flow, every task document in the store.

Outside CI these tests skip when the services are not running; in CI (``CI=true``) they fail, so a
broken service setup cannot pass unnoticed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from aiida import orm
from aiida.engine import submit

from crystal_atomate.aiida.flow_mode import submit_flow
from crystal_atomate.aiida.setup import (
    ensure_codes,
    ensure_localhost,
    ensure_profile,
    replay_prepend_text,
)
from crystal_atomate.aiida.workflows import CrystalBaseWorkChain
from crystal_atomate.demo import DEMO_REPLAY, demo_flows, mgo_structure, nio_structure
from crystal_atomate.stores.jobstore import CrystalMathJobStore
from crystal_atomate.testing.recipes import (
    MGO_RELAX_HA,
    MGO_STATIC_HA,
    NIO_RECOVERED_HA,
    crystal_inputs,
)
from crystal_atomate.testing.reference import reference_dir
from crystal_atomate.testing.replay_setup import use_replay

pytestmark = pytest.mark.services

ENV_FILE = Path(__file__).resolve().parents[2] / ".ci" / "services.env"


def _services() -> dict[str, str]:
    """The service endpoints .ci/services.sh wrote; when absent or down: fail in CI, else skip."""
    problem = None
    if not ENV_FILE.is_file():
        problem = f"{ENV_FILE} missing: start the services with .ci/services.sh start"
    else:
        env = dict(line.split("=", 1) for line in ENV_FILE.read_text().split() if "=" in line)
        for host, port in (("PSQL_HOST", "PSQL_PORT"), ("RABBITMQ_HOST", "RABBITMQ_PORT")):
            address = (env[f"CRYSTAL_ATOMATE_{host}"], int(env[f"CRYSTAL_ATOMATE_{port}"]))
            try:
                socket.create_connection(address, timeout=2).close()
            except OSError as exc:
                problem = f"{host.split('_')[0]} not reachable at {address}: {exc}"
        if problem is None:
            return env
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(
            f"services tests need PostgreSQL + RabbitMQ (.ci/services.sh): {problem}", pytrace=False
        )
    pytest.skip(problem)


@pytest.fixture(scope="module")
def psql_profile(tmp_path_factory, aiida_profile):
    """A core.psql_dos + core.rabbitmq profile in the session's AIIDA_PATH, with its own DB."""
    env = _services()
    name = f"services-{uuid.uuid4().hex[:8]}"
    _create_database(env, name)
    profile = ensure_profile(
        name,
        storage="core.psql_dos",
        storage_config={
            "database_engine": "postgresql_psycopg",
            "database_hostname": env["CRYSTAL_ATOMATE_PSQL_HOST"],
            "database_port": int(env["CRYSTAL_ATOMATE_PSQL_PORT"]),
            "database_name": name,
            "database_username": env["CRYSTAL_ATOMATE_PSQL_USER"],
            "database_password": env["CRYSTAL_ATOMATE_PSQL_PASSWORD"],
            "repository_uri": f"file://{tmp_path_factory.mktemp('psql_repository')}",
        },
        broker="core.rabbitmq",
        broker_config={
            "broker_protocol": "amqp",
            "broker_username": "guest",
            "broker_password": "guest",
            "broker_host": env["CRYSTAL_ATOMATE_RABBITMQ_HOST"],
            "broker_port": int(env["CRYSTAL_ATOMATE_RABBITMQ_PORT"]),
            "broker_virtual_host": "",
        },
    )
    _verdi(
        name, "config", "set", "daemon.timeout", "30"
    )  # stopping workers takes longer on a busy CI machine
    yield profile
    _verdi(name, "daemon", "stop")
    from aiida import load_profile

    load_profile(aiida_profile.name, allow_switch=True)


def _create_database(env: dict[str, str], name: str) -> None:
    """A UTF-8 database from template0 (the C.UTF-8 cluster has no en_US locale)."""
    subprocess.run(
        [
            "psql",
            "-h",
            env["CRYSTAL_ATOMATE_PSQL_HOST"],
            "-p",
            env["CRYSTAL_ATOMATE_PSQL_PORT"],
            "-U",
            env["CRYSTAL_ATOMATE_PSQL_USER"],
            "-d",
            "postgres",
            "-c",
            f"CREATE DATABASE \"{name}\" OWNER {env['CRYSTAL_ATOMATE_PSQL_USER']} ENCODING 'UTF8' "
            "LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8' TEMPLATE template0",
        ],
        check=True,
        capture_output=True,
        env=dict(os.environ, PGPASSWORD=env["CRYSTAL_ATOMATE_PSQL_PASSWORD"]),
    )


def _verdi(profile: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["verdi", "-p", profile, *args], capture_output=True, text=True, timeout=120
    )


def test_daemon_restart_mid_flow_finishes_every_job(psql_profile, tmp_path):
    host = ensure_localhost("localhost", tmp_path / "run")
    codes = ensure_codes(host, "crystal-atomate-replay", "crystal-atomate-replay")
    plan = use_replay(
        {
            "relax": DEMO_REPLAY["relax"],
            "static": DEMO_REPLAY["static"],
            "NiO static": DEMO_REPLAY["NiO static"],
        },
        tmp_path / "replay",
    )["CRYSTAL_ATOMATE_REPLAY_PLAN"]
    host.set_prepend_text(replay_prepend_text(plan, reference_dir()))
    started = _verdi(psql_profile.name, "daemon", "start", "2")
    assert started.returncode == 0, started.stderr
    jobs = {
        name: submit(
            CrystalBaseWorkChain, crystal=crystal_inputs(codes["crystal"], name, structure())
        )
        for name, structure in (
            ("relax", mgo_structure),
            ("static", mgo_structure),
            ("NiO static", nio_structure),
        )
    }
    time.sleep(3)
    restarted = _verdi(psql_profile.name, "daemon", "restart")
    assert restarted.returncode == 0, restarted.stderr
    deadline = time.monotonic() + 300
    while not all(node.is_terminated for node in jobs.values()) and time.monotonic() < deadline:
        time.sleep(1)
    assert all(node.is_finished_ok for node in jobs.values()), {
        n: j.process_state for n, j in jobs.items()
    }
    store = CrystalMathJobStore(tmp_path / ".crystal_tui.db")
    store.connect()
    for name, node in jobs.items():
        store.update({"uuid": node.uuid, "index": 1, "name": name,
                      "output": node.outputs.output_parameters.get_dict()}, key=["uuid", "index"])
    energies = {doc["name"]: doc["output"]["energy_hartree"] for doc in store.query({})}
    assert energies == pytest.approx(
        {"relax": MGO_RELAX_HA, "static": MGO_STATIC_HA, "NiO static": NIO_RECOVERED_HA}, abs=1e-8
    )
    assert orm.QueryBuilder().append(orm.CalcJobNode).count() == 4


def test_flow_mode_survives_a_daemon_restart(psql_profile, tmp_path):
    """Flow mode on the scaled-out profile: the demo's flows as work chains, the daemon restarted
    while they run (their plans come back from the checkpoints), every task document in the store.
    """
    host = ensure_localhost("localhost", tmp_path / "run")
    ensure_codes(host, "crystal-atomate-replay", "crystal-atomate-replay")
    plan = use_replay(DEMO_REPLAY, tmp_path / "replay")["CRYSTAL_ATOMATE_REPLAY_PLAN"]
    host.set_prepend_text(replay_prepend_text(plan, reference_dir()))
    started = _verdi(psql_profile.name, "daemon", "start", "2")
    assert started.returncode == 0, started.stderr
    store = CrystalMathJobStore(tmp_path / ".crystal_tui.db")
    nodes = [submit_flow(flow, store=store, root_dir=tmp_path / "jobs") for flow in demo_flows()]
    time.sleep(5)
    restarted = _verdi(psql_profile.name, "daemon", "restart")
    assert restarted.returncode == 0, restarted.stderr
    deadline = time.monotonic() + 400
    while not all(node.is_terminated for node in nodes) and time.monotonic() < deadline:
        time.sleep(1)
    assert all(node.is_finished_ok for node in nodes), [
        (node.process_state, node.exit_message) for node in nodes
    ]
    store.connect()
    energies = {
        (doc["name"], doc["index"]): doc["output"]["output"].get("energy_hartree")
        for doc in store.query({}, properties=["name", "index", "output.output.energy_hartree"])
    }
    assert set(energies) == {
        ("relax", 1),
        ("static", 1),
        ("band structure", 1),
        ("dos", 1),
        ("NiO static", 1),
        ("NiO static", 2),
    }
    assert energies[("relax", 1)] == pytest.approx(MGO_RELAX_HA, abs=1e-8)
    assert energies[("static", 1)] == pytest.approx(MGO_STATIC_HA, abs=1e-8)
    assert energies[("NiO static", 2)] == pytest.approx(NIO_RECOVERED_HA, abs=1e-8)
    assert sum(len(node.called) for node in nodes) == 6
