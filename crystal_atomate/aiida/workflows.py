"""``CrystalBaseWorkChain``: a CrystalCalculation restarted by the jobflow Makers' recovery rules.

One process handler covers every failure of the catalogue: it hands the run's errors, its deck and
the restarts made so far to :func:`crystal_atomate.recovery.plan_restart` - the very function the
Makers call - and applies the plan the same way a Maker does (settings update, GUESSP/HESSOPT from
the failed run's folder, the last optimisation geometry). One catalogue, one set of rules, two
engines.
"""

from __future__ import annotations

import re
from typing import Any

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import BaseRestartWorkChain, ProcessHandlerReport, process_handler, while_
from pymatgen.core import Structure

from crystal_atomate.aiida.calculations import INPUT_FILE, PARSER_EXIT_CODES, CrystalCalculation
from crystal_atomate.aiida.structures import structure_to_node
from crystal_atomate.io.d12 import CrystalInput
from crystal_atomate.io.errors import CrystalErrorKind
from crystal_atomate.io.fort34 import Fort34
from crystal_atomate.recovery import Unrecoverable, plan_restart
from crystal_atomate.schemas.task import RestartRecord
from crystal_atomate.sets.base import deep_update

__all__ = ["CrystalBaseWorkChain"]

_OPT_STEP = re.compile(r"^optc\d{3,}$")
#: Every failure a CrystalCalculation can end with: the catalogue's codes and the parser's.
_FAILURES = [CrystalCalculation.exit_codes[f"ERROR_{kind.name}"] for kind in CrystalErrorKind] + [
    CrystalCalculation.exit_codes[label] for label in PARSER_EXIT_CODES
]


class CrystalBaseWorkChain(BaseRestartWorkChain):
    """Run a CrystalCalculation; on a recoverable failure, restart it as the Makers would."""

    _process_class = CrystalCalculation

    @classmethod
    def define(cls, spec: Any) -> None:  # type: ignore[override]
        """Return the CalcJob's inputs under ``crystal``, its outputs, and the restart loop."""
        super().define(spec)
        spec.expose_inputs(CrystalCalculation, namespace="crystal")
        spec.expose_outputs(CrystalCalculation)
        spec.outline(
            cls.setup,
            while_(cls.should_run_process)(cls.run_process, cls.inspect_process),
            cls.results,
        )
        spec.exit_code(300, "ERROR_UNRECOVERABLE_FAILURE", message="not restarted: {reason}")

    def setup(self) -> None:
        """Return the inputs of the next calculation, updated by each restart."""
        super().setup()
        self.ctx.inputs = AttributeDict(self.exposed_inputs(CrystalCalculation, "crystal"))
        self.ctx.restarts = []

    @process_handler(priority=500, exit_codes=_FAILURES)
    def handle_crystal_failure(self, calculation: orm.CalcJobNode) -> ProcessHandlerReport:
        """Plan the restart with the shared rules, or stop with the reason they give."""
        if "output_parameters" not in calculation.outputs:
            return self._give_up(calculation.exit_message or "the output could not be read")
        results = calculation.outputs.output_parameters.get_dict()
        deck = CrystalInput.from_string(calculation.base.repository.get_object_content(INPUT_FILE))
        plan = plan_restart(
            [CrystalErrorKind(value) for value in results["errors"]],
            deck,
            self.ctx.restarts,
            is_metal=results.get("is_metal"),
            files=[*results.get("restart_files", []), *_opt_steps(calculation)],
        )
        if isinstance(plan, Unrecoverable):
            return self._give_up(plan.reason)
        plan.from_dir = calculation.outputs.remote_folder.get_remote_path()
        self._apply(plan, calculation)
        self.ctx.restarts.append(plan)
        self.node.base.extras.set(
            "restarts", [record.model_dump(mode="json") for record in self.ctx.restarts]
        )
        self.report(
            f"{calculation.process_label}<{calculation.pk}> failed "
            f"({', '.join(results['errors'])}): {plan.action}"
        )
        return ProcessHandlerReport(do_break=True)

    def _give_up(self, reason: str) -> ProcessHandlerReport:
        self.report(f"not restarted: {reason}")
        return ProcessHandlerReport(
            True, self.exit_codes.ERROR_UNRECOVERABLE_FAILURE.format(reason=reason)
        )

    def _apply(self, plan: RestartRecord, calculation: orm.CalcJobNode) -> None:
        """Return the Maker's restart, in inputs: settings update, parent folder, geometry."""
        parameters = self.ctx.inputs.parameters.get_dict()
        parameters["user_input_settings"] = deep_update(
            parameters.get("user_input_settings", {}), plan.input_updates
        )
        parameters["inherit_wavefunction"] = plan.wavefunction
        if plan.wavefunction or plan.hessian:
            self.ctx.inputs.parent_folder = calculation.outputs.remote_folder
        else:
            self.ctx.inputs.pop("parent_folder", None)
        if plan.geometry_from == "last_step":
            geometry = _last_geometry(calculation)
            if geometry is not None:
                self.ctx.inputs.structure, magmoms = structure_to_node(geometry)
                parameters.pop("magmoms", None)
                parameters.update({"magmoms": magmoms} if magmoms else {})
        self.ctx.inputs.parameters = orm.Dict(parameters)


def _opt_steps(calculation: orm.CalcJobNode) -> list[str]:
    return [
        name
        for name in calculation.outputs.retrieved.base.repository.list_object_names()
        if _OPT_STEP.match(name)
    ]


def _last_geometry(calculation: orm.CalcJobNode) -> Structure | None:
    """Return the newest geometry of the failed run.

    Its last optcNNN file, else its parsed structure.
    """
    steps = sorted(_opt_steps(calculation))
    if steps:
        with calculation.outputs.retrieved.base.repository.as_path() as directory:
            fort34 = Fort34.from_file(directory / steps[-1])
        return fort34.to_structure()
    if "output_structure" in calculation.outputs:
        return calculation.outputs.output_structure.get_pymatgen()
    return None
