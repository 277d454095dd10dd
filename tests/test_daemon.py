"""Schedules in a project and `orch daemon`: the tick with a fake clock, then real processes.

The tick tests pass `now` and a fake `launch`, so they run without sleeping or child
processes. The process tests start `python -m orchlite.cli daemon` in a temporary project
and watch the store; each waits for what it needs instead of sleeping a fixed time.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from orchlite.daemon import Daemon, Requests, serve
from orchlite.errors import UsageError
from orchlite.processes import pid_alive
from orchlite.project import load_schedules, parse_span
from orchlite.store import Store
from tests.helpers import orch, start_daemon, stop_daemon, wait_for
from tests.helpers import write as _write
from tests.helpers.daemon import FakeLaunch, FakeRun
from tests.helpers.daemon import runs as _runs

T0 = dt.datetime(2026, 3, 1, 12, 0, 0, 500_000, tzinfo=dt.timezone.utc)


def _daemon(root: Path, **kwargs: Any) -> tuple[Daemon, FakeLaunch]:
    launch = FakeLaunch()
    store = Store(root / ".orch")
    return Daemon(store, root, launch=launch, log=lambda _: None, **kwargs), launch


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

        @flow
        def report(day: str = ""):
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
        overlap = "allow"
        grace_seconds = 5
        parameters = { day = "{scheduled_time:%Y-%m-%d %H:%M:%S}" }
        """,
    )
    return tmp_path


# -- reading schedules ---------------------------------------------------------------------


def test_schedules_are_read_from_decorators_and_orch_toml_without_running_code(
    tmp_path: Path,
) -> None:
    _write(
        tmp_path,
        "flows.py",
        """
        import sys
        sys.exit("importing this file is not allowed")
        from orchlite import flow, cron, interval as every
        N = 3

        @flow(schedules=[cron("0 3 * * *", timezone="Europe/Berlin"), every(minutes=15)])
        def nightly():
            pass

        @flow(schedules=[every(minutes=N)])
        def dynamic():
            pass
        """,
    )
    _write(tmp_path, "broken.py", "def broken(:\n")
    _write(
        tmp_path,
        "orch.toml",
        """
        [[schedule]]
        target = "flows.py:nightly"
        interval = "1h30m"
        name = "ok"

        [[schedule]]
        target = "flows.py:nightly"
        cron = "61 * * * *"
        name = "bad-cron"

        [[schedule]]
        interval = 60

        [[schedule]]
        target = "flows.py:nightly"
        cron = "0 * * * *"
        timezone = "Mars/Olympus"

        [[schedule]]
        target = "flows.py:nightly"
        interval = 60
        overlap = "sometimes"

        [[schedule]]
        target = "flows.py:missing"
        interval = 60
        """,
    )
    entries, problems = load_schedules(tmp_path)
    described = sorted((e.source, e.target, str(e.schedule.__class__.__name__)) for e in entries)
    assert described == [
        ("code", "flows.py:nightly", "Cron"),
        ("code", "flows.py:nightly", "Interval"),
        ("orch.toml", "flows.py:nightly", "Interval"),
    ]
    messages = "\n".join(str(p) for p in problems)
    assert "broken.py: line 1" in messages
    assert "flows.py:dynamic" in messages and "literal" in messages
    assert "schedule #2 ('bad-cron')" in messages and "minute" in messages
    assert "schedule #3: missing target" in messages
    assert "schedule #4: unknown time zone 'Mars/Olympus'" in messages
    assert "schedule #5: invalid overlap 'sometimes'" in messages
    assert "schedule #6: target 'flows.py:missing': no flow 'missing'" in messages
    assert len(problems) == 7


def test_spans_and_the_flow_option() -> None:
    assert parse_span("15m") == 900
    assert parse_span("1h30m") == 5400
    assert parse_span(2.5) == 2.5
    with pytest.raises(UsageError):
        parse_span("soon")
    from orchlite import cron, flow, interval

    @flow(schedules=[cron("0 3 * * *", timezone="Europe/Berlin"), interval(minutes=15)])
    def scheduled() -> None:
        pass

    assert [type(s).__name__ for s in scheduled.schedules] == ["Cron", "Interval"]
    assert scheduled.with_options(name="x").schedules == scheduled.schedules
    with pytest.raises(TypeError):
        flow(schedules=["0 3 * * *"])(lambda: None)


# -- the tick, with a fake clock -----------------------------------------------------------


def test_due_slots_are_claimed_once(project: Path) -> None:
    daemon, launch = _daemon(project)
    assert daemon.tick(T0).fired == []  # new schedules: marked now, nothing due yet
    later = T0 + dt.timedelta(seconds=25)
    report = daemon.tick(later)
    # Two slots (12:00:10, 12:00:20) of two schedules; every_ten's second is skipped
    # (overlap=skip: its first run has not ended).
    assert (len(report.fired), len(report.skipped)) == (3, 1)
    assert sorted(report.started) == sorted(report.fired)
    assert len(launch.calls) == 3
    params = sorted(p["day"] for _, t, p in launch.calls if t == "flows.py:report")
    assert params == ["2026-03-01 12:00:10", "2026-03-01 12:00:20"]

    again = daemon.tick(later)
    assert again.fired == again.started == again.skipped == []
    assert len(launch.calls) == 3


