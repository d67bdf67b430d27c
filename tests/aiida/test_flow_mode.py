"""Flow mode: a whole jobflow Flow as one AiiDA work chain, CRYSTAL steps as the CalcJobs it calls.

The jobflow semantics (:class:`FlowPlan`) are tested on plain jobs first, then the work chain runs
the demo's flows for real (replay code, embedded profile), in this process and in the daemon.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest
from aiida import orm
from aiida.engine import run_get_node
from jobflow import Flow, Response, job

from crystal_atomate.aiida.executor import JOBFLOW_UUID_EXTRA
from crystal_atomate.aiida.flow_mode import (
    COMPLETED,
    FAILED,
    STOPPED,
    FlowPlan,
    JobflowWorkChain,
    flow_builder,
    run_flow,
    submit_flow,
)
from crystal_atomate.demo import DEMO_REPLAY, demo_flows
from crystal_atomate.stores.jobstore import CrystalMathJobStore
from crystal_atomate.stores.ui_queries import list_jobs
from crystal_atomate.testing.recipes import MGO_RELAX_HA, MGO_STATIC_HA, NIO_RECOVERED_HA


@job
def add(a: float, b: float) -> float:
    return a + b


@job
def fail(message: str) -> float:
    raise ValueError(message)


@job
def replace_with_add(a: float) -> Response:
    """Replaced by ``add(a, 100)``: a child referencing this job gets the replacement's output."""
    return Response(replace=add(a, 100))


@job
def detour_with_add(a: float) -> Response:
    return Response(output=a, detour=add(a, 1000))


@job
def stop_children(a: float) -> Response:
    return Response(output=a, stop_children=True)


@job
def nested(a: float) -> dict:
    return {"output": {"energy": a, "structure": {"a": a}}}


def _drain(plan: FlowPlan, run) -> list[str]:
    """Run ``plan`` like the work chain, ``run(job_dict) -> Response``; the names in run order."""
    order = []
    while (entry := plan.next_ready()) is not None:
        order.append(entry["name"])
        plan.respond(entry, run(entry))
    return order


def test_plan_orders_jobs_and_waits_for_detours_and_replacements():
    first = detour_with_add(1)
    second = add(first.output, 2)
    plan = FlowPlan.start(Flow([first, second]))

    detour = add(0, 0)
    detour.name = "detour"

    def run(entry):
        return Response(detour=Flow([detour])) if entry["name"] == "detour_with_add" else Response()

    assert _drain(plan, run) == ["detour_with_add", "detour", "add"]
    assert plan.state["done"][f"{second.uuid}_1"]["state"] == COMPLETED
    assert plan.state["done"][f"{detour.uuid}_1"]["state"] == COMPLETED


def test_plan_stops_children_transitively_and_fails_children_of_failures():
    stop = stop_children(1)
    child = add(stop.output, 1)
    grandchild = add(child.output, 1)
    broken = fail("boom")
    orphan = add(broken.output, 1)
    plan = FlowPlan.start(Flow([stop, child, grandchild, broken, orphan]))
    while (entry := plan.next_ready()) is not None:
        if entry["name"] == "fail":
            plan.finish(entry, FAILED)
        else:
            plan.respond(entry, Response(stop_children=entry["name"] == "stop_children"))
    states = {key.split("_")[0]: done["state"] for key, done in plan.state["done"].items()}
    assert states == {
        stop.uuid: COMPLETED,
        child.uuid: STOPPED,
        grandchild.uuid: STOPPED,
        broken.uuid: FAILED,
        orphan.uuid: FAILED,
    }
    assert plan.failed_names() == ["fail"]
    assert plan.jobs == []


def test_plan_state_survives_a_checkpoint():
    """The state is plain data: what AiiDA writes at a checkpoint and reads back on a restart."""
    import yaml

    first = add(1, 2)
    plan = FlowPlan.start(Flow([first, add(first.output, 3)]))
    entry = plan.next_ready()
    plan.respond(entry, Response())
    restored = FlowPlan(yaml.safe_load(yaml.safe_dump(plan.state)))
    assert [entry["name"] for entry in restored.jobs] == ["add"]
    assert restored.next_ready()["parents"] == [first.uuid]


@pytest.fixture
def store(tmp_path):
    store = CrystalMathJobStore(tmp_path / ".crystal_tui.db")
    yield store
    store.close()


def test_python_jobs_references_replacements_and_failures(aiida_profile, store, tmp_path):
    """No CRYSTAL here: references (nested too) resolve from the store, a replaced job's children
    get the replacement's output, a failing job ends the chain with its name and its child is not
    run."""
    start = nested(1.5)
    replaced = replace_with_add(start.output["output"]["energy"])
    total = add(replaced.output, start.output["output"]["structure"]["a"])
    broken = fail("no CRYSTAL for you")
    orphan = add(broken.output, 1)
    node = run_flow(Flow([start, replaced, total, broken, orphan]), store=store, root_dir=tmp_path)
    assert node.exit_status == JobflowWorkChain.exit_codes.ERROR_JOBS_FAILED.status
    assert node.exit_message == "jobs failed: fail"
    store.connect()
    assert store.get_output(replaced.uuid) == pytest.approx(101.5)
    assert store.get_output(total.uuid) == pytest.approx(103.0)
    assert store.count({"uuid": orphan.uuid}) == 0
    jobs = node.outputs.jobs.get_dict()
    assert jobs[f"{replaced.uuid}_2"]["state"] == COMPLETED
    assert jobs[f"{orphan.uuid}_1"] == {
        "name": "add",
        "uuid": orphan.uuid,
        "index": 1,
        "state": FAILED,
        "calcjobs": [],
        "message": "parent failed",
    }
    assert "ValueError: no CRYSTAL for you" in "\n".join(
        log.message for log in orm.Log.collection.get_logs_for(node)
    )


