"""The UI statuses of nodes no AiiDA process owns: one table, written by the import and the UI's
data layer, read back by :func:`~crystal_atomate.aiida.query.tui_status`."""

from __future__ import annotations

import pytest

from crystal_atomate.aiida.query import (
    JOB_STATUSES,
    UI_ACTIVE_STATES,
    UI_FINISHED_STATES,
    tui_status,
)


def test_every_ui_status_is_either_active_or_finished():
    assert set(UI_ACTIVE_STATES).isdisjoint(UI_FINISHED_STATES)
    assert set(UI_ACTIVE_STATES) | set(UI_FINISHED_STATES) == set(JOB_STATUSES)


@pytest.mark.parametrize("status", list(UI_FINISHED_STATES))
def test_a_finished_status_reads_back_from_its_sealed_node(status):
    state, exit_status = UI_FINISHED_STATES[status]
    assert tui_status(state, exit_status, "done") == status


@pytest.mark.parametrize("status", list(UI_ACTIVE_STATES))
def test_an_active_status_reads_back_from_its_scheduler_state(status):
    assert tui_status(None, None, UI_ACTIVE_STATES[status]) == status
