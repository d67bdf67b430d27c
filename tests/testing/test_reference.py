"""The recorded CRYSTAL runs: one lookup, the override, provenance, licences, the wheel's share."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from crystal_atomate.demo import DEMO_REPLAY
from crystal_atomate.testing.reference import (
    PACKAGE_RECORDINGS,
    ReferenceDataMissing,
    recording_dir,
    reference_dir,
    reference_file,
)

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = PACKAGE_RECORDINGS / "MANIFEST.md"
FOLDERS = sorted(
    p.name for p in PACKAGE_RECORDINGS.iterdir() if p.is_dir() and p.name != "LICENSES"
)
MGO_OPT = "mgo_opt_b3lyp_crystal22"


def _manifest_rows() -> dict[str, list[str]]:
    """The folder table of MANIFEST.md: folder name -> its cells."""
    rows = {}
    for line in MANIFEST.read_text().splitlines():
        if line.startswith("| `"):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            rows[cells[0].strip("`")] = cells
    return rows


def _demo_recordings() -> set[str]:
    """Every recording the demo's replay plan names (a plan value is a step or a list of steps)."""
    steps = [
        step
        for spec in DEMO_REPLAY.values()
        for step in (spec if isinstance(spec, list) else [spec])
    ]
    return {step if isinstance(step, str) else step["recording"] for step in steps}


def _shipped_folders() -> set[str]:
    """The recording folders ``[tool.setuptools.package-data]`` puts into the sdist and wheel."""
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]
    matches = [
        re.fullmatch(r"recordings/(\w+)/\*", p) for p in package_data["crystal_atomate.testing"]
    ]
    return {m.group(1) for m in matches if m and m.group(1) != "LICENSES"}


def test_without_an_override_the_package_recordings_are_used(monkeypatch):
    monkeypatch.delenv("CRYSTAL_ATOMATE_REFERENCE_DIR", raising=False)
    assert reference_dir() == PACKAGE_RECORDINGS
    assert reference_file(MGO_OPT, "OUTPUT.out") == PACKAGE_RECORDINGS / MGO_OPT / "OUTPUT.out"


def test_the_override_replaces_the_package_folder(monkeypatch, tmp_path):
    (tmp_path / "MANIFEST.md").write_text("# mine\n")
    (tmp_path / "my_run").mkdir()
    (tmp_path / "my_run" / "OUTPUT.out").write_text("recorded\n")
    monkeypatch.setenv("CRYSTAL_ATOMATE_REFERENCE_DIR", str(tmp_path))
    assert reference_file("my_run", "OUTPUT.out").read_text() == "recorded\n"
    with pytest.raises(
        ReferenceDataMissing, match=f"No recording '{MGO_OPT}' in .*CRYSTAL_ATOMATE_REFERENCE_DIR"
    ):
        recording_dir(MGO_OPT)


def test_an_override_without_recordings_names_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("CRYSTAL_ATOMATE_REFERENCE_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(
        ReferenceDataMissing, match="CRYSTAL_ATOMATE_REFERENCE_DIR must name a folder"
    ):
        reference_dir()


def test_a_missing_file_of_a_recording_is_named(monkeypatch):
    monkeypatch.delenv("CRYSTAL_ATOMATE_REFERENCE_DIR", raising=False)
    with pytest.raises(
        ReferenceDataMissing, match=f"fort.34 does not exist in the recording '{MGO_OPT}'"
    ):
        reference_file(MGO_OPT, "fort.34")


def test_every_recording_has_its_provenance_and_licence_text():
    rows = _manifest_rows()
    assert len(FOLDERS) == 30
    assert sorted(rows) == FOLDERS
    for folder in FOLDERS:
        source = (PACKAGE_RECORDINGS / folder / "SOURCE.md").read_text()
        assert re.search(r"\b[0-9a-f]{40}\b", source), f"{folder}/SOURCE.md names no full commit"
    licences = MANIFEST.read_text().split("## Licences", 1)[1].split("## Folders", 1)[0]
    texts = re.findall(r"`LICENSES/([\w.-]+)`", licences)
    assert len(texts) == 5
    for text in texts:
        assert (PACKAGE_RECORDINGS / "LICENSES" / text).stat().st_size > 1000
    lgpl = (PACKAGE_RECORDINGS / "LICENSES" / "LGPL-3.0-aiida-crystal17.txt").read_text()
    assert "Copyright (c) 2019 Chris Sewell." in lgpl


def test_the_wheel_ships_exactly_the_demos_recordings_as_the_manifest_says():
    shipped = _shipped_folders()
    assert shipped == _demo_recordings() == {
        "mgo_opt_b3lyp_crystal22", "mgo_scf_band_doss_b3lyp_crystal17",
        "nio_scf_too_many_cycles_crystal17", "nio_scf_restart_guessp_crystal17",
    }
    rows = _manifest_rows()
    assert {folder for folder, cells in rows.items() if cells[-1] == "**yes**"} == shipped
    assert {rows[folder][4] for folder in shipped} == {"MIT", "LGPL-3.0*"}


def test_nothing_reads_recordings_from_outside_the_repository():
    """Only the UI's client code may be looked for beside the checkout (tests skip without it)."""
    needles = ("shared/" + "crystal-reference", "../" + "shared/crystal-")
    files = [ROOT / "README.md"] + [
        path
        for folder in ("crystal_atomate", "tests", "tutorials", "benchmarks", "docs", ".ci")
        for path in (ROOT / folder).rglob("*")
        if path.is_file()
        and path.suffix in {".py", ".md", ".yml", ".yaml", ""}
        and "recordings" not in path.parts
    ]
    assert len(files) > 100
    text = {path: path.read_text(errors="replace") for path in files}
    assert [
        str(path.relative_to(ROOT)) for path in files if any(n in text[path] for n in needles)
    ] == []
