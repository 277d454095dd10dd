"""The runs screen's filters: several states, a time range, tags and part of a flow's name,
read in the store's query, with the count of the runs that match; and the id column."""

from __future__ import annotations

import json
from pathlib import Path

from test_tui import (
    CountingStore,
    cell,
    flows_shown,
    in_event_loop,
    loaded,
    runs_table,
    wait_for,
)
from textual.widgets import Input

from orchlite.states import StateName
from orchlite.store import Store
from orchlite.tui.app import OrchApp, make_app
from orchlite.tui.filter_bar import StateSuggester
from orchlite.tui.reader import PAGE_SIZE, RunsFollower, RunsQuery, load_runs
from orchlite.tui.run_filters import parse_time_range
from orchlite.tui.runs_screen import RunsScreen

NOW = 1_800_000_000.0
HOUR = 3600.0
STATES = [StateName.COMPLETED, StateName.FAILED, StateName.CRASHED, StateName.RUNNING]


def tagged_runs(home: Path, count: int) -> None:
    """Runs an hour apart, the newest an hour old: flows `nightly-etl` and `Report`, the
    states in turn, every other run tagged `nightly`, every third `eu` too."""
    with Store(home) as store, store.transaction():
        for i in range(count):
            tags = ["nightly"] * (i % 2 == 0) + ["eu"] * (i % 3 == 0)
            store.create_flow_run(
                run_id=f"{i:04x}" * 8,
                flow_name="nightly-etl" if i % 4 else "Report",
                name=f"run-{i}",
                parameters="{}",
                state=STATES[i % len(STATES)],
                tags=json.dumps(tags),
                now=NOW - (count - i) * HOUR,
            )


def notified(app: OrchApp) -> list[str]:
    """The messages of the notifications shown now."""
    return [note.message for note in app._notifications]


def test_the_page_is_read_filtered_from_the_store_and_counts_every_match(
    orch_home: Path,
) -> None:
    tagged_runs(orch_home, 1_000)
    with Store(orch_home, read_only=True) as store:
        every = store.flow_runs_page()
        query = RunsQuery(
            flow="ETL",  # part of the name, in any case
            states=("FAILED", "CRASHED"),
            tags=("nightly",),
            window=parse_time_range("30d"),
        )
        reader = CountingStore(store)
        page = load_runs(reader, query, now=NOW)  # type: ignore[arg-type]

    def matches(run: object) -> bool:
        return (
            run.flow_name == "nightly-etl"  # type: ignore[attr-defined]
            and run.state in query.states  # type: ignore[attr-defined]
            and "nightly" in json.loads(run.tags)  # type: ignore[attr-defined]
            and run.created >= NOW - 30 * 24 * HOUR  # type: ignore[attr-defined]
        )

    expected = [run for run in every if matches(run)]
    assert 100 < len(expected) < PAGE_SIZE and page.runs == expected
    assert page.matching == len(expected) and not page.more
    (read,) = reader.pages  # one query, with every filter in it
    assert read["state"] == ("FAILED", "CRASHED") and read["tags"] == ("nightly",)
    assert read["flow"] == ["nightly-etl"] and read["since"] == NOW - 30 * 24 * HOUR

    with Store(orch_home, read_only=True) as store:
        wide = load_runs(store, RunsQuery(states=("COMPLETED",)), now=NOW)
    assert len(wide.runs) == PAGE_SIZE and wide.more and wide.matching == 250


def test_a_time_range_given_as_an_age_moves_on_with_the_clock(orch_home: Path) -> None:
    tagged_runs(orch_home, 10)
    clock = [NOW]
    follower = RunsFollower(lambda: RunsQuery(window=parse_time_range("3h")), lambda: clock[0])
    with Store(orch_home, read_only=True) as reader, Store(orch_home) as store:
        page = follower(reader)
        assert page is not None and [r.name for r in page.runs] == ["run-9", "run-8", "run-7"]
        clock[0] += HOUR
        store.create_flow_run(run_id="f" * 32, flow_name="x", name="new", parameters="{}", now=NOW)
        page = follower(reader)
        assert page is not None and [r.name for r in page.runs] == ["new", "run-9", "run-8"]
        assert page.matching == 3


