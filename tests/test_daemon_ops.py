"""Operating the daemon: captured child output, the systemd unit, SIGHUP, retention,
backfill, and the queue / cancel_previous overlap policies.

The overlap and retention tests drive `Daemon.tick` with a fake clock and a fake launch;
the others start real processes in a temporary project and wait for what they need.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import time
from pathlib import Path

import pytest

from orchlite.daemon import Daemon
from orchlite.declarations import load_retention_days, read_declarations
from orchlite.errors import UsageError
from orchlite.project import load_schedules
from orchlite.schedule_runs import slot_id
from orchlite.states import StateName
from orchlite.store import Store
from tests.helpers import orch, start_daemon, stop_daemon, wait_for
from tests.helpers import write as _write
from tests.helpers.daemon import FakeLaunch
from tests.helpers.daemon import runs as _runs

T0 = dt.datetime(2026, 3, 1, 12, 0, 0, 500_000, tzinfo=dt.timezone.utc)


# -- child output, --log-file, the systemd unit, SIGHUP --------------------------------------


def test_child_output_becomes_the_runs_logs_and_log_file(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "flows.py",
        """
        import sys
        from orchlite import flow, get_run_logger, interval

        @flow(schedules=[interval(seconds=1)])
        def chatty():
            print("hello from stdout")
            print("trouble on stderr", file=sys.stderr)
            get_run_logger().info("a run logger line")
        """,
    )
    daemon = start_daemon(tmp_path, "--log-file", "logs/daemon.txt")
    try:
        run = wait_for(
            lambda: [r for r in _runs(tmp_path) if r.state == "COMPLETED"], what="a completed run"
        )[0]

        def logged() -> str:
            out = orch(tmp_path, "logs", run.id).stdout
            return out if "hello from stdout" in out and "trouble on stderr" in out else ""

        text = wait_for(logged, what="the captured lines")
        assert text.count("a run logger line") == 1  # not stored twice (console + capture)
        warnings = orch(tmp_path, "logs", run.id, "--level", "WARNING").stdout
        assert "trouble on stderr" in warnings and "hello from stdout" not in warnings
    finally:
        stop_daemon(daemon, timeout=10)
    log_file = (tmp_path / "logs" / "daemon.txt").read_text()
    assert "orch daemon: fire flows.py:chatty" in log_file and "stopped" in log_file
    assert "hello from stdout" not in (tmp_path / "daemon.log").read_text()


def test_print_systemd_unit(tmp_path: Path) -> None:
    result = orch(tmp_path, "daemon", "--print-systemd-unit", "--grace", "20", "--max-runs", "3")
    assert result.returncode == 0, result.stderr
    unit = result.stdout
    lines = dict(line.split("=", 1) for line in unit.splitlines() if "=" in line)
    assert lines["WorkingDirectory"] == str(tmp_path.resolve())
    exec_start = lines["ExecStart"]
    assert Path(exec_start.split()[0]).is_absolute()
    assert "daemon --max-runs 3 --grace 20 --tick 1" in exec_start
    assert lines["Restart"] == "on-failure"
    assert lines["KillSignal"] == "SIGTERM"
    assert lines["TimeoutStopSec"] == "35"
    assert "[Install]" in unit and not (tmp_path / ".orch" / "daemon.pid").exists()


def test_sighup_reloads_what_the_watcher_cannot_see(tmp_path: Path) -> None:
    # orch.toml kept elsewhere (say, /etc) and linked into the project: editing it changes
    # nothing inside the watched folder, so only SIGHUP makes the daemon read it again.
    project, config = tmp_path / "project", tmp_path / "config"
    project.mkdir()
    config.mkdir()
    _write(project, "flows.py", "from orchlite import flow\n\n@flow\ndef beat():\n    return 1\n")
    _write(config, "orch.toml", '[[schedule]]\ntarget = "flows.py:beat"\ncron = "0 3 1 1 *"\n')
    (project / "orch.toml").symlink_to(config / "orch.toml")
    daemon = start_daemon(project)
    try:
        log = project / "daemon.log"
        wait_for(lambda: "loaded 1 schedule(s)" in log.read_text(), what="the first load")
        assert "watching" in log.read_text()  # in place before the first load
        with (config / "orch.toml").open("a") as out:
            out.write('\n[[schedule]]\ntarget = "flows.py:beat"\ninterval = 1\n')
        time.sleep(1.5)
        assert _runs(project) == [] and "loaded 2" not in log.read_text()
        daemon.send_signal(signal.SIGHUP)
        wait_for(lambda: "loaded 2 schedule(s)" in log.read_text(), what="the reload")
        wait_for(
            lambda: [r for r in _runs(project) if r.state == "COMPLETED"],
            what="a run of the new schedule",
        )
        assert daemon.poll() is None
    finally:
        stop_daemon(daemon, timeout=10)
    assert "SIGHUP: reloading" in (project / "daemon.log").read_text()


def _fired_targets(log: Path) -> list[str]:
    """The target of each `fire` line of the daemon's log, in order."""
    return [
        line.split("daemon: fire ")[1].split()[0]
        for line in log.read_text().splitlines()
        if "daemon: fire " in line
    ]