def test_two_daemons_on_one_store_claim_each_slot_once(project: Path) -> None:
    first, _launch_1 = _daemon(project)
    second, _launch_2 = _daemon(project)
    first.tick(T0, start=False)
    second.tick(T0, start=False)
    later = T0 + dt.timedelta(seconds=25)
    reports = [first.tick(later, start=False), second.tick(later, start=False)]
    claimed = [r for report in reports for r in report.fired + report.skipped]
    assert len(claimed) == len(set(claimed)) == 4
    # A daemon whose mark is behind (it lost the race) still claims nothing twice.
    third, _ = _daemon(project)
    third.entries, third.problems = load_schedules(project)
    assert third.claim_due(later).fired == []


def test_overlap_skip_max_runs_and_late(project: Path) -> None:
    daemon, launch = _daemon(project, max_runs=1)
    daemon.tick(T0)
    report = daemon.tick(T0 + dt.timedelta(seconds=25))
    # every_ten: 12:00:10 fires, 12:00:20 is skipped (overlap=skip: the first has not ended).
    assert len(report.fired) == 3 and len(report.skipped) == 1
    skipped = daemon.store.get_flow_run(report.skipped[0])
    assert skipped.state == "SKIPPED" and "overlap=skip" in (skipped.state_message or "")
    # max_runs=1: one run started, the others wait SCHEDULED for a later tick.
    assert len(report.started) == 1
    waiting = [s.run_id for s in daemon.store.waiting_slots() if s.run_id not in launch.runs]
    assert len(waiting) == 2
    launch.runs[report.started[0]].alive = False
    nxt = daemon.tick(T0 + dt.timedelta(seconds=26))
    assert nxt.finished == report.started and len(nxt.started) == 1
    # report's grace is 5 s: its 12:00:10 slot, started at 12:00:35 or :36, is LATE first.
    (late,) = [r for r, t, p in launch.calls if p.get("day") == "2026-03-01 12:00:10"]
    assert [h.state for h in daemon.store.history(late)][:2] == ["SCHEDULED", "LATE"]


def test_serve_reads_the_time_from_the_daemons_clock_and_stops_on_request(project: Path) -> None:
    """The loop `orch daemon` runs, with a fake clock (5 s per reading) and a fake launch
    whose first start asks the loop to stop, as SIGTERM would."""
    requests = Requests()
    readings = iter(range(0, 10_000, 5))

    class StopAtFirstStart(FakeLaunch):
        def __call__(
            self,
            run_id: str,
            target: str,
            params: dict[str, Any],
            *,
            resume_from: str | None,
            env: dict[str, str],
        ) -> FakeRun:
            requests.stop = True
            run = super().__call__(run_id, target, params, resume_from=resume_from, env=env)
            run.alive = False  # ends without adopting its run, as a target that cannot load
            return run

    launch = StopAtFirstStart()
    daemon = Daemon(
        Store(project / ".orch"),
        project,
        launch=launch,
        log=lambda _: None,
        clock=lambda: T0.timestamp() + next(readings),
    )
    serve(daemon, requests, tick=0.01, grace=0)
    assert launch.calls and daemon.in_flight == {}
    days = [p["day"] for _, target, p in launch.calls if target == "flows.py:report"]
    assert days and all(day.startswith("2026-03-01 12:0") for day in days)  # fake time
    for run_id in launch.runs:
        run = daemon.store.get_flow_run(run_id)
        assert run.state == "CRASHED" and "before the flow started" in (run.state_message or "")


# -- the daemon as a process ---------------------------------------------------------------