@in_event_loop
async def test_several_states_a_time_range_and_tags_with_the_count_of_matches(
    orch_home: Path,
) -> None:
    tagged_runs(orch_home, 48)
    app = make_app(orch_home, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, RunsScreen)
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        assert screen.sub_title == "48 runs"

        await pilot.press("s", *"Failed, CRASHED", "enter")
        await wait_for(pilot, lambda: screen.sub_title == "24 runs match", "the count")
        assert runs_table(app).has_focus
        assert {cell(app, run_id, "state") for run_id in screen.runs} == {"FAILED", "CRASHED"}

        await pilot.press("w", *"12h", "enter")  # runs 1 to 12 hours old
        await wait_for(pilot, lambda: screen.sub_title == "6 runs match", "the time range")
        await pilot.press("number_sign", *"nightly", "enter")
        await wait_for(pilot, lambda: screen.sub_title == "3 runs match", "a tag")
        await pilot.press("number_sign", "end", *", eu", "enter")  # and another: both
        await wait_for(pilot, lambda: screen.sub_title == "1 run matches", "two tags")
        assert [run.name for run in screen.runs.values()] == ["run-42"]

        await pilot.press("f", *"report", "enter")  # no run of it failed or crashed
        await wait_for(pilot, lambda: screen.sub_title == "0 runs match", "no match")

        await pilot.press("escape")  # clears every filter
        await wait_for(pilot, lambda: screen.sub_title == "48 runs", "every run again")
        assert all(not box.value for box in screen.query(Input))


@in_event_loop
async def test_a_filter_that_is_not_one_says_what_it_expects_and_keeps_the_last_good_one(
    orch_home: Path,
) -> None:
    tagged_runs(orch_home, 8)
    app = make_app(orch_home, clock=lambda: NOW)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, RunsScreen)
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        await pilot.press("s", *"failed", "enter")
        await wait_for(pilot, lambda: screen.sub_title == "2 runs match", "the state filter")
        await pilot.press("s", "end", *",fialed")
        state_box = screen.query_one("#state", Input)
        await wait_for(pilot, lambda: state_box.has_class("-invalid"), "the box marked")
        await pilot.press("enter")
        await wait_for(pilot, lambda: notified(app), "what it expects")
        assert notified(app)[-1].startswith("unknown state 'fialed' (one of: SCHEDULED, ")
        assert state_box.has_focus and screen.query_filter.states == ("FAILED",)

        await pilot.press("escape", "w", *"yesterday")  # back to the table, to the time box
        time_box = screen.query_one("#time", Input)
        await wait_for(pilot, lambda: time_box.has_class("-invalid"), "the time box marked")
        await pilot.press("ctrl+a", "ctrl+k", *"2d..3h")
        await wait_for(pilot, lambda: not time_box.has_class("-invalid"), "a good range")
        await wait_for(pilot, lambda: screen.sub_title == "1 run matches", "the range")


@in_event_loop
async def test_the_short_ids_show_where_they_fit(orch_home: Path) -> None:
    tagged_runs(orch_home, 3)
    app = make_app(orch_home, clock=lambda: NOW)
    async with app.run_test(size=(120, 30)) as pilot:
        await loaded(pilot, RunsScreen)
        first = f"{2:04x}" * 8
        assert cell(app, first, "mark") == first[:8]
        await pilot.resize_terminal(80, 24)
        await wait_for(pilot, lambda: cell(app, first, "mark") == "", "the ids gone")
        assert flows_shown(app) == ["nightly-etl", "nightly-etl", "Report"]
        await pilot.resize_terminal(100, 24)
        await wait_for(pilot, lambda: cell(app, first, "mark") == first[:8], "the ids back")


def test_the_state_box_completes_the_state_being_typed() -> None:
    import asyncio

    suggester = StateSuggester()
    assert asyncio.run(suggester.get_suggestion("failed,cr")) == "failed,crashed"
    assert asyncio.run(suggester.get_suggestion("can")) == "cancelling"
    assert asyncio.run(suggester.get_suggestion("failed, ")) is None
    assert asyncio.run(suggester.get_suggestion("nope")) is None
