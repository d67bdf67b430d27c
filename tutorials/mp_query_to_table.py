"""Tutorial: from a Materials Project query to a table of CRYSTAL results, high-throughput style.

Run it with ``python tutorials/mp_query_to_table.py``. Nothing here reaches the internet or needs
CRYSTAL: the Materials Project is a local server on 127.0.0.1 answering with recorded responses
(the real ``MPRester`` talks to it over HTTP), and the CRYSTAL binary is the replay executable,
which checks each deck against a recorded real run and hands back that run's output.

With a real key and a real CRYSTAL23, delete the ``local_materials_project`` and
``replay_environment`` blocks: set ``MP_API_KEY`` and ``CRYSTAL_ATOMATE_CRYSTAL_CMD`` instead.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from rich.console import Console

from crystal_atomate.demo import mgo_makers, mgo_structure, replay_environment
from crystal_atomate.highthroughput import (
    HighThroughputBuilder,
    LocalEngine,
    candidates_from_files,
    candidates_from_query,
    submit_batch,
)
from crystal_atomate.mp.cache import MaterialsProject
from crystal_atomate.mp.client import MPQuery
from crystal_atomate.stores.jobstore import CrystalMathJobStore
from crystal_atomate.summary import batch_rows, plot_batch, summary_table, write_csv, write_json
from crystal_atomate.testing.mp_server import VALID_KEY, start_server

console = Console()


@contextmanager
def local_materials_project() -> Iterator[None]:
    """Point MP_API_ENDPOINT/MP_API_KEY at the recorded-response server for the block."""
    server, thread = start_server()
    saved = {key: os.environ.get(key) for key in ("MP_API_ENDPOINT", "MP_API_KEY", "NO_PROXY")}
    os.environ.update(
        {"MP_API_ENDPOINT": server.url, "MP_API_KEY": VALID_KEY, "NO_PROXY": "127.0.0.1"}
    )
    try:
        yield
    finally:
        server.stop()
        thread.join(timeout=5)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def main(work_dir: Path) -> list[float]:
    """Query MgO, add a CIF folder, run one static each, resubmit, and summarise.

    The second submit skips every structure already done. Returns the energies (Ha) of the table.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    db_file = work_dir / ".crystal_tui.db"
    store = CrystalMathJobStore(db_file)

    # 1. Structures: a Materials Project search (cached in the shared database) and a CIF folder.
    cifs = work_dir / "my_cifs"
    cifs.mkdir(exist_ok=True)
    mgo_structure().to(filename=str(cifs / "MgO_a4.217.cif"))
    with local_materials_project(), closing(MaterialsProject(db_file)) as materials_project:
        candidates = candidates_from_query(materials_project, MPQuery(formula="MgO", stable=True))
    candidates += candidates_from_files([cifs])

    # 2. One flow per structure. Any Maker (or a flow name such as "static") works; this one has
    #    the settings of the recorded run (B3LYP, SHRINK 12 24, ...) so the replay accepts it.
    builder = HighThroughputBuilder(flow=mgo_makers()["static"], tags=["tutorial"])
    batch = builder.build(candidates, store)
    for entry in batch.entries:
        console.print(
            f"{entry.candidate.label:>14}  {entry.status:<9} "
            f"{entry.flow.name if entry.flow else ''}"
        )

    # 3. Run them here, one folder per job, documents into the shared database.
    with replay_environment(work_dir / "replay"):
        for result in submit_batch(batch, LocalEngine(store, work_dir / "runs")):
            console.print(f"{result.flow_name}: {result.state}")

    # 4. Submitting again finds both done: same structure, same settings, successful.
    again = HighThroughputBuilder(flow=mgo_makers()["static"]).build(candidates, store)
    console.print(f"second submit: {again.count('done')} done, {len(again.flows)} to run")

    # 5. The results table, CSV/JSON for a spreadsheet or pandas, and one figure.
    rows = batch_rows(store, batch.batch_id)
    console.print(summary_table(rows, title=f"batch {batch.batch_id}"))
    for written in (
        write_csv(rows, work_dir / "results.csv"),
        write_json(rows, work_dir / "results.json"),
        plot_batch(rows, work_dir / "results.png"),
    ):
        console.print(f"wrote {written}")
    return [row.energy_hartree for row in rows if row.energy_hartree is not None]


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        main(Path(tmp))
