"""What a high-throughput batch produced, read back from the store: a table, CSV/JSON and one plot.

Everything comes from the task documents the jobs stored (``metadata.batch_id`` set by
:class:`~crystal_atomate.highthroughput.HighThroughputBuilder`), never from the job folders, so a
summary works the same for local runs, FireWorks or jobflow-remote writing into the shared
database. A job restarted by the error handlers appears once, with its last run.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from jobflow import JobStore
from rich import box
from rich.table import Table

__all__ = [
    "SummaryRow",
    "batch_rows",
    "plot_batch",
    "summary_table",
    "write_csv",
    "write_json",
]

_PROPERTIES = [
    "uuid",
    "index",
    "name",
    "output.state",
    "output.task_type",
    "output.formula_pretty",
    "output.nsites",
    "output.dir_name",
    "output.output.energy",
    "output.output.energy_per_atom",
    "output.output.energy_hartree",
    "output.output.bandgap",
    "output.metadata.batch_id",
    "output.metadata.material_id",
    "output.metadata.mp_db_version",
    "output.metadata.ht.label",
    "output.metadata.ht.flow",
]

#: Columns a narrow terminal must not break; the others wrap.
_KEEP_WHOLE = frozenset({"structure", "formula", "job", "state", "E (Ha)", "eV/atom", "gap eV"})


@dataclass(frozen=True)
class SummaryRow:
    """One CRYSTAL job of a batch (its last run), energies in eV and Hartree as CRYSTAL printed."""

    batch_id: str
    label: str
    material_id: str | None
    mp_db_version: str | None
    formula: str | None
    flow: str | None
    job: str
    task_type: str | None
    state: str | None
    nsites: int | None
    energy_hartree: float | None
    energy_ev: float | None
    energy_per_atom_ev: float | None
    e_above_lowest_ev_per_atom: float | None
    bandgap_ev: float | None
    uuid: str
    dir_name: str | None


def _row(doc: dict[str, Any]) -> SummaryRow:
    task = doc.get("output") or {}
    results = task.get("output") or {}
    metadata = task.get("metadata") or {}
    ht = metadata.get("ht") or {}
    return SummaryRow(
        batch_id=metadata["batch_id"],
        label=ht.get("label") or metadata.get("material_id") or doc["name"],
        material_id=metadata.get("material_id"),
        mp_db_version=metadata.get("mp_db_version"),
        formula=task.get("formula_pretty"),
        flow=ht.get("flow"),
        job=doc["name"],
        task_type=task.get("task_type"),
        state=task.get("state"),
        nsites=task.get("nsites"),
        energy_hartree=results.get("energy_hartree"),
        energy_ev=results.get("energy"),
        energy_per_atom_ev=results.get("energy_per_atom"),
        e_above_lowest_ev_per_atom=None,
        bandgap_ev=results.get("bandgap"),
        uuid=doc["uuid"],
        dir_name=task.get("dir_name"),
    )


def _with_energy_above_lowest(rows: list[SummaryRow]) -> list[SummaryRow]:
    """Energy per atom above the lowest successful job of the same formula and job name.

    Only the same job of the same flow is comparable (a relaxation against its static is not).
    """
    lowest: dict[tuple[str | None, str], float] = {}
    for row in rows:
        if row.state == "successful" and row.energy_per_atom_ev is not None:
            key = (row.formula, row.job)
            lowest[key] = min(lowest.get(key, row.energy_per_atom_ev), row.energy_per_atom_ev)
    return [
        replace(
            row, e_above_lowest_ev_per_atom=row.energy_per_atom_ev - lowest[(row.formula, row.job)]
        )
        if row.state == "successful"
        and (row.formula, row.job) in lowest
        and row.energy_per_atom_ev is not None
        else row
        for row in rows
    ]


def batch_rows(store: JobStore, batch_id: str | None = None) -> list[SummaryRow]:
    """Return the batch's jobs (every batch without ``batch_id``), by batch, label and job."""
    store.connect()
    criteria = {"output.metadata.batch_id": batch_id if batch_id else {"$exists": True}}
    latest: dict[str, dict[str, Any]] = {}
    for doc in store.query(criteria, properties=_PROPERTIES):
        if doc["uuid"] not in latest or doc["index"] > latest[doc["uuid"]]["index"]:
            latest[doc["uuid"]] = doc
    rows = sorted(
        (_row(doc) for doc in latest.values()), key=lambda r: (r.batch_id, r.label, r.job)
    )
    return _with_energy_above_lowest(rows)


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def summary_table(rows: Sequence[SummaryRow], title: str = "batch summary") -> Table:
    """Return a rich table of the rows, as ``crystal-atomate ht summary`` prints it.

    Compact, so it fits an 80-column terminal with the names and energies unbroken.
    """
    table = Table(title=title, box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False)
    for column in (
        "structure",
        "formula",
        "job",
        "state",
        "E (Ha)",
        "eV/atom",
        "dE meV/at",
        "gap eV",
    ):
        table.add_column(column, overflow="fold", no_wrap=column in _KEEP_WHOLE)
    colours = {"successful": "green", "failed": "red"}
    for row in rows:
        above = (
            None
            if row.e_above_lowest_ev_per_atom is None
            else row.e_above_lowest_ev_per_atom * 1000
        )
        table.add_row(
            row.label,
            row.formula or "-",
            row.job,
            f"[{colours.get(row.state or '', 'white')}]{row.state or '-'}[/]",
            _number(row.energy_hartree, 8),
            _number(row.energy_per_atom_ev, 5),
            _number(above, 1),
            _number(row.bandgap_ev, 3),
        )
    return table


