"""`orch tui` driven through `make_app()` against real stores, with Textual's pilot.

Flows run in this process (or, for retry, in the child process the executor starts); tests
wait for the screens' polling workers to show what the store holds, never for a fixed time.
"""

from __future__ import annotations

import asyncio
import functools
import io
import json
import pickle
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, OptionList, Select, Static

from orchlite.errors import RunNotFoundError
from orchlite.executor import RunRequest, run_target
from orchlite.states import StateName
from orchlite.store import Store, StoreError
from orchlite.tui.app import STOP_SECONDS, OrchApp, make_app
from orchlite.tui.detail_screen import RunDetailScreen
from orchlite.tui.help import HelpScreen
from orchlite.tui.keyed_table import KeyedTable
from orchlite.tui.logs_screen import LogsScreen
from orchlite.tui.poller import Poller
from orchlite.tui.reader import (
    FLOW_ONLY,
    MAX_SHOWN,
    RunsFollower,
    RunsQuery,
    load_runs,
    run_key,
)
from orchlite.tui.resume_form import ResumeScreen
from orchlite.tui.runs_screen import KEYS, RunsScreen
from orchlite.tui.task_screen import TaskRunScreen
from orchlite.tui.trends import TrendsStrip, sparkline

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


def runs_table(app: OrchApp) -> KeyedTable:
    return app.screen.query_one("#runs", KeyedTable)


def cell(app: OrchApp, run_id: str, column: str) -> str:
    """What the runs table shows of a run in a column (by its key), as plain text."""
    return str(runs_table(app).get_row(run_id)[KEYS.index(column)]).strip()


def flows_shown(app: OrchApp) -> list[str]:
    table = runs_table(app)
    return [str(table.get_row_at(i)[KEYS.index("flow")]) for i in range(table.row_count)]


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
        hint = text_of(empty)
        assert "orch run FILE.py:FLOW" in hint and "orch flows" in hint
        assert "examples/" not in hint  # a user's project has no examples folder
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
        keys = table.row_keys
        assert keys.index(second) < keys.index(first)
        assert cell(app, first, "state") == "FAILED"
        assert cell(app, first, "flow") == "hello"
        assert "1 failed" in cell(app, first, "tasks") and "1 ok" in cell(app, first, "tasks")
        assert cell(app, second, "state") == "COMPLETED"


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
        # The child subflow at its call position, then the task runs.
        assert [n.partition("-")[0] for n in names] == ["subflow child", "greet", "check"]
        assert "ValueError: told to fail" in str(tasks.get_row_at(2)[6])
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

        await pilot.press("f", "ctrl+a", "ctrl+k", *"ELL", "enter")  # part of it, any case
        await wait_for(pilot, lambda: flows_shown(app) == ["hello", "hello"], "part of a name")

        await pilot.press("escape")  # clears every filter
        await wait_for(pilot, lambda: len(flows_shown(app)) == 4, "filters cleared")

        await pilot.press("s", *"failed", "enter")
        await wait_for(pilot, lambda: flows_shown(app) == ["hello"], "state filter")
        assert cell(app, failed, "run") == screen.runs[failed].name

        await pilot.press("s", "ctrl+a", "ctrl+k", "enter")
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
        assert cell(app, run_id, "state") == "RUNNING"
        assert cell(app, run_id, "duration") == "5.0s"
        clock[0] = 1_012.0
        await wait_for(pilot, lambda: cell(app, run_id, "duration") == "12.0s", "the duration tick")
        store.set_flow_run_state(run_id, StateName.COMPLETED, now=1_013.0)
        await wait_for(
            pilot,
            lambda: cell(app, run_id, "state") == "COMPLETED",
            "the new state",
        )
        assert cell(app, run_id, "duration") == "13.0s"
    store.close()


def running_run(store: Store, *, pid: int | None, started: float | None = None) -> str:
    run_id = "ab" * 16
    store.create_flow_run(
        run_id=run_id, flow_name="slow", name="slow-run", parameters="{}", now=started
    )
    store.set_flow_run_state(
        run_id, StateName.RUNNING, pid=pid, host=socket.gethostname(), now=started
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
            lambda: cell(app, run_id, "state") == "CANCELLED",
            "the cancelled state",
        )
    assert store.get_flow_run(run_id).state == "CANCELLED"
    store.close()


def offered(app: OrchApp) -> set[str]:
    """The actions the footer offers now."""
    return {active.binding.action for active in app.active_bindings.values() if active.enabled}


@in_event_loop
async def test_a_finished_run_is_not_offered_for_cancelling(project: Path) -> None:
    done = run_flow()
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, RunsScreen)
        runs_table(app).move_cursor(row=runs_table(app).get_row_index(done))
        await wait_for(pilot, lambda: "cancel" not in offered(app), "c to go")
        await pilot.press("c")
        assert isinstance(app.screen, RunsScreen) and not app.outcomes
        app.confirm_cancel(done)  # as the command palette asks: answered at once
        assert isinstance(app.screen, RunsScreen)
        assert app.outcomes[-1].message == (
            f"run {done[:8]} already finished COMPLETED: nothing to cancel"
        )
        app.open_run(done)
        await loaded(pilot, RunDetailScreen)
        await wait_for(pilot, lambda: "cancel" not in offered(app), "c to go")
        assert "retry" in offered(app)


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
        app.open_run(old)  # the failed run links to the retry that fixed it, and back
        await loaded(pilot, RunDetailScreen)
        related = app.screen.query_one("#related", OptionList)
        shown = [str(related.get_option_at_index(i).prompt) for i in range(related.option_count)]
        retried = next(line for line in shown if line.startswith("retried by"))
        assert outcome.run_id[:8] in retried and "COMPLETED" in retried
        related.focus()
        related.highlighted = shown.index(retried)
        await pilot.press("enter")
        await wait_for(pilot, lambda: getattr(app.screen, "run_id", None) == outcome.run_id, "it")
        await loaded(pilot, RunDetailScreen)
        related = app.screen.query_one("#related", OptionList)
        retry_of = str(related.get_option_at_index(0).prompt)
        assert retry_of.startswith("retry of") and old[:8] in retry_of and "FAILED" in retry_of


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
                state=StateName.COMPLETED,
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


