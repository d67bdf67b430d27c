"""Benchmark ``parse_output`` against a bare Python loop over the lines, CRYSTALpytools'
``Crystal_output`` and ``grep -c``.

Run: ``python benchmarks/bench_parser.py [--repeat 3] [--target-mb 30 300] [--no-crystalpytools]``

The bare loop (``for line in handle: pass``, same open mode) is the floor for any Python line
scanner; issue 18 asks for the parser within 3x of it and for memory flat in the file size. Both
wall and CPU time are given: on a shared machine the CPU time (``time.process_time``, the best of
the repeats) is the steadier ratio.

Each measurement runs in its own subprocess so that peak memory (``ru_maxrss``) is not
polluted by the other parser; imports happen before the clock starts and the memory reported
is the growth of the peak RSS during the work (the interpreter and its imports excluded; it reads
0 when the imports peaked higher than the parse) plus, from a second parse, the peak of Python
allocations traced by ``tracemalloc`` (what the parser itself holds).
Both parsers do the same work: load, final energy, SCF and optimisation convergence, geometry.
The ~30 MB input is built at run time in a temp dir by repeating whole optimisation points of
``mgo_opt_onelog_crystal22`` so that it stays a valid CRYSTAL output that both parsers read to
the end (see :func:`build_large_output`).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from crystal_atomate.testing.reference import reference_file

OURS = """
import json, resource, sys, time, tracemalloc
from crystal_atomate.io.outputs import parse_output
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start, cpu = time.perf_counter(), time.process_time()
out = parse_output(sys.argv[1], discover=False)
result = (out.energy_ha, out.scf_converged, out.opt_converged, out.structure)
elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
del out, result
tracemalloc.start()
again = parse_output(sys.argv[1], discover=False)
traced = tracemalloc.get_traced_memory()[1]
print(json.dumps({"seconds": elapsed, "cpu_s": cpu, "peak_kb": after - before,
                  "traced_peak_kb": traced / 1024, "energy_ha": again.energy_ha}))
"""

LOOP = """
import json, resource, sys, time
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start, cpu = time.perf_counter(), time.process_time()
with open(sys.argv[1], encoding="utf-8", errors="replace", newline=None) as handle:
    for line in handle:
        pass
elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": elapsed, "cpu_s": cpu, "peak_kb": after - before}))
"""

THEIRS = """
import json, resource, sys, time
from CRYSTALpytools.crystal_io import Crystal_output
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
energy_s = None
try:
    out = Crystal_output(sys.argv[1])
    energy = float(out.get_final_energy())
    energy_s = time.perf_counter() - start
    out.get_scf_convergence()
    out.get_opt_convergence()
    out.get_geometry()
    error = None
except Exception as exc:
    energy, error = None, f"{type(exc).__name__}: {exc}"
elapsed = time.perf_counter() - start
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": elapsed, "energy_s": energy_s, "peak_kb": after - before,
                  "energy_ha": energy, "error": error}))
