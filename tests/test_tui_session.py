"""A long `orch tui` session: errors in a screen never end the app, closed screens are
released, and nothing a user wrote reaches the terminal as a control sequence."""

from __future__ import annotations

import asyncio
import gc
import re
from pathlib import Path

import pytest
from test_tui import cell, in_event_loop, loaded, runs_table, wait_for
from textual.pilot import Pilot
from textual.widgets import Header
from textual.widgets._header import HeaderTitle

from orchlite.states import StateName
from orchlite.store import Store, TaskRun
from orchlite.tui.app import make_app
from orchlite.tui.detail_screen import RunDetailScreen
from orchlite.tui.error_screen import ErrorScreen
from orchlite.tui.logs_screen import LogsScreen
from orchlite.tui.polling import PollingScreen
from orchlite.tui.runs_screen import RunsScreen
from orchlite.views import format_log, printable
from tests.helpers.store_rows import flow_run, task_run


def finished_runs(home: Path, count: int, *, parameters: str = "{}") -> list[str]:
    store = Store(home)
    ids = []
    for i in range(count):
        run_id = f"{i + 1:032x}"
        store.create_flow_run(
            run_id=run_id, flow_name="etl", name=f"etl-{i}", parameters=parameters, now=1_000 + i
        )
        store.set_flow_run_state(run_id, StateName.RUNNING, now=1_000 + i)
        store.set_flow_run_state(run_id, StateName.COMPLETED, now=1_001 + i)
        ids.append(run_id)
    store.close()
    return ids


@in_event_loop
async def test_an_error_in_a_widget_opens_the_error_dialog_and_the_app_goes_on(
    orch_home: Path,
) -> None:
    """The error a long session ended with: a header asked to redraw without its title."""
    finished_runs(orch_home, 1)
    app = make_app(orch_home)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, RunsScreen)
        await pilot.press("enter")
        await loaded(pilot, RunDetailScreen)
        detail = app.screen
        await detail.query_one(Header).query_one(HeaderTitle).remove()
        detail.sub_title = "changed"
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorScreen), "the error dialog")
        assert "NoMatches" in app.screen.message and "HeaderTitle" in app.screen.message
        await pilot.press("escape")
        assert app.is_running and app.screen is detail
        await pilot.press("escape")
        await loaded(pilot, RunsScreen)
        assert app.is_running


@in_event_loop
async def test_a_screen_that_raises_is_closed_after_the_error_dialog(orch_home: Path) -> None:
    """A run whose stored parameters are not JSON: its detail screen fails to show it."""
    finished_runs(orch_home, 1, parameters="{not json")
    app = make_app(orch_home)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, RunsScreen)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorScreen), "the error dialog")
        assert "JSONDecodeError" in app.screen.message
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), "the runs screen")
        assert app.is_running
        await pilot.press("down")
        assert runs_table(app).row_count == 1


SOAK_RUNS = 300


def held() -> tuple[int, int]:
    """(objects the collector tracks, detail screens and headers among them), after a collection."""
    gc.collect()
    objects = gc.get_objects()
    return len(objects), sum(isinstance(o, RunDetailScreen | Header) for o in objects)


