"""Band-structure and DOS Makers: CRYSTAL's ``properties`` program on a previous SCF's fort.9."""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from jobflow import Maker, Response, job
from pymatgen.core import Structure

from crystal_atomate.io.outputs.properties import (
    parse_properties_output,
    read_band_dat,
    read_doss_dat,
)
from crystal_atomate.io.properties import PropertiesInput
from crystal_atomate.jobs.base import _DATA_OBJECTS, should_stop_children
from crystal_atomate.run import OUTPUT_FILE, run_crystal
from crystal_atomate.schemas.properties import CrystalPropertiesTaskDoc, PropertiesOutputDoc
from crystal_atomate.sets.properties import (
    BandStructureSetGenerator,
    DosSetGenerator,
    PropertiesSetGenerator,
)
from crystal_atomate.settings import CrystalAtomateSettings

__all__ = ["BandStructureMaker", "BasePropertiesMaker", "DosMaker"]


@dataclass
class BasePropertiesMaker(Maker, ABC):
    """Copy ``fort.9`` from ``prev_dir``, write the ``properties`` deck, run it, read results."""

    name: str = "properties"
    input_set_generator: PropertiesSetGenerator = field(default_factory=BandStructureSetGenerator)
    run_crystal_kwargs: dict = field(default_factory=dict)
    stop_children_kwargs: dict = field(default_factory=dict)
    task_type: Literal["band structure", "dos"] = "band structure"

    @job(data=_DATA_OBJECTS, output_schema=CrystalPropertiesTaskDoc)
    def make(self, structure: Structure, prev_dir: str | Path) -> Response:
        """Run properties for ``structure`` on the wavefunction of the SCF in ``prev_dir``."""
        workdir = Path.cwd()
        wavefunction = Path(prev_dir) / "fort.9"
        if not wavefunction.is_file():
            raise FileNotFoundError(
                f"No fort.9 in {prev_dir}: properties needs the SCF wavefunction"
            )
        shutil.copyfile(wavefunction, workdir / "fort.9")
        deck = self.input_set_generator.get_input_set(structure, prev_dir)
        deck.write_input(workdir)
        run_crystal(workdir, program="properties", job_name=self.name, **self.run_crystal_kwargs)
        doc = self._task_document(workdir, structure, deck, prev_dir)
        handle = self.stop_children_kwargs.get(
            "handle_unsuccessful", CrystalAtomateSettings().HANDLE_UNSUCCESSFUL
        )
        return Response(output=doc, stop_children=should_stop_children(doc, handle))

    def _task_document(
        self, workdir: Path, structure: Structure, deck: PropertiesInput, prev_dir: str | Path
    ) -> CrystalPropertiesTaskDoc:
        stdout = parse_properties_output(workdir / OUTPUT_FILE)
        doc = CrystalPropertiesTaskDoc(
            dir_name=str(workdir),
            state="successful" if stdout.successful else "failed",
            task_label=self.name,
            task_type=self.task_type,
            structure=structure,
            input={"d3": deck.to_string(), "prev_dir": str(prev_dir)},
            errors=[error.kind for error in stdout.errors],
            error_messages=[error.message for error in stdout.errors],
            crystal_version=stdout.version,
        )
        if stdout.successful:
            self._read_results(workdir, structure, deck, doc)
        return doc

    @abstractmethod
    def _read_results(
        self,
        workdir: Path,
        structure: Structure,
        deck: PropertiesInput,
        doc: CrystalPropertiesTaskDoc,
    ) -> None:
        """Read the program's data files into ``doc`` (pymatgen objects + headline numbers)."""


@dataclass
class BandStructureMaker(BasePropertiesMaker):
    """A band structure along a high-symmetry path (BAND), as a pymatgen BandStructureSymmLine."""

    name: str = "band structure"
    input_set_generator: PropertiesSetGenerator = field(default_factory=BandStructureSetGenerator)
    task_type: Literal["band structure", "dos"] = "band structure"

    def _read_results(
        self,
        workdir: Path,
        structure: Structure,
        deck: PropertiesInput,
        doc: CrystalPropertiesTaskDoc,
    ) -> None:
        bands = read_band_dat(workdir / "BAND.DAT")
        bandstructure = bands.to_band_structure(structure, deck.band)
        gap = bandstructure.get_band_gap()
        doc.bandstructure = bandstructure
        doc.output = PropertiesOutputDoc(
            bandgap=gap["energy"],
            direct_gap=gap["direct"],
            efermi=bandstructure.efermi,
            is_metal=bandstructure.is_metal(),
            n_kpoints=len(bandstructure.kpoints),
            n_bands=bandstructure.nb_bands,
        )


@dataclass
class DosMaker(BasePropertiesMaker):
    """A total (and projected) density of states (DOSS), as a pymatgen Dos."""

    name: str = "dos"
    input_set_generator: PropertiesSetGenerator = field(default_factory=DosSetGenerator)
    task_type: Literal["band structure", "dos"] = "dos"

    def _read_results(
        self,
        workdir: Path,
        structure: Structure,
        deck: PropertiesInput,
        doc: CrystalPropertiesTaskDoc,
    ) -> None:
        del structure, deck
        dos = read_doss_dat(workdir / "DOSS.DAT").to_dos()
        gap = dos.get_gap()
        doc.dos = dos
        doc.output = PropertiesOutputDoc(
            bandgap=gap, efermi=dos.efermi, is_metal=gap == 0.0, n_dos_points=len(dos.energies)
        )
