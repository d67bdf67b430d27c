"""``crystal-atomate mp get|search`` against the local MP server, caching in ``CRYSTAL_TUI_DB``."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import pytest
from pymatgen.core import Structure
from pymatgen.io.cif import CifParser
from pymatgen.io.vasp import Poscar
from typer.testing import CliRunner

from crystal_atomate.cli import app
from crystal_atomate.testing.mp_server import CORE, SUMMARY, VALID_KEY, MPServer

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("no_real_materials_project")


def cached_ids(db_file: Path) -> list[str]:
    conn = sqlite3.connect(db_file)
    try:
        return [
            r[0] for r in conn.execute("SELECT material_id FROM materials_structures ORDER BY id")
        ]
    finally:
        conn.close()


def test_get_prints_cif_and_caches(mp_server: MPServer, db_file: Path) -> None:
    result = runner.invoke(app, ["mp", "get", "mp-1265"])

    assert result.exit_code == 0, result.output
    structure = CifParser.from_str(result.stdout).parse_structures(primitive=False)[0]
    assert structure.composition.reduced_formula == "MgO"
    assert structure.lattice.a == pytest.approx(4.25 / math.sqrt(2), abs=1e-5)
    assert f"mp-1265 MgO, 2 sites, MP database 2025.09.25 (from {mp_server.url})" in result.stderr
    assert cached_ids(db_file) == ["mp-1265"]


def test_cached_rows_carry_no_deck(mp_server: MPServer, db_file: Path) -> None:
    """The UI reads a row's ``structure_json`` only, so no ``.d12`` is rendered for the cache."""
    assert runner.invoke(app, ["mp", "search", "--formula", "Si"]).exit_code == 0

    conn = sqlite3.connect(db_file)
    decks = dict(conn.execute("SELECT material_id, d12_text FROM materials_structures"))
    conn.close()
    assert decks == {"mp-149": None, "mp-165": None}


@pytest.mark.parametrize("fmt", ["json", "poscar"])
def test_get_formats(mp_server: MPServer, db_file: Path, fmt: str) -> None:
    result = runner.invoke(app, ["mp", "get", "mp-149", "--format", fmt])

    assert result.exit_code == 0, result.output
    if fmt == "json":
        structure = Structure.from_dict(json.loads(result.stdout))
    else:
        structure = Poscar.from_str(result.stdout).structure
    assert (structure.composition.reduced_formula, len(structure)) == ("Si", 2)
    assert structure.lattice.a == pytest.approx(5.469 / math.sqrt(2), abs=1e-5)


def test_get_from_cache_offline_and_refresh(mp_server: MPServer, db_file: Path) -> None:
    assert runner.invoke(app, ["mp", "get", "mp-149"]).exit_code == 0

    again = runner.invoke(app, ["mp", "get", "mp-149"])
    refreshed = runner.invoke(app, ["mp", "get", "mp-149", "--refresh"])
    mp_server.stop()
    offline = runner.invoke(app, ["mp", "get", "mp-149"])

    assert "(from cache)" in again.stderr and again.stdout == offline.stdout
    assert refreshed.exit_code == 0 and "(from cache)" not in refreshed.stderr
    assert offline.exit_code == 0 and "(from cache)" in offline.stderr
    assert mp_server.hits(CORE) == 2


def test_search_table(mp_server: MPServer, db_file: Path) -> None:
    result = runner.invoke(app, ["mp", "search", "--chemsys", "Si", "--stable"])

    assert result.exit_code == 0, result.output
    assert "1 materials: chemsys=Si, stable=True" in result.stdout
    [line] = [line for line in result.stdout.splitlines() if "mp-149" in line]
    assert ["mp-149", "Si", "2", "Fd-3m", "(227)", "0.61", "0.000", "yes"] == line.strip(
        "│ "
    ).replace("│", " ").split()
    assert "mp-165" not in result.stdout
    assert mp_server.requests[-1].params["is_stable"] == "True"


def test_search_filters_and_cache(mp_server: MPServer, db_file: Path) -> None:
    args = ["mp", "search", "--band-gap-min", "0.3", "--band-gap-max", "1", "--max-sites", "4"]
    first = runner.invoke(app, args)
    second = runner.invoke(app, args)
    refreshed = runner.invoke(app, [*args, "--refresh"])

    assert first.exit_code == 0, first.output
    assert "mp-149" in first.stdout and "mp-165" in first.stdout and "mp-1265" not in first.stdout
    assert "P6_3/mmc" in first.stdout
    assert "(from cache)" in second.stdout and "(from cache)" not in refreshed.stdout
    assert mp_server.hits(SUMMARY) == 2
    assert cached_ids(db_file) == ["mp-149", "mp-165"]


@pytest.mark.parametrize(
    ("args", "setup", "code", "message"),
    [
        (["get", "mp-149"], "no_key", 1, "error: No Materials Project API key: set MP_API_KEY"),
        (["get", "mp-149"], "bad_key", 1, "refused the API key in MP_API_KEY (HTTP 401)"),
        (["get", "mp-999999"], None, 1, "mp-999999 is not in the Materials Project database"),
        (["get", "foo"], None, 2, "error: 'foo' is not a Materials Project id.\nhint: an id is a"),
        (
            ["get", "mp-abc"],
            None,
            2,
            "error: 'mp-abc' is not a Materials Project id.\nhint: an id is",
        ),
        (["get", "mp-149"], "offline", 1, "Nothing is cached for mp-149"),
        (
            ["search", "--formula", "MgO"],
            "offline",
            1,
            "Nothing is cached for the search (formula=MgO)",
        ),
    ],
)
def test_errors_are_one_line_and_leave_no_database(
    mp_server: MPServer,
    db_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    setup: str | None,
    code: int,
    message: str,
) -> None:
    if setup == "no_key":
        monkeypatch.delenv("MP_API_KEY")
    elif setup == "bad_key":
        monkeypatch.setenv("MP_API_KEY", "0" * 32)
    elif setup == "offline":
        mp_server.stop()

    result = runner.invoke(app, ["mp", *args])

    assert result.exit_code == code
    assert message in result.stderr
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert result.stdout == ""
    assert VALID_KEY not in result.stderr and "0" * 32 not in result.stderr
    assert not db_file.exists()
