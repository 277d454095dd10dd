"""`orch tui` driven through `make_app()` against real stores, with Textual's pilot.

Flows run in this process (or, for retry, in the child process the executor starts); tests
wait for the screens' polling workers to show what the store holds, never for a fixed time.
"""

from __future__ import annotations

import asyncio
import functools
import io
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import DataTable, OptionList, Select, Static

from orchlite.executor import RunRequest, run_target
from orchlite.states import StateType
from orchlite.store import Store
from orchlite.tui.app import OrchApp, make_app
from orchlite.tui.detail_screen import RunDetailScreen
from orchlite.tui.help import HelpScreen
from orchlite.tui.logs_screen import LogsScreen
from orchlite.tui.reader import Poller, RunsQuery, load_runs
from orchlite.tui.runs_screen import RunsScreen

FLOWS = textwrap.dedent(
    """
    from pathlib import Path

    from orchlite import flow, get_run_logger, task


    @task
    def greet(name: str) -> str:
        get_run_logger().warning("about to greet %s", name)
        return f"Hello, {name}!"


    @task
    def check(text: str) -> str:
        if (Path(__file__).parent / "fail").exists():
            raise ValueError("told to fail")
        return text


    @flow
    def child(n: int = 1) -> int:
        return n


    @flow
    def hello(name: str = "world") -> str:
        get_run_logger().info("hello flow starting")
        child(2)
        return check(greet(name))
    """
)