def test_bad_inputs_fail_before_anything_runs(aiida_profile, store, tmp_path):
    builder = flow_builder(add(1, 2), store=store, root_dir=tmp_path)
    with pytest.raises(
        ValueError, match="the flow input is not a jobflow Flow or Job in JSON: got dict"
    ):
        builder.flow = orm.SinglefileData.from_string('{"not": "a flow"}', filename="flow.json")
    with pytest.raises(
        ValueError, match="the store input is not .*MemoryStore is not a jobflow JobStore"
    ):
        builder.store = orm.Dict({"@module": "maggma.stores", "@class": "MemoryStore"})
    with pytest.raises(ValueError, match="the flow input"):
        run_get_node(
            JobflowWorkChain,
            flow=orm.SinglefileData.from_string("[1, 2]"),
            store=builder.store,
            root_dir=builder.root_dir,
        )


def _check_demo(store: CrystalMathJobStore, nodes: list[orm.WorkChainNode]) -> None:
    """The demo's figures in the store, every CRYSTAL step a CalcJob the work chains called."""
    store.connect()
    relax = store.query_one({"name": "relax"})["output"]
    assert relax["output"]["energy_hartree"] == pytest.approx(MGO_RELAX_HA, abs=1e-8)
    assert store.query_one({"name": "static"})["output"]["output"][
        "energy_hartree"
    ] == pytest.approx(MGO_STATIC_HA, abs=1e-8)
    recovered = store.query_one({"name": "NiO static", "index": 2})["output"]
    assert recovered["output"]["energy_hartree"] == pytest.approx(NIO_RECOVERED_HA, abs=1e-8)
    assert store.query_one({"name": "NiO static", "index": 1})["output"]["state"] == "failed"
    assert store.query_one({"name": "dos"})["output"]["state"] == "successful"
    called = {calc.uuid: calc for node in nodes for calc in node.called}
    assert sorted(calc.process_label for calc in called.values()) == [
        *["CrystalCalculation"] * 4,
        *["PropertiesCalculation"] * 2,
    ]
    assert sorted(calc.exit_status for calc in called.values()) == [0, 0, 0, 0, 0, 410]
    assert all(calc.base.extras.get(JOBFLOW_UUID_EXTRA) for calc in called.values())
    crystal_docs = store.query({"output.calcs_reversed": {"$exists": True}})
    runs = [doc["output"]["calcs_reversed"][0]["run"] for doc in crystal_docs]
    assert len(runs) == 4
    assert all(run["executor"] == "aiida" and run["aiida_uuid"] in called for run in runs)
    with closing(sqlite3.connect(store.db_file)) as conn:
        rows = {row.name: row.status for row in list_jobs(conn)}
    assert rows == dict.fromkeys(
        ["relax", "static", "band structure", "dos", "NiO static"], "COMPLETED"
    )


def test_demo_flows_in_flow_mode(codes, replay, store, tmp_path):
    del codes
    replay(DEMO_REPLAY)
    nodes = [run_flow(flow, store=store, root_dir=tmp_path / "jobs") for flow in demo_flows()]
    assert all(node.is_finished_ok for node in nodes), [node.exit_message for node in nodes]
    _check_demo(store, nodes)
    jobs = nodes[1].outputs.jobs.get_dict()
    assert sorted((done["name"], done["index"], done["state"]) for done in jobs.values()) == [
        ("NiO static", 1, COMPLETED),
        ("NiO static", 2, COMPLETED),
    ]


def test_flows_submitted_to_the_daemon(
    codes, replay, store, tmp_path, submit_and_await, started_daemon_client
):
    """Non-blocking: ``submit_flow`` returns at once, a daemon worker runs the flow."""
    del codes, started_daemon_client
    replay(DEMO_REPLAY)
    nodes = [submit_flow(flow, store=store, root_dir=tmp_path / "jobs") for flow in demo_flows()]
    assert not any(node.is_terminated for node in nodes)
    nodes = [submit_and_await(node, timeout=300) for node in nodes]
    assert all(node.is_finished_ok for node in nodes), [node.exit_message for node in nodes]
    _check_demo(store, nodes)


def test_high_throughput_batch_to_the_daemon(
    codes, replay, store, tmp_path, submit_and_await, started_daemon_client
):
    """The builder's ``aiida-daemon`` engine: one work chain per flow, run by the daemon."""
    from crystal_atomate.demo import mgo_makers, mgo_structure
    from crystal_atomate.highthroughput import (
        Candidate,
        HighThroughputBuilder,
        make_engine,
        submit_batch,
    )

    del codes, started_daemon_client
    replay({"static": DEMO_REPLAY["static"]})
    batch = HighThroughputBuilder(mgo_makers()["static"], batch_id="daemon").build(
        [Candidate("mgo", mgo_structure())], store
    )
    (result,) = submit_batch(batch, make_engine("aiida-daemon", store, tmp_path))
    assert result.state == "submitted" and result.detail.startswith("AiiDA work chain ")
    node = submit_and_await(orm.load_node(int(result.detail.split()[-1])), timeout=300)
    assert node.is_finished_ok, node.exit_message
    store.connect()
    doc = store.query_one({"name": "static"})["output"]
    assert doc["output"]["energy_hartree"] == pytest.approx(MGO_STATIC_HA, abs=1e-8)
