"""A CRYSTAL step through SSH and SLURM: the loopback cluster that ``.ci/hpc.sh`` starts.

The computer and code are made by the same functions ``crystal-atomate aiida computer add`` calls;
the CalcJob goes through sshd (``core.ssh``) and ``sbatch`` on a real one-node SLURM cluster, and
the replayed CRYSTAL run gives the Maker tests' energy."""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing

import pytest
from aiida import orm
from click.testing import CliRunner
from jobflow import run_locally

from crystal_atomate.aiida.computers import (
    ClusterComputer,
    ComputerMismatch,
    RemoteExecutableMissing,
    ensure_remote_code,
    ensure_ssh_computer,
)
from crystal_atomate.aiida.executor import use_aiida_executor
from crystal_atomate.aiida.setup import replay_prepend_text
from crystal_atomate.demo import DEMO_REPLAY
from crystal_atomate.stores.jobstore import CrystalMathJobStore
from crystal_atomate.testing.hpc import (
    documents_by_name,
    register_ui_cluster,
    relax_static_flow,
    ui_cluster,
)
from crystal_atomate.testing.parity import job_differences
from crystal_atomate.testing.recipes import MGO_RELAX_HA, MGO_STATIC_HA
from crystal_atomate.testing.reference import reference_dir
from crystal_atomate.testing.replay_setup import use_replay

#: The cluster's code label: the session's other tests load the localhost code ``crystal`` by its
#: bare label, which a second ``crystal`` code would make ambiguous.
SLURM_CODE = "slurm-crystal"
CRYSTAL_PLUGIN = "crystal_atomate.crystal"


@pytest.fixture(scope="module")
def slurm_spec(cluster, tmp_path_factory) -> ClusterComputer:
    """The loopback cluster as ``aiida computer add`` would describe it (1 s scheduler polls)."""
    return ClusterComputer(
        label="loopback-slurm",
        host=cluster.host,
        port=cluster.port,
        username=cluster.user,
        key_filename=cluster.key,
        workdir=str(tmp_path_factory.mktemp("slurm_workdir")),
        mpiprocs_per_machine=1,
        poll_interval=1.0,
        safe_interval=0.0,
    )


@pytest.fixture(scope="module")
def slurm_computer(aiida_profile, slurm_spec) -> orm.Computer:
    """The stored and configured SSH + SLURM computer."""
    return ensure_ssh_computer(slurm_spec)


