"""CalcJobs for CRYSTAL (``crystal_atomate.crystal``) and its ``properties`` program.

The deck is built by the same input-set generator as the Makers' (see
:mod:`crystal_atomate.aiida.parameters`), so ``INPUT`` and ``fort.34`` are byte-identical whichever
engine writes them. Exit codes are generated from the one error catalogue,
:class:`~crystal_atomate.io.errors.CrystalErrorKind`: 3xx for what no restart can fix, 4xx for the
recoverable failures, plus two parser-level codes for an output that is missing or unreadable.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Collection
from typing import Any

from aiida import orm
from aiida.common import CalcInfo, CodeInfo
from aiida.common.folders import Folder
from aiida.engine import CalcJob, CalcJobProcessSpec
from pymatgen.core import Molecule, Structure

from crystal_atomate.aiida.parameters import ParametersError, build_input_set
from crystal_atomate.aiida.structures import structure_from_node
from crystal_atomate.io.d12 import CrystalInput
from crystal_atomate.io.errors import CrystalErrorKind
from crystal_atomate.sets.base import RESTART_FILES, CrystalInputSet

__all__ = [
    "PARSER_EXIT_CODES",
    "CrystalCalculation",
    "PropertiesCalculation",
    "exit_code_label",
    "restart_files_needed",
]

INPUT_FILE = "INPUT"
OUTPUT_FILE = "OUTPUT"
STDERR_FILE = "crystal.stderr"

#: Small files kept in ``retrieved``: the output, CRYSTAL's error report, the final geometry, the
#: SCFs of later optimisation steps, every optimisation step's geometry, and the restart files.
CRYSTAL_RETRIEVE = [
    OUTPUT_FILE,
    STDERR_FILE,
    "fort.34",
    "fort.87",
    "SCFOUT.LOG",
    "optc*",
    "opta*",
    "HESSOPT.DAT",
    "OPTINFO.DAT",
    "FREQINFO.DAT",
    "EOSINFO.DAT",
]
#: The wavefunction stays on the computer (parent_folder restarts copy it there); the parser only
#: needs to know whether it was written.
CRYSTAL_RETRIEVE_TEMPORARY = ["fort.9"]

#: Exit codes the parser adds to the catalogue: the output itself is not there or not CRYSTAL's.
PARSER_EXIT_CODES: dict[str, tuple[int, str]] = {
    "ERROR_OUTPUT_FILE_MISSING": (350, "the CRYSTAL output file was not retrieved"),
    "ERROR_OUTPUT_FILE_UNREADABLE": (351, "the output file is not a CRYSTAL output: {reason}"),
}


def exit_code_label(kind: CrystalErrorKind) -> str:
    """Return the spec label of a catalogue kind, e.g. ``ERROR_SCF_NOT_CONVERGED``."""
    return f"ERROR_{kind.name}"


def define_exit_codes(spec: CalcJobProcessSpec) -> None:
    """Declare every catalogue kind and the parser-level codes on ``spec``."""
    for kind in CrystalErrorKind:
        spec.exit_code(kind.exit_status, exit_code_label(kind), message=kind.message)
    for label, (status, message) in PARSER_EXIT_CODES.items():
        spec.exit_code(status, label, message=message)


def restart_files_needed(crystal_input: CrystalInput) -> list[str]:
    """Return the restart files the deck reads (names in the new run), so only those are copied."""
    needed = []
    if crystal_input.scf.guessp:
        needed.append("fort.20")
    if crystal_input.optgeom is not None and crystal_input.optgeom.hessopt:
        needed.append("HESSOPT.DAT")
    if crystal_input.optgeom is not None and crystal_input.optgeom.restart:
        needed.append("OPTINFO.DAT")
    if crystal_input.freqcalc is not None and crystal_input.freqcalc.restart:
        needed.append("FREQINFO.DAT")
    return needed


def crystal_codeinfo(code_uuid: str, withmpi: bool) -> CodeInfo:
    """How to call the program, as ``run_crystal`` does.

    Serial builds read the deck on standard input; MPI builds (Pcrystal, Pproperties) read the file
    INPUT and write the output to stderr.
    """
    codeinfo = CodeInfo()
    codeinfo.code_uuid = code_uuid
    codeinfo.stdout_name = OUTPUT_FILE
    if withmpi:
        codeinfo.join_files = True
    else:
        codeinfo.stdin_name = INPUT_FILE
        codeinfo.stderr_name = STDERR_FILE
    return codeinfo


_SOURCE_OF = {target: source for source, target in RESTART_FILES.items()}


def validate_inputs(inputs: dict[str, Any], _: Any) -> str | None:
    """Check the inputs name one deck: a written directory, or a structure with its parameters.

    Either ``input_folder`` or ``structure`` + ``parameters``, and the parameters must make a valid
    deck for that structure (the message names the bad key).

    With ``input_folder`` the folder's files are what runs; ``structure``, ``parameters`` (then the
    deck's own settings) and ``basis`` beside it record what they hold, for the provenance graph
    (:mod:`crystal_atomate.aiida.lineage`).
    """
    folder, structure, parameters = (
        inputs.get(key) for key in ("input_folder", "structure", "parameters")
    )
    if folder is not None:
        if INPUT_FILE not in folder.base.repository.list_object_names():
            return f"input_folder has no {INPUT_FILE} file"
        return None
    if "basis" in inputs:
        return "basis records a written input_folder's basis set; without one it goes in parameters"
    if structure is None or parameters is None:
        return "structure and parameters are required (or a written input_folder)"
    try:
        _input_set(structure, parameters.get_dict(), inputs.get("parent_folder"))
    except ParametersError as exc:
        return str(exc)
    return None


def _input_set(
    structure: orm.StructureData, parameters: dict[str, Any], parent: orm.Data | None
) -> CrystalInputSet:
    pymatgen = structure_from_node(structure, parameters.get("magmoms"))
    key = (json.dumps(parameters, sort_keys=True), json.dumps(pymatgen.as_dict(), sort_keys=True))
    return _cached_input_set(*key, _parent_has_wavefunction(parent))


@functools.lru_cache(maxsize=16)
def _cached_input_set(parameters: str, structure: str, with_wavefunction: bool) -> CrystalInputSet:
    """Build the input set of a structure and its parameters once, keyed by their JSON.

    Validation and ``prepare_for_submission`` build the same deck, and the symmetry analysis of a
    symmetrized geometry takes seconds. Keyed by content, so it never goes stale.
    """
    pymatgen = (
        Structure.from_dict(json.loads(structure))
        if '"lattice"' in structure
        else Molecule.from_dict(json.loads(structure))
    )
    return build_input_set(json.loads(parameters), pymatgen, with_wavefunction=with_wavefunction)


def _parent_has_wavefunction(parent: orm.Data | None) -> bool:
    """Return a remote parent is trusted to hold fort.9 (listing it would open a transport).

    A folder is looked at, as a Maker looks at ``prev_dir``.
    """
    if parent is None:
        return False
    if isinstance(parent, orm.FolderData):
        return "fort.9" in parent.base.repository.list_object_names()
    return True


class CrystalCalculation(CalcJob):
    """One run of CRYSTAL's ``crystal`` program on a structure with validated settings."""

    @classmethod
    def define(cls, spec: CalcJobProcessSpec) -> None:  # type: ignore[override]
        """Define the inputs, outputs and exit codes (generated from the catalogue)."""
        super().define(spec)
        spec.input(
            "structure", valid_type=orm.StructureData, required=False, help="The structure to run."
        )
        spec.input(
            "parameters",
            valid_type=orm.Dict,
            required=False,
            help="Input-set generator settings (crystal_atomate.aiida.parameters): generator, "
                 "title, "
            "user_input_settings, user_kpoints_settings, user_basis_settings, functional, magmoms, "
            "...",
        )
        spec.input(
            "input_folder",
            valid_type=orm.FolderData,
            required=False,
            help="A run directory already written (INPUT, fort.34, restart files): executor mode.",
        )
        spec.input(
            "basis",
            valid_type=orm.Dict,
            required=False,
            help="With input_folder: the basis set the written deck uses (name, text), for "
                 "provenance.",
        )
        spec.input(
            "parent_folder",
            valid_type=(orm.RemoteData, orm.FolderData),
            required=False,
            help="A previous run: its fort.9 (GUESSP) and HESSOPT.DAT/OPTINFO.DAT are staged (with "
            "input_folder: those restart files the deck reads and the folder lacks).",
        )
        spec.inputs.validator = validate_inputs
        spec.inputs["metadata"]["options"]["resources"].default = {
            "num_machines": 1,
            "num_mpiprocs_per_machine": 1,
        }
        spec.inputs["metadata"]["options"]["parser_name"].default = "crystal_atomate.crystal"
        spec.inputs["metadata"]["options"]["input_filename"].default = INPUT_FILE
        spec.inputs["metadata"]["options"]["output_filename"].default = OUTPUT_FILE
        spec.output(
            "output_parameters", valid_type=orm.Dict, help="Headline results, errors and run facts."
        )
        spec.output(
            "output_structure", valid_type=orm.StructureData, required=False, help="Final geometry."
        )
        spec.output(
            "output_trajectory",
            valid_type=orm.TrajectoryData,
            required=False,
            help="Optimisation steps.",
        )
        spec.default_output_node = "output_parameters"
        define_exit_codes(spec)

    def prepare_for_submission(self, folder: Folder) -> CalcInfo:
        """Write the deck (and fort.34) into the sandbox; list the files to stage and retrieve."""
        calcinfo = CalcInfo()
        calcinfo.local_copy_list = []
        calcinfo.remote_copy_list = []
        if "input_folder" in self.inputs:
            written = self.inputs.input_folder
            names = written.base.repository.list_object_names()
            calcinfo.local_copy_list = [(written.uuid, name, name) for name in names]
            deck = CrystalInput.from_string(written.base.repository.get_object_content(INPUT_FILE))
            self._stage_parent(calcinfo, deck, skip=set(names))
        else:
            input_set = _input_set(
                self.inputs.structure,
                self.inputs.parameters.get_dict(),
                self.inputs.get("parent_folder"),
            )
            input_set.crystal_input.write_input(folder.abspath, make_dir=False)
            self._stage_parent(calcinfo, input_set.crystal_input)
        calcinfo.codes_info = [
            crystal_codeinfo(self.inputs.code.uuid, bool(self.node.get_option("withmpi")))
        ]
        calcinfo.retrieve_list = [
            *CRYSTAL_RETRIEVE,
            *(self.node.get_option("additional_retrieve_list") or []),
        ]
        calcinfo.retrieve_temporary_list = list(CRYSTAL_RETRIEVE_TEMPORARY)
        return calcinfo

    def _stage_parent(
        self, calcinfo: CalcInfo, crystal_input: CrystalInput, skip: Collection[str] = ()
    ) -> None:
        """Copy the parent's restart files the deck reads, but those already in ``skip``."""
        parent = self.inputs.get("parent_folder")
        if parent is None:
            return
        if isinstance(parent, orm.FolderData):
            present = set(parent.base.repository.list_object_names())
            calcinfo.local_copy_list.extend(
                (parent.uuid, source, target)
                for source, target in RESTART_FILES.items()
                if source in present
                and target not in skip
                and (target != "fort.20" or crystal_input.scf.guessp)
            )
            return
        root = parent.get_remote_path()
        calcinfo.remote_copy_list.extend(
            (parent.computer.uuid, f"{root}/{_SOURCE_OF[target]}", target)
            for target in restart_files_needed(crystal_input)
            if target not in skip
        )


