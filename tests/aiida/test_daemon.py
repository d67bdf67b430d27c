"""The AiiDA daemon on the embedded profile with the built-in ZeroMQ broker: submitted work runs in
daemon workers (a separate process that reads the replay plan from the computer's prepend text)."""

from __future__ import annotations

import pytest
from aiida.engine import submit

from crystal_atomate.aiida.calculations import CrystalCalculation
from crystal_atomate.aiida.workflows import CrystalBaseWorkChain
from crystal_atomate.demo import DEMO_REPLAY, mgo_structure, nio_structure
from crystal_atomate.testing.recipes import MGO_RELAX_HA, NIO_RECOVERED_HA, crystal_inputs


def test_submitted_work_runs_in_the_daemon(codes, replay, submit_and_await, started_daemon_client):
    replay({"relax": DEMO_REPLAY["relax"], "NiO static": DEMO_REPLAY["NiO static"]})
    chain = submit(
        CrystalBaseWorkChain,
        crystal=crystal_inputs(codes["crystal"], "NiO static", nio_structure()),
    )
    relax = submit(CrystalCalculation, **crystal_inputs(codes["crystal"], "relax", mgo_structure()))
    relax = submit_and_await(relax, timeout=180)
    chain = submit_and_await(chain, timeout=180)
    assert relax.is_finished_ok and chain.is_finished_ok, (relax.exit_message, chain.exit_message)
    assert relax.outputs.output_parameters["energy_hartree"] == pytest.approx(
        MGO_RELAX_HA, abs=1e-8
    )
    assert chain.outputs.output_parameters["energy_hartree"] == pytest.approx(
        NIO_RECOVERED_HA, abs=1e-8
    )
    assert len(chain.called) == 2