def test_computer_is_made_once_and_passes_verdi_computer_test(slurm_computer, slurm_spec):
    from aiida.cmdline.commands.cmd_computer import computer_test

    assert ensure_ssh_computer(slurm_spec).uuid == slurm_computer.uuid
    assert (slurm_computer.scheduler_type, slurm_computer.transport_type) == (
        "core.slurm",
        "core.ssh",
    )
    result = CliRunner().invoke(computer_test, [slurm_computer.label], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (
        "Success: all 6 tests succeeded" in result.output or "all tests succeeded" in result.output
    )


def test_same_label_for_another_host_is_refused(slurm_computer, slurm_spec):
    other = ClusterComputer(**{**slurm_spec.__dict__, "host": "login.example.org"})
    with pytest.raises(ComputerMismatch, match="login.example.org"):
        ensure_ssh_computer(other)


def test_code_executable_is_checked_on_the_cluster(slurm_computer):
    with pytest.raises(RemoteExecutableMissing, match="/opt/crystal23/bin/crystal"):
        ensure_remote_code(
            "crystal", slurm_computer, "/opt/crystal23/bin/crystal", "crystal_atomate.crystal"
        )


def test_relax_static_runs_through_ssh_and_slurm(
    slurm_computer, cluster, tmp_path, cluster_reference
):
    replay = shutil.which("crystal-atomate-replay")
    assert replay, "crystal-atomate-replay is not on PATH: pip install -e ."
    code = ensure_remote_code(SLURM_CODE, slurm_computer, replay, "crystal_atomate.crystal")
    plan = use_replay(
        {"relax": DEMO_REPLAY["relax"], "static": DEMO_REPLAY["static"]}, tmp_path / "replay"
    )["CRYSTAL_ATOMATE_REPLAY_PLAN"]
    slurm_computer.set_prepend_text(replay_prepend_text(plan, reference_dir()))
    registered = register_ui_cluster(tmp_path / ".crystal_tui.db", ui_cluster(cluster))
    store = CrystalMathJobStore(tmp_path / ".crystal_tui.db")
    flow = use_aiida_executor(
        relax_static_flow(),
        code=code.full_label,
        queue_name=cluster.partition,
        max_wallclock_seconds=600,
    )
    run_locally(
        flow, store=store, create_folders=True, root_dir=tmp_path, ensure_success=True, log=False
    )
    store.connect()
    energies = {}
    for name in ("relax", "static"):
        doc = store.query_one({"name": name})["output"]
        energies[name] = doc["output"]["energy_hartree"]
        node = orm.load_node(doc["calcs_reversed"][0]["run"]["aiida_uuid"])
        assert node.is_finished_ok and node.computer.label == "loopback-slurm"
        script = node.base.repository.get_object_content("_aiidasubmit.sh")
        assert "#SBATCH --partition=debug" in script and "#SBATCH --time=00:10:00" in script
        state = cluster.ssh(f"squeue -h -t all -j {node.get_job_id()} -o %T").stdout.strip()
        assert state == "COMPLETED"
    assert energies["relax"] == pytest.approx(MGO_RELAX_HA, abs=1e-8)
    assert energies["static"] == pytest.approx(MGO_STATIC_HA, abs=1e-8)
    docs = documents_by_name(store)
    assert {name: job_differences(cluster_reference[name], docs[name]) for name in docs} == {
        "relax": [], "static": []
    }
    if registered:  # the UI's remote_jobs: one row per CalcJob, under the UI's cluster of that name
        with closing(sqlite3.connect(tmp_path / ".crystal_tui.db")) as conn:
            rows = conn.execute(
                "SELECT j.name, j.runner_type, r.remote_handle, r.queue_name, r.working_directory "
                "FROM remote_jobs r JOIN jobs j ON j.id = r.job_id ORDER BY j.id"
            ).fetchall()
        assert [(name, runner, queue) for name, runner, _, queue, _ in rows] == [
            ("relax", "slurm", "debug"), ("static", "slurm", "debug")
        ]
        assert all(handle.isdigit() and workdir.startswith(slurm_spec_workdir(slurm_computer))
                   for _, _, handle, _, workdir in rows)


def slurm_spec_workdir(computer: orm.Computer) -> str:
    """The computer's work directory (where every CalcJob's remote folder is made)."""
    return computer.get_workdir().split("{")[0].rstrip("/")


def test_a_cluster_defined_in_the_ui_becomes_the_same_computer(aiida_profile, cluster, tmp_path):
    from crystal_atomate.aiida.computers import cluster_from_ui
    from crystal_atomate.stores.ui_clusters import UIClusterMissing, read_ui_cluster
    from crystal_atomate.testing.ui_client import UIClientMissing, ui_module

    try:
        database = ui_module("src.core.database")
    except UIClientMissing as exc:
        pytest.skip(str(exc))
    db_file = tmp_path / ".crystal_tui.db"
    ui = database.Database(db_file)
    ui.create_cluster(
        name="ui-loopback",
        type="slurm",
        hostname=cluster.host,
        username=cluster.user,
        port=cluster.port,
        connection_config={"key_file": cluster.key, "slurm": {"partition": cluster.partition}},
        setup_commands=["export OMP_NUM_THREADS=1"],
    )
    before = sqlite_dump(db_file)
    ui_cluster = read_ui_cluster(db_file, "ui-loopback")
    assert (ui_cluster.kind, ui_cluster.port, ui_cluster.slurm) == (
        "slurm",
        cluster.port,
        {"partition": "debug"},
    )
    spec = cluster_from_ui(ui_cluster, workdir=str(tmp_path / "ui_workdir"))
    computer = ensure_ssh_computer(spec)
    assert (computer.scheduler_type, computer.hostname) == ("core.slurm", cluster.host)
    assert computer.get_prepend_text() == "export OMP_NUM_THREADS=1"
    with computer.get_transport() as transport:
        assert transport.isdir(str(tmp_path))
    with pytest.raises(UIClusterMissing, match="ui-loopback"):
        read_ui_cluster(db_file, "no-such-cluster")
    assert sqlite_dump(db_file) == before


def sqlite_dump(db_file) -> list[str]:
    """Every row of the UI's database as SQL text: what the UI owns must not change."""
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(db_file)) as conn:
        return list(conn.iterdump())


def test_computer_add_from_the_shipped_cluster_file(aiida_profile, cluster, tmp_path):
    from typer.testing import CliRunner as TyperRunner

    from crystal_atomate.cli.aiida_computer import computer_app
    from crystal_atomate.testing.hpc import CLUSTER_EXAMPLE

    replay = shutil.which("crystal-atomate-replay")
    args = [
        "add", "loopback-from-file", "--cluster-file", str(CLUSTER_EXAMPLE), "--crystal", replay,
        "--workdir", str(tmp_path / "work"), "--poll", "1", "--profile", aiida_profile.name,
        "--prefix", "file-",
    ]
    result = TyperRunner().invoke(computer_app, args)
    assert result.exit_code == 0, result.output
    assert f"code file-crystal@loopback-from-file -> {replay}" in result.output
    assert "core.slurm answers" in result.output and "is writable" in result.output
    computer = orm.load_computer("loopback-from-file")
    assert computer.get_prepend_text() == "export OMP_NUM_THREADS=1"
    assert computer.get_minimum_job_poll_interval() == 1.0
    again = TyperRunner().invoke(computer_app, args)
    assert (
        again.exit_code == 0
        and len(orm.Computer.collection.find({"label": "loopback-from-file"})) == 1
    )


