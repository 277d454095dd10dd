"""`orch tui`: the run graph (`g` on a run) and a task run's detail (`enter` on a task run),
driven with Textual's pilot against real stores."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest
from test_tui import in_event_loop, loaded, run_flow, text_of, wait_for
from textual.widgets import DataTable, OptionList, Static

from orchlite.states import StateName
from orchlite.store import Store, TaskRunSave
from orchlite.tui.app import make_app
from orchlite.tui.detail_screen import RunDetailScreen
from orchlite.tui.graph_screen import RunGraphScreen
from orchlite.tui.logs_screen import LogsScreen
from orchlite.tui.runs_screen import RunsScreen
from orchlite.tui.task_screen import TaskRunScreen
from tests.helpers.store_rows import task_run

PIPELINE = textwrap.dedent(
    """
    from pathlib import Path

    from orchlite import flow, get_run_logger, task
    from orchlite.cache_policies import INPUTS

    TRIES = Path(__file__).parent / "tries"


    @task
    def extract() -> list[int]:
        return [1, 2, 3]


    @task(retries=1, retry_delay_seconds=0)
    def double(x: int) -> int:
        get_run_logger().info("doubling %s", x)
        if x == 2 and not TRIES.exists():
            TRIES.touch()
            raise ValueError("flaky two")
        return 2 * x


    @task(cache_policy=INPUTS)
    def total(xs: list[int]) -> int:
        return sum(xs)


    @flow
    def report(n: int = 1) -> int:
        return n


    @flow
    def pipeline() -> int:
        rows = extract.submit()
        doubled = double.map(rows.result(), wait_for=[rows])
        report(3)
        return total.submit(doubled).result()
    """
)


@pytest.fixture
def pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A run of `pipeline` (extract, a map of 3 doubles, one retried, a subflow, total)."""
    (tmp_path / "flows.py").write_text(PIPELINE)
    monkeypatch.chdir(tmp_path)
    return run_flow("flows.py:pipeline")


def option_ids(options: OptionList) -> list[str | None]:
    return [options.get_option_at_index(i).id for i in range(options.option_count)]


@in_event_loop
async def test_g_draws_the_graph_and_enter_opens_a_task_run_or_a_subflow(pipeline: str) -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, RunsScreen)
        app.open_run(pipeline)
        await loaded(pilot, RunDetailScreen)
        await pilot.press("g")
        await loaded(pilot, RunGraphScreen)
        screen = app.screen
        assert isinstance(screen, RunGraphScreen)
        graph = screen.query_one("#graph", OptionList)
        assert app.focused is graph
        assert option_ids(graph) == ["layer-0", "t0", "s4", "layer-1", "m1", "layer-2", "t5"]
        assert "✓ double ×3 (3 ✓)" in str(graph.get_option("m1").prompt)
        assert "← double ×3" in str(graph.get_option("t5").prompt)
        assert "3 task runs" not in text_of(screen.query_one("#graph-summary", Static))
        assert "5 task runs, 1 subflow: 4 nodes in 3 layers" in text_of(
            screen.query_one("#graph-summary", Static)
        )
        assert graph.highlighted == 1  # the first node, not its layer's heading
        await pilot.press("down", "down")  # past the subflow and the heading: the map
        assert screen.highlighted_node is not None and screen.highlighted_node.id == "m1"
        links = text_of(screen.query_one("#graph-links", Static))
        assert "← extract-0" in links and "→ total-0" in links

        await pilot.press("enter")  # the map group: its first task run
        await loaded(pilot, TaskRunScreen)
        assert (app.screen.run_id, app.screen.position) == (pipeline, 1)
        await pilot.press("escape")
        assert app.screen is screen

        await pilot.press("up")
        assert screen.highlighted_node is not None and screen.highlighted_node.kind == "subflow"
        await pilot.press("enter")
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, RunDetailScreen) and app.screen.run_id != pipeline,
            "the subflow's run",
        )
        child = app.screen
        assert isinstance(child, RunDetailScreen)
        await loaded(pilot, RunDetailScreen)
        assert child.detail is not None and child.detail.run.parent_run_id == pipeline