class CountingStore:
    """A store whose `flow_runs_page` calls are recorded (to see what a poll reads)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.pages: list[dict[str, object]] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    def flow_runs_page(self, **options: object) -> list[object]:
        self.pages.append(options)
        return self.store.flow_runs_page(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize("flow", [None, "FLOW1"])
def test_a_busy_store_updates_the_runs_page_from_what_moved_only(
    orch_home: Path, flow: str | None
) -> None:
    store = Store(orch_home)
    many_runs(store, 500, created=lambda i: 1e9 + i)
    query = RunsQuery(flow=flow)
    follower = RunsFollower(lambda: query)
    reader = CountingStore(Store(orch_home, read_only=True))
    assert follower(reader) is not None  # type: ignore[arg-type]
    assert follower(reader) is None  # type: ignore[arg-type]  # nothing moved
    for n in range(3):  # as a daemon firing every second records its runs
        run_id = f"{1000 + n:032x}"
        store.create_flow_run(
            run_id=run_id, flow_name="flow1", name=f"new-{n}", parameters="{}", now=2e9 + n
        )
        store.set_flow_run_state(run_id, StateName.RUNNING, pid=1, attempts=1)
        if n:  # the run before it ends, its task counted
            store.set_flow_run_state(f"{999 + n:032x}", StateName.COMPLETED)
        reader.pages.clear()
        page = follower(reader)  # type: ignore[arg-type]
        assert page is not None
        fresh = load_runs(reader.store, query)
        assert [r.id for r in page.runs] == [r.id for r in fresh.runs]
        assert page.runs == fresh.runs and page.more == fresh.more
        assert page.matching == fresh.matching
        assert {r.id: page.counts.get(r.id, {}) for r in page.runs} == {
            r.id: fresh.counts.get(r.id, {}) for r in fresh.runs
        }
        assert page.trends == fresh.trends
        assert all(options.get("limit", -1) <= 1 for options in reader.pages)  # no whole page
    reader.store.close()
    store.close()


# -- older runs, trends -----------------------------------------------------------------------


def many_runs(store: Store, count: int, *, created: Callable[[int], float], first: int = 0) -> None:
    with store.transaction():
        for i in range(first, first + count):
            store.create_flow_run(
                run_id=f"{i:032x}",
                flow_name=f"flow{i % 3}",
                name=f"run-{i}",
                parameters="{}",
                state=StateName.COMPLETED if i % 5 else StateName.FAILED,
                now=created(i),
            )


def test_keyset_pages_neither_skip_nor_repeat_runs_created_at_the_same_time(
    orch_home: Path,
) -> None:
    store = Store(orch_home)
    many_runs(store, 450, created=lambda i: 1e9 + i // 50)  # 50 runs share each timestamp
    reader = Store(orch_home, read_only=True)
    page = load_runs(reader, RunsQuery())
    assert len(page.runs) == 200 and page.more
    seen = [r.id for r in page.runs]
    while page.more:
        page = load_runs(reader, RunsQuery(anchor=run_key(page.runs[-1])))
        assert [r.id for r in page.runs[: len(seen)]] == seen  # the shown pages, read again
        seen = [r.id for r in page.runs]
    assert len(seen) == len(set(seen)) == 450
    keys = [(r.created, r.id) for r in page.runs]
    assert keys == sorted(keys, reverse=True)

    assert page.top is None

    many_runs(store, 1_300, created=lambda i: 2e9 + i, first=450)  # newer ones
    query, shown = RunsQuery(), 0
    page = load_runs(reader, query)
    while page.more:  # what the screen does on `m`: page down, keep the window bounded
        query = replace(query, anchor=run_key(page.runs[-1]), top=page.top)
        page = load_runs(reader, query)
        assert len(page.runs) <= MAX_SHOWN
        shown += 1
    assert shown == 8 and page.runs[-1].id == f"{0:032x}" and page.top is not None
    assert load_runs(reader, replace(query, top=page.top)).runs == page.runs  # stable

    flow1 = load_runs(reader, RunsQuery(flow="flow1", states=("FAILED",), text="RUN-1"))
    names = [r.name for r in flow1.runs]
    assert names and all(n.startswith("run-1") for n in names)
    assert all(r.flow_name == "flow1" and r.state == "FAILED" for r in flow1.runs)
    assert load_runs(reader, RunsQuery(text="%")).runs == []  # LIKE wildcards are literal
    reader.close()
    store.close()


@in_event_loop
async def test_older_runs_load_a_page_at_a_time_and_new_runs_still_appear(
    orch_home: Path,
) -> None:
    store = Store(orch_home)
    many_runs(store, 450, created=lambda i: 1e9 + i)
    app = make_app(orch_home, clock=lambda: 1e9 + 500)
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot, RunsScreen)
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        assert len(screen.runs) == 200 and "m loads older" in screen.sub_title
        await pilot.press("m")
        await wait_for(
            pilot,
            lambda: len(screen.runs) == 400 and runs_table(app).row_count == 400,
            "the second page, in the table",
        )
        assert runs_table(app).cursor_row == 0  # the cursor stays where it was
        await pilot.press("ctrl+end")  # reaching the last row loads the rest
        await wait_for(pilot, lambda: len(screen.runs) == 450, "the last page")
        assert list(screen.runs)[-1] == f"{0:032x}" and "m loads" not in screen.sub_title
        store.create_flow_run(run_id="f" * 32, flow_name="new", name="newest", parameters="{}")
        await wait_for(pilot, lambda: len(screen.runs) == 451, "the new run")
        assert next(iter(screen.runs)) == "f" * 32
        assert runs_table(app).row_count == 451
        await pilot.press("escape")  # back to the newest page
        await wait_for(pilot, lambda: len(screen.runs) == 200, "the newest page")
        assert screen.query_filter == RunsQuery()
    store.close()


@in_event_loop
async def test_trends_show_each_flows_last_outcomes_and_durations(orch_home: Path) -> None:
    store = Store(orch_home)
    for i, (flow, outcome) in enumerate(
        [("etl", StateName.COMPLETED)] * 3
        + [("etl", StateName.FAILED), ("report", StateName.COMPLETED)]
    ):
        run_id = f"{i + 1:032x}"
        store.create_flow_run(
            run_id=run_id, flow_name=flow, name=f"r{i}", parameters="{}", now=1000.0 + 10 * i
        )
        store.set_flow_run_state(run_id, StateName.RUNNING, now=1000.0 + 10 * i)
        store.set_flow_run_state(run_id, outcome, now=1000.0 + 10 * i + i + 1)
    app = make_app(orch_home, clock=lambda: 2000.0)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, RunsScreen)
        lines = [line.plain for line in app.screen.query_one("#trends", TrendsStrip).lines]
        assert lines[0].split() == ["report", "■", "█", "1/1", "ok", "last", "5.0s"]
        assert lines[1].split() == ["etl", "■■■■", "▂▄▆█", "3/4", "ok", "last", "4.0s"]
        await pilot.press("t")
        assert not app.screen.query_one("#trends").display
    store.close()


def test_sparkline_scales_to_the_longest_and_leaves_unstarted_runs_blank() -> None:
    assert sparkline([1.0, 2.0, None, 8.0]) == "▁▂ █"
    assert sparkline([0.0, 0.0]) == "▁▁"


# -- results, logs filters, read-only ---------------------------------------------------------


def stored_task(store: Store, run_id: str, *, data: bytes | None = None, ref: str | None = None):
    """A COMPLETED flow run with one task run whose result is `data` inline or blob `ref`."""
    from orchlite.store import TaskRun

    store.create_flow_run(run_id=run_id, flow_name="f", name="r", parameters="{}")
    store.save_task_run(
        TaskRun(
            flow_run_id=run_id,
            position=0,
            id="9" * 32,
            standalone=0,
            task_key="t@f.py",
            name="make-0",
            dynamic_key="0",
            state="COMPLETED",
            state_message=None,
            attempts=1,
            inputs_hash=None,
            cache_key=None,
            result_ref=ref,
            result_serializer="cloudpickle",
            error_type=None,
            error_message=None,
            traceback=None,
            created=1.0,
            started=1.0,
            ended=2.0,
            result_data=data,
        )
    )


class BadRepr:
    def __repr__(self) -> str:
        raise KeyError("x")


class TouchOnLoad:
    """Unpickling this creates a file: proof that something was unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, ...]:
        return (Path.touch, (self.path,))