def test_shipped_verdi_examples_are_accepted(aiida_profile):
    """``stores/aiida/slurm-ssh-*.yaml`` work with verdi as their comments say (no connection)."""
    from pathlib import Path

    from aiida.cmdline.commands.cmd_computer import computer_configure, computer_setup
    from aiida.common.extendeddicts import AttributeDict
    from aiida.manage.configuration import get_config

    verdi = AttributeDict({"config": get_config(), "profile": aiida_profile})
    folder = Path(__file__).resolve().parents[2] / "stores" / "aiida"
    setup = CliRunner().invoke(
        computer_setup, ["-n", "--config", str(folder / "slurm-ssh-computer.yaml")], obj=verdi,
        catch_exceptions=False,
    )
    assert setup.exit_code == 0, setup.output
    configure = CliRunner().invoke(
        computer_configure,
        ["core.ssh_async", "cluster", "-n", "--config", str(folder / "slurm-ssh-configure.yaml")],
        obj=verdi,
        catch_exceptions=False,
    )
    assert configure.exit_code == 0, configure.output
    computer = orm.load_computer("cluster")
    assert (computer.scheduler_type, computer.transport_type) == ("core.slurm", "core.ssh_async")
    assert computer.is_configured


def test_flow_mode_on_the_cluster(slurm_computer, cluster, tmp_path, cluster_reference):
    """The whole flow as one work chain; its CalcJobs go through sshd and sbatch."""
    from crystal_atomate.aiida.flow_mode import run_flow

    code = ensure_remote_code(
        SLURM_CODE, slurm_computer, str(shutil.which("crystal-atomate-replay")), CRYSTAL_PLUGIN
    )
    plan = use_replay(
        {"relax": DEMO_REPLAY["relax"], "static": DEMO_REPLAY["static"]}, tmp_path / "replay"
    )["CRYSTAL_ATOMATE_REPLAY_PLAN"]
    slurm_computer.set_prepend_text(replay_prepend_text(plan, reference_dir()))
    store = CrystalMathJobStore(tmp_path / ".crystal_tui.db")
    flow = use_aiida_executor(
        relax_static_flow(), code=code.full_label, queue_name=cluster.partition
    )
    node = run_flow(flow, store=store, root_dir=tmp_path / "jobs")
    assert node.is_finished_ok, node.exit_message
    calcjobs = [called for called in node.called_descendants if isinstance(called, orm.CalcJobNode)]
    assert len(calcjobs) == 2 and {calc.computer.label for calc in calcjobs} == {"loopback-slurm"}
    store.connect()
    static = store.query_one({"name": "static"})["output"]
    assert static["output"]["energy_hartree"] == pytest.approx(MGO_STATIC_HA, abs=1e-8)
    docs = documents_by_name(store)
    assert {name: job_differences(cluster_reference[name], docs[name]) for name in docs} == {
        "relax": [], "static": []
    }


@pytest.mark.timeout(600)
def test_a_slurm_walltime_kill_is_classified_and_recovered(slurm_computer, cluster, tmp_path):
    """SLURM kills the first run at its 1-minute limit; the restart work chain reads why from the
    scheduler's standard error, restarts as the Makers would, and the second run converges."""
    from aiida.engine import run_get_node

    from crystal_atomate.aiida.workflows import CrystalBaseWorkChain
    from crystal_atomate.demo import mgo_structure
    from crystal_atomate.testing.recipes import crystal_inputs

    code = ensure_remote_code(
        SLURM_CODE, slurm_computer, str(shutil.which("crystal-atomate-replay")), CRYSTAL_PLUGIN
    )
    stalled = {**DEMO_REPLAY["static"], "stall_seconds": 600}
    plan = use_replay({"static": [stalled, DEMO_REPLAY["static"]]}, tmp_path / "replay")
    slurm_computer.set_prepend_text(
        replay_prepend_text(plan["CRYSTAL_ATOMATE_REPLAY_PLAN"], reference_dir())
    )
    options = {"max_wallclock_seconds": 60, "queue_name": cluster.partition}
    inputs = crystal_inputs(code, "static", mgo_structure(), metadata={"options": options})
    results, node = run_get_node(CrystalBaseWorkChain, crystal=inputs)
    assert node.is_finished_ok, node.exit_message
    killed, recovered = sorted(node.called, key=lambda calc: calc.ctime)
    assert killed.outputs.output_parameters["errors"][0] == "walltime_killed"
    stderr = killed.outputs.retrieved.base.repository.get_object_content("_scheduler-stderr.txt")
    assert "DUE TO TIME LIMIT" in stderr
    state = cluster.ssh(f"squeue -h -t all -j {killed.get_job_id()} -o %T").stdout.strip()
    assert state == "TIMEOUT"
    assert recovered.is_finished_ok
    assert results["output_parameters"]["energy_hartree"] == pytest.approx(MGO_STATIC_HA, abs=1e-8)
    (restart,) = node.base.extras.get("restarts")
    assert restart["errors"] == ["walltime_killed", "truncated"]
