"""Runs the UI made by itself, as job documents built in their stored form in one walk.

:meth:`~crystal_atomate.stores.jobstore.CrystalMathJobStore.import_tui_jobs` reads the UI's rows,
finds each run's output, parses it and stores a job document per run. The parse is the work
that counts; everything else here keeps the rest of the cost low: the parse result becomes
JSON once (``model_dump(mode="json")`` in pydantic's compiled serialiser, structures without
pymatgen's per-site lattice copies), is encoded for the store in the same pass that notes its
list paths, and reaches the store as an
:class:`~crystal_atomate.stores.sqlite_store.EncodedDocument`, which it writes without walking
it again.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import uuid as uuid_lib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crystal_atomate.io.units import HARTREE_TO_EV
from crystal_atomate.stores.sqlite_store import EncodedDocument, encode_document
from crystal_atomate.stores.tui_mirror import IMPORTED_FROM_UI
from crystal_atomate.stores.ui_read import UIJob

if TYPE_CHECKING:
    from pymatgen.core import Element, Lattice, Structure

__all__ = ["find_output", "imported_document", "parse_result_document", "tui_job_uuid"]

#: Where an output is looked for when the folder holds no ``<name>.out``, in this order.
_OUTPUT_GLOBS = ("*.out", "OUTPUT", "*.log")
_UUID_PREFIX = uuid_lib.NAMESPACE_URL.bytes + b"crystal-tui:"
#: Paths (below a structure) that hold lists in ``Structure.as_dict()``.
_STRUCTURE_ARRAYS = (
    "lattice.matrix",
    "lattice.pbc",
    "sites",
    "sites.species",
    "sites.abc",
    "sites.xyz",
)


def tui_job_uuid(work_dir: str) -> str:
    """Derive a stable jobflow uuid for a UI job, so importing twice finds the same document.

    ``uuid.uuid5(NAMESPACE_URL, "crystal-tui:" + work_dir)``, formatted straight from the
    SHA-1 digest (the ``UUID`` object costs more than the hash).

    Parameters
    ----------
    work_dir
        The UI row's ``work_dir``.

    Returns
    -------
    str
        A UUID5 of the folder.
    """
    digest = bytearray(hashlib.sha1(_UUID_PREFIX + work_dir.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def find_output(work_dir: str, name: str) -> Path | None:
    """Find the CRYSTAL output of a UI run in its folder.

    The UI writes ``<name>.out`` (found with one ``stat``, whatever characters the name
    holds, if it stays in the folder); other folders are searched for ``*.out``, ``OUTPUT``
    and ``*.log``, in that order (the first in name order).

    Parameters
    ----------
    work_dir
        The UI row's ``work_dir``.
    name
        The UI row's ``name``.

    Returns
    -------
    Path or None
        The first output found; None when the folder is missing or holds none.
    """
    exact = os.path.join(work_dir, f"{name}.out")
    if os.path.basename(name) == name and os.path.isfile(exact):
        return Path(exact)
    folder = Path(work_dir)
    if not folder.is_dir():
        return None
    for pattern in _OUTPUT_GLOBS:
        files = sorted(hit for hit in folder.glob(pattern) if hit.is_file())
        if files:
            return files[0]
    return None


def _lattice_dict(lattice: Lattice) -> dict:
    """``lattice.as_dict(verbosity=1)`` without ``@module``/``@class``, as JSON mode has it.

    The parameters and volume are computed with :mod:`math`, in pymatgen's order of
    operations: numpy spends ~25 calls on three-element arrays for them, the largest part of
    importing a small cell. They equal pymatgen's bit for bit where numpy's ``arccos`` is the C
    library's (the tests check 20,000 random cells); a numpy that uses SVML's ``arccos`` (some
    AVX-512 machines) can differ in the last bit of an angle.
    """
    matrix = lattice.matrix.tolist()
    lengths = [math.sqrt(x * x + y * y + z * z) for x, y, z in matrix]
    angles = []
    for dim in range(3):
        u, v = matrix[(dim + 1) % 3], matrix[(dim + 2) % 3]
        cosine = (u[0] * v[0] + u[1] * v[1] + u[2] * v[2]) / (
            lengths[(dim + 1) % 3] * lengths[(dim + 2) % 3]
        )
        angles.append(math.degrees(math.acos(min(max(cosine, -1.0), 1.0))))
    (a0, a1, a2), (b0, b1, b2), (c0, c1, c2) = matrix
    volume = abs(
        (a1 * b2 - a2 * b1) * c0 + (a2 * b0 - a0 * b2) * c1 + (a0 * b1 - a1 * b0) * c2
    )
    return {
        "matrix": matrix,
        "pbc": list(lattice.pbc),
        **dict(zip(("a", "b", "c", "alpha", "beta", "gamma"), (*lengths, *angles), strict=True)),
        "volume": volume,
    }


@functools.cache
def _element_dict(element: Element) -> dict:
    """``element.as_dict()`` as a site lists it (pymatgen takes ~50 us; elements are singletons)."""
    return {k: v for k, v in element.as_dict().items() if k not in ("@module", "@class")}


def _structure_dict(structure: Structure) -> dict | None:
    """Return ``structure.as_dict()`` as ``model_dump(mode="json")`` has it; None if not plain.

    pymatgen's ``as_dict`` serialises the lattice, with its parameters and volume, once more
    for every site and then deletes it, and sums oxidation states through failing attribute
    look-ups: ~3 ms for a 71-atom cell. Here the lattice is serialised once, each element once
    per process, each composition's label once, the fractional coordinates in one array.
    Plain means what CRYSTAL outputs give: sites of elements (no oxidation states, dummy
    species or properties), no charge or properties set on the structure, finite numbers.
    The tests compare the result with pymatgen's on every recorded output.
    """
    from pymatgen.core import Element

    if structure.properties or getattr(structure, "_charge", None) is not None:
        return None
    lattice = _lattice_dict(structure.lattice)
    labels: dict[tuple, str] = {}
    sites = []
    total = lattice["volume"] + sum(lattice["matrix"][0]) + sum(lattice["matrix"][1])
    total += sum(lattice["matrix"][2])
    for site, abc in zip(structure, structure.frac_coords.astype(float).tolist(), strict=True):
        if site.properties:
            return None
        occupancies = tuple(site.species.items())
        species = []
        for spec, occu in occupancies:
            if type(spec) is not Element:
                return None
            species.append({**_element_dict(spec), "occu": occu})
        label = getattr(site, "_label", None)  # set by the caller; else the species string
        if label is None:
            label = labels.get(occupancies) or labels.setdefault(occupancies, site.label)
        xyz = site.coords.astype(float).tolist()
        total += abc[0] + abc[1] + abc[2] + xyz[0] + xyz[1] + xyz[2]
        sites.append(
            {"species": species, "abc": abc, "properties": {}, "label": label, "xyz": xyz}
        )
    if not math.isfinite(total):
        return None
    return {
        "@module": type(structure).__module__,
        "@class": type(structure).__name__,
        "charge": 0.0,
        "lattice": lattice,
        "properties": {},
        "sites": sites,
    }


def _plain_structures(parsed: Any) -> dict[str, dict]:
    """Serialise the fields of a parse result that hold a plain periodic structure."""
    from pymatgen.core import IStructure, Structure

    found = {}
    for name, value in vars(parsed).items():
        if type(value) is Structure or type(value) is IStructure:
            serialised = _structure_dict(value)
            if serialised is not None:
                found[name] = serialised
    return found


def parse_result_document(parsed: Any, path: str, arrays: set[str]) -> dict:
    """Return a parse result as stored: ``model_dump(mode="json")``, encoded, in one walk.

    Parameters
    ----------
    parsed
        A pydantic model (or a mapping) from the output parser.
    path
        Its dotted path in the job document.
    arrays
        Receives the dotted paths that hold lists.

    Returns
    -------
    dict
        Equal to ``encode_document(parsed.model_dump(mode="json"))``, keys in the same order.
    """
    if not hasattr(parsed, "model_dump"):
        return encode_document(dict(parsed), path, arrays)
    structures = _plain_structures(parsed)
    if not structures:
        return encode_document(parsed.model_dump(mode="json"), path, arrays)
    rest = encode_document(parsed.model_dump(mode="json", exclude=set(structures)), path, arrays)
    for name in structures:
        arrays.update(f"{path}.{name}.{sub}" for sub in _STRUCTURE_ARRAYS)
    ordered = {
        name: structures[name] if name in structures else rest[name]
        for name in type(parsed).model_fields
        if name in structures or name in rest
    }
    ordered.update(rest)
    return ordered


def imported_document(job: UIJob, parsed: Any) -> EncodedDocument:
    """Build the job document of a run the UI made, with our task documents' field names.

    Field names such as ``output.output.energy_hartree``: imported runs so answer the same
    queries; the parser's full result is kept under ``output.parsed``.

    Parameters
    ----------
    job
        The UI's row.
    parsed
        The parse result of its output.

    Returns
    -------
    EncodedDocument
        Ready for :meth:`~crystal_atomate.stores.sqlite_store.SQLiteStore.update_encoded`.
    """
    arrays: set[str] = set()
    result = parse_result_document(parsed, "output.parsed", arrays)
    energy_ha = job.final_energy
    parsed_ha = result.get("energy_ha")
    # read from the encoded result: a NaN or infinite energy is a tagged string there, so the
    # UI row's energy is kept instead
    energy_ha = parsed_ha if isinstance(parsed_ha, (int, float)) else energy_ha
    parsed_state = result.get("state")
    if parsed_state is None:
        state = "successful" if job.status == "COMPLETED" else "failed"
    else:
        state = "successful" if parsed_state == "converged" else "failed"
    output = {
        "state": state,
        "dir_name": job.work_dir,
        "task_label": job.name,
        "input": {"d12": job.input_file},
        "errors": result.get("error_kinds", []),
        "output": {
            "energy_hartree": energy_ha,
            "energy": None if energy_ha is None else energy_ha * HARTREE_TO_EV,
            "bandgap": result.get("band_gap_ev"),
            "scf_cycles": result.get("scf_cycles"),
        },
    }
    metadata: dict[str, Any] = {"tui_job_id": job.id, "imported_from": IMPORTED_FROM_UI}
    if job.workflow_id:
        metadata["flow_uuid"] = job.workflow_id
    doc = encode_document(
        {
            "uuid": tui_job_uuid(job.work_dir),
            "index": 1,
            "name": job.name,
            "output": output,
            "completed_at": job.completed_at,
            "metadata": metadata,
            "hosts": [],
        },
        "",
        arrays,
    )
    doc["output"]["parsed"] = result
    return EncodedDocument(doc, frozenset(arrays))
