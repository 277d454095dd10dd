"""`e` in `orch tui`: a run's recorded parameters in a form, checked as `orch run -p` checks
them, started again as a retry of the run or as a fresh run of its target."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from test_tui import (
    FLOWS,
    SNAP_NOW,
    in_event_loop,
    loaded,
    run_flow,
    runs_table,
    snap_compare_utc,
    text_of,
    wait_for,
)
from textual.pilot import Pilot
from textual.widgets import Button, Input, Static

from orchlite.states import StateName
from orchlite.store import FlowRun, Store
from orchlite.tui.app import OrchApp, make_app
from orchlite.tui.confirm import ConfirmScreen
from orchlite.tui.detail_screen import RunDetailScreen
from orchlite.tui.rerun_form import RerunScreen
from orchlite.tui.runs_screen import RunsScreen

__all__ = ["snap_compare_utc"]  # a fixture, used by name

REPORT = textwrap.dedent(
    """
    from orchlite import flow


    @flow
    def report(day: str, limit: int = 10, tags: list[str] | None = None, token: str = "none"):
        if limit < 0:
            raise ValueError("limit must not be negative")
        return f"{day} {limit} {tags} {token}"
    """
)
NAMES = ("day", "limit", "tags", "token")
SECRET_RUN = "7" * 32


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "report.py").write_text(REPORT)
    (tmp_path / "flows.py").write_text(FLOWS)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def report_run(**params: object) -> str:
    return run_flow("report.py:report", day="2027-01-15", tags="a,b", **params)


def runs_of(home: Path) -> list[FlowRun]:
    with Store(home, read_only=True) as store:
        return store.list_flow_runs(limit=100)


def secret_run(home: Path) -> None:
    """A failed run of `report` whose token was a secret's value (recorded as `***`)."""
    with Store(home) as store:
        store.create_flow_run(
            run_id=SECRET_RUN,
            flow_name="report",
            name="report-7",
            parameters=json.dumps({"day": "2027-01-15", "limit": 3, "tags": None, "token": "***"}),
            target="report.py:report",
            now=SNAP_NOW - 120,
        )
        store.set_flow_run_state(SECRET_RUN, StateName.RUNNING, attempts=1, now=SNAP_NOW - 119)
        store.set_flow_run_state(SECRET_RUN, StateName.FAILED, now=SNAP_NOW - 100)


def field(form: RerunScreen, name: str) -> Input:
    return form.query_one(f"#param-{form.names.index(name)}", Input)


def error_beside(form: RerunScreen, name: str) -> str | None:
    """The message under the field, or None when none shows."""
    error = form.query_one(f"#error-{form.names.index(name)}", Static)
    return text_of(error) if error.display else None


async def open_form(pilot: Pilot[None], run_id: str) -> RerunScreen:
    """The form of `run_id`, opened with `e` on its detail screen."""
    app = pilot.app
    assert isinstance(app, OrchApp)
    await loaded(pilot, RunsScreen)
    app.open_run(run_id)
    await loaded(pilot, RunDetailScreen)
    await pilot.press("e")
    await wait_for(pilot, lambda: isinstance(app.screen, RerunScreen), "the form")
    assert isinstance(app.screen, RerunScreen)
    return app.screen


async def buttons_at_rest(pilot: Pilot[None], form: RerunScreen) -> None:
    """A button ignores clicks while it shows that it was pressed (a fraction of a second)."""
    buttons = form.query(Button)
    await wait_for(pilot, lambda: not any(b.has_class("-active") for b in buttons), "buttons")


async def press_button(pilot: Pilot[None], form: RerunScreen, button: str) -> int:
    """Press a button of the form; the number of checks done before."""
    await buttons_at_rest(pilot, form)
    checks = form.checks
    await pilot.click(f"#{button}")
    return checks