@in_event_loop
async def test_enter_on_a_task_run_shows_its_attempts_inputs_cache_and_neighbours(
    pipeline: str,
) -> None:
    app = make_app()
    async with app.run_test(size=(100, 50)) as pilot:
        await loaded(pilot, RunsScreen)
        app.open_run(pipeline)
        await loaded(pilot, RunDetailScreen)
        detail = app.screen
        assert isinstance(detail, RunDetailScreen)
        tasks = detail.query_one("#tasks", DataTable)
        tasks.move_cursor(row=2)  # extract, double-0, double-1: the one retried
        await pilot.press("enter")
        await loaded(pilot, TaskRunScreen)
        screen = app.screen
        assert isinstance(screen, TaskRunScreen) and screen.position == 2

        attempts = text_of(screen.query_one("#attempts", Static)).splitlines()
        assert attempts[0].split()[:2] == ["1", "RETRYING"]
        assert "attempt 1 failed (ValueError: flaky two); retrying in 0 s" in attempts[0]
        assert attempts[1].split()[:2] == ["2", "COMPLETED"]
        assert "double-1" in text_of(screen.query_one("#task-summary", Static))
        assert "attempts 2" in text_of(screen.query_one("#task-summary", Static))
        assert text_of(screen.query_one("#task-result", Static)).strip() == "4"
        assert "inputs hash" in text_of(screen.query_one("#inputs", Static))
        upstream = screen.query_one("#upstream", OptionList)
        assert option_ids(upstream) == ["0"]
        assert "extract-0" in str(upstream.get_option("0").prompt)
        assert "= [1, 2, 3]" in str(upstream.get_option("0").prompt)
        downstream = screen.query_one("#downstream", OptionList)
        assert option_ids(downstream) == ["5"]
        assert "no cache key: its task does not cache" in text_of(
            screen.query_one("#cache", Static)
        )
        assert not screen.query_one("#task-error", Static).display

        await pilot.press("l")  # its own log lines
        await loaded(pilot, LogsScreen)
        logs = app.screen
        await wait_for(pilot, lambda: logs.records, "the task run's lines")
        assert {r.task_name for r in logs.records} == {"double-1"}
        assert "doubling 2" in [r.message for r in logs.records]
        await pilot.press("escape")
        assert app.screen is screen

        downstream.focus()
        await pilot.press("enter")  # total: it waited for the doubles, and is cached
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, TaskRunScreen) and app.screen.position == 5,
            "the downstream task run",
        )
        total = app.screen
        assert isinstance(total, TaskRunScreen)
        await loaded(pilot, TaskRunScreen)
        assert option_ids(total.query_one("#upstream", OptionList)) == ["1", "2", "3"]
        assert "none" in str(
            total.query_one("#downstream", OptionList).get_option_at_index(0).prompt
        )
        cache = text_of(total.query_one("#cache", Static))
        assert "key v1:sha256:" in cache and "entry written by this task run" in cache
        assert "never expires" in cache
        await pilot.press("escape")
        assert app.screen is detail  # up and downstream replace the screen, never pile up


@in_event_loop
async def test_a_failed_task_runs_detail_shows_its_error(orch_home: Path) -> None:
    run_id = "c" * 32
    store = Store(orch_home)
    store.create_flow_run(
        run_id=run_id, flow_name="etl", name="etl-1", parameters="{}", state=StateName.RUNNING
    )
    failure = {
        "error_type": "ValueError",
        "error_message": "bad \x1b[2J row",
        "traceback": "Traceback...\nValueError: bad \x1b[2J row",
        "state_message": "ValueError: bad row",
    }
    store.save_task_run(
        task_run(run_id, 0, "FAILED", **failure),
        [("PENDING", None, 100.0), ("RUNNING", None, 100.0), ("FAILED", "bad row", 101.0)],
    )
    store.close()
    app = make_app(orch_home)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, RunsScreen)
        app.open_task(run_id, 0)
        await loaded(pilot, TaskRunScreen)
        screen = app.screen
        error = screen.query_one("#task-error", Static)
        assert error.display and "ValueError: bad \\x1b[2J row" in text_of(error)
        assert "1  FAILED" in text_of(screen.query_one("#attempts", Static))
        app.open_task(run_id, 7)  # none there
        await loaded(pilot, TaskRunScreen)
        assert "has no task run 7" in text_of(app.screen.query_one("#task-summary", Static))


def live_map(store: Store, run_id: str, size: int) -> None:
    """A running run: extract, then a map of `size` task runs waiting for it, all RUNNING."""
    store.create_flow_run(
        run_id=run_id, flow_name="big", name="big-1", parameters="{}", state=StateName.RUNNING
    )
    store.save_task_run(task_run(run_id, 0, task_key="extract@f.py", name="extract-0"))
    mapped = [
        task_run(
            run_id, p, "RUNNING", task_key="double@f.py", name=f"double-{p - 1}", upstream="[0]"
        )
        for p in range(1, size + 1)
    ]
    for start in range(0, size, 1000):
        batch = mapped[start : start + 1000]
        store.save_task_runs([TaskRunSave(run, [("RUNNING", None, 100.0)]) for run in batch])


@pytest.mark.slow
@in_event_loop
async def test_the_graph_of_a_live_run_of_10000_task_runs_answers_keys_at_once(
    orch_home: Path,
) -> None:
    run_id = "d" * 32
    store = Store(orch_home)
    live_map(store, run_id, 10_000)
    app = make_app(orch_home)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, RunsScreen)
        app.open_graph(run_id)
        await loaded(pilot, RunGraphScreen)
        screen = app.screen
        assert isinstance(screen, RunGraphScreen)
        graph = screen.query_one("#graph", OptionList)
        assert option_ids(graph) == ["layer-0", "t0", "layer-1", "m1"]
        assert "● double ×10000 (10000 ●)" in str(graph.get_option("m1").prompt)

        finished = [
            task_run(
                run_id,
                p,
                "FAILED" if p == 10 else "COMPLETED",
                task_key="double@f.py",
                name=f"double-{p - 1}",
                upstream="[0]",
            )
            for p in range(1, 21)
        ]
        loads = screen.loads
        store.save_task_runs([TaskRunSave(run, [(run.state, None, 101.0)]) for run in finished])
        await wait_for(pilot, lambda: screen.loads > loads, "the changed task runs")
        prompt = str(graph.get_option("m1").prompt)
        assert "double ×10000 (19 ✓ 1 ✗ 9980 ●)" in prompt
        started = time.perf_counter()
        await pilot.press("down")
        assert time.perf_counter() - started < 0.5  # answered at once (~10 ms here)
        assert screen.highlighted_node is not None and screen.highlighted_node.id == "m1"
        await pilot.press("enter")  # its first task run that failed
        await loaded(pilot, TaskRunScreen)
        assert app.screen.position == 10
    store.close()