def test_a_result_preview_never_unpickles_and_reads_only_whole_small_blobs(
    orch_home: Path, tmp_path: Path
) -> None:
    """Rows stored without a preview text (before schema 7) are described from their bytes."""
    from orchlite.blobs import BlobStore
    from orchlite.store import StoredResult
    from orchlite.tui.preview import load_preview, preview

    store = Store(orch_home)
    blobs = BlobStore(orch_home / "blobs")
    digest = blobs.put(pickle.dumps("fine"))
    stored_task(store, "a" * 32, ref=digest)
    assert load_preview(orch_home, "a" * 32, 0).task == "'fine'"

    marker = tmp_path / "unpickled"
    blobs.path(digest).write_bytes(pickle.dumps(TouchOnLoad(marker)))
    shown = load_preview(orch_home, "a" * 32, 0)
    assert shown.task is not None and shown.task.startswith("cannot preview: blob ")
    assert "is corrupt" in shown.task
    assert blobs.path(digest).exists()  # a view moves nothing
    assert shown.run == "not finished yet"

    trap = StoredResult("cloudpickle", data=pickle.dumps(TouchOnLoad(marker)))
    assert preview(trap, blobs).startswith("<cloudpickle, ")
    assert not marker.exists()
    broken = StoredResult("cloudpickle", data=pickle.dumps(BadRepr()))
    assert preview(broken, blobs).endswith("test_tui.BadRepr>")  # its __repr__ never runs
    long = preview(StoredResult("cloudpickle", data=pickle.dumps("y" * 5_000)), blobs)
    assert len(long) == 300 and long.endswith("…")
    stored_text = StoredResult("cloudpickle", data=pickle.dumps(TouchOnLoad(marker)), preview="x")
    assert preview(stored_text, blobs) == "x"
    assert not marker.exists()

    big = blobs.put(pickle.dumps(b"x" * 100_000))
    stored_task(store, "b" * 32, ref=big)
    assert load_preview(orch_home, "b" * 32, 0).task == "<cloudpickle, 100,009 bytes>"
    store.close()


def someone_elses_dir(tmp_path: Path) -> Path:
    """A folder another user owns: one made here and given to `nobody` when running as root,
    else `/`, which root owns."""
    import os

    if os.geteuid() != 0:
        return Path("/")
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, 65534, 65534)
    return theirs


def test_results_are_never_loaded_from_a_store_someone_else_owns(
    orch_home: Path, tmp_path: Path
) -> None:
    from orchlite.results import check_owned
    from orchlite.tui.preview import load_results

    marker = tmp_path / "unpickled"
    store = Store(orch_home)
    stored_task(store, "e" * 32, data=pickle.dumps(TouchOnLoad(marker)))
    store.close()
    blobs = orch_home / "blobs"
    assert not blobs.exists()
    blobs.symlink_to(someone_elses_dir(tmp_path), target_is_directory=True)

    shown = load_results(orch_home, "e" * 32, 0)
    assert shown.loaded and shown.task is None
    assert shown.run.startswith(f"not loaded: {blobs} belongs to uid ")
    assert "results in a store someone else owns are never loaded" in shown.run
    with pytest.raises(StoreError, match="not to you"):
        check_owned(orch_home)
    assert not marker.exists()

    blobs.unlink()  # the store is the user's own again: loading is theirs to choose
    check_owned(orch_home)
    assert load_results(orch_home, "e" * 32, 0).task == "None"  # what Path.touch returns
    assert marker.exists()


