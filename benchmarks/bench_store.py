"""Benchmark CrystalMathJobStore (SQLite) against maggma's MemoryStore, MontyStore and JSONStore.

Run: ``python benchmarks/bench_store.py [--jobs 10000] [--ui-jobs 100000] [--lookups 1000]
[--import-jobs 1000] [--import-run mgo_scf_hf_sto3g_crystal17] [--preparsed] [--only-import]``

Every store sits behind a plain ``jobflow.JobStore`` (ours is ``CrystalMathJobStore``, which also
mirrors each document into the UI's ``jobs`` table in the same transaction) and does the same
work, timed with ``time.perf_counter``:

* insert: ``--jobs`` job documents, one ``JobStore.update`` call each, as ``run_locally`` does;
* fetch by uuid: ``query_one({"uuid": ...})`` for ``--lookups`` random jobs (per call);
* resolve references: ``OutputReference(uuid, (("i", "energy"),)).resolve(store)`` (per call);
* UI job list: the latest 50 jobs with ``--ui-jobs`` jobs in the store (per call, median of 20;
  loaded in chunks of 1000, plain inserts for mongomock):
  for SQLite the UI's own ``SELECT ... FROM jobs ORDER BY created_at DESC LIMIT 50`` and the
  jobflow-side ``query(sort={"completed_at": -1}, limit=50)``; for the others the latter.

* import of UI jobs: ``--import-jobs`` rows the UI ran itself, each folder holding a real recorded
  CRYSTAL output; ``import_tui_jobs()`` against parsing the same outputs alone, and the import's
  own cost per job (its time less the parses it made, timed inside it); with ``--preparsed``
  also an import handed parse results made beforehand (its own work alone).

JSONStore rewrites its whole file on every update and MontyStore (sqlite back end) is slower
still, so both hold ``--jobs // 10`` documents (figures are per call, so they stay comparable,
though flattering to them) and are skipped for the 100k-job list.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from jobflow import JobStore, OutputReference
from maggma.stores import JSONStore, MemoryStore, MontyStore

from crystal_atomate.io.outputs import parse_output
from crystal_atomate.stores import CrystalMathJobStore
from crystal_atomate.testing.reference import reference_dir

START = datetime(2025, 1, 1)
SMALL_ONLY = ("JSONStore", "MontyStore (montydb)")
#: The recorded run whose output every imported UI job holds (MgO, 2 atoms, 7 SCF cycles).
IMPORT_RUN = "mgo_scf_hf_sto3g_crystal17"


def job_doc(i: int) -> dict:
    """A job document shaped like ours: a task document output with a small structure."""
    return {
        "uuid": f"00000000-0000-4000-8000-{i:012d}",
        "index": 1,
        "name": f"relax_{i}",
        "completed_at": (START + timedelta(seconds=i)).isoformat(),
        "metadata": {"flow_uuid": f"flow-{i // 10}"},
        "hosts": [f"flow-{i // 10}"],
        "output": {
            "state": "successful",
            "energy": -7495.6 - i * 1e-6,
            "final_energy_hartree": -275.45 - i * 1e-7,
            "dir_name": f"node01:/scratch/run_{i}",
            "formula_pretty": "MgO",
            "input": {
                "d12": "MgO\nCRYSTAL\n0 0 0\n225\n4.21\n2\n12 0. 0. 0.\n8 0.5 0.5 0.5\nEND\n"
            },
            "structure": {
                "lattice": [[4.21, 0, 0], [0, 4.21, 0], [0, 0, 4.21]],
                "sites": [
                    {"species": "Mg", "xyz": [0, 0, 0]},
                    {"species": "O", "xyz": [2.1, 2.1, 2.1]},
                ],
            },
            "output": {"converged": True, "scf_cycles": 12},
        },
    }


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def per_call(fn: Callable[[int], object], keys: list[int]) -> float:
    """Mean seconds per call over ``keys``."""
    return timed(lambda: [fn(k) for k in keys]) / len(keys)


def make_stores(tmp: Path) -> dict[str, Callable[[str], JobStore]]:
    stores = {
        "CrystalMathJobStore (SQLite)": lambda tag: CrystalMathJobStore(tmp / f"{tag}.db"),
        "MemoryStore (mongomock)": lambda tag: JobStore(MemoryStore(f"mem_{tag}")),
        "MontyStore (montydb)": lambda tag: JobStore(
            MontyStore(f"monty_{tag}", database_path=str(tmp / f"monty_{tag}"), storage="sqlite")),
        "JSONStore": lambda tag: JobStore(JSONStore(str(tmp / f"{tag}.json"), read_only=False)),
    }
    if importlib.util.find_spec("montydb") is None:
        print("MontyStore skipped: montydb is not installed", flush=True)
        del stores["MontyStore (montydb)"]
    return stores


def bench_small(factory: Callable[[str], JobStore], name: str, n: int, lookups: int) -> dict:
    store = factory("small")
    store.connect()
    n = n // 10 if name in SMALL_ONLY else n
    docs = [job_doc(i) for i in range(n)]
    insert = timed(lambda: [store.update(d) for d in docs]) / n
    lookups = min(lookups, n)
    keys = random.Random(0).sample(range(n), lookups)
    fetch = per_call(lambda i: store.query_one({"uuid": job_doc(i)["uuid"]}), keys)
    resolve = per_call(
        lambda i: OutputReference(job_doc(i)["uuid"], (("i", "energy"),)).resolve(store), keys
    )
    return {"insert_ms_per_doc": insert * 1e3, "fetch_ms": fetch * 1e3, "resolve_ms": resolve * 1e3}


def bench_ui_list(factory: Callable[[str], JobStore], name: str, n: int) -> dict:
    store = factory("big")
    store.connect()
    for start in range(0, n, 1000):
        chunk = [job_doc(i) for i in range(start, min(start + 1000, n))]
        if isinstance(store, CrystalMathJobStore):
            store.update(chunk)  # through the store, so the UI's jobs table is filled too
        else:  # mongomock upserts scan the collection: loading 100k that way is quadratic
            store.docs_store._collection.insert_many(chunk)
    store.ensure_index("completed_at")

    def latest() -> list:
        return list(store.query({}, properties=["uuid", "name", "completed_at", "output.energy"],
                                sort={"completed_at": -1}, limit=50))

    assert len(latest()) == 50
    out = {"list_jobflow_ms": statistics.median(timed(latest) for _ in range(20)) * 1e3}
    if isinstance(store, CrystalMathJobStore):
        conn = sqlite3.connect(store.db_file)

        def ui() -> list:
            return conn.execute(
                "SELECT id, name, status, final_energy, created_at FROM jobs "
                "ORDER BY created_at DESC LIMIT 50").fetchall()

        assert len(ui()) == 50
        out["list_ui_sql_ms"] = statistics.median(timed(ui) for _ in range(20)) * 1e3
    return out


def _ui_rows(tmp: Path, db: Path, n: int, output: bytes) -> list[tuple[str, str]]:
    """Fill ``db`` with ``n`` finished UI rows, each folder holding ``output``; (name, folder)."""
    folders = []
    for i in range(n):
        folder = tmp / f"ui_runs_{db.stem}" / f"{i:05d}"
        folder.mkdir(parents=True)
        (folder / f"job{i}.out").write_bytes(output)
        folders.append((f"job{i}", str(folder)))
    conn = sqlite3.connect(db)
    conn.executemany("INSERT INTO jobs(name, work_dir, status) VALUES (?, ?, 'COMPLETED')", folders)
    conn.commit()
    conn.close()
    return folders


def bench_import(tmp: Path, n: int, run: str = IMPORT_RUN, preparsed: bool = False) -> dict:
    """``import_tui_jobs`` of ``n`` UI rows holding the output of ``run``, against the parse alone.

    Times in seconds, the import's own cost (its time less its parses) in ms per job, in wall
    time and in CPU time of this process. With ``preparsed``, a second import (into a second
    file) is handed parse results made beforehand: its time per job is the import's own work
    without the parser's garbage and cache traffic in between.
    """
    output = (reference_dir() / run / "OUTPUT.out").read_bytes()
    store = CrystalMathJobStore(tmp / "import.db")
    store.connect()
    folders = _ui_rows(tmp, tmp / "import.db", n, output)
    clocks = (time.perf_counter, time.process_time)
    inside = [0.0, 0.0]  # wall and CPU seconds of the parses made inside the import

    def timed_parse(path: Path) -> object:
        start = [clock() for clock in clocks]
        result = parse_output(path)
        for i, clock in enumerate(clocks):
            inside[i] += clock() - start[i]
        return result

    def parse_each() -> None:  # each result dropped as the next is made, as the import does
        for name, folder in folders:
            parse_output(Path(folder) / f"{name}.out")

    cpu_start = time.process_time()
    parse = timed(parse_each)
    parse_cpu = time.process_time() - cpu_start
    cpu_start = time.process_time()
    full = timed(lambda: store.import_tui_jobs(parse=timed_parse))
    full_cpu = time.process_time() - cpu_start
    assert store.docs_store.count() == n
    # the machine's load drifts: the ratio compares the import with the parses it made itself,
    # in wall time and in this process's CPU time (which the other programs disturb less); the
    # parse alone is compared in CPU time only
    row = {"parse_alone_s": parse, "import_s": full, "its_parses_s": inside[0],
           "ratio": full / inside[0], "overhead_ms_per_job": (full - inside[0]) / n * 1e3,
           "cpu_ratio": full_cpu / inside[1],
           "cpu_overhead_ms_per_job": (full_cpu - inside[1]) / n * 1e3,
           "cpu_ratio_to_parse_alone": full_cpu / parse_cpu}
    if preparsed:
        again = CrystalMathJobStore(tmp / "preparsed.db")
        again.connect()
        _ui_rows(tmp, tmp / "preparsed.db", n, output)
        made = iter([parse_output(Path(folders[0][1]) / "job0.out") for _ in range(n)])
        cpu_start = time.process_time()
        wall = timed(lambda: again.import_tui_jobs(parse=lambda _path: next(made)))
        row["preparsed_ms_per_job"] = wall / n * 1e3
        row["preparsed_cpu_ms_per_job"] = (time.process_time() - cpu_start) / n * 1e3
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10000)
    parser.add_argument("--ui-jobs", type=int, default=100000)
    parser.add_argument("--lookups", type=int, default=1000)
    parser.add_argument("--import-jobs", type=int, default=1000)
    parser.add_argument("--import-run", default=IMPORT_RUN,
                        help="recorded run (folder of crystal-reference) the imported jobs hold")
    parser.add_argument("--preparsed", action="store_true",
                        help="also time an import handed parse results made beforehand")
    parser.add_argument("--only-import", action="store_true", help="run the import benchmark only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        row = bench_import(Path(tmp), args.import_jobs, args.import_run, args.preparsed)
        print("import_tui_jobs | " + " | ".join(f"{k}={v:.3f}" for k, v in row.items()), flush=True)
        if args.only_import:
            return
        for name, factory in make_stores(Path(tmp)).items():
            row = bench_small(factory, name, args.jobs, args.lookups)
            if name not in SMALL_ONLY:
                row.update(bench_ui_list(factory, name, args.ui_jobs))
            cells = " | ".join(f"{k}={v:.3f}" for k, v in row.items())
            print(f"{name} | {cells}", flush=True)


if __name__ == "__main__":
    main()