@pytest.mark.slow
@in_event_loop
async def test_opening_and_closing_300_runs_and_every_screen_releases_them(orch_home: Path) -> None:
    ids = finished_runs(orch_home, SOAK_RUNS)
    app = make_app(orch_home)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot, RunsScreen)
        base = app.screen
        checkpoints = []
        for n, run_id in enumerate(ids):
            opens = [lambda: app.open_run(run_id)]  # noqa: B023 (called in this iteration)
            if n % 50 == 0:  # and now and then every other screen
                opens += [lambda: app.open_logs(run_id), app.action_schedules]  # noqa: B023
            for open_screen in opens:
                open_screen()
                screen = app.screen
                assert isinstance(screen, PollingScreen)
                while not screen.loads:  # the first snapshot is posted at once
                    await asyncio.sleep(0.002)
                await app.pop_screen()
            if n in (SOAK_RUNS // 3, SOAK_RUNS - 1):
                await pilot.pause()
                checkpoints.append(held())
        assert app.is_running and app.screen is base, (app.screen_stack, app.outcomes[-3:])
        assert not [outcome for outcome in app.outcomes if not outcome.ok]
    (objects_then, screens_then), (objects_now, screens_now) = checkpoints
    # A few closed screens wait on the collector or a finished worker, whatever the count
    assert screens_then < 30 and screens_now < 30, (screens_then, screens_now)
    per_run = (objects_now - objects_then) / (SOAK_RUNS - 1 - SOAK_RUNS // 3)
    # Each closed screen kept would add ~2,000 objects; what the collector has not yet
    # freed at a checkpoint varies by a few thousand in all.
    assert per_run < 200, f"{per_run:.0f} more objects held per run opened"


# -- control characters ---------------------------------------------------------------------

CLEAR = "\x1b[2J\x1b[H"
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def test_printable_shows_control_characters_as_escapes_and_leaves_text_alone() -> None:
    assert printable(f"a{CLEAR}b") == "a\\x1b[2J\\x1b[Hb"
    assert printable("bell\x07 cr\r csi\x9b del\x7f rtl\u202e") == (
        "bell\\x07 cr\\x0d csi\\x9b del\\x7f rtl\\u202e"
    )
    assert printable("two\r\nlines\tand a tab") == "two\nlines\tand a tab"
    plain = "naïve café ✓ 東京 [bold]"
    assert printable(plain) is plain


def hostile_run(home: Path) -> str:
    """A failed run whose every user-written string holds an escape sequence."""
    store = Store(home)
    run_id = "e" * 32
    store.create_flow_run(
        run_id=run_id,
        flow_name=f"etl{CLEAR}",
        name=f"run{CLEAR}",
        parameters='{"text": "\\u001b[2J"}',
        now=1_000,
    )
    store.set_flow_run_state(run_id, StateName.RUNNING, now=1_001)
    store.save_task_run(
        TaskRun(
            flow_run_id=run_id,
            position=0,
            id="f" * 32,
            standalone=0,
            task_key="load@flows.py",
            name=f"load{CLEAR}",
            dynamic_key="0",
            state="FAILED",
            state_message=None,
            attempts=1,
            inputs_hash=None,
            cache_key=None,
            result_ref=None,
            result_serializer=None,
            result_data=None,
            error_type="ValueError",
            error_message=f"bad {CLEAR}",
            traceback=f"Traceback...\nValueError: bad {CLEAR}",
            created=1_002,
            started=1_002,
            ended=1_003,
        )
    )
    store.set_flow_run_state(run_id, StateName.FAILED, message=f"failed {CLEAR}", now=1_004)
    store.write_logs([(run_id, None, None, 1_001.5, 30, "etl", f"printed {CLEAR}\r\x07")])
    store.close()
    return run_id


def drawn(app: object) -> str:
    """Every character the current screen sends to the terminal, as text."""
    strips = app.screen._compositor.render_strips()  # type: ignore[attr-defined]
    return "\n".join(strip.text for strip in strips)


async def shows(pilot: Pilot[None], text: str) -> str:
    """What the screen draws once it shows `text`."""
    await wait_for(pilot, lambda: text in drawn(pilot.app), repr(text))
    return drawn(pilot.app)


@in_event_loop
async def test_no_screen_draws_a_control_character_a_user_wrote(orch_home: Path) -> None:
    run_id = hostile_run(orch_home)
    app = make_app(orch_home)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, RunsScreen)
        shown = await shows(pilot, "etl\\x1b[2J")  # the trends strip
        assert not CONTROL.search(shown), shown
        cells = [cell(app, run_id, "flow"), cell(app, run_id, "run")]
        assert cells == ["etl\\x1b[2J\\x1b[H", "run\\x1b[2J\\x1b[H"]
        app.open_run(run_id)
        await loaded(pilot, RunDetailScreen)
        shown = await shows(pilot, "load\\x1b[2J")
        assert not CONTROL.search(shown), shown
        await pilot.press("l")
        await loaded(pilot, LogsScreen)
        shown = await shows(pilot, "printed \\x1b[2J")
        assert not CONTROL.search(shown), shown


def test_a_log_line_is_formatted_printable(orch_home: Path) -> None:
    run_id = hostile_run(orch_home)
    store = Store(orch_home)
    (record,) = store.logs(run_id)
    store.close()
    assert format_log(record).endswith("Flow run - printed \\x1b[2J\\x1b[H\\x0d\\x07")


@in_event_loop
async def test_names_and_messages_are_drawn_as_written_never_as_markup(orch_home: Path) -> None:
    run_id = "b" * 32
    store = Store(orch_home)
    flow_run(store, run_id, StateName.FAILED, flow_name="[bold]etl", name="[red]nightly[/red]")
    error = {"error_type": "ValueError", "error_message": "[i]bad[/i] row"}
    store.save_task_run(task_run(run_id, 0, "FAILED", name="[b]load", **error))
    store.close()
    app = make_app(orch_home)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot, RunsScreen)
        shown = await shows(pilot, "[red]nightly[/red]")
        assert "[bold]etl" in shown
        app.open_run(run_id)
        await loaded(pilot, RunDetailScreen)
        shown = await shows(pilot, "ValueError: [i]bad[/i] row")
        assert "[b]load" in shown