@in_event_loop
async def test_the_detail_screen_shows_previews_and_loads_results_only_when_asked(
    project: Path, orch_home: Path
) -> None:
    from orchlite.tui.confirm import ConfirmScreen

    run_id = failed_hello(project)
    store = Store(orch_home)
    marker = project / "unpickled"
    trap = pickle.dumps(TouchOnLoad(marker))
    stored_task(store, "c" * 32, data=trap)
    # A pickle of a class whose module is gone: loading it fails.
    stored_task(store, "d" * 32, data=b"\x80\x04cno_such_module_xyz\nThing\n)\x81.")
    app = make_app()
    async with app.run_test(size=(100, 40)) as pilot:
        await loaded(pilot, RunsScreen)
        app.open_run(run_id)
        await loaded(pilot, RunDetailScreen)
        detail = app.screen
        assert isinstance(detail, RunDetailScreen)
        result = detail.query_one("#result", Static)
        detail.query_one("#tasks", DataTable).move_cursor(row=1)  # below the subflow
        await wait_for(pilot, lambda: "'Hello, world!'" in text_of(result), "greet's result")
        assert "flow run  none stored" in text_of(result)  # it failed
        detail.query_one("#tasks", DataTable).move_cursor(row=2)
        await wait_for(pilot, lambda: "check-0" in text_of(result), "check's preview")
        assert "check-0           none stored" in text_of(result)

        app.open_run("c" * 32)  # opening a run with a booby-trapped result
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, RunDetailScreen) and app.screen.preview is not None,
            "the trap's preview",
        )
        detail = app.screen
        assert isinstance(detail, RunDetailScreen)
        line = text_of(detail.query_one("#result", Static))
        assert "make-0            <cloudpickle, " in line and " B, pathlib.Path.touch>" in line
        await pilot.press("u")  # asks first, naming the run; "no" loads nothing
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        question = text_of(app.screen.query_one("#confirm-question", Static))
        assert f"run {'c' * 8} (f / r)" in question and "'make-0'" in question
        assert "unpickles" in question
        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen is detail, "the detail screen again")
        await pilot.pause(0.2)
        assert not marker.exists()
        assert detail.preview is not None and not detail.preview.loaded

        await pilot.press("u")  # "yes": the user chose to run what the result holds
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        await pilot.press("y")
        await wait_for(pilot, lambda: detail.preview and detail.preview.loaded, "the load")
        assert marker.exists()

        app.open_run("d" * 32)
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, RunDetailScreen) and app.screen.preview is not None,
            "the preview of a result whose class is gone",
        )
        await pilot.press("u", "y")
        await wait_for(
            pilot,
            lambda: app.screen.preview is not None and app.screen.preview.loaded,
            "the failed load",
        )
        line = text_of(app.screen.query_one("#result", Static))
        assert "make-0            cannot load: cannot deserialize a cloudpickle result" in line
        assert "ModuleNotFoundError" in line
        assert app.is_running and not app.outcomes
    store.close()


@in_event_loop
async def test_keys_pick_task_runs_and_related_runs_as_soon_as_a_run_opens(project: Path) -> None:
    run_id = failed_hello(project)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, RunsScreen)
        runs_table(app).move_cursor(row=runs_table(app).get_row_index(run_id))
        await pilot.press("enter")
        await loaded(pilot, RunDetailScreen)
        detail = app.screen
        assert isinstance(detail, RunDetailScreen)
        tasks = detail.query_one("#tasks", DataTable)
        assert app.focused is tasks
        await pilot.press("down")
        assert tasks.cursor_row == 1
        await pilot.press("enter")  # the first task run (below the subflow)
        await loaded(pilot, TaskRunScreen)
        assert app.screen.position == detail.detail.tasks[0].position
        await pilot.press("l")  # its lines
        await loaded(pilot, LogsScreen)
        assert app.screen.follower.filter.task == detail.detail.tasks[0].id
        await pilot.press("escape", "escape")
        assert app.screen is detail
        await pilot.press("tab")
        assert app.focused is detail.query_one("#related", OptionList)
        await pilot.press("enter")  # the child subflow run
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, RunDetailScreen) and app.screen.run_id != run_id,
            "the related run",
        )
        assert app.screen.run_id == detail.detail.children[0].id


@in_event_loop
async def test_scrolled_back_logs_stay_put_until_end_follows_again(orch_home: Path) -> None:
    store = Store(orch_home)
    run_id = running_run(store, pid=None, started=1_000.0)

    def log_lines(first: int, count: int) -> None:
        rows = [(run_id, None, None, 1_001.0 + i, 20, "etl", f"line {i}") for i in range(count)]
        store.write_logs(rows[first:])

    log_lines(0, 100)
    app = make_app(orch_home)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, RunsScreen)
        app.open_logs(run_id)
        await loaded(pilot, LogsScreen)
        screen = app.screen
        log = screen.query_one("#log")
        await wait_for(pilot, lambda: len(screen.records) == 100, "the first lines")
        await wait_for(pilot, lambda: log.max_scroll_y > 0 and log.is_vertical_scroll_end, "end")
        await pilot.press("home")
        assert log.scroll_y == 0
        log_lines(100, 120)
        await wait_for(pilot, lambda: len(screen.records) == 120, "more lines")
        await pilot.pause()
        assert log.scroll_y == 0  # still where the user scrolled to
        await pilot.press("end")
        log_lines(120, 140)
        await wait_for(pilot, lambda: len(screen.records) == 140, "yet more lines")
        await wait_for(pilot, lambda: log.scroll_y == log.max_scroll_y, "following again")
        assert "line 139" in str(log.lines[-1].text)
    store.close()


