"""What the runs screen does when another process (a daemon) keeps recording runs: it reads
and redraws only what changed (issue 14: an idle TUI beside a busy daemon)."""

from __future__ import annotations

import gc
from collections.abc import Sequence
from pathlib import Path

import pytest
from rich.text import Text
from test_tui import in_event_loop, loaded, many_runs, runs_table, wait_for
from textual.geometry import Region
from textual.pilot import Pilot
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets._header import HeaderTitle

from orchlite.states import StateName
from orchlite.store import FlowRun, RunMark, Store, TaskRun
from orchlite.tui.app import OrchApp, make_app
from orchlite.tui.header import Header
from orchlite.tui.keyed_table import KeyedTable
from orchlite.tui.reader import RunsFollower, RunsPage, RunsQuery
from orchlite.tui.runs_screen import RunsScreen
from orchlite.tui.trends import Trends, TrendsStrip


class MarksAsked:
    """A store that records which runs' marks a poll asks for."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.asked: list[list[str]] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)

    def run_marks(self, run_ids: Sequence[str]) -> dict[str, RunMark]:
        self.asked.append(list(run_ids))
        return self.store.run_marks(run_ids)


async def settled_runs_screen(pilot: Pilot[None], app: OrchApp) -> tuple[RunsScreen, KeyedTable]:
    """The runs screen once its table has rows past the view and its columns fit the view
    as it now is, whenever its scrollbar came."""
    await loaded(pilot, RunsScreen)
    screen = app.screen
    assert isinstance(screen, RunsScreen)
    table = runs_table(app)
    await wait_for(pilot, lambda: table.show_vertical_scrollbar, "rows past the view")
    await pilot.pause()
    table.fit()
    await pilot.pause()
    return screen, table


def poll(follower: RunsFollower, reader: MarksAsked) -> RunsPage | None:
    return follower(reader)  # type: ignore[arg-type]


def test_a_poll_reads_the_state_of_no_finished_run_shown(orch_home: Path) -> None:
    store = Store(orch_home)
    many_runs(store, 300, created=lambda i: 1e9 + i)  # finished, in the page and the trends
    going = "f" * 32
    store.create_flow_run(run_id=going, flow_name="flow1", name="going", parameters="{}")
    store.set_flow_run_state(going, StateName.RUNNING, pid=1, attempts=1)
    follower = RunsFollower(lambda: RunsQuery())
    reader = MarksAsked(Store(orch_home, read_only=True))
    assert poll(follower, reader) is not None
    store.heartbeat([going])  # a commit that changes nothing shown
    assert poll(follower, reader) is None
    assert reader.asked == [[going]]
    store.set_flow_run_state(going, StateName.COMPLETED)
    page = poll(follower, reader)
    assert page is not None and page.runs[0].state == StateName.COMPLETED
    reader.asked.clear()
    assert poll(follower, reader) is None
    assert reader.asked == [[]]  # every run shown has finished
    reader.store.close()
    store.close()


def test_finished_runs_deleted_leave_the_page(orch_home: Path) -> None:
    store = Store(orch_home)
    many_runs(store, 150, created=lambda i: 1e9 + i)
    follower = RunsFollower(lambda: RunsQuery())
    reader = MarksAsked(Store(orch_home, read_only=True))
    page = poll(follower, reader)
    assert page is not None and len(page.runs) == 150
    assert store.delete_runs_before(1e9 + 100) == 100  # retention
    page = poll(follower, reader)
    assert page is not None
    assert [run.name for run in page.runs] == [f"run-{i}" for i in range(149, 99, -1)]
    assert page.matching == 50
    reader.store.close()
    store.close()


@in_event_loop
async def test_a_new_run_redraws_one_row_one_trend_line_and_the_title(
    orch_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(orch_home)
    many_runs(store, 60, created=lambda i: 1e9 + i)  # three flows, flow2 the last to run
    rendered: list[object] = []
    render_cell = KeyedTable._render_cell

    def counted(table: KeyedTable, cell: object, width: int) -> object:
        rendered.append(cell)
        return render_cell(table, cell, width)

    monkeypatch.setattr(KeyedTable, "_render_cell", counted)
    app = make_app(orch_home)
    async with app.run_test(size=(120, 40)) as pilot:
        screen, table = await settled_runs_screen(pilot, app)
        strip = screen.query_one("#trends", TrendsStrip)
        strip_refreshed: list[tuple[object, ...]] = []
        strip_refresh = strip.refresh
        monkeypatch.setattr(
            strip,
            "refresh",
            lambda *a, **k: (strip_refreshed.append((*a, k)), strip_refresh(*a, **k)),
        )
        screen_refreshed: list[object] = []
        monkeypatch.setattr(screen, "refresh", lambda *a, **k: screen_refreshed.append(k))
        title_layout: list[bool] = []
        title = screen.query_one(Header).query_one(HeaderTitle)
        title_refresh = title.refresh
        monkeypatch.setattr(
            title,
            "refresh",
            lambda *a, layout=False, **k: (title_layout.append(layout), title_refresh(*a, **k)),
        )
        titles: list[str] = []  # the title as each snapshot's show leaves it
        show = screen.show
        monkeypatch.setattr(
            screen, "show", lambda page: (show(page), titles.append(str(title.content)))
        )
        rendered.clear()
        new = "f" * 32
        store.create_flow_run(
            run_id=new, flow_name="flow2", name="new", parameters="{}", now=1e9 + 100
        )
        await wait_for(pilot, lambda: new in screen.runs, "the new run")
        await pilot.pause()
        assert table.row_keys[0] == new
        assert len(rendered) == len(table.columns)  # the new row's cells alone
        assert [line.plain.split()[0] for line in strip.lines] == ["flow2", "flow1", "flow0"]
        assert strip_refreshed == [(Region(0, 0, strip.size.width, 1), {})]  # its flow's line
        assert screen_refreshed == []  # the screen is not repainted whole
        assert "61 runs" in titles[-1]  # drawn in the frame of the new row
        assert title_layout and not any(title_layout)  # not laid out again
    store.close()


@in_event_loop
async def test_what_the_start_built_is_left_out_of_full_collections_while_the_app_runs(
    orch_home: Path,
) -> None:
    Store(orch_home).close()
    app = make_app(orch_home)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, RunsScreen)
        await wait_for(pilot, lambda: gc.get_freeze_count() > 0, "the start frozen")
    assert gc.get_freeze_count() == 0  # given back to the collector when the app ends


class TrendsAsked(MarksAsked):
    """A store that also counts the trends read whole."""

    trends_read = 0

    def latest_runs_per_flow(self, **kwargs: int) -> list[list[FlowRun]]:
        self.trends_read += 1
        return self.store.latest_runs_per_flow(**kwargs)


def test_new_runs_of_the_flows_in_the_trends_join_them_without_reading_them_again(
    orch_home: Path,
) -> None:
    store = Store(orch_home)
    many_runs(store, 90, created=lambda i: 1e9 + i)  # flows flow0, flow1, flow2
    follower = RunsFollower(lambda: RunsQuery())
    reader = TrendsAsked(Store(orch_home, read_only=True))
    assert poll(follower, reader) is not None
    read = reader.trends_read
    for i, state in ((90, StateName.RUNNING), (91, StateName.COMPLETED)):  # flow0, flow1
        store.create_flow_run(
            run_id=f"{i:032x}", flow_name=f"flow{i % 3}", name=f"run-{i}", parameters="{}",
            state=state, now=1e9 + i,
        )  # fmt: skip
        page = poll(follower, reader)
        assert page is not None and page.trends == store.latest_runs_per_flow(flows=4, runs=20)
    store.set_flow_run_state(f"{90:032x}", StateName.COMPLETED)  # a trend run moves on
    page = poll(follower, reader)
    assert page is not None and page.trends == store.latest_runs_per_flow(flows=4, runs=20)
    assert page.trends[1][0].state == StateName.COMPLETED
    assert reader.trends_read == read  # all told by the page's own reads
    store.create_flow_run(run_id="e" * 32, flow_name="new-flow", name="n", parameters="{}")
    page = poll(follower, reader)  # a flow the trends did not show: read them again
    assert page is not None and page.trends == store.latest_runs_per_flow(flows=4, runs=20)
    assert reader.trends_read == read + 1 and page.trends[0][0].flow_name == "new-flow"
    reader.store.close()
    store.close()


class IdsAsked(MarksAsked):
    """A store that also records which runs a poll checks by id for deletion."""

    checked: list[list[str]]

    def count_existing_runs(self, run_ids: Sequence[str]) -> int:
        self.checked.append(list(run_ids))
        return self.store.count_existing_runs(run_ids)


def test_a_poll_counts_the_span_of_the_page_and_checks_only_older_trend_runs_by_id(
    orch_home: Path,
) -> None:
    store = Store(orch_home)
    rare = [f"{i:032x}" for i in range(3)]
    for i, run_id in enumerate(rare):  # a flow that ran long before the page's runs
        store.create_flow_run(
            run_id=run_id, flow_name="rare", name=f"rare-{i}", parameters="{}",
            state=StateName.COMPLETED, now=1e9 + i,
        )  # fmt: skip
    many_runs(store, 250, created=lambda i: 2e9 + i, first=10)
    follower = RunsFollower(lambda: RunsQuery())
    reader = IdsAsked(Store(orch_home, read_only=True))
    reader.checked = []
    page = poll(follower, reader)
    assert page is not None and len(page.runs) == 200
    assert any(runs[0].flow_name == "rare" for runs in page.trends)
    store.create_flow_run(
        run_id="f" * 32, flow_name="flow0", name="x", parameters="{}", now=2e9 + 1000
    )
    store.delete_runs_before(0.0)  # a commit that deletes nothing
    assert poll(follower, reader) is not None  # the new run
    assert reader.checked == [rare]  # not the 200 finished runs of the page, one by one
    assert store.delete_runs_before(1e9 + 10) == 3  # retention takes the old flow's runs
    page = poll(follower, reader)
    assert page is not None and all(runs[0].flow_name != "rare" for runs in page.trends)
    store.delete_runs_before(2e9 + 100)  # ... and then runs the page shows
    page = poll(follower, reader)
    assert page is not None and min(run.created for run in page.runs) >= 2e9 + 100
    reader.store.close()
    store.close()


@in_event_loop
async def test_a_new_run_styles_one_line_of_the_table_and_makes_one_trend_line(
    orch_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(orch_home)
    many_runs(store, 60, created=lambda i: 1e9 + i)  # three flows, flow2 the last to run
    app = make_app(orch_home)
    async with app.run_test(size=(120, 40)) as pilot:
        screen, table = await settled_runs_screen(pilot, app)
        for i in (100, 101):  # rows moved down: each row's line drawn in both stripes
            store.create_flow_run(
                run_id=f"{i:032x}", flow_name="flow2", name=f"new-{i}", parameters="{}",
                now=1e9 + i,
            )  # fmt: skip
            await wait_for(pilot, lambda i=i: f"{i:032x}" in screen.runs, "the new run")
            await pilot.pause()
        styled: list[int] = []  # the lines of the table that Textual styles and filters
        render_lines = ScrollView.render_lines

        def counted(widget: ScrollView, crop: Region) -> list[Strip]:
            if widget is table:
                styled.append(crop.height)
            return render_lines(widget, crop)

        monkeypatch.setattr(ScrollView, "render_lines", counted)
        made: list[str] = []
        make_line = Trends._line

        def line(trends: Trends, runs: list[FlowRun], slots: int) -> Text:
            made.append(runs[-1].flow_name)
            return make_line(trends, runs, slots)

        monkeypatch.setattr(Trends, "_line", line)
        new = "f" * 32
        store.create_flow_run(
            run_id=new, flow_name="flow2", name="new", parameters="{}", now=1e9 + 200
        )
        await wait_for(pilot, lambda: new in screen.runs, "the new run")
        await pilot.pause()
        assert table.row_keys[0] == new
        # The new row, and the row before it in its other stripe; the other rows it pushed
        # down are drawn as they were.
        assert sum(styled) == 2
        assert made == ["flow2"]  # the other flows' lines are kept
    store.close()


def test_with_a_flow_filter_another_flows_new_run_joins_the_trends(orch_home: Path) -> None:
    store = Store(orch_home)
    many_runs(store, 30, created=lambda i: 1e9 + i)  # flows flow0, flow1, flow2
    follower = RunsFollower(lambda: RunsQuery(flow="FLOW1"))
    reader = MarksAsked(Store(orch_home, read_only=True))
    page = poll(follower, reader)
    assert page is not None and {run.flow_name for run in page.runs} == {"flow1"}
    for i, flow in ((30, "flow0"), (31, "other")):  # a flow in the trends, then a new one
        store.create_flow_run(
            run_id=f"{i:032x}", flow_name=flow, name=f"run-{i}", parameters="{}",
            state=StateName.COMPLETED, now=1e9 + i,
        )  # fmt: skip
        page = poll(follower, reader)
        assert page is not None and page.trends == store.latest_runs_per_flow(flows=4, runs=20)
        assert page.trends[0][0].id == f"{i:032x}"
        assert {run.flow_name for run in page.runs} == {"flow1"} and page.matching == 10
    reader.store.close()
    store.close()


def finished_task(run_id: str, position: int) -> TaskRun:
    return TaskRun(
        flow_run_id=run_id, position=position, id=f"{position + 1:032x}", standalone=0,
        task_key="t@f.py", name=f"t-{position}", dynamic_key=str(position),
        state="COMPLETED", state_message=None, attempts=1, inputs_hash=None, cache_key=None,
        result_ref=None, result_serializer=None, error_type=None, error_message=None,
        traceback=None, created=1.0, started=1.0, ended=2.0,
    )  # fmt: skip


def test_the_task_counts_of_a_run_that_finished_between_two_polls_are_its_last(
    orch_home: Path,
) -> None:
    store = Store(orch_home)
    run_id = "a" * 32
    store.create_flow_run(run_id=run_id, flow_name="f", name="r", parameters="{}")
    store.set_flow_run_state(run_id, StateName.RUNNING, pid=1, attempts=1)
    store.save_task_run(finished_task(run_id, 0))
    follower = RunsFollower(lambda: RunsQuery())
    reader = MarksAsked(Store(orch_home, read_only=True))
    page = poll(follower, reader)
    assert page is not None and page.counts[run_id] == {"COMPLETED": 1}
    store.save_task_run(finished_task(run_id, 1))  # its last task ends, then the run
    store.set_flow_run_state(run_id, StateName.COMPLETED)
    page = poll(follower, reader)
    assert page is not None and page.runs[0].state == StateName.COMPLETED
    assert page.counts[run_id] == {"COMPLETED": 2}
    reader.store.close()
    store.close()
