"""Selecting runs on the runs screen, and cancelling or retrying them together after one
question, through `orchlite.operations` (real runs in the store, retries in child
processes)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from test_tui import (
    cell,
    failed_hello,
    in_event_loop,
    loaded,
    offered,
    project,
    run_flow,
    runs_table,
    wait_for,
)
from textual.pilot import Pilot

from orchlite.states import StateName
from orchlite.store import Store
from orchlite.tui.app import OrchApp, make_app
from orchlite.tui.bulk_actions import SHOWN_IDS, BulkPlan
from orchlite.tui.confirm import ConfirmScreen
from orchlite.tui.runs_screen import RunsScreen
from orchlite.tui.selection import MARK

__all__ = ["project"]  # a fixture, used by name


def running_runs(home: Path, count: int) -> list[str]:
    """`count` RUNNING runs whose process (a child of this test) has exited, newest first:
    cancelling one ends it CANCELLED at once."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    ids = [f"{n:x}" * 32 for n in range(1, count + 1)]
    with Store(home) as store:
        for n, run_id in enumerate(ids):
            store.create_flow_run(
                run_id=run_id, flow_name="slow", name=f"slow-{n}", parameters="{}", now=100.0 + n
            )
            store.set_flow_run_state(
                run_id, StateName.RUNNING, pid=gone.pid, host=socket.gethostname(), now=101.0 + n
            )
    return list(reversed(ids))


def finished_run(home: Path, run_id: str = "e" * 32) -> str:
    with Store(home) as store:
        store.create_flow_run(
            run_id=run_id, flow_name="quick", name="quick-1", parameters="{}", now=90.0
        )
        store.set_flow_run_state(run_id, StateName.COMPLETED, now=91.0)
    return run_id


def marked(app: OrchApp) -> list[str]:
    """The runs whose row shows the selection mark, top to bottom."""
    rows = runs_table(app).row_keys
    return [run_id for run_id in rows if cell(app, run_id, "mark") == MARK]


async def question(pilot: Pilot[None]) -> ConfirmScreen:
    """The one question, once asked (what was shown instead if it is not)."""
    app = pilot.app
    assert isinstance(app, OrchApp)
    try:
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
    except AssertionError:
        raise AssertionError(f"no question: {app.screen}, {app.outcomes}") from None
    assert isinstance(app.screen, ConfirmScreen)
    return app.screen


@in_event_loop
async def test_space_selects_a_selects_every_run_shown_and_escape_clears(orch_home: Path) -> None:
    running = running_runs(orch_home, 3)
    done = finished_run(orch_home)
    app = make_app(orch_home)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, RunsScreen)
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        await pilot.press("space", "down", "down", "space")
        assert marked(app) == [running[0], running[2]]
        assert screen.sub_title == "4 runs, 2 selected"
        await pilot.press("up", "up", "space")  # again: unselected
        assert marked(app) == [running[2]]

        await pilot.press("escape")  # clears the selection, not the filters
        assert marked(app) == [] and screen.sub_title == "4 runs"
        await pilot.press("a")
        assert marked(app) == [*running, done]

        runs_table(app).move_cursor(row=3)  # a finished run, but the selection is not
        await wait_for(pilot, lambda: "cancel" in offered(app), "c offered")
        await pilot.press("s", *"completed", "enter")  # a run on screen stays selected
        await wait_for(pilot, lambda: list(screen.runs) == [done], "the filter")
        assert marked(app) == [done] and screen.sub_title == "1 run matches, 1 selected"
        await wait_for(pilot, lambda: "cancel" not in offered(app), "c no longer offered")
        await pilot.press("escape")  # the selection first
        assert marked(app) == [] and screen.query_filter.states == ("COMPLETED",)
        await pilot.press("escape")  # then the filters
        await wait_for(pilot, lambda: len(screen.runs) == 4, "every run")
        assert marked(app) == []  # the others left the selection as they left the screen