@in_event_loop
async def test_logs_filter_by_task_flow_only_and_text_and_jump_from_a_task(
    project: Path,
) -> None:
    run_id = failed_hello(project)
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot, RunsScreen)
        app.open_run(run_id)
        await loaded(pilot, RunDetailScreen)
        detail = app.screen
        assert isinstance(detail, RunDetailScreen)
        tasks = detail.query_one("#tasks", DataTable)
        tasks.focus()
        tasks.move_cursor(row=1)  # greet, below the subflow
        await pilot.press("enter")
        await loaded(pilot, TaskRunScreen)
        task_screen = app.screen
        await pilot.press("l")
        await loaded(pilot, LogsScreen)
        logs = app.screen
        assert isinstance(logs, LogsScreen)
        greet = detail.detail.tasks[0]
        await wait_for(pilot, lambda: logs.records, "greet's lines")
        assert {r.task_run_id for r in logs.records} == {greet.id}
        assert "about to greet world" in [r.message for r in logs.records]
        assert "task greet-0" in logs.sub_title
        select = logs.query_one("#log-task", Select)
        await wait_for(pilot, lambda: select.value == greet.id, "the task filter shown")

        select.value = FLOW_ONLY
        await wait_for(
            pilot,
            lambda: logs.records and all(r.task_run_id is None for r in logs.records),
            "the flow run's own lines",
        )
        assert "hello flow starting" in [r.message for r in logs.records]

        select.clear()
        await pilot.press("slash", *"GREET W")
        await wait_for(
            pilot,
            lambda: [r.message for r in logs.records] == ["about to greet world"],
            "the text search",
        )
        await pilot.press("enter", "escape")  # back to the lines, then back to the task run
        assert app.screen is task_screen
        await pilot.press("escape")
        assert app.screen is detail


@in_event_loop
async def test_views_read_through_a_read_only_store_and_never_block_a_writer(
    project: Path, orch_home: Path
) -> None:
    from orchlite.tui.schedules_screen import SchedulesScreen

    run_id = failed_hello(project)
    writer = textwrap.dedent(
        """
        import sys
        from pathlib import Path

        import orchlite.store as store_module
        from orchlite.states import StateName

        store_module.BUSY_TIMEOUT_MS = 0  # a lock held by anyone else fails this at once
        store = store_module.Store(Path(sys.argv[1]))
        for i in range(300):
            store.create_flow_run(
                run_id=f"{i:032x}", flow_name="w", name=f"w-{i}", parameters="{}",
                state=StateName.COMPLETED,
            )
        print("wrote 300")
        """
    )
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, RunsScreen)
        runs_screen = app.screen
        app.open_run(run_id)
        await loaded(pilot, RunDetailScreen)
        app.open_logs(run_id)
        await loaded(pilot, LogsScreen)
        await pilot.press("S")  # and the schedules screen on top, reading as it refreshes
        await loaded(pilot, SchedulesScreen)
        assert isinstance(runs_screen, RunsScreen)
        poller = Poller(orch_home, lambda s: load_runs(s, RunsQuery()))
        assert poller.tick() is not None and poller.store is not None
        assert poller.store.read_only
        with pytest.raises(StoreError, match="open read-only"):
            poller.store.request_cancel(run_id)

        loads = runs_screen.loads
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", writer, str(orch_home)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "wrote 300"
        await wait_for(pilot, lambda: len(runs_screen.runs) == 200, "the written runs")
        assert runs_screen.loads > loads
        poller.close()
    assert Store(orch_home).get_flow_run(run_id).state == "FAILED"  # nothing else changed


# -- schedules -------------------------------------------------------------------------------

SCHEDULED_TOML = textwrap.dedent(
    """
    [[schedule]]
    target = "flows.py:hello"
    interval = "1h"

    [[schedule]]
    target = "flows.py:missing"
    interval = 60

    [[trigger]]
    target = "flows.py:child"
    after = "hello"
    states = ["FAILED"]
    """
)
FROZEN = 1_800_000_000.0  # 2027-01-15 08:00 UTC


@in_event_loop
async def test_schedules_screen_shows_next_fires_last_runs_the_daemon_and_errors(
    project: Path, orch_home: Path
) -> None:
    from filelock import FileLock

    from orchlite.daemon import LOCK_FILE, PID_FILE
    from orchlite.project import load_schedules
    from orchlite.tui.schedules_screen import SchedulesScreen

    (project / "orch.toml").write_text(SCHEDULED_TOML)
    (entry,) = load_schedules(project)[0]
    store = Store(orch_home)
    store.claim_slot(
        run_id="cd" * 16,
        key=entry.key,
        slot=FROZEN - 3600,
        flow_name="hello",
        name="hello-slot",
        target=entry.target,
        parameters="{}",
        now=FROZEN - 3600,
    )
    app = make_app(orch_home, clock=lambda: FROZEN)
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot, RunsScreen)
        await pilot.press("S")
        await loaded(pilot, SchedulesScreen)
        screen = app.screen
        assert isinstance(screen, SchedulesScreen)
        table = screen.query_one("#schedules", DataTable)
        assert table.row_count == 1
        row = table.get_row_at(0)
        assert row[0] == "flows.py:hello"
        assert row[2].startswith("2027-01-15 09:00") and row[3] == "10:00"
        assert "SCHEDULED" in str(row[4]) and "cdcdcdcd" in str(row[4])
        triggers = screen.query_one("#triggers", DataTable)
        assert triggers.row_count == 1 and triggers.get_row_at(0)[0] == "flows.py:child"
        assert "no flow 'missing'" in text_of(screen.query_one("#errors", Static))
        assert "not running" in text_of(screen.query_one("#daemon", Static))

        # A daemon starts: it holds the lock and writes its pid file.
        lock = FileLock(str(orch_home / LOCK_FILE))
        lock.acquire()
        try:
            started = time.time() - 125
            (orch_home / PID_FILE).write_text(f'{{"pid": 4242, "started": {started}}}')
            await wait_for(
                pilot,
                lambda: "pid 4242" in text_of(screen.query_one("#daemon", Static)),
                "the daemon's status",
            )
            line = text_of(screen.query_one("#daemon", Static))
            assert "running" in line and "up 2m 0" in line and "1 run in flight" in line
        finally:
            lock.release()

        # Editing orch.toml shows up without leaving the screen.
        (project / "orch.toml").write_text(
            SCHEDULED_TOML + '\n[[schedule]]\ntarget = "flows.py:child"\ncron = "0 3 * * *"\n'
        )
        await wait_for(pilot, lambda: table.row_count == 2, "the new schedule")

        table.focus()
        targets = [str(table.get_row_at(i)[0]) for i in range(2)]
        table.move_cursor(row=targets.index("flows.py:hello"))
        await pilot.press("enter")  # opens the last run
        await loaded(pilot, RunDetailScreen)
        assert app.screen.run_id == "cd" * 16
    store.close()


