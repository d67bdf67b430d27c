"""``crystal-atomate structures search`` against the local MP and OPTIMADE reference servers."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from crystal_atomate.cli.structures import app
from crystal_atomate.testing.mp_server import MPServer
from crystal_atomate.testing.optimade_server import OptimadeServer

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("no_real_materials_project")


@pytest.fixture(autouse=True)
def _wide_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich sizes the table to ``COLUMNS``: wide enough that no id or URL is folded."""
    monkeypatch.setenv("COLUMNS", "200")


def test_mp_first(mp_server: MPServer, optimade_server: OptimadeServer, db_file: Path) -> None:
    result = runner.invoke(app, ["search", "--formula", "MgO", "--provider", optimade_server.url])

    assert result.exit_code == 0, result.output
    assert "1 structures: MgO" in result.stdout and "mp-1265" in result.stdout
    assert "Fm-3m (225)" in result.stdout
    assert result.stderr == "" and optimade_server.paths == []


def test_falls_back_to_optimade(
    mp_server: MPServer, optimade_server: OptimadeServer, db_file: Path
) -> None:
    result = runner.invoke(app, ["search", "--formula", "Fe2O3", "--provider", optimade_server.url])

    assert result.exit_code == 0, result.output
    assert result.stderr == (
        f"note: the Materials Project has no Fe2O3; OPTIMADE ({optimade_server.url}) found 1.\n"
    )
    assert "hematite-1" in result.stdout and "R-3c (167)" in result.stdout


def test_optimade_only_then_cached(optimade_server: OptimadeServer, db_file: Path) -> None:
    args = [
        "search",
        "--source",
        "optimade",
        "--formula",
        "Al2O3",
        "--provider",
        optimade_server.url,
    ]
    first = runner.invoke(app, args)
    optimade_server.fail(500)
    second = runner.invoke(app, args)

    assert first.exit_code == second.exit_code == 0, second.output
    assert "corundum-1" in first.stdout and "(from cache)" in second.stdout


def test_raw_filter(optimade_server: OptimadeServer, db_file: Path) -> None:
    result = runner.invoke(
        app,
        ["search", "--filter", 'elements HAS "O" AND nsites=2', "--provider", optimade_server.url],
    )
    assert result.exit_code == 0, result.output
    assert "rocksalt-MgO-1" in result.stdout and "hematite-1" not in result.stdout


@pytest.mark.parametrize(
    ("args", "code", "lines"),
    [
        (
            ["--formula", "MgO", "--source", "optimade", "--provider", "nomad2"],
            2,
            [
                "error: 'nomad2' is not an OPTIMADE provider.",
                "hint: use one of mp, oqmd, aflow, cod, mc3d, mc2d or a base URL such as "
                "https://host/optimade.",
            ],
        ),
        (
            ["--filter", "nsites>", "--provider", "http://127.0.0.1:9"],
            2,
            [
                "error: 'nsites>' is not a valid OPTIMADE filter (Unexpected end-of-input).",
                'hint: e.g. chemical_formula_reduced="Fe2O3" AND nsites<=10',
            ],
        ),
        ([], 2, ["error: Give --formula or --filter (one of them)."]),
        (
            ["--formula", "MgO", "--source", "optimade", "--provider", "http://127.0.0.1:9"],
            1,
            [
                (
                    "error: Cannot reach OPTIMADE (http://127.0.0.1:9: connection refused) for MgO "
                    "at http://127.0.0.1:9. Nothing is cached for the OPTIMADE search (MgO at "
                    "http://127.0.0.1:9)."
                )
            ],
        ),
    ],
)
def test_bad_input_is_one_line(db_file: Path, args: list[str], code: int, lines: list[str]) -> None:
    result = runner.invoke(app, ["search", *args])

    assert result.exit_code == code
    assert result.stderr.splitlines() == lines
    assert result.stdout == "" and not db_file.exists()


def test_server_error(optimade_server: OptimadeServer, db_file: Path) -> None:
    optimade_server.fail(500)
    result = runner.invoke(
        app,
        ["search", "--source", "optimade", "--formula", "MgO", "--provider", optimade_server.url],
    )
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        (
            f"error: OPTIMADE search for MgO at {optimade_server.url} failed "
            f"({optimade_server.url}: HTTP 500 (scripted))."
        )
    ]
