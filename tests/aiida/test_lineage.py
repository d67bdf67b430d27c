"""Data lineage: a relax -> static flow run through AiiDA is one provenance graph.

Executor mode under jobflow and flow mode as a work chain both link the input structure to the
final energy.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from aiida import orm
from aiida.common.links import LinkType
from aiida.tools.visualization import Graph
from jobflow import Flow, run_locally

from crystal_atomate.aiida.executor import use_aiida_executor
from crystal_atomate.aiida.flow_mode import run_flow
from crystal_atomate.aiida.lineage import same_geometry
from crystal_atomate.demo import DEMO_REPLAY, mgo_makers, mgo_structure
from crystal_atomate.stores.jobstore import CrystalMathJobStore
from crystal_atomate.testing.recipes import MGO_RELAX_HA, MGO_STATIC_HA


def _relax_static() -> Flow:
    makers = mgo_makers()
    relax = makers["relax"].make(mgo_structure())
    static = makers["static"].make(relax.output.structure, prev_dir=relax.output.dir_name)
    return Flow([relax, static], name="MgO relax static")


def _calcjob(name: str, root: Path) -> orm.CalcJobNode:
    query = orm.QueryBuilder().append(
        orm.CalcJobNode,
        filters={"label": name, "extras.jobflow_directory": {"like": f"{root.resolve()}%"}},
    )
    (node,) = query.all(flat=True)
    return node


def _ancestors(node: orm.Node, kind: type[orm.Node]) -> set[str]:
    """uuids of every ``kind`` node upstream of ``node`` in the provenance graph."""
    query = orm.QueryBuilder().append(type(node), filters={"id": node.pk}, tag="end")
    query.append(kind, with_descendants="end", project="uuid")
    return set(query.all(flat=True))


#: The result of one mode's run: its relax and static CalcJobs, and the work chain (flow mode only).
Run = tuple[orm.CalcJobNode, orm.CalcJobNode, orm.WorkChainNode | None]

#: Every AiiDA mode: executor mode (jobflow drives, each step a CalcJob), flow mode (a work chain).
EVERY_MODE = pytest.mark.parametrize("relax_static", ["executor", "flow"], indirect=True)
#: Flow mode only: the checks of the work chain that runs the steps (executor mode has none).
FLOW_MODE = pytest.mark.parametrize("relax_static", ["flow"], indirect=True)


@pytest.fixture(scope="module")
def lineage_runs(codes, localhost_replay, tmp_path_factory) -> Callable[[str], Run]:
    """Run the MgO relax -> static flow in a mode the first time a test asks for that mode.

    Cached per mode for the module, whatever order the tests of the two modes run in (a
    module-scoped fixture parametrised per test would be torn down and run again at every switch).
    """
    del codes

    @functools.cache
    def run(mode: str) -> Run:
        root = tmp_path_factory.mktemp(f"lineage_{mode}")
        store = CrystalMathJobStore(root / ".crystal_tui.db")
        replay = {"relax": DEMO_REPLAY["relax"], "static": DEMO_REPLAY["static"]}
        with localhost_replay(replay, root / "replay"):
            if mode == "executor":
                run_locally(
                    use_aiida_executor(_relax_static()),
                    store=store,
                    create_folders=True,
                    root_dir=root,
                    ensure_success=True,
                    log=False,
                )
                workchain = None
            else:
                workchain = run_flow(_relax_static(), store=store, root_dir=root)
                assert workchain.is_finished_ok, workchain.exit_message
        return _calcjob("relax", root), _calcjob("static", root), workchain

    return run


@pytest.fixture
def relax_static(request, lineage_runs) -> Run:
    """The flow run in the mode the test is parametrised with (``EVERY_MODE`` or ``FLOW_MODE``)."""
    return lineage_runs(request.param)


@EVERY_MODE
def test_static_runs_on_the_relaxed_structure_node(relax_static):
    relax, static, _ = relax_static
    assert relax.outputs.output_parameters["energy_hartree"] == pytest.approx(
        MGO_RELAX_HA, abs=1e-8
    )
    assert static.outputs.output_parameters["energy_hartree"] == pytest.approx(
        MGO_STATIC_HA, abs=1e-8
    )
    assert static.inputs.structure.uuid == relax.outputs.output_structure.uuid
    assert static.inputs.parent_folder.uuid == relax.outputs.remote_folder.uuid
    assert same_geometry(relax.inputs.structure.get_pymatgen(), mgo_structure())


@EVERY_MODE
def test_wavefunction_is_staged_from_the_parent_not_the_repository(relax_static):
    relax, static, _ = relax_static
    assert "fort.20" not in static.inputs.input_folder.base.repository.list_object_names()
    assert "GUESSP" in static.inputs.input_folder.base.repository.get_object_content("INPUT")
    assert "fort.20" in static.outputs.remote_folder.listdir()
    assert "fort.20" not in relax.inputs.input_folder.base.repository.list_object_names()


@EVERY_MODE
def test_parameters_and_basis_are_nodes(relax_static):
    relax, static, _ = relax_static
    assert (
        relax.inputs.parameters["optgeom"] is not None
        and static.inputs.parameters["optgeom"] is None
    )
    assert relax.inputs.basis.uuid == static.inputs.basis.uuid
    assert relax.inputs.basis["name"] == static.inputs.basis["name"]


@EVERY_MODE
def test_final_energy_leads_back_to_the_input_structure(relax_static):
    relax, static, _ = relax_static
    energy = static.outputs.output_parameters
    structures = _ancestors(energy, orm.StructureData)
    assert structures == {relax.inputs.structure.uuid, relax.outputs.output_structure.uuid}
    assert {relax.uuid, static.uuid} <= _ancestors(energy, orm.CalcJobNode)
    query = orm.QueryBuilder().append(
        orm.StructureData, filters={"id": relax.inputs.structure.pk}, tag="start"
    )
    query.append(orm.Dict, with_ancestors="start", filters={"id": energy.pk}).distinct()
    assert query.count() == 1


@FLOW_MODE
def test_flow_work_chain_calls_its_steps_and_returns_their_outputs(relax_static):
    relax, static, workchain = relax_static
    assert {node.uuid for node in workchain.called} == {relax.uuid, static.uuid}
    returned = {
        link.node.uuid
        for link in workchain.base.links.get_outgoing(link_type=LinkType.RETURN).all()
    }
    assert static.outputs.output_parameters.uuid in returned
    assert relax.outputs.output_structure.uuid in returned


@EVERY_MODE
@pytest.mark.skipif(
    shutil.which("dot") is None, reason="graphviz is not installed (apt-get install graphviz)"
)
def test_provenance_graph_renders_from_energy_to_input(relax_static, tmp_path):
    relax, static, _ = relax_static
    graph = Graph()
    graph.recurse_ancestors(static.outputs.output_parameters, depth=None)
    assert {
        relax.inputs.structure.pk,
        relax.pk,
        relax.outputs.output_structure.pk,
        static.pk,
    } <= set(graph.nodes)
    rendered = Path(graph.graphviz.render(str(tmp_path / "lineage"), format="svg"))
    assert rendered.stat().st_size > 1000