@in_event_loop
async def test_schedules_screen_survives_a_broken_orch_toml(project: Path) -> None:
    from orchlite.tui.schedules_screen import SchedulesScreen

    (project / "orch.toml").write_text("[[schedule]\nthis is not toml")
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        app.action_schedules()
        await loaded(pilot, SchedulesScreen)
        screen = app.screen
        assert screen.query_one("#errors").display
        assert "orch.toml" in text_of(screen.query_one("#errors", Static))
        assert screen.query_one("#no-schedules").display


# -- run a flow now --------------------------------------------------------------------------


@in_event_loop
async def test_run_a_flow_now_with_parameters_checked_like_orch_run(project: Path) -> None:
    from textual.widgets import Input

    from orchlite.tui.confirm import ConfirmScreen
    from orchlite.tui.run_now import FlowPickerScreen, ParamsScreen

    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot, RunsScreen)
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, FlowPickerScreen), "the picker")
        picker = app.screen
        assert [f.name for f in picker.flows] == ["child", "hello"]
        await pilot.press("enter")  # the first flow: child(n: int = 1)
        await wait_for(pilot, lambda: isinstance(app.screen, ParamsScreen), "the form")
        form = app.screen
        box = form.query_one("#param-n", Input)
        assert box.value == "1"  # prefilled with the default
        box.value = "many"
        await pilot.press("enter")
        await wait_for(pilot, lambda: form.checks == 1, "the check")
        error = text_of(form.query_one("#params-error", Static))
        assert "'n'" in error and "int" in error  # the same message as `orch run -p n=many`
        box.value = "7"
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        assert "flows.py:child" in app.screen.question and "n='7'" in app.screen.question
        await pilot.press("y")
        await wait_for(pilot, lambda: app.outcomes, "the run's outcome")
        outcome = app.outcomes[-1]
        assert outcome.ok, outcome.message
        assert outcome.message.endswith("(flows.py:child) COMPLETED")
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        await wait_for(pilot, lambda: outcome.run_id in screen.runs, "the new run")
        run = screen.runs[outcome.run_id]
        assert run.trigger == "manual" and json.loads(run.parameters or "{}") == {"n": 7}


@in_event_loop
async def test_run_now_leaves_defaults_out_and_escape_closes(project: Path) -> None:
    from orchlite.tui.confirm import ConfirmScreen
    from orchlite.tui.run_now import FlowPickerScreen, ParamsScreen

    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot, RunsScreen)
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, FlowPickerScreen), "the picker")
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ParamsScreen), "the form")
        assert app.screen.values() == {}
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        assert "(defaults)" in app.screen.question
        await pilot.press("n")
        assert isinstance(app.screen, RunsScreen)
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, FlowPickerScreen), "the picker")
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)
    assert not app.outcomes


SLOW_FLOW = textwrap.dedent(
    """
    import time
    from pathlib import Path

    from orchlite import flow


    @flow
    def until_go() -> str:
        while not (Path(__file__).parent / "go").exists():
            time.sleep(0.05)
        return "went"
    """
)


def state_of(home: Path, run_id: str) -> str | None:
    """The run's state; None while neither the store nor the run is recorded yet."""
    try:
        with Store(home, read_only=True) as store:
            return store.get_flow_run(run_id).state
    except (StoreError, RunNotFoundError):
        return None


async def start_until_go(pilot: Pilot[None]) -> str:
    """Start the `until_go` flow through run now; its run id."""
    from orchlite.tui.confirm import ConfirmScreen
    from orchlite.tui.run_now import FlowPickerScreen, ParamsScreen

    app = pilot.app
    await pilot.press("n")
    await wait_for(pilot, lambda: isinstance(app.screen, FlowPickerScreen), "the picker")
    picker = app.screen
    await pilot.press(*["down"] * [f.name for f in picker.flows].index("until-go"), "enter")
    await wait_for(pilot, lambda: isinstance(app.screen, ParamsScreen), "the form")
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
    await pilot.press("y")
    return next(iter(app.supervising))  # type: ignore[attr-defined]


@in_event_loop
async def test_quitting_asks_first_while_a_run_started_here_is_running(project: Path) -> None:
    from orchlite.tui.confirm import ConfirmScreen

    (project / "slow.py").write_text(SLOW_FLOW)
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot, RunsScreen)
        started = await start_until_go(pilot)
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the quit question")
        assert started[:8] in app.screen.question and "CANCELLED" in app.screen.question
        await pilot.press("n")
        assert app.is_running and isinstance(app.screen, RunsScreen)
        (project / "go").touch()
        await wait_for(pilot, lambda: app.outcomes and not app.supervising, "the run's end")
        assert app.outcomes[-1].ok and app.outcomes[-1].run_id == started
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, "the app to quit without asking")