@pytest.mark.slow  # a daemon's life: several seconds of real schedules
def test_edited_flow_files_and_orch_toml_are_reloaded_and_broken_ones_kept(
    tmp_path: Path,
) -> None:
    """Edits seen by the watcher take effect at once; a broken edit keeps the last good one."""
    flows = """
        from orchlite import flow, interval

        @flow(schedules=[{schedules}])
        def ping():
            return 1

        @flow
        def pong():
            return 2
        """
    _write(tmp_path, "flows.py", flows.format(schedules="interval(seconds=1)"))
    _write(tmp_path, "orch.toml", "")
    daemon = start_daemon(tmp_path)
    log = tmp_path / "daemon.log"
    try:
        wait_for(lambda: "flows.py:ping" in _fired_targets(log), timeout=15, what="ping to fire")

        # The schedule moves from ping (in code) to pong (in orch.toml): ping stops, pong fires.
        _write(tmp_path, "flows.py", flows.format(schedules=""))
        _write(tmp_path, "orch.toml", '[[schedule]]\ntarget = "flows.py:pong"\ninterval = 1\n')
        wait_for(lambda: "flows.py:pong" in _fired_targets(log), timeout=15, what="pong to fire")
        pings = _fired_targets(log).count("flows.py:ping")
        wait_for(
            lambda: _fired_targets(log).count("flows.py:pong") >= 3, what="two more pong fires"
        )
        assert _fired_targets(log).count("flows.py:ping") == pings

        # A broken edit: one error line, and pong keeps firing on the last good orch.toml.
        _write(tmp_path, "orch.toml", '[[schedule]]\ntarget = "flows.py:pong"\ncron = "61 * *"\n')
        kept = wait_for(
            lambda: [line for line in log.read_text().splitlines() if "keeping" in line],
            what="the error line",
        )
        assert len(kept) == 1, kept
        assert "orch.toml schedule #1" in kept[0] and "61 * *" in kept[0], kept[0]
        assert "keeping what was last read from orch.toml (1 schedule(s))" in kept[0], kept[0]
        pongs = _fired_targets(log).count("flows.py:pong")
        wait_for(lambda: _fired_targets(log).count("flows.py:pong") > pongs, what="pong to fire on")

        # A syntax error in the flow file keeps its last good version too (no schedules).
        _write(tmp_path, "flows.py", "def broken(:\n")
        wait_for(lambda: "flows.py: line 1" in log.read_text(), what="the flow file's error")
        assert daemon.poll() is None
    finally:
        stop_daemon(daemon, timeout=10)
    fires = [line.split(" run ")[0] for line in log.read_text().splitlines() if " fire " in line]
    assert len(fires) == len(set(fires))  # no slot fired twice


