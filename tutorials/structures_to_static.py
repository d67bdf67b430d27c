"""Tutorial: from a formula to a CRYSTAL static, through the Materials Project or OPTIMADE.

Run it with ``python tutorials/structures_to_static.py``. Nothing here reaches the internet or needs
CRYSTAL: the Materials Project is a local server answering with recorded responses (the real
``MPRester`` talks to it), the OPTIMADE provider is the ``optimade`` package's own reference server
on 127.0.0.1 (the real ``OptimadeClient`` talks to it), and the CRYSTAL binary is the replay
executable, which checks each deck against a recorded real run and hands back that run's output.

1. MgO: the Materials Project has it, so OPTIMADE is not asked.
2. Fe2O3: the Materials Project has none, so the OPTIMADE providers are asked instead (one note
   says so); each structure keeps its provider, entry id and URL.
3. Every answer is in the shared database under the UI's own cache keys: the CrystalMath UI finds
   these structures without a network, and a second search here is served from the cache.
4. One CRYSTAL static per MgO structure (the Materials Project's and the OPTIMADE provider's), the
   results in the UI's job table and in a summary table. (Fe2O3 is only listed: there is no
   recorded CRYSTAL run of it for the replay.)

With a real key and a real CRYSTAL23, delete the ``local_servers`` and ``replay_environment``
blocks, set ``MP_API_KEY`` and ``CRYSTAL_ATOMATE_CRYSTAL_CMD``, and name real providers (``mp``,
``cod``, ...).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from rich.console import Console

from crystal_atomate.demo import mgo_makers, replay_environment
from crystal_atomate.highthroughput import (
    Candidate,
    HighThroughputBuilder,
    LocalEngine,
    submit_batch,
)
from crystal_atomate.mp.cache import MaterialsProject
from crystal_atomate.mp.optimade import Optimade, OptimadeQuery
from crystal_atomate.mp.search import find_by_formula
from crystal_atomate.stores.jobstore import CrystalMathJobStore
from crystal_atomate.summary import batch_rows, summary_table
from crystal_atomate.testing.mp_server import VALID_KEY, start_server
from crystal_atomate.testing.optimade_server import start_optimade_server

console = Console()


@contextmanager
def local_servers() -> Iterator[str]:
    """Serve the recorded Materials Project and the OPTIMADE reference server locally.

    MP_API_ENDPOINT/MP_API_KEY point at the first; the second's base URL is yielded as the provider
    to ask.
    """
    mp_server, thread = start_server()
    optimade_server = start_optimade_server()
    saved = {key: os.environ.get(key) for key in ("MP_API_ENDPOINT", "MP_API_KEY", "NO_PROXY")}
    os.environ.update(
        {"MP_API_ENDPOINT": mp_server.url, "MP_API_KEY": VALID_KEY, "NO_PROXY": "127.0.0.1"}
    )
    try:
        yield optimade_server.url
    finally:
        optimade_server.stop()
        mp_server.stop()
        thread.join(timeout=5)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def main(work_dir: Path) -> list[float]:
    """Find MgO and Fe2O3, run a static of each MgO structure; returns the energies (Ha)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    db_file = work_dir / ".crystal_tui.db"
    with (
        local_servers() as provider,
        closing(MaterialsProject(db_file)) as mp,
        closing(Optimade(db_file)) as optimade,
    ):
        # 1-2. The Materials Project first, OPTIMADE when it has nothing.
        for formula in ("MgO", "Fe2O3"):
            found = find_by_formula(formula, mp, optimade, providers=(provider,))
            console.print(f"{formula}: {len(found.records)} from {found.source}")
            if found.note:
                console.print(f"  note: {found.note}")
            for record in found.records:
                console.print(
                    f"  {record.material_id}  {record.formula}  {record.origin.url or ''}"
                )
        # OPTIMADE can be asked directly too (here for a second MgO structure).
        optimade_mgo = optimade.search(OptimadeQuery(formula="MgO", providers=(provider,)))
        mp_mgo = find_by_formula("MgO", mp, optimade, providers=(provider,)).records

    # 3. Servers gone: the same questions are answered from the shared database.
    with closing(Optimade(db_file, timeout=1, attempts=1)) as offline:
        cached = offline.search(OptimadeQuery(formula="Fe2O3", providers=(provider,)))
        console.print(f"offline: {cached[0].material_id} from cache: {cached[0].from_cache}")

    # 4. One static per MgO structure, documents and jobs in the shared database.
    store = CrystalMathJobStore(db_file)
    candidates = [Candidate.from_mp(record) for record in mp_mgo + optimade_mgo]
    batch = HighThroughputBuilder(flow=mgo_makers()["static"], tags=["structures"]).build(
        candidates, store
    )
    with replay_environment(work_dir / "replay"):
        for result in submit_batch(batch, LocalEngine(store, work_dir / "runs")):
            console.print(f"{result.flow_name}: {result.state}")
    rows = batch_rows(store, batch.batch_id)
    console.print(summary_table(rows, title=f"batch {batch.batch_id}"))
    energies = [row.energy_hartree for row in rows if row.energy_hartree is not None]
    if len(energies) != len(candidates):
        raise SystemExit(f"{len(candidates) - len(energies)} static(s) did not complete")
    return energies


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        main(Path(tmp))
