"""`orch tui` watching a live store: each poll reads and redraws only what changed, so the
screen keeps answering keys however big the run, and sits idle beside a busy daemon."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from test_tui import in_event_loop, loaded, wait_for
from test_tui_session import drawn
from textual.widgets import DataTable, Input

from orchlite.states import StateName
from orchlite.store import Store, TaskRun, TaskRunSave
from orchlite.tui.app import make_app
from orchlite.tui.detail_screen import RunDetailScreen
from orchlite.tui.keyed_table import KeyedTable
from orchlite.tui.reader import RunsFollower, RunsQuery
from orchlite.tui.run_reader import DetailFollower
from orchlite.tui.runs_screen import RunsScreen
from orchlite.tui.timeline import Timeline
from tests.helpers.store_rows import flow_run, task_run

RUN = "a" * 32


def live_run(home: Path, tasks: int, *, running: int = 0) -> Store:
    """Run RUN, RUNNING, with `tasks` task runs: the first `running` of them still going."""
    store = Store(home)
    flow_run(store, RUN, StateName.RUNNING, now=100.0)
    saves = [
        TaskRunSave(
            run := task_run(RUN, p, "RUNNING" if p < running else "COMPLETED"),
            [(run.state, None, run.created)],
        )
        for p in range(tasks)
    ]
    assert store.save_task_runs(saves) == [None] * tasks
    return store


def record(store: Store, run: TaskRun) -> None:
    store.save_task_run(run, [(run.state, run.state_message, run.ended or run.created)])


def test_a_poll_reads_only_the_task_runs_that_changed(orch_home: Path) -> None:
    store = live_run(orch_home, 1_000, running=3)
    follower = DetailFollower(RUN)
    with Store(orch_home, read_only=True) as reader:
        first = follower(reader)
        assert first.changed is None and len(first.tasks) == 1_000
        assert follower(reader).changed == []
        record(store, task_run(RUN, 1, "FAILED", error_type="ValueError", error_message="bad"))
        record(store, task_run(RUN, 1_000, "RUNNING"))
        later = follower(reader)
    assert [(t.position, t.state) for t in later.changed or []] == [
        (1, "FAILED"),
        (1_000, "RUNNING"),
    ]
    assert len(later.tasks) == 1_001 and later.tasks[1].state == "FAILED"
    assert [t.position for t in later.tasks] == list(range(1_001))
    store.close()


@in_event_loop
async def test_a_live_run_updates_rows_in_place_and_adds_new_ones_in_call_order(
    orch_home: Path,
) -> None:
    store = live_run(orch_home, 2_000, running=2)
    app = make_app(orch_home, clock=lambda: 200.0)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, RunsScreen)
        app.open_run(RUN)
        await loaded(pilot, RunDetailScreen)
        detail = app.screen
        assert isinstance(detail, RunDetailScreen)
        table = detail.query_one("#tasks", DataTable)
        await wait_for(pilot, lambda: table.row_count == 2_000, "every row")
        table.move_cursor(row=5)
        rows = dict(table.rows)
        loads = detail.loads
        record(store, task_run(RUN, 1, "FAILED", error_type="ValueError", error_message="bad"))
        record(store, task_run(RUN, 2_001, "RUNNING"))
        await wait_for(pilot, lambda: table.row_count == 2_001, "the new task run's row")
        record(store, task_run(RUN, 2_000, "COMPLETED"))  # recorded after a later one
        await wait_for(pilot, lambda: table.row_count == 2_002, "the other new row")
        assert detail.loads >= loads + 2
        assert all(table.rows[key] is row for key, row in rows.items())  # never rebuilt
        assert str(table.get_row("1")[2]).strip() == "FAILED"
        assert str(table.get_row("1")[6]) == "ValueError: bad"
        assert [table.get_row_at(i)[0] for i in range(1_998, 2_002)] == [
            "1998",
            "1999",
            "2000",
            "2001",
        ]
        assert table.cursor_row == 5
        timeline = detail.query_one(Timeline)
        assert len(timeline.tasks) == 2_002
    store.close()


def test_the_timeline_fits_wide_names_and_draws_a_task_that_took_no_time_as_one_cell() -> None:
    timeline = Timeline()
    tasks = [
        task_run(RUN, 0, name="数据清洗任务数据清洗任务", started=10.0, ended=10.0),
        task_run(RUN, 1, name="🚀🚀🚀🚀🚀🚀🚀🚀🚀🚀", started=10.0, ended=20.0),
    ]
    timeline.tasks = tasks
    timeline.origin, timeline.span = 10.0, 10.0
    console = Console(width=80)
    lines = [timeline.line(y, 80) for y in range(1, 3)]
    assert {console.measure(line).maximum for line in lines} == {80}
    assert lines[0].plain.count("█") == 1
    assert lines[1].plain.count("█") == 80 - 18 - 8 - 2
    timeline.tasks = tasks[:1]
    timeline.span = 0.0
    assert timeline.line(1, 80).plain.count("█") == 1


def test_the_runs_page_loads_again_only_when_a_run_it_shows_moved(orch_home: Path) -> None:
    store = Store(orch_home)
    flow_run(store, "1" * 32, StateName.COMPLETED, now=10.0)
    flow_run(store, "2" * 32, StateName.RUNNING, now=20.0, pid=1)
    follower = RunsFollower(lambda: RunsQuery())
    with Store(orch_home, read_only=True) as reader:
        assert follower(reader) is not None
        assert follower(reader) is None
        store.heartbeat(["2" * 32], now=30.0)  # what a daemon writes all the time
        store.write_logs([("2" * 32, None, None, 31.0, 20, "x", "a line")])
        assert follower(reader) is None
        record(store, task_run("2" * 32, 0, "RUNNING"))  # a running run's task counts
        page = follower(reader)
        assert page is not None and page.counts["2" * 32] == {"RUNNING": 1}
        assert follower(reader) is None
        store.set_flow_run_state("2" * 32, StateName.COMPLETED, now=40.0)
        assert follower(reader) is not None
        flow_run(store, "3" * 32, StateName.PENDING, now=50.0)  # a newer run
        page = follower(reader)
        assert page is not None and page.runs[0].id == "3" * 32
        assert follower(reader) is None
        flow_run(store, "4" * 32, StateName.PENDING, flow_name="other", now=60.0)
        follower.query = lambda: RunsQuery(flow="f")
        page = follower(reader)  # a new query: loaded, whatever moved
        assert page is not None and len(page.runs) == 3
    store.close()


@in_event_loop
async def test_columns_fit_the_terminal_on_every_resize_and_shrink_again(orch_home: Path) -> None:
    store = Store(orch_home)
    flow_run(store, "1" * 32, StateName.COMPLETED, name="short", now=10.0)
    long_name = "a-very-long-run-name-" * 6
    flow_run(store, "2" * 32, StateName.COMPLETED, name=long_name, now=20.0)
    app = make_app(orch_home)
    async with app.run_test(size=(200, 30)) as pilot:
        await loaded(pilot, RunsScreen)
        table = app.screen.query_one("#runs", KeyedTable)
        await wait_for(pilot, lambda: table.columns["run"].width == len(long_name), "full width")
        await pilot.resize_terminal(80, 24)
        await wait_for(pilot, lambda: table.columns["run"].width < len(long_name), "a fit")
        shown = drawn(app)
        assert "Tasks" in shown and "Duration" in shown
        app.screen.query_one("#search", Input).value = "short"  # the long name goes
        await wait_for(pilot, lambda: table.columns["run"].width == len("short"), "narrower")
    store.close()


class WrittenDuringRead(Store):
    """A reader during whose read of run `moving`'s task counts (after its row) another
    process moves that run on."""

    moving: tuple[Store, str] | None = None

    def task_state_counts(self, flow_run_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        if self.moving is not None and self.moving[1] in flow_run_ids:
            writer, run_id = self.moving
            self.moving = None
            writer.set_flow_run_state(run_id, StateName.COMPLETED, now=70.0)
        return super().task_state_counts(flow_run_ids)


def test_a_run_that_moves_while_the_page_is_read_shows_at_the_next_poll(orch_home: Path) -> None:
    store = Store(orch_home)
    flow_run(store, "1" * 32, StateName.RUNNING, now=10.0, pid=1)
    follower = RunsFollower(lambda: RunsQuery())
    with WrittenDuringRead(orch_home, read_only=True) as reader:
        assert follower(reader) is not None
        flow_run(store, "2" * 32, StateName.RUNNING, now=20.0, pid=1)  # a newer run
        reader.moving = (store, "2" * 32)  # ... that ends while the page is read
        follower(reader)
        page = follower(reader)
        assert page is not None and page.runs[0].state == StateName.COMPLETED
    store.close()


@in_event_loop
async def test_a_long_error_is_shown_whole_on_a_wide_terminal(orch_home: Path) -> None:
    store = live_run(orch_home, 1)
    message = "the upstream service closed the connection " * 3
    record(store, task_run(RUN, 0, "FAILED", error_type="ConnectionError", error_message=message))
    app = make_app(orch_home)
    async with app.run_test(size=(220, 40)) as pilot:
        await loaded(pilot, RunsScreen)
        app.open_run(RUN)
        await loaded(pilot, RunDetailScreen)
        await wait_for(pilot, lambda: f"ConnectionError: {message.strip()}" in drawn(app), "it")
        await pilot.resize_terminal(80, 24)
        tasks = app.screen.query_one("#tasks", DataTable)
        await wait_for(pilot, lambda: tasks.columns["error / message"].width < 60, "a fit")
    store.close()


@in_event_loop
async def test_a_deleted_and_recreated_store_is_read_anew(orch_home: Path) -> None:
    store = Store(orch_home)
    flow_run(store, "1" * 32, StateName.COMPLETED, name="before", now=10.0)
    store.close()
    app = make_app(orch_home)
    async with app.run_test(size=(120, 30)) as pilot:
        await loaded(pilot, RunsScreen)
        table = app.screen.query_one("#runs", KeyedTable)
        assert table.row_count == 1
        shutil.rmtree(orch_home)
        await wait_for(pilot, lambda: "No runs yet" in drawn(app), "the empty-store hint")
        store = Store(orch_home)
        flow_run(store, "2" * 32, StateName.COMPLETED, name="after", now=20.0)
        await wait_for(pilot, lambda: "after" in drawn(app), "the new store's run")
        assert table.row_count == 1
    store.close()


def test_a_retried_task_shows_its_earlier_attempts_apart_in_the_timeline(orch_home: Path) -> None:
    store = live_run(orch_home, 0)
    run = task_run(RUN, 0, "COMPLETED", attempts=2, started=100.0, ended=110.0)
    store.save_task_run(
        run,
        [
            ("RUNNING", None, 100.0),
            ("AwaitingRetry", "boom", 104.0),
            ("RUNNING", "attempt 2", 105.0),
            ("COMPLETED", None, 110.0),
        ],
    )
    with Store(orch_home, read_only=True) as reader:
        detail = DetailFollower(RUN)(reader)
    assert detail.retried == {run.id: 105.0}
    timeline = Timeline()
    timeline.show(detail.tasks, 110.0, detail.retried)
    line = timeline.line(1, 80)
    bar = 80 - 18 - 8 - 2
    styles = [str(span.style) for span in line.spans]
    assert "magenta" in styles and "green" in styles
    assert line.plain.count("█") == bar
    store.close()


@in_event_loop
async def test_subflows_are_rows_and_bars_at_their_call_positions(orch_home: Path) -> None:
    store = live_run(orch_home, 2)
    child = "c" * 32
    flow_run(
        store, child, StateName.COMPLETED, name="child-run", parent_run_id=RUN, parent_position=2
    )
    store.close()
    app = make_app(orch_home, clock=lambda: 200.0)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, RunsScreen)
        app.open_run(RUN)
        await loaded(pilot, RunDetailScreen)
        detail = app.screen
        table = detail.query_one("#tasks", DataTable)
        await wait_for(pilot, lambda: table.row_count == 3, "the subflow's row")
        assert "subflow child-run" in str(table.get_row("2")[1])
        timeline = detail.query_one(Timeline)
        assert [span.name for span in timeline.tasks] == ["t-0", "t-1", "child-run"]
        table.focus()
        table.move_cursor(row=2)
        await pilot.press("enter")
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, RunDetailScreen) and app.screen.run_id == child,
            "the subflow's run",
        )


def test_a_poke_as_the_wait_times_out_is_kept_for_the_next_wait() -> None:
    """A filter changed just as the poller's sleep ended must still be read (it was lost)."""
    import threading

    from orchlite.tui.poller import Wakeup

    class PokedAsItTimesOut(threading.Event):
        first = True

        def wait(self, timeout: float | None = None) -> bool:
            if not self.first:
                return super().wait(timeout)
            self.first = False
            super().wait(timeout)  # times out
            self.set()  # the poke arrives right then
            return False

    wakeup = Wakeup(event=PokedAsItTimesOut())
    assert wakeup.wait(0.01) is False
    assert wakeup.wait(0) is True