@pytest.mark.slow  # a daemon's life: several seconds of real schedules
def test_the_daemon_fires_schedules_in_child_processes(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "flows.py",
        """
        from orchlite import flow, interval

        @flow(schedules=[interval(seconds=1)])
        def beat():
            return "beat"

        @flow
        def stamped(day: str):
            return day
        """,
    )
    _write(tmp_path, "broken.py", "from orchlite import flow\n@flow(\ndef nope(:\n")
    _write(
        tmp_path,
        "orch.toml",
        """
        [[schedule]]
        target = "flows.py:stamped"
        interval = 1
        parameters = { day = "{scheduled_time:%Y-%m-%d}" }
        """,
    )
    daemon = start_daemon(tmp_path, grace=None)
    try:

        def completed() -> list[Any]:
            done = [r for r in _runs(tmp_path) if r.state == "COMPLETED"]
            targets = {r.target for r in done}
            return done if len(done) >= 3 and len(targets) == 2 else []

        done = wait_for(completed, what="scheduled runs to complete")
        assert all(r.trigger == "schedule" for r in done)
        stamped = next(r for r in done if r.target == "flows.py:stamped")
        assert json.loads(stamped.parameters)["day"].startswith("20")

        second = orch(tmp_path, "daemon", "--tick", "0.2")
        assert second.returncode == 2, second.stderr
        assert f"pid {daemon.pid}" in second.stderr

        status = json.loads(orch(tmp_path, "daemon", "status", "--json").stdout)
        assert status["running"] is True and status["pid"] == daemon.pid

        listing = orch(tmp_path, "schedules", "--json")
        assert listing.returncode == 3, listing.stderr  # broken.py: listed, and exit 3
        found = json.loads(listing.stdout)
        assert {s["target"] for s in found["schedules"]} == {"flows.py:beat", "flows.py:stamped"}
        assert [e["where"] for e in found["errors"]] == ["broken.py"]
        assert all(len(s["next"]) == 3 for s in found["schedules"])
        table = orch(tmp_path, "schedules")
        assert "flows.py:beat" in table.stdout and "broken.py" in table.stderr
    finally:
        started = time.monotonic()
        stop_daemon(daemon, timeout=10)
        assert time.monotonic() - started < 10
    log = (tmp_path / "daemon.log").read_text()
    fires = [line.split(" run ")[0] for line in log.splitlines() if "daemon: fire " in line]
    assert len(fires) == len(set(fires)) >= 3, log
    ids = [r.id for r in _runs(tmp_path)]
    assert len(ids) == len(set(ids))
    assert "not running" in orch(tmp_path, "daemon", "status").stdout


@pytest.mark.slow  # a daemon's life: several seconds of real schedules
def test_a_killed_daemons_run_dies_with_it_and_sigterm_cancels(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "flows.py",
        """
        import subprocess
        import sys
        import time
        from pathlib import Path
        from orchlite import flow, interval

        @flow(schedules=[interval(seconds=1)])
        def slow():
            helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
            Path(f"helper-{helper.pid}").touch()
            while Path("block").exists():
                time.sleep(0.05)
            helper.kill()
        """,
    )
    (tmp_path / "block").touch()
    daemon = start_daemon(tmp_path, grace=None)
    try:
        running = wait_for(
            lambda: [r for r in _runs(tmp_path) if r.state == "RUNNING" and r.pid],
            what="a running run",
        )[0]
        helper = int(
            wait_for(lambda: list(tmp_path.glob("helper-*")), what="the flow's helper")[
                0
            ].name.split("-")[1]
        )
        # An OOM kill, `kill -9`, a lost container: the run dies with its daemon, and the
        # process its code started too, instead of running on unsupervised.
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=10)
        crashed = wait_for(
            lambda: [r for r in _runs(tmp_path) if r.id == running.id and r.state == "CRASHED"],
            what="the run to end with its daemon",
        )[0]
        assert f"pid {daemon.pid}" in (crashed.state_message or ""), crashed.state_message
        wait_for(lambda: not pid_alive(running.pid), what="the run's process to be gone")
        wait_for(lambda: not pid_alive(helper), what="the helper to be gone")
        (tmp_path / "block").unlink()

        daemon = start_daemon(tmp_path, grace=0.5)
        wait_for(
            lambda: [r for r in _runs(tmp_path) if r.state == "COMPLETED"],
            what="the next slot to complete",
        )

        # SIGTERM with a run in flight: the daemon waits out its grace, then cancels it.
        (tmp_path / "block").touch()
        before = {r.id for r in _runs(tmp_path)}
        busy = wait_for(
            lambda: [r for r in _runs(tmp_path) if r.state == "RUNNING" and r.id not in before],
            what="another running run",
        )[0]
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=10) == 0
        final = {r.id: r.state for r in _runs(tmp_path)}
        assert final[busy.id] == "CANCELLED"
        assert not [s for s in final.values() if s in ("RUNNING", "PENDING", "CANCELLING")]
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        (tmp_path / "block").unlink(missing_ok=True)
    log = (tmp_path / "daemon.log").read_text()
    fires = [line.split(" run ")[0] for line in log.splitlines() if "daemon: fire " in line]
    assert len(fires) == len(set(fires)), log  # no slot fired twice across the kill


def test_sigterm_stops_an_idle_daemon_at_once(tmp_path: Path) -> None:
    _write(tmp_path, "orch.toml", '[[schedule]]\ntarget = "x.py:f"\ncron = "0 3 * * *"\n')
    daemon = start_daemon(tmp_path)
    started = time.monotonic()
    stop_daemon(daemon, timeout=10)
    assert time.monotonic() - started < 3
    assert "x.py" in (tmp_path / "daemon.log").read_text()  # the bad entry was reported