def in_event_loop(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async test in a fresh event loop (no async plugin needed)."""

    @functools.wraps(test)
    def run(*args: object, **kwargs: object) -> None:
        asyncio.run(test(*args, **kwargs))  # type: ignore[arg-type]

    return run


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "flows.py").write_text(FLOWS)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_flow(target: str = "flows.py:hello", **params: object) -> str:
    run_id, _ = run_target(RunRequest(target=target, params=dict(params)), console=False)
    return run_id


def failed_hello(project: Path) -> str:
    (project / "fail").touch()
    try:
        return run_flow()
    finally:
        (project / "fail").unlink()


async def wait_for(pilot: Pilot[None], condition: Callable[[], object], what: str) -> None:
    """Let the app work until `condition()` holds (the polling workers post snapshots)."""
    deadline = time.monotonic() + 15
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


def text_of(widget: Static) -> str:
    """What a Static shows, as plain text."""
    console = Console(file=io.StringIO(), width=120, color_system=None)
    with console.capture() as capture:
        console.print(widget.content)
    return capture.get()


def runs_table(app: OrchApp) -> DataTable[object]:
    return app.screen.query_one("#runs", DataTable)


def flows_shown(app: OrchApp) -> list[str]:
    table = runs_table(app)
    return [str(table.get_row_at(i)[1]) for i in range(table.row_count)]


async def loaded(pilot: Pilot[None], screen_type: type, at_least: int = 1) -> None:
    app = pilot.app
    await wait_for(
        pilot,
        lambda: isinstance(app.screen, screen_type) and app.screen.loads >= at_least,
        f"{screen_type.__name__} to load",
    )


@in_event_loop
async def test_a_project_without_runs_shows_how_to_start(orch_home: Path) -> None:
    app = make_app(orch_home)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, RunsScreen)
        empty = app.screen.query_one("#empty", Static)
        assert empty.display
        assert "orch run examples/hello.py:hello" in text_of(empty)
        assert not runs_table(app).display
    assert not (orch_home / "orch.db").exists()  # looking never creates a store


@in_event_loop
async def test_runs_are_listed_newest_first_with_state_and_task_counts(project: Path) -> None:
    first = failed_hello(project)
    second = run_flow(name="Ada")
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, RunsScreen)
        table = runs_table(app)
        assert table.row_count == 4  # two runs of hello, each with a child subflow run
        keys = [table.coordinate_to_cell_key((i, 0)).row_key.value for i in range(4)]
        assert keys.index(second) < keys.index(first)
        row = table.get_row(first)
        assert str(row[0]).strip() == "FAILED"
        assert row[1] == "hello"
        assert "1 failed" in str(row[6]) and "1 ok" in str(row[6])
        assert str(table.get_row(second)[0]).strip() == "COMPLETED"


@in_event_loop
async def test_detail_and_logs_screens_and_back(project: Path) -> None:
    run_id = failed_hello(project)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, RunsScreen)
        runs_table(app).move_cursor(row=runs_table(app).get_row_index(run_id))
        await pilot.press("enter")
        await loaded(pilot, RunDetailScreen)
        detail = app.screen
        assert isinstance(detail, RunDetailScreen) and detail.run_id == run_id
        tasks = detail.query_one("#tasks", DataTable)
        names = [str(tasks.get_row_at(i)[1]) for i in range(tasks.row_count)]
        assert [n.partition("-")[0] for n in names] == ["greet", "check"]
        assert "ValueError: told to fail" in str(tasks.get_row_at(1)[6])
        assert "told to fail" in text_of(detail.query_one("#error", Static))
        assert "name='world'" in text_of(detail.query_one("#summary", Static))
        related = detail.query_one("#related", OptionList)
        assert related.option_count == 1  # the child subflow

        await pilot.press("l")
        await loaded(pilot, LogsScreen)
        logs = app.screen
        assert isinstance(logs, LogsScreen)
        messages = [r.message for r in logs.records]
        assert "hello flow starting" in messages
        assert "about to greet world" in messages
        await pilot.press("3")  # warnings and worse
        await wait_for(
            pilot,
            lambda: logs.records and all(r.level >= 30 for r in logs.records),
            "the level filter",
        )
        assert "hello flow starting" not in [r.message for r in logs.records]

        await pilot.press("escape")
        assert isinstance(app.screen, RunDetailScreen)
        related.focus()
        related.highlighted = 0
        await pilot.press("enter")  # open the child run
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, RunDetailScreen) and app.screen.run_id != run_id,
            "the child run",
        )
        await loaded(pilot, RunDetailScreen)
        assert app.screen.detail.parent.id == run_id
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)


@in_event_loop
async def test_filter_by_flow_state_and_text(project: Path) -> None:
    failed = failed_hello(project)
    run_flow(name="Ada")
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, RunsScreen)
        screen = app.screen
        assert isinstance(screen, RunsScreen)

        await pilot.press("f")
        await pilot.press(*"child", "enter")
        await wait_for(pilot, lambda: flows_shown(app) == ["child", "child"], "flow filter")

        await pilot.press("escape")  # clears every filter
        await wait_for(pilot, lambda: len(flows_shown(app)) == 4, "filters cleared")

        screen.query_one("#state", Select).value = "FAILED"
        await wait_for(pilot, lambda: flows_shown(app) == ["hello"], "state filter")
        assert runs_table(app).get_row_at(0)[2] == screen.runs[failed].name

        screen.query_one("#state", Select).clear()
        await pilot.press("slash", *failed[:10])
        await wait_for(pilot, lambda: list(screen.runs) == [failed], "text search")

        await pilot.press("ctrl+a", "ctrl+k", *"no such run")
        await wait_for(pilot, lambda: not screen.runs, "a search without matches")
        assert "No runs match" in text_of(screen.query_one("#empty", Static))


@in_event_loop
async def test_a_new_run_appears_while_the_app_is_open(project: Path, orch_home: Path) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, RunsScreen)
        assert app.screen.query_one("#empty", Static).display  # no store yet
        run_id = await asyncio.to_thread(run_flow)
        await wait_for(pilot, lambda: run_id in app.screen.runs, "the new run")
        assert runs_table(app).display


@in_event_loop
async def test_state_changes_show_up_and_running_durations_tick(orch_home: Path) -> None:
    store = Store(orch_home)
    run_id = running_run(store, pid=None, started=1_000.0)
    clock = [1_005.0]
    app = make_app(orch_home, clock=lambda: clock[0])
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, RunsScreen)
        table = runs_table(app)
        assert str(table.get_row(run_id)[0]).strip() == "RUNNING"
        assert table.get_row(run_id)[5] == "5.0s"
        clock[0] = 1_012.0
        await wait_for(pilot, lambda: table.get_row(run_id)[5] == "12.0s", "the duration tick")
        store.set_flow_run_state(run_id, StateType.COMPLETED, now=1_013.0)
        await wait_for(
            pilot,
            lambda: str(table.get_row(run_id)[0]).strip() == "COMPLETED",
            "the new state",
        )
        assert table.get_row(run_id)[5] == "13.0s"
    store.close()


def running_run(store: Store, *, pid: int | None, started: float | None = None) -> str:
    run_id = "ab" * 16
    store.create_flow_run(
        run_id=run_id, flow_name="slow", name="slow-run", parameters="{}", now=started
    )
    store.set_flow_run_state(
        run_id, StateType.RUNNING, pid=pid, host=socket.gethostname(), now=started
    )
    return run_id


@in_event_loop
async def test_cancel_asks_first_then_cancels_through_the_library(orch_home: Path) -> None:
    store = Store(orch_home)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    run_id = running_run(store, pid=gone.pid)  # its process is gone: cancelled at once
    app = make_app(orch_home)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, RunsScreen)
        await pilot.press("c")
        await pilot.press("n")  # changed our mind
        assert isinstance(app.screen, RunsScreen)
        assert store.get_flow_run(run_id).state == "RUNNING"
        await pilot.press("c", "y")
        await wait_for(pilot, lambda: app.outcomes, "the cancel outcome")
        assert app.outcomes[-1].message == f"Run {run_id[:8]} CANCELLED"
        await wait_for(
            pilot,
            lambda: str(runs_table(app).get_row(run_id)[0]).strip() == "CANCELLED",
            "the cancelled state",
        )
    assert store.get_flow_run(run_id).state == "CANCELLED"
    store.close()


@in_event_loop
async def test_retry_a_failed_run_from_its_detail_screen(project: Path, orch_home: Path) -> None:
    old = failed_hello(project)  # the marker is gone now, so the retry succeeds
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, RunsScreen)
        app.open_run(old)
        await loaded(pilot, RunDetailScreen)
        await pilot.press("r")
        await pilot.press("y")
        await wait_for(pilot, lambda: app.outcomes, "the retry outcome")
        outcome = app.outcomes[-1]
        assert outcome.ok, outcome.message
        assert outcome.message.endswith("(retry) COMPLETED")
        await pilot.press("escape")
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        await wait_for(pilot, lambda: outcome.run_id in screen.runs, "the new run")
        assert screen.runs[outcome.run_id].retry_of == old
        assert screen.runs[outcome.run_id].trigger == "retry"


@in_event_loop
async def test_a_subflow_cannot_be_retried_and_says_why(project: Path) -> None:
    run_flow()
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, RunsScreen)
        child_id = next(r.id for r in app.screen.runs.values() if r.flow_name == "child")
        app.confirm_retry(child_id)
        assert "is a subflow" in app.outcomes[-1].message
        assert isinstance(app.screen, RunsScreen)


def test_an_idle_poll_costs_microseconds_on_a_big_store(orch_home: Path) -> None:
    store = Store(orch_home)
    with store.transaction():
        for i in range(10_000):
            store.create_flow_run(
                run_id=f"{i:032x}",
                flow_name=f"flow{i % 7}",
                name=f"run-{i}",
                parameters="{}",
                state=StateType.COMPLETED,
                now=1e9 + i,
            )
    poller = Poller(orch_home, lambda s: load_runs(s, RunsQuery()))
    page = poller.tick()
    assert page is not None and len(page.runs) == 200
    assert page.runs[0].name == "run-9999"
    start = time.process_time()
    for _ in range(100):
        assert poller.tick() is None
    assert (time.process_time() - start) / 100 < 0.005
    store.create_flow_run(run_id="f" * 32, flow_name="x", name="new", parameters="{}")
    page = poller.tick()
    assert page is not None and page.runs[0].name == "new"
    poller.close()
    store.close()
