"""The flow health screen (`h`), driven with Textual's pilot against real stores."""

from __future__ import annotations

from pathlib import Path

from test_health import DAY, manual_run, scheduled_run
from test_tui import SNAP_NOW, flows_shown, in_event_loop, loaded, runs_table, wait_for
from test_tui_session import drawn
from textual.pilot import Pilot
from textual.widgets import DataTable, Input

from orchlite.states import StateName
from orchlite.store import Store
from orchlite.tui.app import make_app
from orchlite.tui.health_reader import HealthWatcher
from orchlite.tui.health_screen import HealthScreen
from orchlite.tui.runs_screen import RunsScreen


def health_store(home: Path, now: float = SNAP_NOW) -> None:
    """Three flows. `etl` on a schedule: four slots (one started 7 minutes late), one
    skipped, a failure whose message holds an escape sequence, twice as slow as the day
    before. `report`: all well, twice as fast as the day before. `sync`: ran only the day
    before."""
    store = Store(home)
    for i in range(3):
        scheduled_run(store, f"{i + 1:x}" * 32, slot=now - 3600 * (i + 2), delay=1)
        etl = f"a{i}" * 16
        manual_run(
            store, etl, "etl", StateName.COMPLETED, created=now - DAY - 600 * (i + 1), took=2
        )
        for run_id, created, took in (
            (f"b{i}", now - 900 * (i + 1), 3),
            (f"c{i}", now - DAY - 60, 6),
        ):
            manual_run(
                store, run_id * 16, "report", StateName.COMPLETED, created=created, took=took
            )
    scheduled_run(store, "5" * 32, slot=now - 1800, delay=420)
    scheduled_run(store, "6" * 32, slot=now - 900, delay=0, skip=True)
    message = "ValueError: bad row 7 \x1b[2J\nTraceback (most recent call last): ..."
    manual_run(store, "7" * 32, "etl", StateName.FAILED, created=now - 300, took=1, message=message)
    manual_run(store, "8" * 32, "sync", StateName.COMPLETED, created=now - 1.5 * DAY, took=9)
    store.close()


async def health_shown(pilot: Pilot[None]) -> HealthScreen:
    await loaded(pilot, RunsScreen)
    await pilot.press("h")
    await loaded(pilot, HealthScreen)
    screen = pilot.app.screen
    assert isinstance(screen, HealthScreen)
    table = screen.query_one("#health", DataTable)
    await wait_for(pilot, lambda: not table.columns["flow"].auto_width, "fitted columns")
    await pilot.pause()
    return screen


def row_text(screen: HealthScreen, flow: str) -> list[str]:
    table = screen.query_one("#health", DataTable)
    return [str(cell) for cell in table.get_row(flow)]


@in_event_loop
async def test_health_shows_a_row_per_flow_over_the_window_chosen(orch_home: Path) -> None:
    health_store(orch_home)
    app = make_app(orch_home, clock=lambda: SNAP_NOW)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await health_shown(pilot)
        assert list(screen.flows) == ["etl", "report", "sync"]
        assert row_text(screen, "etl")[1:] == [
            "5",
            "20%",
            "4.0s ↑100%",
            "4.0s ↑100%",
            "1",
            "1",
            "ValueError: bad row 7 \\x1b[2J",
        ]
        assert row_text(screen, "report")[1:] == ["3", "0%", "3.0s ↓50%", "3.0s ↓50%", "0", "0", ""]
        assert row_text(screen, "sync")[1:4] == ["0", "-", "-"]
        assert "\x1b" not in drawn(app)  # drawn escaped, never sent raw
        assert "last 24 hours" in screen.sub_title

        await pilot.press("w")  # 7 days: sync's run is in, etl's runs of the day before too
        await wait_for(pilot, lambda: "7 days · 3 flows" in screen.sub_title, "the 7-day window")
        assert row_text(screen, "sync")[1:3] == ["1", "0%"]
        assert row_text(screen, "etl")[1] == "8"
        await pilot.press("3")
        await wait_for(pilot, lambda: "30 days · 3 flows" in screen.sub_title, "30 days")
        await pilot.press("1")
        await wait_for(pilot, lambda: "24 hours · 3 flows" in screen.sub_title, "24 hours")


@in_event_loop
async def test_enter_on_a_flow_shows_its_runs_and_h_goes_back(orch_home: Path) -> None:
    health_store(orch_home)
    app = make_app(orch_home, clock=lambda: SNAP_NOW)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await health_shown(pilot)
        table = screen.query_one("#health", DataTable)
        assert table.has_focus
        await pilot.press("down")  # report
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), "the runs screen")
        runs = runs_table(app)
        assert app.screen.query_one("#flow", Input).value == "report"
        await wait_for(pilot, lambda: runs.row_count == 6, "report's runs only")
        assert set(flows_shown(app)) == {"report"}
        assert runs.has_focus

        await pilot.press("h")
        await loaded(pilot, HealthScreen)
        await pilot.press("h")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), "back")


@in_event_loop
async def test_health_follows_new_runs_and_says_when_there_are_none(orch_home: Path) -> None:
    app = make_app(orch_home)
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot, RunsScreen)
        await pilot.press("h")
        await loaded(pilot, HealthScreen)
        assert "No runs in the last 24 hours" in drawn(app)
        store = Store(orch_home)
        manual_run(
            store,
            "9" * 32,
            "etl",
            StateName.CRASHED,
            created=app.clock() - 5,
            took=1,
            message="process died",
        )
        store.close()
        screen = app.screen
        assert isinstance(screen, HealthScreen)
        await wait_for(pilot, lambda: "etl" in screen.flows, "the new run")
        assert row_text(screen, "etl")[1:3] == ["1", "100%"]
        assert row_text(screen, "etl")[-1] == "process died"


def test_a_busy_store_is_read_again_at_most_once_a_second(orch_home: Path) -> None:
    """A daemon beside the screen commits all the time: the watcher reads a change only
    after its pause (a second, or twenty times the last load), and again every minute
    whatever happens, since the window moves on."""
    clock = [1000.0]
    watcher = HealthWatcher(orch_home, lambda: "24h", lambda: SNAP_NOW, lambda: clock[0])
    store = Store(orch_home)
    try:
        first = watcher.tick()
        assert first is not None and not first.flows
        manual_run(store, "1" * 32, "etl", StateName.COMPLETED, created=SNAP_NOW - 60, took=1)
        assert watcher.tick() is None  # too soon: the change waits
        clock[0] += 1.0
        later = watcher.tick()
        assert later is not None and [h.flow for h in later.flows] == ["etl"]
        clock[0] += 5.0
        assert watcher.tick() is None  # nothing changed
        clock[0] += 60.0
        assert watcher.tick() is not None  # the window moved on
        assert watcher.tick(force=True) is not None  # asked for (another window)
    finally:
        store.close()
        watcher.close()
