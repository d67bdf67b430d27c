"""Driving the job browser in tests: Textual's pilot, and the browser's screen read as text.

Shared by the SQLite browser tests and the AiiDA ones, so both read the table the same way.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any

from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import DataTable, Static

from crystal_atomate.tui.app import JobBrowser

__all__ = ["SIZE", "pilot_test", "rows_of", "table_of", "table_rows", "text_of", "wait_until"]

#: Terminal size of the tests: wide enough for every column.
SIZE = (140, 50)


def pilot_test(scenario: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async pilot scenario as a plain test (no pytest asyncio plugin is needed).

    Parameters
    ----------
    scenario
        The ``async def`` test.

    Returns
    -------
    Callable
        A synchronous test with the same signature (so fixtures still apply).
    """

    @functools.wraps(scenario)
    def test(*args: Any, **kwargs: Any) -> None:
        asyncio.run(scenario(*args, **kwargs))

    return test


def table_of(app: JobBrowser) -> DataTable:
    """Return the job table."""
    return app.query_one("#jobs", DataTable)


def table_rows(app: JobBrowser) -> list[list[str]]:
    """Return every line of the table as the user sees it, top to bottom (cells as plain text).

    Use it to check an order over the whole table: job names need not be unique.
    """
    table = table_of(app)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def rows_of(app: JobBrowser) -> dict[str, list[str]]:
    """Return the table by job name (cells as plain text), in the order of first appearance.

    Only for jobs whose names are unique: a repeated name keeps its first line's place but its
    last line's cells, so an order read from it over jobs with shared names (a profile or database
    other tests also wrote to) is wrong; read :func:`table_rows` for that.
    """
    return {row[2]: row for row in table_rows(app)}


def text_of(screen: Screen | JobBrowser, selector: str) -> str:
    """Return the text of one ``Static`` widget."""
    return str(screen.query_one(selector, Static).content)


async def wait_until(pilot: Pilot, condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Let the app's timers run until ``condition`` holds (polling is the behaviour under test).

    Raises
    ------
    AssertionError
        ``condition`` still fails after ``timeout`` seconds.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not reached before the timeout"
        await pilot.pause(0.05)
