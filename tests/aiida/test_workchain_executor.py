"""The restart work chain (the Makers' recovery rules in AiiDA) and executor mode (the Makers' own
flows, each CRYSTAL step run as an AiiDA CalcJob), both against the Maker tests' real figures."""

from __future__ import annotations

import pytest
from aiida import orm
from aiida.engine import run_get_node
from jobflow import run_locally

from crystal_atomate.aiida.executor import JOBFLOW_UUID_EXTRA, use_aiida_executor
from crystal_atomate.aiida.workflows import CrystalBaseWorkChain
from crystal_atomate.demo import DEMO_REPLAY, demo_flows, nio_structure
from crystal_atomate.stores.jobstore import CrystalMathJobStore
from crystal_atomate.testing.recipes import (
    MGO_RELAX_HA,
    MGO_STATIC_HA,
    NIO_FAILED_HA,
    NIO_RECOVERED_HA,
    crystal_inputs,
)


def test_nio_failed_scf_is_recovered_by_the_shared_rules(codes, replay):
    replay({"NiO static": DEMO_REPLAY["NiO static"]})
    inputs = crystal_inputs(codes["crystal"], "NiO static", nio_structure())
    results, node = run_get_node(CrystalBaseWorkChain, crystal=inputs)
    assert node.is_finished_ok, node.exit_message
    assert results["output_parameters"]["energy_hartree"] == pytest.approx(
        NIO_RECOVERED_HA, abs=1e-8
    )
    first, second = sorted(node.called, key=lambda calc: calc.ctime)
    assert first.exit_status == 410
    assert first.outputs.output_parameters["energy_hartree"] == pytest.approx(
        NIO_FAILED_HA, abs=1e-8
    )
    assert second.inputs.parent_folder.uuid == first.outputs.remote_folder.uuid
    deck = second.base.repository.get_object_content("INPUT")
    assert "GUESSP" in deck and "MAXCYCLE\n100" in deck
    (restart,) = node.base.extras.get("restarts")
    assert restart["errors"] == ["scf_not_converged"] and restart["wavefunction"] is True


def test_unrecoverable_failure_stops_with_the_reason(codes, replay):
    replay({"NiO static": {"recording": "be_scf_truncated_crystal17", "deck": None}})
    inputs = crystal_inputs(codes["crystal"], "NiO static", nio_structure())
    _, node = run_get_node(CrystalBaseWorkChain, crystal=inputs)
    assert node.exit_status == CrystalBaseWorkChain.exit_codes.ERROR_UNRECOVERABLE_FAILURE.status
    assert "TERMINATION" in node.exit_message and len(node.called) == 1


def test_demo_flows_through_the_aiida_executor_land_in_the_store(codes, replay, tmp_path):
    replay(DEMO_REPLAY)
    store = CrystalMathJobStore(tmp_path / ".crystal_tui.db")
    for flow in demo_flows():
        run_locally(
            use_aiida_executor(flow),
            store=store,
            create_folders=True,
            root_dir=tmp_path,
            ensure_success=True,
            log=False,
        )
    store.connect()
    relax = store.query_one({"name": "relax"})
    static = store.query_one({"name": "static"})["output"]
    assert relax["output"]["output"]["energy_hartree"] == pytest.approx(MGO_RELAX_HA, abs=1e-8)
    assert static["output"]["energy_hartree"] == pytest.approx(MGO_STATIC_HA, abs=1e-8)
    recovered = store.query_one({"name": "NiO static", "index": 2})["output"]
    assert recovered["output"]["energy_hartree"] == pytest.approx(NIO_RECOVERED_HA, abs=1e-8)
    assert store.query_one({"name": "dos"})["output"]["state"] == "successful"
    static_calc = orm.load_node(static["calcs_reversed"][0]["run"]["aiida_uuid"])
    (band,) = (
        orm.QueryBuilder()
        .append(
            orm.CalcJobNode,
            filters={
                "label": "band structure",
                "extras.jobflow_directory": {"like": f"{tmp_path.resolve()}%"},
            },
        )
        .all(flat=True)
    )
    assert band.inputs.parent_folder.uuid == static_calc.outputs.remote_folder.uuid
    run = relax["output"]["calcs_reversed"][0]["run"]
    assert run["executor"] == "aiida"
    node = orm.load_node(run["aiida_uuid"])
    assert node.is_finished_ok and node.base.extras.get(JOBFLOW_UUID_EXTRA) == relax["uuid"]
    assert node.outputs.output_parameters["energy_hartree"] == pytest.approx(MGO_RELAX_HA, abs=1e-8)
    calcs = (
        orm.QueryBuilder()
        .append(orm.CalcJobNode, filters={"extras": {"has_key": JOBFLOW_UUID_EXTRA}})
        .count()
    )
    assert calcs >= 6


def test_high_throughput_batch_on_the_aiida_engine(codes, replay, tmp_path):
    """The builder's ``aiida`` engine: jobflow here, every CRYSTAL run a CalcJob with provenance."""
    from crystal_atomate.demo import mgo_makers, mgo_structure
    from crystal_atomate.highthroughput import (
        Candidate,
        HighThroughputBuilder,
        make_engine,
        submit_batch,
    )

    replay({"static": DEMO_REPLAY["static"]})
    store = CrystalMathJobStore(tmp_path / ".crystal_tui.db")
    batch = HighThroughputBuilder(mgo_makers()["static"], batch_id="aiida").build(
        [Candidate("mgo", mgo_structure())], store
    )
    (result,) = submit_batch(batch, make_engine("aiida", store, tmp_path, code="crystal@localhost"))
    assert result.state == "completed"
    store.connect()
    doc = store.query_one({"name": "static"})["output"]
    assert doc["output"]["energy_hartree"] == pytest.approx(MGO_STATIC_HA, abs=1e-8)
    assert doc["metadata"]["batch_id"] == "aiida"
    node = orm.load_node(doc["calcs_reversed"][0]["run"]["aiida_uuid"])
    assert node.is_finished_ok and node.process_type.endswith("crystal_atomate.crystal")


def test_aiida_engines_pin_one_code_or_say_which_to_choose(codes, localhost, tmp_path):
    """Two codes labelled ``crystal`` (one per computer): no engine guesses; each names both."""
    from crystal_atomate.aiida.errors import CodeNotFound
    from crystal_atomate.aiida.setup import ensure_code, ensure_localhost
    from crystal_atomate.highthroughput import make_engine

    other = ensure_localhost("other-host", tmp_path / "other")
    second = ensure_code(
        "crystal", other, codes["crystal"].filepath_executable.as_posix(), "crystal_atomate.crystal"
    )
    store = CrystalMathJobStore(tmp_path / ".crystal_tui.db")
    try:
        for engine in ("aiida", "aiida-daemon"):
            with pytest.raises(
                CodeNotFound,
                match="2 codes are labelled 'crystal': crystal@localhost, crystal@other-host",
            ):
                make_engine(engine, store, tmp_path)
            assert (
                make_engine(engine, store, tmp_path, code="crystal@localhost").code
                == "crystal@localhost"
            )
        with pytest.raises(CodeNotFound, match="no AiiDA code 'nope'"):
            make_engine("aiida", store, tmp_path, code="nope")
    finally:  # the session's other tests use the one 'crystal' code
        orm.Node.collection.delete(second.pk)
        orm.Computer.collection.delete(other.pk)
    assert make_engine("aiida", store, tmp_path).code == "crystal@localhost"