def test_a_broken_file_keeps_its_last_good_declarations(tmp_path: Path) -> None:
    flows = "from orchlite import flow, interval\n\n@flow(schedules=[{}])\ndef a():\n    pass\n"
    _write(tmp_path, "flows.py", flows.format("interval(seconds=10)"))
    _write(tmp_path, "other.py", flows.format("interval(seconds=20)"))
    toml = '[[schedule]]\ntarget = "flows.py:a"\ncron = "{}"\n\n[daemon]\nretention_days = {}\n'
    alert = '\n[[alert]]\ncommand = "true"\n'
    _write(tmp_path, "orch.toml", toml.format("0 3 * * *", 7) + alert)
    lines: list[str] = []
    first = read_declarations(tmp_path, None, lines.append)
    assert len(first.schedules) == 3 and len(first.alerts.rules) == 1 and not lines

    # Broken edits: the syntax error and the bad cron keep each file's previous version.
    _write(tmp_path, "flows.py", "def broken(:\n")
    _write(tmp_path, "orch.toml", toml.format("0 3 * *", 1))
    second = read_declarations(tmp_path, first, lines.append)
    assert [s.key for s in second.schedules] == [s.key for s in first.schedules]
    assert second.retention_days == 7 and len(second.alerts.rules) == 1
    assert sorted(second.kept) == ["flows.py", "orch.toml"]
    assert len(lines) == 2, lines
    assert lines[0].startswith("error: flows.py: line 1") and "(1 schedule(s))" in lines[0]
    assert "0 3 * *" in lines[1] and "(1 schedule(s), 1 alert rule(s))" in lines[1]

    # Still broken: still kept, from the last good version.
    third = read_declarations(tmp_path, second, lines.append)
    assert [s.key for s in third.schedules] == [s.key for s in first.schedules]

    # Fixed, deleted: the new version counts; a deleted file takes its schedules with it.
    _write(tmp_path, "flows.py", flows.format("interval(seconds=30)"))
    (tmp_path / "other.py").unlink()
    _write(tmp_path, "orch.toml", "")
    fourth = read_declarations(tmp_path, third, lines.append)
    assert [(e.target, e.schedule.interval) for e in fourth.schedules] == [
        ("flows.py:a", dt.timedelta(seconds=30))
    ]
    assert fourth.kept == [] and fourth.retention_days == 30 and fourth.alerts.rules == []

    # A file never read without errors (a daemon starting) loads what it can.
    good = '[[schedule]]\ntarget = "flows.py:a"\ncron = "0 4 * * *"\n'
    _write(tmp_path, "orch.toml", good + good.replace("0 4 * * *", "bad"))
    fresh = read_declarations(tmp_path, None, lines.append)
    assert fresh.kept == [] and len(fresh.schedules) == 2  # flows.py's and the good entry
    assert any("bad" in str(p) for p in fresh.problems)


# -- backfill --------------------------------------------------------------------------------


@pytest.mark.slow  # a daemon's life: several seconds of real schedules
def test_backfill_runs_each_slot_once(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "flows.py",
        """
        from orchlite import flow

        @flow
        def daily(day: str):
            print("day", day)
            return day

        @flow
        def often():
            pass
        """,
    )
    _write(
        tmp_path,
        "orch.toml",
        """
        [[schedule]]
        target = "flows.py:daily"
        cron = "0 3 * * *"
        timezone = "Europe/Berlin"
        parameters = { day = "{scheduled_time:%Y-%m-%d %H:%M}" }

        [[schedule]]
        target = "flows.py:often"
        interval = "1m"
        """,
    )
    first = orch(
        tmp_path, "backfill", "flows.py:daily", "--start", "2026-03-01", "--end", "2026-03-02"
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("  claimed\n") == 2
    assert first.stdout.splitlines()[0].startswith("2026-03-01T03:00:00+01:00")
    runs = _runs(tmp_path)
    assert sorted(json.loads(r.parameters)["day"] for r in runs) == [
        "2026-03-01 03:00",
        "2026-03-02 03:00",
    ]
    assert all(r.state == "COMPLETED" and r.trigger == "backfill" for r in runs)
    (entry,) = [e for e in load_schedules(tmp_path)[0] if e.target == "flows.py:daily"]
    slot = dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.timezone.utc)  # 03:00 in Berlin
    assert slot_id(entry.key, slot) in {r.id for r in runs}

    again = orch(tmp_path, "backfill", "daily", "--start", "2026-03-01", "--end", "2026-03-03")
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("skipped (already claimed: COMPLETED)") == 2
    assert again.stdout.count("  claimed\n") == 1
    assert len(_runs(tmp_path)) == 3

    huge = orch(
        tmp_path, "backfill", "flows.py:often", "--start", "2026-01-01", "--end", "2026-01-02"
    )
    assert huge.returncode == 2 and "--yes" in huge.stderr
    assert "Traceback" not in huge.stderr and len(_runs(tmp_path)) == 3
    missing = orch(
        tmp_path, "backfill", "flows.py:nope", "--start", "2026-01-01", "--end", "2026-01-02"
    )
    assert missing.returncode == 2 and "has no schedule" in missing.stderr