def write_csv(rows: Sequence[SummaryRow], path: str | Path) -> Path:
    """One line per row with every field; floats at full precision (they round-trip exactly)."""
    path = Path(path)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(SummaryRow)])
        writer.writeheader()
        writer.writerows(asdict(row) for row in rows)
    return path


def write_json(rows: Sequence[SummaryRow], path: str | Path) -> Path:
    """Return the rows as a JSON list (null where a value is unknown)."""
    path = Path(path)
    path.write_text(json.dumps([asdict(row) for row in rows], indent=2))
    return path


def _energy_panel(axes: Any, rows: Sequence[SummaryRow]) -> None:
    """Bars of the energy above the lowest of each formula, coloured by formula."""
    from matplotlib.patches import Patch

    colours = {
        formula: f"C{i % 10}" for i, formula in enumerate(sorted({r.formula or "?" for r in rows}))
    }
    several_jobs = len({row.job for row in rows}) > 1
    above = [
        row.e_above_lowest_ev_per_atom * 1000
        for row in rows
        if row.e_above_lowest_ev_per_atom is not None
    ]
    bars = axes.bar(
        [f"{row.label} {row.job}" if several_jobs else row.label for row in rows],
        above,
        color=[colours[row.formula or "?"] for row in rows],
        edgecolor="black",
    )
    axes.bar_label(bars, fmt="%.1f")
    axes.set_ylim(0, max([1.0, *above]) * 1.25)
    if colours:
        axes.legend(handles=[Patch(color=c, label=f) for f, c in colours.items()], title="formula")
    axes.set_ylabel("E - E(lowest of formula) (meV/atom)")
    axes.set_title("energy above the lowest per formula")
    axes.tick_params(axis="x", labelrotation=30, labelsize=8)


def _gap_panel(axes: Any, gaps: list[float]) -> None:
    """Draw a histogram of band gaps in 0.25 eV bins from 0 eV."""
    from matplotlib.ticker import MaxNLocator

    top = math.ceil(max([1.0, *gaps]) * 4 + 1) / 4
    axes.hist(gaps, bins=[i / 4 for i in range(int(top * 4) + 1)], edgecolor="black")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("band gap (eV)")
    axes.set_ylabel("jobs")
    axes.set_title(f"band gaps ({len(gaps)} jobs)")


def plot_batch(rows: Sequence[SummaryRow], path: str | Path, title: str | None = None) -> Path:
    """Plot the successful jobs to one PNG: relative energies and a histogram of band gaps.

    Each energy is the one above the lowest of the same formula (meV/atom).

    The Agg canvas is attached to the figure itself, so this works on a headless worker and does
    not change the backend of an interactive session that imports it.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    done = [row for row in rows if row.state == "successful"]
    figure = Figure(figsize=(10, 4.2), layout="constrained")
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2)
    _energy_panel(left, [row for row in done if row.e_above_lowest_ev_per_atom is not None])
    _gap_panel(right, [row.bandgap_ev for row in done if row.bandgap_ev is not None])
    batches = sorted({row.batch_id for row in rows})
    figure.suptitle(title or ("batch " + ", ".join(batches) if batches else "no jobs"))
    path = Path(path)
    figure.savefig(path, dpi=120)
    return path
