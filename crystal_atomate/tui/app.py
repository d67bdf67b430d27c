"""``crystal-atomate tui``: a Textual job browser over the shared database or an AiiDA profile.

It shows the jobs of a :class:`~crystal_atomate.tui.sources.JobSource`: by default the rows of the
terminal UI's ``jobs`` table (whoever wrote them: a jobflow engine through
:class:`~crystal_atomate.stores.jobstore.CrystalMathJobStore`, or the original UI) and, for one
job, its task documents; with ``--backend aiida`` the CRYSTAL calculations of an AiiDA profile. It
only ever reads, so it can stay open next to running engines: every ``poll_seconds`` it compares a
cheap fingerprint of the jobs (the source's ``change_token``) and reloads only when it changed.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Input, Static

from crystal_atomate.stores.tui_mirror import UI_STATUSES
from crystal_atomate.stores.ui_queries import JobDetail, JobRow, age
from crystal_atomate.tui.detail import STATUS_STYLES, DetailScreen
from crystal_atomate.tui.sources import JobSource, SourceUnavailable, SqliteJobs

__all__ = ["COLUMNS", "JobBrowser", "parse_filter", "row_cells"]

#: (column label, sort key of :func:`~crystal_atomate.stores.ui_queries.list_jobs`), in display
#: order.
COLUMNS = (
    ("id", "id"),
    ("status", "status"),
    ("name", "name"),
    ("energy (Ha)", "energy"),
    ("workflow", "workflow"),
    ("age", "created"),
)

_LIST_ACTIONS = frozenset({"filter", "sort", "reverse", "clear_filter"})


def parse_filter(text: str) -> tuple[tuple[str, ...], str | None]:
    """Split filter text into statuses and name text: ``failed nio`` is FAILED jobs named *nio*.

    One box for both keeps the filter a single keystroke away; a word that is a UI status can
    hardly be meant as part of a job name.
    """
    statuses: list[str] = []
    words: list[str] = []
    for word in text.split():
        if word.upper() in UI_STATUSES:
            statuses.append(word.upper())
        else:
            words.append(word)
    return tuple(statuses), " ".join(words) or None


def row_cells(job: JobRow) -> tuple[str | Text, ...]:
    """Return the cells of one job line; the energy keeps ten decimals, as CRYSTAL prints it."""
    return (
        str(job.id),
        Text(job.status, style=STATUS_STYLES.get(job.status, "")),
        job.name,
        "-" if job.final_energy is None else f"{job.final_energy:.10f}",
        (job.workflow_id or "-")[:8],
        age(job.created_at),
    )


class JobBrowser(App[None]):
    """The job list of one source (a shared database, an AiiDA profile), a detail screen per job.

    Parameters
    ----------
    source
        Where the jobs are: a :class:`~crystal_atomate.tui.sources.JobSource`, or the path of a
        shared SQLite database.
    poll_seconds
        Seconds between two checks of the source's change token.
    """

    TITLE = "crystal-atomate jobs"
    AUTO_FOCUS = "#jobs"
    CSS = """
    #filter { display: none; }
    #filter.visible { display: block; }
    #jobs { height: 1fr; }
    #status-line { height: 1; color: $text-muted; }
    .section { margin-bottom: 1; }
    .deck { background: $surface; padding: 0 1; }
    """
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("r", "refresh_jobs", "Refresh"),
        Binding("slash", "filter", "Filter"),
        Binding("s", "sort", "Sort"),
        Binding("S", "reverse", "Reverse", key_display="S"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self, source: JobSource | str | Path, poll_seconds: float = 2.0) -> None:
        super().__init__()
        self.source: JobSource = SqliteJobs(source) if isinstance(source, (str, Path)) else source
        self.poll_seconds = poll_seconds
        self.sort_key = "created"
        self.descending = True
        self.statuses: tuple[str, ...] = ()
        self.name_filter: str | None = None
        self.jobs: list[JobRow] = []
        self._token: object = None

    def compose(self) -> ComposeResult:
        """Lay out the screen: the filter box (hidden until ``/``), the job table, a status line."""
        yield Header()
        yield Input(
            placeholder="filter: status words (failed, running...) and name text", id="filter"
        )
        yield DataTable(id="jobs", cursor_type="row", zebra_stripes=True)
        yield Static(id="status-line")
        yield Footer()

    def on_mount(self) -> None:
        """Add the columns, show the jobs and start polling the source for changes."""
        self.sub_title = self.source.label
        table = self.query_one("#jobs", DataTable)
        for label, key in COLUMNS:
            table.add_column(label, key=key)
        self.reload()
        self.set_interval(self.poll_seconds, self.poll)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Disable the list's own keys (filter, sort), also in the footer, on a detail screen."""
        return not (action in _LIST_ACTIONS and isinstance(self.screen, DetailScreen))

    def on_unmount(self) -> None:
        """Close the source, so the app leaves no handle on a shared file."""
        self.source.close()

    # -- the source ------------------------------------------------------------------------

    def load_detail(self, job_id: int) -> JobDetail | None:
        """One job's detail for the detail screen (None when the job or the database is gone)."""
        return self.source.job_detail(job_id)

    def poll(self) -> None:
        """Reload only when the fingerprint changed: an idle browser costs a query or two."""
        if self.source.change_token() != self._token:
            self.reload()

    def reload(self) -> None:
        """Re-read the job list (and the open detail screen) from the source."""
        try:
            self._token = self.source.change_token()
            self.jobs = self.source.list_jobs(
                statuses=self.statuses,
                name=self.name_filter,
                sort=self.sort_key,
                descending=self.descending,
            )
        except SourceUnavailable as exc:
            self._token, self.jobs = None, []
            self._show_jobs(str(exc))
            return
        self._show_jobs(None)
        if isinstance(self.screen, DetailScreen):
            self.screen.action_reload()

    # -- the table -------------------------------------------------------------------------

    def _show_jobs(self, problem: str | None) -> None:
        """Refill the table, keeping the cursor on the job it was on."""
        table = self.query_one("#jobs", DataTable)
        selected = self.selected_job_id()
        table.clear()
        for job in self.jobs:
            table.add_row(*row_cells(job), key=str(job.id))
        if selected is not None and any(job.id == selected for job in self.jobs):
            table.move_cursor(row=table.get_row_index(str(selected)))
        self.query_one("#status-line", Static).update(problem or self._status_line())

    def _status_line(self) -> str:
        arrow = "descending" if self.descending else "ascending"
        label = next(label for label, key in COLUMNS if key == self.sort_key)
        shown = f"{len(self.jobs)} jobs" if self.jobs else "no jobs"
        filters = " ".join([*self.statuses, self.name_filter or ""]).strip()
        return f"{shown}, sorted by {label} ({arrow})" + (f", filter: {filters}" if filters else "")

    def selected_job_id(self) -> int | None:
        """Return the UI job number under the cursor (None on an empty table)."""
        table = self.query_one("#jobs", DataTable)
        if not table.row_count:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return int(row_key.value) if row_key.value is not None else None

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Open the detail screen of the job on the selected row."""
        if event.row_key.value is not None:
            self.push_screen(DetailScreen(int(event.row_key.value), self.load_detail))

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        """Reverse the order on a click on the sorted column; sort by any other column clicked."""
        key = str(event.column_key.value)
        self.descending = not self.descending if key == self.sort_key else True
        self.sort_key = key
        self.reload()

    # -- actions ---------------------------------------------------------------------------

    def action_refresh_jobs(self) -> None:
        """Re-read the source now, without waiting for the next poll."""
        self.reload()

    def action_sort(self) -> None:
        """Sort by the next column, in display order."""
        keys = [key for _, key in COLUMNS]
        self.sort_key = keys[(keys.index(self.sort_key) + 1) % len(keys)]
        self.reload()

    def action_reverse(self) -> None:
        """Reverse the order of the sorted column."""
        self.descending = not self.descending
        self.reload()

    def action_filter(self) -> None:
        """Show the filter box and give it the keys."""
        box = self.query_one("#filter", Input)
        box.add_class("visible")
        box.focus()

    def action_clear_filter(self) -> None:
        """Escape on the list: drop the filter and give the keys back to the table."""
        box = self.query_one("#filter", Input)
        box.remove_class("visible")
        if box.value:
            box.value = ""
        self.query_one("#jobs", DataTable).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        """Filter as the user types: the query is indexed and the list is small."""
        self.statuses, self.name_filter = parse_filter(event.value)
        self.reload()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Keep the filter (applied while typing) and give the keys back to the table."""
        self.query_one("#jobs", DataTable).focus()
