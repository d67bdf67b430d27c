"""The job detail screen: a job's row, its key results, its runs, restarts, errors and input deck.

Each section is built from a :class:`~crystal_atomate.stores.ui_queries.JobDetail` by a plain
function returning a Rich ``Text``, so the screen stays a thin shell and a section reads the same
whether the job came from a jobflow engine (task documents) or from the original UI (its row only).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from crystal_atomate.stores.ui_queries import JobDetail

__all__ = [
    "STATUS_STYLES",
    "DetailScreen",
    "errors_text",
    "input_deck",
    "key_results_text",
    "restarts_text",
    "runs_text",
    "summary_text",
]

#: Colours of the UI statuses, shared by the list and the detail.
STATUS_STYLES = {
    "COMPLETED": "green",
    "FAILED": "red",
    "RUNNING": "yellow",
    "QUEUED": "cyan",
    "CANCELLED": "dim",
}


def _lines(title: str, pairs: Iterable[tuple[str, Any]]) -> Text:
    """Return a titled block of ``label: value`` lines; missing values are skipped, not None."""
    text = Text(title + "\n", style="bold underline")
    for label, value in pairs:
        if value is None or value == "":
            continue
        text.append(f"{label:>16}: ", style="bold")
        text.append(f"{value}\n", style=STATUS_STYLES.get(str(value), ""))
    return text


def _energy(value: Any) -> str | None:
    return f"{value:.10f}" if isinstance(value, (int, float)) else None


def summary_text(detail: JobDetail) -> Text:
    """Render the UI row: identity, status, timing and the headline energy."""
    row = detail.row
    return _lines(
        f"Job {row.id}: {row.name}",
        (
            ("status", row.status),
            ("energy (Ha)", _energy(row.final_energy)),
            ("jobflow uuid", row.job_uuid),
            ("workflow", row.workflow_id),
            ("directory", detail.work_dir),
            ("created", row.created_at),
            ("started", detail.started_at),
            ("completed", detail.completed_at),
            ("convergence", detail.convergence_status),
            ("SCF cycles", detail.scf_cycles),
            ("CPU time (s)", detail.cpu_time_seconds),
            ("wall time (s)", detail.wall_time_seconds),
        ),
    )


def key_results_text(detail: JobDetail) -> Text:
    """Render the row's ``key_results`` JSON, as the UI stores it."""
    if not detail.key_results:
        return Text("Key results\n", style="bold underline") + Text("none recorded\n", style="dim")
    return _lines("Key results", sorted(detail.key_results.items()))


def _run_pairs(doc: dict[str, Any]) -> list[tuple[str, Any]]:
    task = doc.get("output") or {}
    output = task.get("output") or {}
    return [
        ("state", task.get("state")),
        ("task type", task.get("task_type")),
        ("formula", task.get("formula_pretty")),
        ("energy (Ha)", _energy(output.get("energy_hartree"))),
        ("energy (eV)", output.get("energy")),
        ("band gap (eV)", output.get("bandgap")),
        ("SCF cycles", output.get("scf_cycles")),
        ("directory", task.get("dir_name")),
    ]


def runs_text(detail: JobDetail) -> Text:
    """One block per run of the jobflow task document (a restarted job has several)."""
    if not detail.documents:
        return Text("Task documents\n", style="bold underline") + Text(
            "none: this job has no jobflow task document (run by the terminal UI itself, or not "
            "finished)\n",
            style="dim",
        )
    text = Text()
    for doc in detail.documents:
        text += _lines(f"Task document, run {doc.get('index')}", _run_pairs(doc))
    return text


def restarts_text(detail: JobDetail) -> Text:
    """Render what the error handlers changed between runs (the last document holds it all)."""
    title = Text("Restarts\n", style="bold underline")
    last = (detail.documents[-1].get("output") or {}) if detail.documents else {}
    restarts = last.get("restarts") or []
    if not restarts:
        return title + Text("none\n", style="dim")
    for restart in restarts:
        errors = ", ".join(restart.get("errors") or [])
        title.append(f"  restart {restart.get('attempt')}: {errors} -> {restart.get('action')}\n")
    return title


def errors_text(detail: JobDetail) -> Text:
    """Every run's detected errors and messages, so a recovered failure stays visible."""
    text = Text("Errors\n", style="bold underline")
    found = False
    for doc in detail.documents:
        task = doc.get("output") or {}
        for item in [*(task.get("errors") or []), *(task.get("error_messages") or [])]:
            text.append(f"  run {doc.get('index')}: {item}\n", style="red")
            found = True
    if not found:
        text.append("none\n", style="dim")
    return text


def input_deck(detail: JobDetail) -> str:
    """Return the deck of the last run (after restarts), else the deck the UI row holds."""
    for doc in reversed(detail.documents):
        given = (doc.get("output") or {}).get("input") or {}
        deck = given.get("d12") or given.get("d3")
        if deck:
            return deck
    return detail.input_file or ""


class DetailScreen(Screen[None]):
    """One job, re-read from the database on ``r`` and whenever the app sees the file change."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("r", "reload", "Refresh"),
        Binding("q", "app.quit", "Quit"),
    ]
    SECTIONS: tuple[tuple[str, Callable[[JobDetail], Text]], ...] = (
        ("summary", summary_text),
        ("key-results", key_results_text),
        ("runs", runs_text),
        ("restarts", restarts_text),
        ("errors", errors_text),
    )

    def __init__(self, job_id: int, load: Callable[[int], JobDetail | None]) -> None:
        super().__init__()
        self.job_id = job_id
        self._load = load

    def compose(self) -> ComposeResult:
        """Lay out one scrolling column: a block per section, then the input deck."""
        yield Header()
        with VerticalScroll():
            for section, _ in self.SECTIONS:
                yield Static(id=section, classes="section")
            yield Static(Text("Input deck", style="bold underline"), classes="section")
            yield Static(id="deck", classes="deck")
        yield Footer()

    def on_mount(self) -> None:
        """Fill the sections from the database."""
        self.action_reload()

    def action_reload(self) -> None:
        """Re-read the job; a job deleted under us says so instead of showing stale data."""
        detail = self._load(self.job_id)
        if detail is None:
            self.query_one("#summary", Static).update(
                Text(f"Job {self.job_id} is no longer in the database.")
            )
            return
        self.sub_title = f"job {detail.row.id}: {detail.row.name}"
        for section, render in self.SECTIONS:
            self.query_one(f"#{section}", Static).update(render(detail))
        self.query_one("#deck", Static).update(Text(input_deck(detail) or "no input deck recorded"))
