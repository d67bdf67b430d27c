"""CrystalParser copies out of ``retrieved`` only the files it reads, and gets what parsing the
whole retrieved folder gives: fort.87 and SCFOUT.LOG beside the output, the optimisation steps."""

from __future__ import annotations

from aiida import orm
from aiida.common.links import LinkType

from crystal_atomate.aiida.calculations import OUTPUT_FILE
from crystal_atomate.aiida.parsers import CrystalParser, summarise
from crystal_atomate.io.errors import CrystalErrorKind
from crystal_atomate.io.outputs import parse_output
from crystal_atomate.testing.reference import reference_dir

_NOT_READ = {
    "_scheduler-stdout.txt": b"",
    "crystal.stderr": b"",
    "fort.34": b"not a geometry\n",
    "HESSOPT.DAT": b"1\n",
}


def _finished_calcjob(files: dict[str, bytes]) -> orm.CalcJobNode:
    """A stored CrystalCalculation node whose ``retrieved`` holds ``files``."""
    node = orm.CalcJobNode(process_type="aiida.calculations:crystal_atomate.crystal").store()
    retrieved = orm.FolderData()
    for name, content in files.items():
        retrieved.base.repository.put_object_from_bytes(content, name)
    retrieved.base.links.add_incoming(node, LinkType.CREATE, "retrieved")
    retrieved.store()
    return node


def test_parser_reads_the_output_its_companions_and_the_steps(aiida_profile, tmp_path):
    recording = reference_dir() / "mgo_opt_b3lyp_crystal22"
    files = {
        OUTPUT_FILE: (recording / "OUTPUT.out").read_bytes(),
        "fort.87": b"ERROR **** OUT OF MEMORY\n",
    }
    files |= {path.name: path.read_bytes() for path in recording.glob("optc*")}
    files |= {"SCFOUT.LOG": (recording / "SCFOUT.LOG").read_bytes(), **_NOT_READ}
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    whole_folder = parse_output(tmp_path / OUTPUT_FILE)
    assert CrystalErrorKind.UNKNOWN_ERROR in whole_folder.error_kinds and len(whole_folder.scf) > 1

    parser = CrystalParser(_finished_calcjob(files))
    exit_code = parser.parse()
    assert exit_code.status == CrystalErrorKind.UNKNOWN_ERROR.exit_status
    assert parser.outputs["output_parameters"].get_dict() == summarise(
        whole_folder, ["HESSOPT.DAT"]
    )
    assert parser.outputs["output_trajectory"].numsteps == 4