@in_event_loop
async def test_c_cancels_the_selected_runs_after_one_question_skipping_finished_ones(
    orch_home: Path,
) -> None:
    running = running_runs(orch_home, 3)
    done = finished_run(orch_home)
    app = make_app(orch_home)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, RunsScreen)
        await pilot.press("a", "c")
        confirm = await question(pilot)
        assert confirm.question == (
            f"Cancel 3 runs ({', '.join(r[:8] for r in running)})? Skipped: 1 finished run."
        )
        await pilot.press("n")  # changed our mind: nothing happens, the selection stays
        assert isinstance(app.screen, RunsScreen) and len(marked(app)) == 4
        await pilot.press("c")
        await question(pilot)
        await pilot.press("y")
        await wait_for(pilot, lambda: app.outcomes, "the summary")
        (outcome,) = app.outcomes
        assert outcome.ok
        assert outcome.message == "Cancelled 3 runs: 3 CANCELLED; skipped 1 finished run"
        assert marked(app) == []  # answered yes: the selection is done with
        await wait_for(
            pilot,
            lambda: [cell(app, run_id, "state") for run_id in running] == ["CANCELLED"] * 3,
            "the cancelled states",
        )
        assert cell(app, done, "state") == "COMPLETED"

        await pilot.press("a")  # every selected run has finished now: `c` is not offered
        await wait_for(pilot, lambda: "cancel" not in offered(app), "c to go")
        await pilot.press("c")
        assert isinstance(app.screen, RunsScreen) and len(app.outcomes) == 1
        screen = app.screen
        app.confirm_bulk("cancel", list(screen.runs.values()), screen.unselect_all)
        await wait_for(pilot, lambda: len(app.outcomes) == 2, "the refusal")  # no question
        assert app.outcomes[-1].message == "Nothing to cancel: 4 finished runs"
        assert isinstance(app.screen, RunsScreen) and len(marked(app)) == 4
    with Store(orch_home) as store:
        assert [store.get_flow_run(run_id).state for run_id in running] == ["CANCELLED"] * 3


@pytest.mark.slow
@in_event_loop
async def test_r_retries_the_selected_runs_together_skipping_subflows(project: Path) -> None:
    failed = failed_hello(project)
    completed = run_flow()
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, RunsScreen)
        await wait_for(pilot, lambda: len(app.screen.runs) == 4, "both runs and their subflows")
        await pilot.press("a", "r")
        confirm = await question(pilot)
        # A run that completed is run again only once `retry` is typed, as a single retry asks.
        assert confirm.typed == "retry"
        assert confirm.question.startswith(f"Retry 2 runs ({completed[:8]}, {failed[:8]})? ")
        assert "1 of them COMPLETED: it runs again anyway" in confirm.question
        assert confirm.question.endswith(" Skipped: 2 subflows.")
        await pilot.press("y", "enter")  # a letter, not an answer
        assert app.screen is confirm
        await pilot.press("ctrl+a", "ctrl+k", *"retry", "enter")
        await wait_for(pilot, lambda: app.outcomes, "the summary")
        (outcome,) = app.outcomes
        assert outcome.message == "Retried 2 runs: 2 COMPLETED; skipped 2 subflows", outcome
        assert outcome.ok and not app.supervising
        screen = app.screen
        assert isinstance(screen, RunsScreen)

        def retried() -> set[str | None]:
            return {run.retry_of for run in screen.runs.values() if run.trigger == "retry"}

        await wait_for(pilot, lambda: retried() == {failed, completed}, "the retries")


def test_the_question_names_the_runs_and_counts_what_is_skipped() -> None:
    plan = BulkPlan("cancel", run_ids=[f"{n:x}" * 32 for n in range(1, 8)])
    plan.skipped.update({"finished": 1, "gone": 2, "database is locked": 1})
    shown = ", ".join(f"{n:x}" * 8 for n in range(1, SHOWN_IDS + 1))
    assert plan.question == (
        f"Cancel 7 runs ({shown}, …)? Skipped: 1 finished run, 2 deleted runs,"
        " 1 run (database is locked)."
    )
    assert BulkPlan("retry").nothing == "Nothing to retry"
    plan = BulkPlan("retry", run_ids=["a" * 32, "b" * 32], completed=2)
    assert plan.question.endswith(
        "2 of them COMPLETED: they run again anyway (like `orch retry --force`)."
    )
