"""Schedules by name: their names, pausing and resuming them, and jitter, through the
daemon's tick with a fake clock and a fake launch (no sleeping, no child processes)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from orchlite.daemon import Daemon
from orchlite.errors import UsageError
from orchlite.project import load_schedules
from orchlite.schedule_control import find_schedule, pause, resume, run_request, schedule_names
from orchlite.schedule_runs import slot_id
from orchlite.schedule_slots import jitter_delay
from orchlite.store import Store
from tests.helpers import write as _write
from tests.helpers.daemon import FakeLaunch

T0 = dt.datetime(2026, 3, 1, 12, 0, 0, 500_000, tzinfo=dt.timezone.utc)


def _daemon(root: Path) -> tuple[Daemon, FakeLaunch]:
    launch = FakeLaunch()
    return Daemon(Store(root / ".orch"), root, launch=launch, log=lambda _: None), launch


@pytest.fixture
def project(tmp_path: Path) -> Path:
    _write(
        tmp_path,
        "flows.py",
        """
        from orchlite import flow, interval

        @flow(schedules=[interval(seconds=10, catchup="all")])
        def every_ten():
            pass

        @flow(schedules=[interval(seconds=10, name="report"), interval(seconds=20)])
        def report(day: str = "", size: int = 1):
            return day
        """,
    )
    _write(
        tmp_path,
        "orch.toml",
        """
        [[schedule]]
        target = "flows.py:report"
        interval = "10s"
        catchup = "all"
        jitter_seconds = 8
        overlap = "allow"
        parameters = { day = "{scheduled_time:%Y-%m-%d}", size = 3 }
        """,
    )
    return tmp_path


def _fired_targets(daemon: Daemon, report: Any) -> list[str]:
    return sorted(daemon.store.get_flow_run(r).target or "" for r in report.fired)


def test_each_schedule_has_one_name_given_names_first(project: Path) -> None:
    entries, problems = load_schedules(project)
    assert not problems
    names = schedule_names(entries)
    # `name="report"` keeps its name; report's unnamed schedules get "report-2", "report-3".
    assert sorted(names) == ["every-ten", "report", "report-2", "report-3"]
    assert find_schedule(project, "every_ten")[0] == "every-ten"  # either spelling
    with pytest.raises(UsageError, match=r"no schedule named 'reprot'; did you mean 'report'"):
        find_schedule(project, "reprot")
    with pytest.raises(UsageError, match="its schedules: every-ten, report, report-2"):
        find_schedule(project, "zzz")


def test_a_paused_schedule_claims_nothing_and_resuming_skips_what_it_missed(
    project: Path,
) -> None:
    home = project / ".orch"
    daemon, _launch = _daemon(project)
    assert daemon.tick(T0).fired == []  # new schedules: marked now
    assert pause(home, project, "every_ten") == ("every-ten", True)
    assert pause(home, project, "every-ten") == ("every-ten", False)
    report = daemon.tick(T0 + dt.timedelta(seconds=25))
    assert "flows.py:every_ten" not in _fired_targets(daemon, report)
    # Resumed at 12:00:45: its 12:00:30 and 12:00:40 slots passed while paused, and are not
    # caught up (though its catchup is "all"); the 12:00:50 slot fires.
    resumed_at = T0 + dt.timedelta(seconds=45)
    assert resume(home, project, "every-ten", now=resumed_at.timestamp()) == ("every-ten", True)
    assert resume(home, project, "every-ten")[1] is False
    report = daemon.tick(resumed_at)
    assert "flows.py:every_ten" not in _fired_targets(daemon, report)
    report = daemon.tick(T0 + dt.timedelta(seconds=55))
    assert _fired_targets(daemon, report).count("flows.py:every_ten") == 1
    (run,) = [r for r in report.fired if daemon.store.get_flow_run(r).target.endswith("ten")]
    assert daemon.store.slot_time(run) == (T0 + dt.timedelta(seconds=49.5)).timestamp()


def test_a_jittered_slot_starts_within_its_jitter_and_keeps_its_slot(project: Path) -> None:
    daemon, launch = _daemon(project)
    daemon.tick(T0)
    slot = dt.datetime(2026, 3, 1, 12, 0, 10, tzinfo=dt.timezone.utc)
    (entry,) = [e for e in daemon.entries if e.schedule.jitter_seconds]
    run_id = slot_id(entry.key, slot)
    delay = jitter_delay(entry.schedule, run_id)
    assert 0 <= delay <= 8
    started_at = None
    now = slot
    while now <= slot + dt.timedelta(seconds=9):
        report = daemon.tick(now)
        if run_id in report.started:
            started_at = now
        now += dt.timedelta(seconds=0.25)
    assert started_at is not None
    assert slot + dt.timedelta(seconds=delay) <= started_at
    assert started_at < slot + dt.timedelta(seconds=delay + 0.25)
    run = daemon.store.get_flow_run(run_id)
    assert run.trigger == "schedule" and run.state == "SCHEDULED"  # not LATE
    assert daemon.store.slot_time(run_id) == slot.timestamp()
    (params,) = [p for r, _t, p in launch.calls if r == run_id]
    assert params == {"day": "2026-03-01", "size": 3}


def test_run_request_carries_the_schedules_parameters_under_given_ones(project: Path) -> None:
    now = dt.datetime(2026, 5, 4, 3, 2, tzinfo=dt.timezone.utc)
    (name,) = [
        n
        for n, e in zip(*_named(project), strict=True)
        if e.source == "orch.toml"  # the one with parameters
    ]
    request = run_request(project, name, now, {"size": "7"})
    assert request.target == "flows.py:report"
    assert request.params == {"day": "2026-05-04", "size": "7"}


def _named(project: Path) -> tuple[list[str], list[Any]]:
    entries, _ = load_schedules(project)
    return schedule_names(entries), entries
