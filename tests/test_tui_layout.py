"""`orch tui` at 80×24 and 200×50: what is essential fits (SVG snapshots), and the keys
every screen offers stay in the footer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from test_tui import (
    FLOWS,
    SCHEDULED_TOML,
    SNAP_NOW,
    fixed_store,
    loaded,
    runs_table,
    snap_compare_utc,
    wait_for,
)
from test_tui_health import health_shown, health_store
from test_tui_session import drawn
from textual.pilot import Pilot

from orchlite.states import StateName
from orchlite.store import Store
from orchlite.tui.detail_screen import RunDetailScreen
from orchlite.tui.graph_screen import RunGraphScreen
from orchlite.tui.runs_screen import RunsScreen
from orchlite.tui.schedules_screen import SchedulesScreen
from orchlite.tui.task_screen import TaskRunScreen
from tests.helpers.store_rows import task_run

__all__ = ["snap_compare_utc"]  # a fixture, used by name

SIZES = [(80, 24), (200, 50)]
LONG = "nightly-warehouse-rebuild-with-a-name-far-too-long-for-any-terminal-column"


def wide_store(home: Path) -> str:
    """`fixed_store` and a run with a long name, a CJK and emoji task, and a 0 ms task."""
    failed = fixed_store(home)
    store = Store(home)
    run_id = "4" * 32
    store.create_flow_run(
        run_id=run_id,
        flow_name="warehouse",
        name=LONG,
        parameters="{}",
        state=StateName.RUNNING,
        now=SNAP_NOW - 60,
    )
    for position, name in enumerate(("数据清洗🚀", "noop")):
        started = SNAP_NOW - 50 + position * 10
        ended = started + (0.0 if name == "noop" else 5.0)
        store.save_task_run(
            task_run(run_id, position, name=name, created=started, started=started, ended=ended),
            [("COMPLETED", None, ended)],
        )
    store.set_flow_run_state(run_id, StateName.COMPLETED, now=SNAP_NOW - 30)
    store.close()
    return failed


async def runs_shown(pilot: Pilot[None]) -> None:
    await loaded(pilot, RunsScreen)
    table = runs_table(pilot.app)
    await wait_for(pilot, lambda: table.row_count == 4, "every run")
    await wait_for(pilot, lambda: not table.columns["run"].auto_width, "fitted columns")
    await pilot.pause()


@pytest.mark.snapshot
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_snapshot_runs_screen_fits(
    orch_home: Path, snap_compare_utc: Callable[..., bool], size: tuple[int, int]
) -> None:
    from orchlite.tui.app import make_app

    wide_store(orch_home)
    app = make_app(orch_home, clock=lambda: SNAP_NOW)
    assert snap_compare_utc(app, terminal_size=size, run_before=runs_shown)


@pytest.mark.snapshot
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_snapshot_detail_screen_fits(
    orch_home: Path, snap_compare_utc: Callable[..., bool], size: tuple[int, int]
) -> None:
    from orchlite.tui.app import make_app

    wide_store(orch_home)

    async def open_wide(pilot: Pilot[None]) -> None:
        await runs_shown(pilot)
        pilot.app.open_run("4" * 32)
        await loaded(pilot, RunDetailScreen)
        await wait_for(pilot, lambda: pilot.app.screen.preview, "the result preview")
        await pilot.pause()

    app = make_app(orch_home, clock=lambda: SNAP_NOW)
    assert snap_compare_utc(app, terminal_size=size, run_before=open_wide)


@pytest.mark.snapshot
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_snapshot_schedules_screen_fits(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    orch_home: Path,
    snap_compare_utc: Callable[..., bool],
    size: tuple[int, int],
) -> None:
    from orchlite.project import load_schedules
    from orchlite.tui.app import make_app

    (tmp_path / "flows.py").write_text(FLOWS)
    (tmp_path / "orch.toml").write_text(SCHEDULED_TOML)
    monkeypatch.chdir(tmp_path)
    (entry,) = load_schedules(tmp_path)[0]
    store = Store(orch_home)
    store.claim_slot(
        run_id="cd" * 16,
        key=entry.key,
        slot=SNAP_NOW - 3600,
        flow_name="hello",
        name="hello-slot",
        target=entry.target,
        parameters="{}",
        now=SNAP_NOW - 3600,
    )
    store.close()

    async def schedules(pilot: Pilot[None]) -> None:
        await loaded(pilot, RunsScreen)
        await pilot.press("S")
        await loaded(pilot, SchedulesScreen)
        table = pilot.app.screen.query_one("#schedules")
        await wait_for(pilot, lambda: not table.columns["next"].auto_width, "fitted columns")
        await pilot.pause()

    app = make_app(orch_home, clock=lambda: SNAP_NOW)
    assert snap_compare_utc(app, terminal_size=size, run_before=schedules)


GRAPH_RUN = "5" * 32


def graph_store(home: Path) -> None:
    """A failed run: extract, a map of six doubles (one failed after a retry) waiting for
    it, a subflow, and a total that waited for the doubles and so failed too."""
    store = Store(home)
    start = SNAP_NOW - 300
    store.create_flow_run(
        run_id=GRAPH_RUN,
        flow_name="pipeline",
        name="pipeline-7",
        parameters='{"day": "2027-01-15"}',
        state=StateName.RUNNING,
        now=start,
    )

    def record(position: int, state: str, name: str, at: float, **fields: object) -> None:
        run = task_run(
            GRAPH_RUN,
            position,
            state,
            id=f"{position + 0xA0:x}" * 16,
            task_key=f"{name.rpartition('-')[0]}@pipelines/etl.py",
            name=name,
            inputs_hash=f"{position:02x}" * 32,
            created=at,
            started=at,
            ended=at + 1.5,
            **fields,
        )
        history = [("PENDING", None, at), ("RUNNING", None, at)]
        if name == "double-2":
            retry = "attempt 1 failed (ValueError: row 3 has no amount); retrying in 2 s"
            history += [("RETRYING", retry, at + 0.5), ("RUNNING", "attempt 2", at + 2.5)]
            run.ended = at + 3.0
        store.save_task_run(run, [*history, (state, run.state_message, run.ended or at)])

    record(0, "COMPLETED", "extract-0", start + 1, result_preview="[1, 2, 3, 4, 5, 6]")
    for n in range(6):
        failed = n == 2
        record(
            n + 1,
            "FAILED" if failed else "COMPLETED",
            f"double-{n}",
            start + 3 + n * 0.1,
            upstream="[0]",
            attempts=2 if failed else 1,
            cache_key="v1:sha256:" + f"{n:x}" * 64 if not failed else None,
            result_preview=None if failed else str(2 * (n + 1)),
            result_serializer=None if failed else "json",
            error_type="ValueError" if failed else None,
            error_message="row 3 has no amount" if failed else None,
            traceback="Traceback...\nValueError: row 3 has no amount" if failed else None,
            state_message="ValueError: row 3 has no amount" if failed else None,
        )
    store.create_flow_run(
        run_id="6" * 32,
        flow_name="report",
        name="report-1",
        parameters="{}",
        trigger="subflow",
        parent_run_id=GRAPH_RUN,
        parent_position=7,
        now=start + 8,
    )
    store.set_flow_run_state("6" * 32, StateName.RUNNING, attempts=1, now=start + 8)
    store.set_flow_run_state("6" * 32, StateName.COMPLETED, now=start + 9)
    record(
        8,
        "FAILED",
        "total-0",
        start + 10,
        upstream="[1, 2, 3, 4, 5, 6]",
        result_serializer=None,
        error_type="UpstreamTaskError",
        error_message="upstream task run 'double-2' ended FAILED",
        state_message="UpstreamTaskError: upstream task run 'double-2' ended FAILED",
    )
    store.set_flow_run_state(GRAPH_RUN, StateName.FAILED, now=start + 12)
    store.close()


@pytest.mark.snapshot
def test_snapshot_graph_screen_fits(orch_home: Path, snap_compare_utc: Callable[..., bool]) -> None:
    from orchlite.tui.app import make_app

    graph_store(orch_home)

    async def open_graph(pilot: Pilot[None]) -> None:
        await loaded(pilot, RunsScreen)
        pilot.app.open_run(GRAPH_RUN)
        await loaded(pilot, RunDetailScreen)
        await pilot.press("g")
        await loaded(pilot, RunGraphScreen)
        await pilot.press("down", "down")  # the map group
        await pilot.pause()

    app = make_app(orch_home, clock=lambda: SNAP_NOW)
    assert snap_compare_utc(app, terminal_size=(80, 24), run_before=open_graph)


@pytest.mark.snapshot
def test_snapshot_task_screen_fits(orch_home: Path, snap_compare_utc: Callable[..., bool]) -> None:
    from orchlite.tui.app import make_app

    graph_store(orch_home)

    async def open_task(pilot: Pilot[None]) -> None:
        await loaded(pilot, RunsScreen)
        pilot.app.open_run(GRAPH_RUN)
        await loaded(pilot, RunDetailScreen)
        await pilot.press("g")
        await loaded(pilot, RunGraphScreen)
        await pilot.press("down", "down", "enter")  # the map group's failed task run
        await loaded(pilot, TaskRunScreen)
        await pilot.pause()

    app = make_app(orch_home, clock=lambda: SNAP_NOW)
    assert snap_compare_utc(app, terminal_size=(80, 24), run_before=open_task)


@pytest.mark.snapshot
def test_snapshot_health_screen_fits_80x24(
    orch_home: Path, snap_compare_utc: Callable[..., bool]
) -> None:
    """Every column in view at 80 columns, the last failure's message cut to fit."""
    from orchlite.tui.app import make_app

    health_store(orch_home)

    async def health(pilot: Pilot[None]) -> None:
        await health_shown(pilot)

    app = make_app(orch_home, clock=lambda: SNAP_NOW)
    assert snap_compare_utc(app, terminal_size=(80, 24), run_before=health)


@pytest.mark.parametrize("screen", ["runs", "detail", "logs"])
def test_the_footer_shows_the_keys_of_every_screen_first_at_80_columns(
    orch_home: Path, screen: str
) -> None:
    import asyncio

    from orchlite.tui.app import make_app
    from orchlite.tui.logs_screen import LogsScreen

    wide_store(orch_home)

    async def footer() -> str:
        app = make_app(orch_home, clock=lambda: SNAP_NOW)
        async with app.run_test(size=(80, 24)) as pilot:
            await runs_shown(pilot)
            if screen != "runs":
                app.open_run("4" * 32)
                await loaded(pilot, RunDetailScreen)
            if screen == "logs":
                app.open_logs("4" * 32)
                await loaded(pilot, LogsScreen)
            await pilot.pause()
            return drawn(app).splitlines()[-1]

    shown = asyncio.run(footer())
    for key in ("q Quit", "? Help", "n Run now", "S Schedules"):
        assert key in shown, shown