@in_event_loop
async def test_the_form_is_prefilled_as_one_would_type_the_recorded_values(project: Path) -> None:
    old = report_run(limit="5")
    app = make_app()
    async with app.run_test(size=(100, 40)) as pilot:
        form = await open_form(pilot, old)
        assert form.names == list(NAMES)
        shown = {name: field(form, name).value for name in NAMES}
        assert shown == {"day": "2027-01-15", "limit": "5", "tags": '["a", "b"]', "token": "none"}
        # left as they are, the recorded values are sent again, as `orch retry` sends them
        assert form.values() == {
            "day": "2027-01-15",
            "limit": 5,
            "tags": ["a", "b"],
            "token": "none",
        }
        assert all(error_beside(form, name) is None for name in NAMES)
        await pilot.press("escape")
        assert isinstance(app.screen, RunDetailScreen)
    assert not app.outcomes


@in_event_loop
async def test_a_bad_value_shows_the_orch_run_error_beside_its_field_and_starts_nothing(
    project: Path, orch_home: Path
) -> None:
    old = report_run()
    app = make_app()
    async with app.run_test(size=(100, 40)) as pilot:
        form = await open_form(pilot, old)
        field(form, "limit").value = "many"
        for button in ("retry", "fresh"):
            before = await press_button(pilot, form, button)
            await wait_for(pilot, lambda: form.checks > before, "the check")  # noqa: B023
            assert app.screen is form
            error = error_beside(form, "limit")
            # the message `orch run report.py:report -p limit=many` prints
            assert error is not None and "parameter 'limit': expected int, got 'many'" in error
            assert error_beside(form, "day") is None
            assert app.focused is field(form, "limit")
    assert not app.outcomes and not app.supervising
    assert [run.id for run in runs_of(orch_home)] == [old]


@pytest.mark.slow
@in_event_loop
async def test_a_retry_with_edited_values_records_retry_of_and_the_new_values(
    project: Path, orch_home: Path
) -> None:
    old = report_run(limit="-1")
    app = make_app()
    async with app.run_test(size=(100, 40)) as pilot:
        form = await open_form(pilot, old)
        field(form, "limit").value = "7"
        field(form, "tags").value = "x,y"
        field(form, "limit").focus()
        await pilot.press("enter")  # enter retries
        await wait_for(pilot, lambda: app.outcomes, "the retry's outcome")
        outcome = app.outcomes[-1]
        assert outcome.ok, outcome.message
        assert outcome.message.endswith("(retry) COMPLETED")
    new = next(run for run in runs_of(orch_home) if run.id == outcome.run_id)
    assert new.retry_of == old and new.trigger == "retry" and new.state == "COMPLETED"
    recorded = json.loads(new.parameters or "{}")
    assert recorded == {"day": "2027-01-15", "limit": 7, "tags": ["x", "y"], "token": "none"}


@pytest.mark.slow
@in_event_loop
async def test_a_fresh_run_from_the_runs_screen_has_no_retry_of(
    project: Path, orch_home: Path
) -> None:
    old = report_run(limit="-1")
    app = make_app()
    async with app.run_test(size=(100, 40)) as pilot:
        await loaded(pilot, RunsScreen)
        table = runs_table(app)
        await wait_for(pilot, lambda: table.row_count == 1, "the run")
        table.focus()
        await pilot.press("e")  # the highlighted run
        await wait_for(pilot, lambda: isinstance(app.screen, RerunScreen), "the form")
        form = app.screen
        assert isinstance(form, RerunScreen) and form.run_id == old
        field(form, "limit").value = "2"
        await press_button(pilot, form, "fresh")
        await wait_for(pilot, lambda: app.outcomes, "the run's outcome")
        outcome = app.outcomes[-1]
        assert outcome.ok, outcome.message
        assert outcome.message.endswith("(report.py:report) COMPLETED")
    new = next(run for run in runs_of(orch_home) if run.id == outcome.run_id)
    assert new.retry_of is None and new.trigger == "manual" and new.target == "report.py:report"
    assert json.loads(new.parameters or "{}")["limit"] == 2


