"""Tutorial: CRYSTAL with full AiiDA provenance, on an embedded profile, with the replay executable.

Runs in a throw-away AIIDA_PATH (nothing touches ~/.aiida):

1. create a profile, a localhost computer and the crystal/properties codes (what
   ``crystal-atomate aiida setup --replay`` does);
2. run the MgO relaxation as a CrystalCalculation and the NiO SCF that fails then recovers through
   CrystalBaseWorkChain;
3. run the demo's jobflow flows with every CRYSTAL step as an AiiDA CalcJob (executor mode), the
   results going to the shared database as usual;
4. run the MgO flow again as one AiiDA work chain (flow mode: what ``submit_flow`` hands the
   daemon);
5. print the provenance as ``verdi process show`` does.

    python tutorials/aiida_provenance.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path


def main() -> None:
    """Run the five steps of the module docstring in a throw-away AIIDA_PATH."""
    root = Path(tempfile.mkdtemp(prefix="crystal-aiida-tutorial-"))
    os.environ["AIIDA_PATH"] = str(root)

    from aiida import orm
    from aiida.engine import run_get_node
    from jobflow import run_locally

    from crystal_atomate.aiida.calculations import CrystalCalculation
    from crystal_atomate.aiida.executor import use_aiida_executor
    from crystal_atomate.aiida.flow_mode import run_flow
    from crystal_atomate.aiida.parameters import parameters_from_generator
    from crystal_atomate.aiida.setup import (
        ensure_codes,
        ensure_localhost,
        ensure_profile,
        replay_prepend_text,
    )
    from crystal_atomate.aiida.structures import structure_to_node
    from crystal_atomate.aiida.workflows import CrystalBaseWorkChain
    from crystal_atomate.demo import DEMO_REPLAY, demo_flows, mgo_structure, nio_structure
    from crystal_atomate.stores.jobstore import CrystalMathJobStore
    from crystal_atomate.testing.reference import reference_dir
    from crystal_atomate.testing.replay_setup import use_replay

    # 1. profile, computer, codes (idempotent)
    profile = ensure_profile("tutorial", broker=None)
    computer = ensure_localhost("localhost", root / "run")
    replay = shutil.which("crystal-atomate-replay")
    codes = ensure_codes(computer, replay, replay)
    plan = use_replay(DEMO_REPLAY, root / "replay")["CRYSTAL_ATOMATE_REPLAY_PLAN"]
    computer.set_prepend_text(replay_prepend_text(plan, reference_dir()))
    print(f"profile {profile.name} in {root}")

    # 2. CalcJob and work chain: the same settings as the demo Makers, as a parameters Dict
    generators = {
        job.name: job.maker.input_set_generator
        for flow in demo_flows()
        for job, _ in flow.iterflow()
    }

    def inputs(name, structure):
        node, magmoms = structure_to_node(structure)
        parameters = parameters_from_generator(generators[name], title=name) | (
            {"magmoms": magmoms} if magmoms else {}
        )
        return {"code": codes["crystal"], "structure": node, "parameters": orm.Dict(parameters)}

    relax, relax_node = run_get_node(CrystalCalculation, **inputs("relax", mgo_structure()))
    print(f"MgO relax: {relax['output_parameters']['energy_hartree']:.10f} Ha, pk {relax_node.pk}")
    nio, chain = run_get_node(CrystalBaseWorkChain, crystal=inputs("NiO static", nio_structure()))
    print(
        f"NiO after {len(chain.called)} runs: {nio['output_parameters']['energy_hartree']:.10f} "
        f"Ha, pk {chain.pk}"
    )

    # 3. executor mode: the jobflow flows, every CRYSTAL step an AiiDA CalcJob (a fresh replay plan:
    #    the replay counts the attempts of each job name, and step 2 used some)
    plan = use_replay(DEMO_REPLAY, root / "replay-flows")["CRYSTAL_ATOMATE_REPLAY_PLAN"]
    computer.set_prepend_text(replay_prepend_text(plan, reference_dir()))
    store = CrystalMathJobStore(root / ".crystal_tui.db")
    for flow in demo_flows():
        run_locally(
            use_aiida_executor(flow),
            store=store,
            create_folders=True,
            root_dir=root / "jobflow",
            ensure_success=True,
            log=False,
        )
    store.connect()
    doc = store.query_one({"name": "static"})
    run = doc["output"]["calcs_reversed"][0]["run"]
    print(f"jobflow 'static' job {doc['uuid']} ran as AiiDA node {run['aiida_uuid']}")

    # 4. flow mode: the whole MgO flow as one work chain calling a CalcJob per CRYSTAL step
    #    (submit_flow(...) instead of run_flow(...) hands it to a running daemon and returns at
    # once)
    plan = use_replay(DEMO_REPLAY, root / "replay-flow-mode")["CRYSTAL_ATOMATE_REPLAY_PLAN"]
    computer.set_prepend_text(replay_prepend_text(plan, reference_dir()))
    flow_store = CrystalMathJobStore(root / "flow-mode.db")
    work_chain = run_flow(demo_flows()[0], store=flow_store, root_dir=root / "flow-mode")
    assert work_chain.is_finished_ok, work_chain.exit_message
    for done in work_chain.outputs.jobs.get_dict().values():
        print(f"flow mode: {done['name']:<15} {done['state']:<10} CalcJobs {done['calcjobs']}")

    # 5. provenance
    env = dict(os.environ)
    for pk in (chain.pk, orm.load_node(run["aiida_uuid"]).pk, work_chain.pk):
        print(subprocess.run(["verdi", "-p", profile.name, "process", "show", str(pk)], env=env,
                             capture_output=True, text=True).stdout)


if __name__ == "__main__":
    main()
