"""The schedules screen acts on the highlighted schedule as `orch` does: `p` pauses or
resumes it (`orch schedule pause|resume NAME`), `r` runs it now after a yes (`orch run
--schedule NAME`, in a child process), and a schedule gone since the screen was drawn is a
notification."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_tui import in_event_loop, loaded, wait_for
from textual.pilot import Pilot
from textual.widgets import DataTable

from orchlite.project import load_schedules
from orchlite.store import Store
from orchlite.tui.app import make_app
from orchlite.tui.confirm import ConfirmScreen
from orchlite.tui.runs_screen import RunsScreen
from orchlite.tui.schedules_screen import SchedulesScreen

FLOWS = """
from orchlite import flow, interval


@flow(schedules=[interval(hours=2), interval(hours=1, name="hourly", parameters={"n": 3})])
def hello(n: int = 1) -> int:
    return n
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, orch_home: Path) -> Path:
    (tmp_path / "flows.py").write_text(FLOWS)
    monkeypatch.chdir(tmp_path)
    Store(orch_home).close()
    return tmp_path


async def hourly_highlighted(pilot: Pilot[None]) -> DataTable[object]:
    """The schedules screen, its cursor on the schedule named "hourly"."""
    await loaded(pilot, RunsScreen)
    await pilot.press("S")
    await loaded(pilot, SchedulesScreen)
    table = pilot.app.screen.query_one("#schedules", DataTable)
    await wait_for(pilot, lambda: table.row_count == 2, "the two schedules")
    table.move_cursor(row=next(i for i in range(2) if "(hourly)" in schedule_of(table, i)))
    return table


def schedule_of(table: DataTable[object], row: int) -> str:
    return str(table.get_row_at(row)[1])


def paused(home: Path) -> set[str]:
    with Store(home) as store:
        return set(store.paused_schedules())


@in_event_loop
async def test_p_pauses_the_highlighted_schedule_and_p_again_resumes_it(
    project: Path, orch_home: Path
) -> None:
    app = make_app(orch_home)
    async with app.run_test(size=(120, 30)) as pilot:
        table = await hourly_highlighted(pilot)
        row = table.cursor_row
        await pilot.press("p")
        await wait_for(pilot, lambda: app.outcomes, "the pause")
        assert app.outcomes[-1].message == "Schedule 'hourly' paused"
        assert paused(orch_home) == {"hourly"}
        await wait_for(pilot, lambda: schedule_of(table, row).endswith("[paused]"), "the row")
        assert schedule_of(table, row) == "every 1h (hourly) [paused]"
        assert table.cursor_row == row  # still on it, so `p` again resumes it

        await pilot.press("p")
        await wait_for(pilot, lambda: len(app.outcomes) == 2, "the resume")
        assert app.outcomes[-1].message == "Schedule 'hourly' resumed"
        assert paused(orch_home) == set()
        await wait_for(pilot, lambda: schedule_of(table, row) == "every 1h (hourly)", "the row")
        assert [o.ok for o in app.outcomes] == [True, True]


@in_event_loop
async def test_r_asks_then_runs_the_schedule_now_recorded_as_started_by_it(
    project: Path, orch_home: Path
) -> None:
    app = make_app(orch_home)
    async with app.run_test(size=(120, 30)) as pilot:
        table = await hourly_highlighted(pilot)
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        question = app.screen.question
        assert question.startswith("Run schedule 'hourly' now: flows.py:hello (n=3)?")
        await pilot.press("n")  # no: nothing runs
        assert isinstance(app.screen, SchedulesScreen) and not app.supervising

        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        await pilot.press("y")
        await wait_for(pilot, lambda: app.outcomes and not app.supervising, "the run's outcome")
        outcome = app.outcomes[-1]
        assert outcome.ok and outcome.run_id is not None, outcome.message
        assert outcome.message == f"Run {outcome.run_id[:8]} (flows.py:hello) COMPLETED"
        (hourly,) = [e for e in load_schedules(project)[0] if e.schedule.name == "hourly"]
        with Store(orch_home) as store:
            assert store.slot_claim(outcome.run_id) == (hourly.key, "hourly")
            run = store.get_flow_run(outcome.run_id)
        assert json.loads(run.parameters or "{}") == {"n": 3}
        assert paused(orch_home) == set()
        await wait_for(
            pilot,
            lambda: outcome.run_id[:8] in str(table.get_row_at(table.cursor_row)[4]),
            "the schedule's last run",
        )


@in_event_loop
async def test_a_schedule_gone_since_the_screen_was_drawn_is_a_notification(
    project: Path, orch_home: Path
) -> None:
    app = make_app(orch_home)
    async with app.run_test(size=(120, 30)) as pilot:
        await hourly_highlighted(pilot)
        screen = app.screen
        assert isinstance(screen, SchedulesScreen)
        (project / "flows.py").write_text(FLOWS.replace(', name="hourly"', ""))
        screen.action_toggle_pause()  # before the screen sees the edit
        screen.action_run_schedule()
        await wait_for(pilot, lambda: len(app.outcomes) == 2, "both errors")
        for outcome in app.outcomes:
            assert not outcome.ok
            assert outcome.message.startswith("No schedule named 'hourly'"), outcome.message
        assert isinstance(app.screen, SchedulesScreen) and app.is_running
        assert paused(orch_home) == set() and not app.supervising
        with Store(orch_home) as store:
            assert store.list_flow_runs() == []


@in_event_loop
async def test_on_a_trigger_p_and_r_say_they_act_on_schedules_only(
    project: Path, orch_home: Path
) -> None:
    from orchlite.tui.schedules_screen import PICK_A_SCHEDULE

    (project / "orch.toml").write_text(
        '[[trigger]]\ntarget = "flows.py:hello"\nafter = "hello"\nstates = ["FAILED"]\n'
    )
    app = make_app(orch_home)
    async with app.run_test(size=(120, 30)) as pilot:
        await hourly_highlighted(pilot)
        triggers = app.screen.query_one("#triggers", DataTable)
        await wait_for(pilot, lambda: triggers.row_count == 1, "the trigger")
        triggers.focus()
        await pilot.press("p", "r")
        warnings = [n.message for n in app._notifications if n.severity == "warning"]
        assert warnings == [PICK_A_SCHEDULE, PICK_A_SCHEDULE]
        assert isinstance(app.screen, SchedulesScreen) and not app.outcomes
        assert paused(orch_home) == set()