# -- overlap queue / cancel_previous, retention, with a fake clock ----------------------------


def _overlap_project(root: Path, overlap: str) -> None:
    _write(root, "flows.py", "from orchlite import flow\n\n@flow\ndef job():\n    pass\n")
    _write(
        root,
        "orch.toml",
        f"""
        [[schedule]]
        target = "flows.py:job"
        interval = "10s"
        catchup = "all"
        grace_seconds = 3600
        overlap = "{overlap}"
        """,
    )


def _daemon(root: Path) -> tuple[Daemon, FakeLaunch]:
    launch = FakeLaunch()
    return Daemon(Store(root / ".orch"), root, launch=launch, log=lambda _: None), launch


def _running(store: Store, run_id: str) -> None:
    store.set_flow_run_state(run_id, StateName.PENDING)
    store.set_flow_run_state(run_id, StateName.RUNNING)


def test_overlap_queue_waits_for_the_previous_run_even_across_restarts(tmp_path: Path) -> None:
    _overlap_project(tmp_path, "queue")
    daemon, _launch = _daemon(tmp_path)
    daemon.tick(T0)
    report = daemon.tick(T0 + dt.timedelta(seconds=25))
    assert len(report.fired) == 2 and report.skipped == []
    assert report.started == report.fired[:1]  # the second waits for the first
    first, second = report.fired
    _running(daemon.store, first)
    assert daemon.tick(T0 + dt.timedelta(seconds=26)).started == []

    # A new daemon (a restart) sees the RUNNING row and keeps the slot waiting.
    restarted, relaunch = _daemon(tmp_path)
    assert restarted.tick(T0 + dt.timedelta(seconds=27)).started == []
    assert restarted.store.get_flow_run(second).state == "SCHEDULED"

    daemon.store.set_flow_run_state(first, StateName.COMPLETED)
    assert restarted.tick(T0 + dt.timedelta(seconds=28)).started == [second]
    assert list(relaunch.runs) == [second]


def test_overlap_cancel_previous_cancels_then_starts(tmp_path: Path) -> None:
    _overlap_project(tmp_path, "cancel_previous")
    daemon, _launch = _daemon(tmp_path)
    daemon.tick(T0)
    (first,) = daemon.tick(T0 + dt.timedelta(seconds=15)).started
    _running(daemon.store, first)
    report = daemon.tick(T0 + dt.timedelta(seconds=25))
    (second,) = report.fired
    assert report.started == [second]
    old = daemon.store.get_flow_run(first)
    assert old.state == "CANCELLING" and "cancel_previous" in (old.state_message or "")


def test_retention_runs_once_a_day(tmp_path: Path) -> None:
    _write(tmp_path, "orch.toml", "[daemon]\nretention_days = 2\n")
    assert load_retention_days(tmp_path) == 2
    daemon, _ = _daemon(tmp_path)
    daemon.reload(force=True)
    now = time.time()
    for age_days, run_id in ((3, "a" * 32), (1, "b" * 32)):
        daemon.store.claim_slot(
            run_id=run_id,
            key="k",
            slot=now - age_days * 86400,
            flow_name="job",
            name=run_id,
            target="flows.py:job",
            parameters="{}",
            skip_reason="test",
            now=now - age_days * 86400,
        )
    assert daemon.retention.maybe_collect(now) == (1, 0)
    assert daemon.retention.maybe_collect(now + 3600) is None  # not due again yet
    assert [r.id for r in daemon.store.list_flow_runs()] == ["b" * 32]
    assert daemon.retention.maybe_collect(now + 86400 + 1) is not None

    _write(tmp_path, "orch.toml", '[daemon]\nretention_days = "soon"\n')
    with pytest.raises(UsageError):
        load_retention_days(tmp_path)
    _write(tmp_path, "orch.toml", "[daemon]\nretention_days = 0\n")
    daemon.reload(force=True)
    assert daemon.retention.maybe_collect(now + 10 * 86400) is None