@in_event_loop
async def test_quitting_cancels_the_runs_started_here_and_closes_at_once(project: Path) -> None:
    (project / "slow.py").write_text(SLOW_FLOW)
    app = make_app()
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await loaded(pilot, RunsScreen)
            started = await start_until_go(pilot)
            await wait_for(pilot, lambda: state_of(app.home, started) == "RUNNING", "the run")
            await pilot.press("q", "y")
            asked = time.monotonic()
            await wait_for(pilot, lambda: not app.is_running, "the app to quit")
            assert time.monotonic() - asked < STOP_SECONDS
        assert state_of(app.home, started) == "CANCELLED"
    finally:
        (project / "go").touch()  # whatever happened, the flow ends


# -- command palette, themes, errors, strong confirmations ------------------------------------


@in_event_loop
async def test_every_action_is_in_the_command_palette(project: Path) -> None:
    from textual.command import CommandList

    from orchlite.tui.commands import COMMANDS
    from orchlite.tui.schedules_screen import SchedulesScreen

    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await loaded(pilot, RunsScreen)
        for _name, _help, action in COMMANDS:
            assert callable(getattr(app, f"action_{action}"))
        system = [c.title for c in app.get_system_commands(app.screen)]
        # Textual's theme picker: light and dark themes ("Change theme" before Textual 7)
        assert any("theme" in title.lower() for title in system)
        await pilot.press("ctrl+p")
        await pilot.press(*"schedules")
        await wait_for(
            pilot,
            lambda: (
                app.screen.query(CommandList) and app.screen.query_one(CommandList).option_count
            ),
            "the palette's hits",
        )
        await pilot.press("enter")
        await loaded(pilot, SchedulesScreen)
        app.theme = "textual-light"
        await pilot.pause()
        assert app.current_theme.dark is False


@in_event_loop
async def test_a_failing_worker_shows_an_error_modal(
    orch_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchlite import operations
    from orchlite.tui.error_screen import ErrorScreen

    store = Store(orch_home)
    running_run(store, pid=None, started=1_000.0)

    def broken(home: Path, run_id: str) -> operations.Outcome:
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(operations, "cancel", broken)
    app = make_app(orch_home)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, RunsScreen)
        await pilot.press("c", "y")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorScreen), "the error modal")
        assert app.screen.message == "RuntimeError: the disk is on fire"
        await pilot.press("escape")
        assert isinstance(app.screen, RunsScreen)
        assert app.is_running
    store.close()


@in_event_loop
async def test_retrying_a_completed_run_needs_the_word_typed(project: Path) -> None:
    from textual.widgets import Button

    from orchlite.tui.confirm import ConfirmScreen

    done = run_flow()
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, RunsScreen)
        app.confirm_retry(done)
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        confirm = app.screen
        await wait_for(
            pilot, lambda: getattr(app.focused, "id", None) == "confirm-typed", "the word box"
        )
        assert confirm.typed == "retry" and "COMPLETED" in confirm.question
        assert confirm.query_one("#yes", Button).disabled
        await pilot.press("y", "enter")  # a letter, not an answer
        assert app.screen is confirm and not app.outcomes
        await pilot.press("ctrl+a", "ctrl+k", *"retry")
        assert not confirm.query_one("#yes", Button).disabled
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.outcomes, "the retry outcome")
        assert app.outcomes[-1].ok, app.outcomes[-1].message
        assert app.outcomes[-1].message.endswith("(retry) COMPLETED")


@in_event_loop
async def test_the_detail_screen_renders_a_runs_artifacts(project: Path) -> None:
    (project / "reports.py").write_text(
        textwrap.dedent(
            """
            from orchlite import flow, task
            from orchlite.artifacts import (
                create_link_artifact,
                create_markdown_artifact,
                create_progress_artifact,
                create_table_artifact,
                update_progress_artifact,
            )


            @task
            def count_rows() -> None:
                create_table_artifact(
                    [{"region": "eu", "rows": 120}, {"region": "us", "rows": 80}],
                    key="rows-per-region",
                    description="after the load",
                )


            @flow
            def report() -> None:
                bar = create_progress_artifact(10, key="load-progress")
                count_rows()
                update_progress_artifact(bar, 100)
                create_markdown_artifact("# Daily sales\\n\\nAll *regions* loaded.")
                create_link_artifact("https://example.com/dash", "the dashboard")
            """
        )
    )
    run_id = run_flow("reports.py:report")
    hello = run_flow()
    app = make_app()
    async with app.run_test(size=(100, 60)) as pilot:
        await loaded(pilot, RunsScreen)
        app.open_run(run_id)
        await loaded(pilot, RunDetailScreen)
        shown = text_of(app.screen.query_one("#artifacts", Static))
        assert "rows-per-region  table  from count_rows-0  after the load" in shown
        assert "region" in shown and "eu" in shown and "120" in shown
        assert "load-progress  progress" in shown and "100%" in shown
        assert "Daily sales" in shown and "# Daily" not in shown  # rendered, not raw
        assert "the dashboard" in shown
        app.open_run(hello)
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, RunDetailScreen) and app.screen.run_id == hello,
            "the other run",
        )
        await loaded(pilot, RunDetailScreen)
        assert not app.screen.query_one("#artifacts").display


