"""The TUI's schedules screen shows a schedule paused with `orch schedule pause`, and shows
it active again once resumed, without leaving the screen."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_tui import in_event_loop, loaded, wait_for
from textual.widgets import DataTable

from orchlite.schedule_control import pause, resume
from orchlite.store import Store
from orchlite.tui.app import make_app
from orchlite.tui.runs_screen import RunsScreen

FLOWS = """
from orchlite import flow, interval


@flow(schedules=[interval(hours=1, name="hourly"), interval(hours=2)])
def hello():
    pass
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "flows.py").write_text(FLOWS)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@in_event_loop
async def test_the_schedules_screen_shows_which_schedule_is_paused(
    project: Path, orch_home: Path
) -> None:
    from orchlite.tui.schedules_screen import SchedulesScreen

    Store(orch_home).close()  # a store, as a project that ran something has
    pause(orch_home, project, "hourly")
    app = make_app(orch_home)
    async with app.run_test(size=(120, 30)) as pilot:
        await loaded(pilot, RunsScreen)
        await pilot.press("S")
        await loaded(pilot, SchedulesScreen)
        table = app.screen.query_one("#schedules", DataTable)

        def schedules() -> list[str]:
            return sorted(str(table.get_row_at(i)[1]) for i in range(table.row_count))

        await wait_for(pilot, lambda: table.row_count == 2, "the two schedules")
        assert schedules() == ["every 1h (hourly) [paused]", "every 2h"]
        resume(orch_home, project, "hourly")
        await wait_for(pilot, lambda: schedules() == ["every 1h (hourly)", "every 2h"], "resume")
