"""Flow health: the percentiles and trends (pure), and the numbers of runs recorded
through the store API, late, skipped and failed ones among them."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchlite.errors import UsageError
from orchlite.health import WINDOWS, change, flow_health, percentile, window_seconds
from orchlite.states import StateName
from orchlite.store import HealthRun, Store

NOW = 1_800_000_000.0
DAY = 86_400.0


def test_percentiles_interpolate_between_the_nearest_ranks() -> None:
    assert percentile([], 50) is None
    assert percentile([4.0], 95) == 4.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([float(n) for n in range(1, 101)], 95) == pytest.approx(95.05)
    assert percentile([1.0, 2.0], 0) == 1.0
    assert percentile([1.0, 2.0], 100) == 2.0


def test_a_change_is_relative_to_the_previous_value_and_needs_both() -> None:
    assert change(12.0, 10.0) == pytest.approx(0.2)
    assert change(5.0, 10.0) == pytest.approx(-0.5)
    assert change(10.0, 10.0) == 0.0
    assert change(None, 10.0) is None
    assert change(10.0, None) is None
    assert change(1.0, 0.0) is None


def test_windows_are_named_and_an_unknown_one_is_a_usage_error() -> None:
    assert window_seconds("24h") == DAY
    assert window_seconds("7d") == 7 * DAY
    assert window_seconds("30d") == 30 * DAY
    assert list(WINDOWS) == ["24h", "7d", "30d"]
    with pytest.raises(UsageError, match="use one of 24h, 7d, 30d"):
        window_seconds("1y")


def row(
    flow: str, state: str, created: float, took: float | None = 10.0, **more: object
) -> HealthRun:
    started = None if took is None else created + 1
    fields = {
        "flow_name": flow,
        "state": state,
        "created": created,
        "started": started,
        "ended": None if started is None or took is None else started + took,
        "slot": None,
        "message": None,
    }
    return HealthRun(**(fields | more))  # type: ignore[arg-type]


def test_only_finished_runs_count_in_the_rate_and_only_ended_ones_in_durations() -> None:
    runs = [
        row("etl", "COMPLETED", NOW - 100, 10.0),
        row("etl", "CACHED", NOW - 90, 30.0),
        row("etl", "FAILED", NOW - 80, 20.0, message="boom"),
        row("etl", "CANCELLED", NOW - 70, 999.0),
        row("etl", "RUNNING", NOW - 60, None),
        row("etl", "SKIPPED", NOW - 50, None),
    ]
    (etl,) = flow_health(runs, now=NOW, window=DAY)
    assert (etl.runs, etl.finished, etl.failed, etl.skipped) == (5, 4, 1, 1)
    assert etl.failure_rate == 0.25
    assert etl.p50 == 20.0
    assert etl.p95 == pytest.approx(29.0)
    assert etl.last_failure == "boom"
    assert etl.p50_change is None  # nothing in the window before


def test_trends_compare_with_the_window_before_and_older_runs_are_ignored() -> None:
    runs = [
        row("etl", "COMPLETED", NOW - 3 * DAY, 1000.0),  # before both windows
        row("etl", "COMPLETED", NOW - 1.5 * DAY, 10.0),
        row("etl", "COMPLETED", NOW - 1.3 * DAY, 10.0),
        row("etl", "COMPLETED", NOW - 1.2 * DAY, 10.0),
        row("etl", "COMPLETED", NOW - 0.5 * DAY, 15.0),
        row("etl", "COMPLETED", NOW - 0.3 * DAY, 15.0),
        row("etl", "COMPLETED", NOW - 0.2 * DAY, 15.0),
        row("once", "COMPLETED", NOW - 1.5 * DAY, 5.0),  # one run is no trend
        row("once", "COMPLETED", NOW - 0.5 * DAY, 50.0),
        row("once", "COMPLETED", NOW - 0.4 * DAY, 50.0),
        row("once", "COMPLETED", NOW - 0.3 * DAY, 50.0),
        row("gone", "COMPLETED", NOW - 1.5 * DAY, 5.0),  # ran only in the window before
        row("future", "COMPLETED", NOW + 10, 5.0),
    ]
    etl, gone, once = flow_health(runs, now=NOW, window=DAY)
    assert etl.runs == 3
    assert (once.p50, once.p50_change) == (50.0, None)
    assert etl.p50_change == pytest.approx(0.5)
    assert etl.p95_change == pytest.approx(0.5)
    assert (gone.flow, gone.runs, gone.p50, gone.failure_rate) == ("gone", 0, None, None)


def test_the_last_failure_is_the_newest_one() -> None:
    runs = [
        row("etl", "FAILED", NOW - 300, 5.0, message="first"),
        row("etl", "CRASHED", NOW - 200, 5.0, message="second"),
        row("etl", "COMPLETED", NOW - 100, 5.0),
    ]
    (etl,) = flow_health(runs, now=NOW, window=DAY)
    assert (etl.failed, etl.last_failure) == (2, "second")


def test_late_runs_started_past_their_slot_or_still_wait() -> None:
    runs = [
        row("etl", "COMPLETED", NOW - 500, 5.0, slot=NOW - 501),  # started 0 s after
        row("etl", "COMPLETED", NOW - 400, 5.0, slot=NOW - 600),  # started 201 s after
        row("etl", "LATE", NOW - 300, None, slot=NOW - 300),  # waiting for 300 s
        row("etl", "SCHEDULED", NOW - 10, None, slot=NOW - 10),  # waiting for 10 s
        row("etl", "COMPLETED", NOW - 200, 5.0),  # not scheduled
    ]
    (etl,) = flow_health(runs, now=NOW, window=DAY)
    assert etl.late == 2
    (strict,) = flow_health(runs, now=NOW, window=DAY, late_after=250.0)
    assert strict.late == 1


# -- through the store ---------------------------------------------------------------


def manual_run(
    store: Store,
    run_id: str,
    flow: str,
    state: StateName,
    *,
    created: float,
    took: float,
    message: str | None = None,
) -> None:
    store.create_flow_run(run_id=run_id, flow_name=flow, name=flow, parameters="{}", now=created)
    store.set_flow_run_state(run_id, StateName.RUNNING, now=created + 1)
    store.set_flow_run_state(run_id, state, message, now=created + 1 + took)


def scheduled_run(
    store: Store, run_id: str, *, slot: float, delay: float, skip: bool = False
) -> None:
    """A slot of schedule `etl/hourly` claimed at `slot`, started `delay` seconds after it."""
    store.claim_slot(
        run_id=run_id,
        key="etl/hourly",
        slot=slot,
        flow_name="etl",
        name="etl",
        target="flows.py:etl",
        parameters="{}",
        skip_reason="the previous run is still going" if skip else None,
        now=slot,
    )
    if skip:
        return
    store.set_flow_run_state(run_id, StateName.PENDING, now=slot + delay)
    store.set_flow_run_state(run_id, StateName.RUNNING, now=slot + delay)
    store.set_flow_run_state(run_id, StateName.COMPLETED, now=slot + delay + 4)


def test_the_store_reads_every_run_since_with_slots_and_failure_messages(orch_home: Path) -> None:
    store = Store(orch_home)
    manual_run(store, "a" * 32, "etl", StateName.COMPLETED, created=NOW - 3 * DAY, took=1)
    manual_run(store, "b" * 32, "etl", StateName.FAILED, created=NOW - 600, took=2, message="boom")
    manual_run(store, "c" * 32, "report", StateName.COMPLETED, created=NOW - 500, took=8)
    scheduled_run(store, "d" * 32, slot=NOW - 3600, delay=0.5)
    scheduled_run(store, "e" * 32, slot=NOW - 1800, delay=300)
    scheduled_run(store, "f" * 32, slot=NOW - 900, delay=0, skip=True)
    runs = store.health_runs(NOW - 2 * DAY)
    store.close()

    assert [(r.flow_name, r.state) for r in runs] == [
        ("etl", "COMPLETED"),
        ("etl", "COMPLETED"),
        ("etl", "SKIPPED"),
        ("etl", "FAILED"),
        ("report", "COMPLETED"),
    ]
    assert [r.slot for r in runs] == [NOW - 3600, NOW - 1800, NOW - 900, None, None]
    assert [r.message for r in runs] == [None, None, None, "boom", None]

    etl, report = flow_health(runs, now=NOW, window=DAY)
    assert (etl.runs, etl.failed, etl.late, etl.skipped) == (3, 1, 1, 1)
    assert etl.failure_rate == pytest.approx(1 / 3)
    assert etl.last_failure == "boom"
    assert etl.p50 == 4.0
    assert (report.runs, report.failed, report.p50) == (1, 0, 8.0)


def test_a_manual_run_of_a_scheduled_flow_has_no_slot(orch_home: Path) -> None:
    """Only runs a schedule started carry a slot: a retry's or a trigger's due time is not
    a schedule's slot, so it never makes a run late."""
    store = Store(orch_home)
    store.claim_trigger_run(
        run_id="1" * 32,
        key="etl/on-file",
        flow_name="etl",
        name="etl",
        target="flows.py:etl",
        parameters="{}",
        trigger="file",
        now=NOW - 1000,
    )
    (run,) = store.health_runs(NOW - DAY)
    store.close()
    assert (run.state, run.slot) == ("SCHEDULED", None)
