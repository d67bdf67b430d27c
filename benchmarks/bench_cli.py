"""Start-up of ``crystal-atomate``: its light commands beside ``python -c pass`` and ``sqlite3``.

Run: ``python benchmarks/bench_cli.py [--jobs 100000] [--repeat 7] [--json results.json]``

Every command runs in a fresh interpreter, as a user starts it, against the same shared database of
``--jobs`` jobs (built in seconds by :func:`crystal_atomate.testing.ui_database.fill_ui_database`).
Wall time per command: the minimum and the median of ``--repeat`` runs (the minimum is the "quiet
machine" figure; the median shows the noise of a shared one). The in-process part times the job-list
query itself: today's two-query form, the former ``ORDER BY created_at IS NULL, ...`` form and the
UI's own query.

The commands run whatever ``import crystal_atomate`` finds; ``--cli-pythonpath`` points them at
another checkout (the one before a change) to compare with the same database.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from crystal_atomate.stores.ui_queries import list_jobs, open_readonly
from crystal_atomate.testing.reference import reference_file
from crystal_atomate.testing.ui_database import fill_ui_database

UI_SQL = (
    "SELECT id, name, status, final_energy, created_at FROM jobs ORDER BY created_at DESC LIMIT 50"
)
FORMER_SQL = (
    "SELECT j.id, j.name, j.status, j.final_energy, j.workflow_id, j.created_at, l.job_uuid "
    "FROM jobs j "
    "LEFT JOIN jobflow_job_links l ON l.tui_job_id = j.id "
    "ORDER BY j.created_at IS NULL, j.created_at DESC, j.id DESC LIMIT 50"
)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wall(command: list[str], repeat: int, cwd: Path, env: dict[str, str]) -> dict[str, float]:
    """Minimum and median wall seconds of ``command`` (its exit code must be 0), and the minimum
    CPU seconds (user + system) it used: on a machine shared with other work the wall time
    mostly measures the others, while the CPU time is close to what a quiet machine's wall
    time would be."""
    times, cpu = [], []
    for _ in range(repeat):
        before = _children_cpu()
        start = time.perf_counter()
        subprocess.run(command, cwd=cwd, check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - start)
        cpu.append(_children_cpu() - before)
    return {"min_s": min(times), "median_s": statistics.median(times), "cpu_s": min(cpu)}


def in_process(fn: Callable[[], object], repeat: int = 50) -> float:
    """Median milliseconds of ``fn``."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def commands(db: Path) -> dict[str, list[str]]:
    """What is timed, by the label of the table."""
    cli = [sys.executable, "-c", "from crystal_atomate.cli import app; app()"]  # the console script
    found = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "crystal-atomate --help": [*cli, "--help"],
        "crystal-atomate jobs (50 newest)": [*cli, "jobs", "--db", str(db)],
        "crystal-atomate show 5": [*cli, "show", "5", "--db", str(db)],
        "crystal-atomate parse OUTPUT.out": [
            *cli, "parse", str(reference_file("mgo_scf_band_doss_b3lyp_crystal17", "OUTPUT.out"))
        ],
    }
    sqlite = shutil.which("sqlite3")
    if sqlite:
        found["sqlite3 CLI, the UI's query"] = [sqlite, str(db), UI_SQL]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    parser.add_argument(
        "--cli-pythonpath",
        help="PYTHONPATH of the timed commands, e.g. another checkout to compare with.",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = fill_ui_database(Path(tmp) / "ui.db", args.jobs)
        results: dict[str, object] = {"jobs": args.jobs, "load_average": os.getloadavg()}
        env = {**os.environ, "COLUMNS": "120"}
        if args.cli_pythonpath:
            env["PYTHONPATH"] = args.cli_pythonpath
        for label, command in commands(db).items():
            results[label] = wall(command, args.repeat, Path(tmp), env)
            timing = results[label]
            print(
                f"{label:40s} wall min {timing['min_s']:.3f} s, median {timing['median_s']:.3f} s; "
                f"cpu {timing['cpu_s']:.3f} s"
            )
        with closing(open_readonly(db)) as conn:
            queries = {
                "list_jobs, latest 50 (ms)": lambda: list_jobs(conn, limit=50),
                "former ORDER BY ... IS NULL query (ms)": lambda: conn.execute(
                    FORMER_SQL
                ).fetchall(),
                "UI's query (ms)": lambda: conn.execute(UI_SQL).fetchall(),
            }
            for label, fn in queries.items():
                results[label] = in_process(fn)
                print(f"{label:40s} {results[label]:.3f} ms")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