@pytest.mark.slow
@in_event_loop
async def test_retrying_a_completed_run_from_the_form_needs_the_word_typed(
    project: Path, orch_home: Path
) -> None:
    done = report_run()
    app = make_app()
    async with app.run_test(size=(100, 40)) as pilot:
        form = await open_form(pilot, done)
        field(form, "limit").value = "3"
        await press_button(pilot, form, "retry")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen)
        assert confirm.typed == "retry" and "COMPLETED" in confirm.question
        await pilot.press("escape")
        assert isinstance(app.screen, RunDetailScreen) and not app.supervising
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, RerunScreen), "the form")
        form = app.screen
        assert isinstance(form, RerunScreen)
        field(form, "limit").value = "3"
        await press_button(pilot, form, "retry")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        await wait_for(
            pilot, lambda: getattr(app.focused, "id", None) == "confirm-typed", "the word box"
        )
        await pilot.press(*"retry", "enter")
        await wait_for(pilot, lambda: app.outcomes, "the retry's outcome")
        outcome = app.outcomes[-1]
        assert outcome.ok, outcome.message
    new = next(run for run in runs_of(orch_home) if run.id == outcome.run_id)
    assert new.retry_of == done and json.loads(new.parameters or "{}")["limit"] == 3


@in_event_loop
async def test_a_subflow_is_not_offered_and_the_reason_shows(project: Path) -> None:
    run_flow()  # hello calls the child flow
    app = make_app()
    async with app.run_test(size=(100, 40)) as pilot:
        await loaded(pilot, RunsScreen)
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        await wait_for(pilot, lambda: len(screen.runs) == 2, "both runs")
        child = next(run for run in screen.runs.values() if run.flow_name == "child")
        app.open_run(child.id)
        await loaded(pilot, RunDetailScreen)
        await pilot.press("e")
        await wait_for(pilot, lambda: app.outcomes, "the refusal")
        assert "is a subflow; retry its parent run" in app.outcomes[-1].message
        assert not app.outcomes[-1].ok
        assert isinstance(app.screen, RunDetailScreen)


@pytest.mark.slow
@in_event_loop
async def test_a_redacted_secret_must_be_typed_again_never_sent_as_stars(
    project: Path, orch_home: Path
) -> None:
    secret_run(orch_home)
    app = make_app()
    async with app.run_test(size=(100, 40)) as pilot:
        form = await open_form(pilot, SECRET_RUN)
        assert field(form, "token").value == "***"
        assert "type its value again" in (error_beside(form, "token") or "")
        assert field(form, "tags").value == "" and form.values()["tags"] is None
        for button in ("retry", "fresh"):
            before = await press_button(pilot, form, button)
            await wait_for(pilot, lambda: form.checks > before, "the check")  # noqa: B023
            assert app.screen is form
            assert "'token' was recorded redacted" in (error_beside(form, "token") or "")
        field(form, "token").value = "s3cr3t-again"
        await press_button(pilot, form, "fresh")
        await wait_for(pilot, lambda: app.outcomes, "the run's outcome")
        outcome = app.outcomes[-1]
        assert outcome.ok, outcome.message
    new = next(run for run in runs_of(orch_home) if run.id == outcome.run_id)
    assert json.loads(new.parameters or "{}")["token"] == "s3cr3t-again"
    assert new.retry_of is None


@pytest.mark.snapshot
def test_snapshot_rerun_form_80x24(
    project: Path, orch_home: Path, snap_compare_utc: Callable[..., bool]
) -> None:
    secret_run(orch_home)

    async def form(pilot: Pilot[None]) -> None:
        app = pilot.app
        await loaded(pilot, RunsScreen)
        table = runs_table(app)
        await wait_for(pilot, lambda: table.row_count == 1, "the run")
        await wait_for(pilot, lambda: not table.columns["run"].auto_width, "fitted columns")
        table.focus()
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, RerunScreen), "the form")
        form = app.screen
        assert isinstance(form, RerunScreen)
        field(form, "limit").value = "many"
        before = await press_button(pilot, form, "retry")
        await wait_for(pilot, lambda: form.checks > before, "the check")
        await buttons_at_rest(pilot, form)
        await pilot.pause()

    app = make_app(orch_home, clock=lambda: SNAP_NOW)
    assert snap_compare_utc(app, terminal_size=(80, 24), run_before=form)