PROPERTIES_RETRIEVE = [OUTPUT_FILE, STDERR_FILE, "*.DAT", "fort.25"]


class PropertiesCalculation(CalcJob):
    """CRYSTAL's ``properties`` program (BAND, DOSS) on a parent run's wavefunction ``fort.9``."""

    @classmethod
    def define(cls, spec: CalcJobProcessSpec) -> None:  # type: ignore[override]
        """Define the inputs: a ``properties`` deck and the parent SCF whose fort.9 is staged.

        The deck is text, from :class:`~crystal_atomate.io.properties.PropertiesInput`.
        """
        super().define(spec)
        spec.input("deck", valid_type=orm.SinglefileData, help="The properties deck (d3).")
        spec.input(
            "parent_folder",
            valid_type=(orm.RemoteData, orm.FolderData),
            help="The SCF run whose fort.9 properties reads.",
        )
        spec.inputs["metadata"]["options"]["resources"].default = {
            "num_machines": 1,
            "num_mpiprocs_per_machine": 1,
        }
        spec.inputs["metadata"]["options"]["parser_name"].default = "crystal_atomate.properties"
        spec.inputs["metadata"]["options"]["input_filename"].default = INPUT_FILE
        spec.inputs["metadata"]["options"]["output_filename"].default = OUTPUT_FILE
        spec.output(
            "output_parameters", valid_type=orm.Dict, help="Band gap, Fermi level, points read."
        )
        spec.output("output_bands", valid_type=orm.SinglefileData, required=False, help="BAND.DAT")
        spec.output("output_dos", valid_type=orm.SinglefileData, required=False, help="DOSS.DAT")
        spec.default_output_node = "output_parameters"
        define_exit_codes(spec)

    def prepare_for_submission(self, folder: Folder) -> CalcInfo:
        """Stage the deck and the parent's fort.9; retrieve the output and the data files."""
        parent = self.inputs.parent_folder
        calcinfo = CalcInfo()
        calcinfo.local_copy_list = [(self.inputs.deck.uuid, self.inputs.deck.filename, INPUT_FILE)]
        calcinfo.remote_copy_list = []
        if isinstance(parent, orm.FolderData):
            calcinfo.local_copy_list.append((parent.uuid, "fort.9", "fort.9"))
        else:
            calcinfo.remote_copy_list.append(
                (parent.computer.uuid, f"{parent.get_remote_path()}/fort.9", "fort.9")
            )
        calcinfo.codes_info = [
            crystal_codeinfo(self.inputs.code.uuid, bool(self.node.get_option("withmpi")))
        ]
        calcinfo.retrieve_list = [
            *PROPERTIES_RETRIEVE,
            *(self.node.get_option("additional_retrieve_list") or []),
        ]
        return calcinfo