@in_event_loop
async def test_a_paused_run_is_resumed_from_its_detail_screen(
    project: Path, orch_home: Path
) -> None:
    (project / "approve.py").write_text(
        textwrap.dedent(
            """
            from orchlite import flow, pause_flow_run
            from orchlite.input import RunInput


            class Approval(RunInput):
                approved: bool
                reviewer: str = "nobody"


            @flow
            def release() -> str:
                answer = pause_flow_run(wait_for_input=Approval, timeout=60)
                return f"{answer.approved} {answer.reviewer}"
            """
        )
    )
    runner = subprocess.Popen(
        [sys.executable, "-m", "orchlite.cli", "run", "approve.py:release"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        store = Store(orch_home)
        deadline = time.monotonic() + 30
        while not store.list_flow_runs(state="PAUSED"):
            assert time.monotonic() < deadline, "the run never paused"
            time.sleep(0.05)
        run_id = store.list_flow_runs()[0].id
        app = make_app()
        async with app.run_test(size=(100, 40)) as pilot:
            await loaded(pilot, RunsScreen)
            app.open_run(run_id)
            await loaded(pilot, RunDetailScreen)
            await pilot.press("p")
            await wait_for(pilot, lambda: isinstance(app.screen, ResumeScreen), "the form")
            form = app.screen
            assert [f.name for f in form.fields] == ["approved", "reviewer"]
            form.query_one("#field-approved", Input).value = "true"
            await pilot.click("#resume")
            await wait_for(
                pilot, lambda: store.get_flow_run(run_id).state == "COMPLETED", "the run to end"
            )
        assert runner.wait(30) == 0
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()


# -- snapshots (pytest-textual-snapshot; `pytest --snapshot-update` redraws them) ---------------

SNAP_NOW = 1_800_000_000.0
SNAP_RESULTS = {"extract": [{"id": 1, "amount": 12.5}, {"id": 2, "amount": 7.25}], "load": 2}


def fixed_store(home: Path) -> str:
    """Three runs with fixed ids, names and times; returns the failed run's id."""
    from orchlite.store import TaskRun

    store = Store(home)
    outcomes = (StateName.COMPLETED, StateName.FAILED, StateName.RUNNING)
    for i, outcome in enumerate(outcomes):
        run_id = f"{i + 1:x}" * 32
        created = SNAP_NOW - 600 + i * 120
        store.create_flow_run(
            run_id=run_id,
            flow_name="etl",
            name=f"etl-{i + 1}",
            parameters='{"day": "2027-01-15"}',
            target="pipelines/etl.py:etl",
            now=created,
        )
        store.set_flow_run_state(
            run_id, StateName.RUNNING, pid=4242, host="host", attempts=1, now=created + 1
        )
        for position, name in enumerate(("extract", "load")):
            failed = outcome is StateName.FAILED and name == "load"
            state = StateName.FAILED if failed else StateName.COMPLETED
            store.save_task_run(
                TaskRun(
                    flow_run_id=run_id,
                    position=position,
                    id=f"{position + 10:x}" * 16,
                    standalone=0,
                    task_key=f"{name}@pipelines/etl.py",
                    name=f"{name}-0",
                    dynamic_key="0",
                    state=state.value,
                    state_message=None,
                    attempts=1,
                    inputs_hash=None,
                    cache_key=None,
                    result_ref=None,
                    result_serializer=None if failed else "cloudpickle",
                    result_data=None if failed else pickle.dumps(SNAP_RESULTS[name]),
                    error_type="ValueError" if failed else None,
                    error_message="bad row 7" if failed else None,
                    traceback="Traceback...\nValueError: bad row 7" if failed else None,
                    created=created + 2 + position,
                    started=created + 2 + position,
                    ended=created + 3 + position,
                )
            )
        if outcome is not StateName.RUNNING:
            store.set_flow_run_state(run_id, outcome, now=created + 5)
        tasks = store.task_runs(run_id)
        store.write_logs(
            [
                (run_id, None, None, created + 1.5, 20, "orchlite.flow_runs", "etl starting"),
                (run_id, tasks[0].id, "extract-0", created + 2.5, 20, "etl", "read 1,200 rows"),
                (run_id, tasks[1].id, "load-0", created + 3.2, 30, "etl", "row 7 has no id"),
            ]
        )
    store.close()
    return "2" * 32


@pytest.fixture
def snap_compare_utc(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., bool]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    request.addfinalizer(time.tzset)
    return request.getfixturevalue("snap_compare")  # type: ignore[no-any-return]


@pytest.mark.snapshot
def test_snapshot_runs_screen(orch_home: Path, snap_compare_utc: Callable[..., bool]) -> None:
    fixed_store(orch_home)

    async def loaded_runs(pilot: Pilot[None]) -> None:
        await loaded(pilot, RunsScreen)
        table = runs_table(pilot.app)
        # The table sizes its columns when idle, after the rows are in; lines it drew before
        # that stay cached until a cell changes, as the duration tick's do.
        await wait_for(pilot, lambda: table.columns["run"].content_width >= 5, "column widths")
        pilot.app.screen.tick()
        await pilot.pause()

    app = make_app(orch_home, clock=lambda: SNAP_NOW)
    assert snap_compare_utc(app, terminal_size=(100, 24), run_before=loaded_runs)


@pytest.mark.snapshot
def test_snapshot_detail_screen(orch_home: Path, snap_compare_utc: Callable[..., bool]) -> None:
    failed = fixed_store(orch_home)

    async def open_failed(pilot: Pilot[None]) -> None:
        await loaded(pilot, RunsScreen)
        pilot.app.open_run(failed)
        await loaded(pilot, RunDetailScreen)
        await wait_for(pilot, lambda: pilot.app.screen.preview, "the result preview")
        await pilot.pause()

    app = make_app(orch_home, clock=lambda: SNAP_NOW)
    assert snap_compare_utc(app, terminal_size=(100, 40), run_before=open_failed)


@pytest.mark.snapshot
def test_snapshot_logs_of_a_task(orch_home: Path, snap_compare_utc: Callable[..., bool]) -> None:
    failed = fixed_store(orch_home)

    async def open_logs(pilot: Pilot[None]) -> None:
        await loaded(pilot, RunsScreen)
        pilot.app.open_run(failed)
        await loaded(pilot, RunDetailScreen)
        tasks = pilot.app.screen.query_one("#tasks", DataTable)
        tasks.focus()
        tasks.move_cursor(row=1)
        await pilot.press("enter")  # the failed task run
        await loaded(pilot, TaskRunScreen)
        await pilot.press("l")  # its lines
        await loaded(pilot, LogsScreen)
        await wait_for(pilot, lambda: pilot.app.screen.records, "the task's lines")
        await pilot.pause()

    app = make_app(orch_home, clock=lambda: SNAP_NOW)
    assert snap_compare_utc(app, terminal_size=(100, 24), run_before=open_logs)