"""


_POINT = re.compile(r"(OPTIMIZATION - POINT)\s*\d+")
_POINTS = re.compile(r"(POINTS)\s*\d+")


def build_large_output(target_mb: float, directory: Path) -> Path:
    """Repeat the whole optimisation points 2 and 3 of the ONELOG MgO run to ``target_mb``.

    Whole points (title to ``TTT OPTI`` timing), renumbered, with the last point and ``OPT END``
    (its POINTS count updated) after them: a valid optimisation output. Repeating points 2..4
    instead, as this benchmark once did, leaves the last point of every copy without its
    ``OPTI`` timing line, and CRYSTALpytools then fails (``could not broadcast``) - a fault of
    the file, not of that parser. The final energy and state stay those of the real run.
    """
    lines = (
        reference_file("mgo_opt_onelog_crystal22", "OUTPUT.out")
        .read_text()
        .splitlines(keepends=True)
    )
    points = [i for i, line in enumerate(lines) if _POINT.search(line)]
    head, body, tail = lines[: points[1]], lines[points[1] : points[-1]], lines[points[-1] :]
    copies = max(1, int(target_mb * 1e6 / sum(len(line) for line in body)))
    number = 1
    path = directory / "OUTPUT_large.out"
    with path.open("w") as handle:
        handle.writelines(head)
        for line in [*body * copies, *tail]:
            if _POINT.search(line):
                number += 1
                line = _POINT.sub(lambda m, n=number: f"{m.group(1)}{n:5d}", line)
            elif "OPT END" in line:
                line = _POINTS.sub(lambda m, n=number: f"{m.group(1)}{n:5d}", line)
            handle.write(line)
    return path


def measure(script: str, path: Path) -> dict[str, object]:
    """One subprocess run of ``script`` on ``path``."""
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def grep_seconds(path: Path) -> float:
    """``grep -c`` over the same file: the floor for any line scanner."""
    start = time.perf_counter()
    subprocess.run(["grep", "-c", "CYC", str(path)], capture_output=True, check=False)
    return time.perf_counter() - start


def bench(path: Path, repeat: int, crystalpytools: bool = True) -> dict[str, object]:
    """Median time and max memory of each contender on one file (loop and ours interleaved)."""
    ours, loop = [], []
    for _ in range(repeat):
        loop.append(measure(LOOP, path))
        ours.append(measure(OURS, path))
    nothing = {
        "seconds": float("nan"),
        "energy_s": None,
        "peak_kb": float("nan"),
        "energy_ha": None,
        "error": "skipped",
    }
    theirs = [measure(THEIRS, path) if crystalpytools else nothing for _ in range(repeat)]
    grep = [grep_seconds(path) for _ in range(repeat)]
    return {
        "loop_s": statistics.median(float(r["seconds"]) for r in loop),
        "loop_cpu_s": min(float(r["cpu_s"]) for r in loop),
        "ours_cpu_s": min(float(r["cpu_s"]) for r in ours),
        "file": path.name,
        "size_mb": path.stat().st_size / 1e6,
        "ours_s": statistics.median(float(r["seconds"]) for r in ours),
        "ours_peak_mb": max(float(r["peak_kb"]) for r in ours) / 1024,
        "ours_traced_mb": max(float(r["traced_peak_kb"]) for r in ours) / 1024,
        "ours_energy_ha": ours[0]["energy_ha"],
        "theirs_s": statistics.median(float(r["seconds"]) for r in theirs),
        "theirs_energy_s": statistics.median(float(r["energy_s"] or "nan") for r in theirs),
        "theirs_peak_mb": max(float(r["peak_kb"]) for r in theirs) / 1024,
        "theirs_energy_ha": theirs[0]["energy_ha"],
        "theirs_error": theirs[0]["error"],
        "grep_s": statistics.median(grep),
    }


def main() -> None:
    """Print a Markdown table (paste into docs/benchmarks.md) and the raw JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--target-mb", type=float, nargs="+", default=[30.0])
    parser.add_argument(
        "--no-crystalpytools", action="store_true", help="skip CRYSTALpytools (minutes per 30 MB)"
    )
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = [reference_file("paracetamol_phonon_dispersion_large_crystal22", "OUTPUT.out")]
        for target in args.target_mb:
            folder = Path(tmp) / f"{target:g}MB"
            folder.mkdir()
            paths.append(build_large_output(target, folder))
        for path in paths:
            rows.append(bench(path, args.repeat, crystalpytools=not args.no_crystalpytools))
            if path.parent != paths[0].parent:
                path.unlink()
    print(
        "| file | MB | bare loop s | ours s | ours / loop | CPU s loop / ours | CPU ratio | ours "
        "RSS growth MB | ours traced peak MB | CRYSTALpytools s (to energy) | CRYSTALpytools peak "
        "MB | grep -c s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['file']} | {r['size_mb']:.1f} | {r['loop_s']:.3f} | {r['ours_s']:.3f} | "
            f"{float(r['ours_s']) / float(r['loop_s']):.1f}x | "
            f"{r['loop_cpu_s']:.3f} / {r['ours_cpu_s']:.3f} | "
            f"{float(r['ours_cpu_s']) / float(r['loop_cpu_s']):.1f}x | {r['ours_peak_mb']:.1f} | "
            f"{r['ours_traced_mb']:.1f} | "
            f"{r['theirs_s']:.3f} ({r['theirs_energy_s']:.3f}) | {r['theirs_peak_mb']:.1f} | "
            f"{r['grep_s']:.4f} |"
        )
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
