"""Schedules from the command line: `orch upcoming`, `orch schedules` in 80 columns,
`orch schedule pause|resume`, `orch run --schedule`, `orch daemon stop`, backfilled runs'
slots, and bad input."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess

import pytest

from tests.helpers import Project, assert_usage_error, describe, finish, wait_for

FLOWS = """
from orchlite import cron, flow, interval


@flow(schedules=[cron("0 3 * * *", timezone="Europe/Berlin"), interval(hours=1)])
def sales_etl(day: str = "none"):
    print("day", day)


@flow(schedules=[interval(minutes=5, name="a-rather-long-schedule-name-for-the-report-flow")])
def report_with_a_long_function_name():
    pass
"""

TOML = """
[[schedule]]
name = "nightly"
target = "flows.py:sales_etl"
cron = "30 2 * * *"
parameters = { day = "{scheduled_time:%Y-%m-%d}" }

[[schedule]]
name = "off"
target = "flows.py:sales_etl"
interval = "10m"
enabled = false
"""


@pytest.fixture
def scheduled(project: Project) -> Project:
    project.write("flows.py", FLOWS)
    project.write("orch.toml", TOML)
    return project


def test_upcoming_lists_every_schedule_the_next_to_fire_first(scheduled: Project) -> None:
    rows = scheduled.json("upcoming", "--json")
    names = [r["name"] for r in rows]
    assert sorted(names) == sorted(
        [
            "sales-etl",
            "sales-etl-2",
            "a-rather-long-schedule-name-for-the-report-flow",
            "nightly",
            "off",
        ]
    )
    active = [r for r in rows if r["state"] == "active"]
    lefts = [r["left_seconds"] for r in active]
    assert lefts == sorted(lefts) and all(0 < s <= 86400 for s in lefts)
    assert rows[-1] == {**rows[-1], "name": "off", "state": "disabled", "next": None}
    for row in active:  # ISO times in UTC, and `left` counts to them
        nxt = dt.datetime.fromisoformat(row["next"])
        assert nxt.utcoffset() == dt.timedelta(0)
        now = dt.datetime.now(dt.timezone.utc)
        assert abs((nxt - now).total_seconds() - row["left_seconds"]) < 30
        assert row["last"] is None and row["passed_seconds"] is None

    scheduled.orch("schedule", "pause", "sales_etl")  # either spelling of the flow's name
    rows = scheduled.json("upcoming", "--json")
    assert [r["name"] for r in rows[-2:]] == ["off", "sales-etl"]  # not firing: last, by name
    paused = next(r for r in rows if r["name"] == "sales-etl")
    assert paused["state"] == "paused" and paused["next"] is None

    table = scheduled.orch("upcoming").stdout.splitlines()
    assert table[0].split() == ["NAME", "TARGET", "NEXT", "LEFT", "LAST", "PASSED", "STATE"]
    assert " in " in table[1] and table[1].rstrip().endswith("active")
    assert any(line.rstrip().endswith("paused") for line in table)


def test_schedules_fits_80_columns_with_a_name_column(scheduled: Project) -> None:
    scheduled.orch("schedule", "pause", "nightly")
    lines = _schedules(scheduled, columns="80").splitlines()
    assert lines[0].split()[:2] == ["NAME", "TARGET"]
    assert len(lines) == 6
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    states = {line.split()[0]: line.split()[-2] for line in lines[1:]}
    assert states["nightly"] == "paused" and states["off"] == "disabled"
    assert any("…" in line for line in lines)  # the long name was cut, not the layout
    wide = _schedules(scheduled, columns=None)  # not a terminal, no COLUMNS: nothing is cut
    assert "a-rather-long-schedule-name-for-the-report-flow" in wide


def _schedules(project: Project, columns: str | None) -> str:
    """`orch schedules` with `COLUMNS` set to `columns`, or unset."""
    env = {k: v for k, v in project.env.items() if k != "COLUMNS"}
    if columns is not None:
        env["COLUMNS"] = columns
    return project.orch("schedules", env=env).stdout


def test_pause_and_resume_by_name(scheduled: Project) -> None:
    out = scheduled.orch("schedule", "pause", "nightly")
    assert "schedule 'nightly' paused" in out.stderr
    again = scheduled.orch("schedule", "pause", "nightly")
    assert "paused already" in again.stderr
    listed = scheduled.json("schedules", "--json")["schedules"]
    assert {r["schedule_name"]: r["state"] for r in listed}["nightly"] == "paused"
    assert "resumed" in scheduled.orch("schedule", "resume", "nightly").stderr
    assert "was not paused" in scheduled.orch("schedule", "resume", "nightly").stderr


def test_an_unknown_schedule_name_is_one_line_naming_close_ones(scheduled: Project) -> None:
    line = assert_usage_error(scheduled.orch("schedule", "pause", "nigthly", expect=2), 2)
    assert line == "error: no schedule named 'nigthly'; did you mean 'nightly'?"
    line = assert_usage_error(scheduled.orch("schedule", "resume", "zzz", expect=2), 2)
    assert "its schedules: a-rather-long" in line and "nightly" in line
    assert_usage_error(scheduled.orch("run", "--schedule", "zzz", expect=2), 2, "zzz")


def test_run_and_daemon_stop_refuse_bad_input_in_one_line(scheduled: Project) -> None:
    assert_usage_error(scheduled.orch("run", expect=2), 2, "--schedule")
    both = scheduled.orch("run", "flows.py:sales_etl", "--schedule", "nightly", expect=2)
    assert_usage_error(both, 2, "one of them")
    stop = scheduled.orch("daemon", "stop", expect=2)
    assert_usage_error(stop, 2, "no daemon is running")


def test_jitter_seconds_is_validated(project: Project) -> None:
    project.write("flows.py", FLOWS)
    project.write(
        "orch.toml",
        '[[schedule]]\ntarget = "flows.py:sales_etl"\ncron = "0 1 * * *"\njitter_seconds = -5\n',
    )
    proc = project.orch("schedules", expect=3)
    assert "invalid jitter_seconds -5: expected a number >= 0" in proc.stderr
    project.write(
        "orch.toml",
        '[[schedule]]\ntarget = "flows.py:sales_etl"\ncron = "0 1 * * *"\njitter_seconds = 90\n',
    )
    assert project.orch("schedules").returncode == 0


def test_run_schedule_runs_its_target_now_with_its_parameters(scheduled: Project) -> None:
    today = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    detail = json.loads(scheduled.orch("run", "--schedule", "nightly", "--json").stdout)
    assert detail["state"] == "COMPLETED" and detail["target"] == "flows.py:sales_etl"
    assert detail["parameters"] == {"day": today}
    assert detail["trigger"] == "manual" and detail["slot"] is None
    given = json.loads(
        scheduled.orch("run", "--schedule", "nightly", "-p", "day=given", "--json").stdout
    )
    assert given["parameters"] == {"day": "given"}
    table = scheduled.orch("runs").stdout.splitlines()
    assert "SLOT" not in table[0]  # no listed run was for a slot


@pytest.mark.slow  # two backfilled runs in child processes
def test_backfilled_runs_have_their_trigger_and_a_slot_column(scheduled: Project) -> None:
    scheduled.orch("run", "flows.py:sales_etl")
    proc = scheduled.orch(
        "backfill", "sales_etl", "--schedule", "nightly", "--start", "2026-03-01",
        "--end", "2026-03-02", "--max-runs", "2",
    )  # fmt: skip
    assert proc.stdout.count("COMPLETED") == 2, describe(proc)
    runs = scheduled.runs()
    backfilled = [r for r in runs if r["trigger"] == "backfill"]
    assert sorted(r["slot"] for r in backfilled) == [
        "2026-03-01T02:30:00.000+00:00",
        "2026-03-02T02:30:00.000+00:00",
    ]
    assert sorted(r["parameters"]["day"] for r in backfilled) == ["2026-03-01", "2026-03-02"]
    assert [r["slot"] for r in runs if r["trigger"] == "manual"] == [None]
    lines = scheduled.orch("runs").stdout.splitlines()
    assert lines[0].split()[:5] == ["ID", "FLOW", "STATE", "TRIGGER", "SLOT"]
    manual = next(line for line in lines if " manual " in line)
    assert manual.split()[4] == "-"
    assert sum(" backfill " in line for line in lines) == 2


PAUSE_FLOWS = """
from orchlite import flow, interval


@flow(schedules=[interval(seconds=1, name="beat", catchup="all")])
def beat():
    pass


@flow(schedules=[interval(seconds=1, name="clock")])
def clock():
    pass
"""


@pytest.mark.slow  # a daemon firing for several seconds
def test_a_paused_schedule_does_not_fire_and_resumes_without_catching_up(
    project: Project,
) -> None:
    project.write("flows.py", PAUSE_FLOWS)
    project.orch("schedule", "pause", "beat")
    daemon = project.popen("daemon", "--tick", "0.2", "--grace", "5")
    try:
        # The clock schedule fires every second meanwhile: three of its runs are proof
        # enough that the daemon was firing while beat stayed paused.
        wait_for(lambda: _ended(project, "clock") >= 3, timeout=40, what="clock runs")
        assert _ended(project, "beat") == 0 and not _runs_of(project, "beat")
        resumed = dt.datetime.now(dt.timezone.utc)
        project.orch("schedule", "resume", "beat")
        wait_for(lambda: _ended(project, "beat") >= 1, timeout=40, what="beat runs")
        # catchup="all", yet no slot from before the resume fired.
        slots = [dt.datetime.fromisoformat(r["slot"]) for r in _runs_of(project, "beat")]
        assert min(slots) > resumed - dt.timedelta(seconds=1)
        stopped = project.orch("daemon", "stop", "--timeout", "30")
        assert "daemon stopped" in stopped.stderr
        finish(daemon)
        assert daemon.returncode == 0
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            finish(daemon)


SLOW_FLOW = """
import time
from pathlib import Path

from orchlite import flow, interval


@flow(schedules=[interval(seconds=1, name="slow")])
def slow():
    Path("started").write_text("yes")
    while not Path("go").exists():
        time.sleep(0.02)
    return "done"
"""


@pytest.mark.slow  # a daemon, a run in flight, and its drain
def test_daemon_stop_waits_for_the_drain(project: Project) -> None:
    project.write("flows.py", SLOW_FLOW)
    daemon = project.popen("daemon", "--tick", "0.2", "--grace", "30")
    try:
        wait_for(lambda: (project.root / "started").exists(), timeout=40, what="a slot's run")
        stop = project.popen("daemon", "stop", "--timeout", "60")
        # The daemon drains: it fires nothing new and waits for the run in flight, so
        # `orch daemon stop` waits too, until the run ends.
        wait_for(lambda: "stopping" in _log(daemon), timeout=20, what="the drain to begin")
        assert stop.poll() is None
        (project.root / "go").write_text("")
        _out, err = finish(stop)
        assert stop.returncode == 0, err
        assert "daemon stopped (pid" in err
        assert daemon.wait(timeout=10) == 0
        (run,) = [r for r in project.runs() if r["state"] != "SKIPPED"]
        assert run["state"] == "COMPLETED"
        gone = project.orch("daemon", "stop", expect=2)
        assert_usage_error(gone, 2, "no daemon is running")
    finally:
        (project.root / "go").write_text("")
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
        finish(daemon)


def _runs_of(project: Project, flow: str) -> list[dict[str, object]]:
    return [r for r in project.recorded() if r["flow"] == flow]


def _ended(project: Project, flow: str) -> int:
    return sum(1 for r in _runs_of(project, flow) if r["ended"])


_LOGS: dict[int, list[str]] = {}


def _log(proc: subprocess.Popen[str]) -> str:
    """What the daemon wrote to stderr so far (read without blocking)."""
    import os
    import select

    assert proc.stderr is not None
    seen = _LOGS.setdefault(proc.pid, [])
    fd = proc.stderr.fileno()
    while select.select([fd], [], [], 0)[0]:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        seen.append(chunk.decode(errors="replace"))
    return "".join(seen)


GREETING_FLOWS = """
import os
from pathlib import Path

from orchlite import flow


@flow
def greet():
    with open("greetings.txt", "a") as fh:
        fh.write(os.environ.get("GREETING", "-") + " " + os.environ.get("FAREWELL", "-") + "\\n")
    marker = Path("failed-once")
    if not marker.exists():
        marker.touch()
        raise RuntimeError("the first attempt fails")
"""

GREETING_TOML = """
[project]
env_file = ".env"

[[schedule]]
name = "greeting"
target = "flows.py:greet"
cron = "0 3 * * *"
env = { GREETING = "hi" }
"""


@pytest.mark.slow  # five runs, each its own `orch`
def test_retrying_a_schedules_run_gives_it_the_schedules_env_again(project: Project) -> None:
    project.write("flows.py", GREETING_FLOWS)
    project.write("orch.toml", GREETING_TOML)
    project.write(".env", "FAREWELL=bye\n")

    def greetings() -> list[str]:
        return (project.root / "greetings.txt").read_text().splitlines()

    project.orch("run", "--schedule", "greeting", expect=1)
    project.orch("retry", "last")
    assert greetings() == ["hi bye", "hi bye"]
    project.orch("retry", "last", "--force")  # a retry of the retry: traced back
    assert greetings()[-1] == "hi bye"
    # Started by hand, the same flow has the env file but not the schedule's `env`.
    (project.root / "failed-once").unlink()
    project.orch("run", "flows.py:greet", expect=1)
    project.orch("retry", "last")
    assert greetings()[-2:] == ["- bye", "- bye"]


OPTIONS_FLOWS = """
import os
from pathlib import Path

from orchlite import flow


@flow
def where():
    Path("cwd.txt").write_text(os.getcwd())
"""

OPTIONS_TOML = """
[[schedule]]
name = "in-data"
target = "flows.py:where"
cron = "0 3 * * *"
working_dir = "data"

[[schedule]]
name = "slow-command"
command = "echo started; sleep 30"
cron = "0 4 * * *"
timeout_seconds = 1
"""


@pytest.mark.slow  # three runs, one of them until its timeout
def test_run_schedule_starts_with_the_schedules_working_dir_and_timeout(
    project: Project,
) -> None:
    project.write("flows.py", OPTIONS_FLOWS)
    project.write("orch.toml", OPTIONS_TOML)
    data = project.root / "data"
    data.mkdir()
    project.orch("run", "--schedule", "in-data")
    assert (data / "cwd.txt").read_text() == str(data.resolve())
    (data / "cwd.txt").unlink()
    project.orch("run", "--schedule", "in-data", "--subprocess")
    assert (data / "cwd.txt").read_text() == str(data.resolve())
    (data / "cwd.txt").unlink()
    project.orch("retry", "last", "--force")  # the retry starts where the run did
    assert (data / "cwd.txt").read_text() == str(data.resolve())
    timed_out = project.orch("run", "--schedule", "slow-command", "--json", expect=1)
    assert json.loads(timed_out.stdout)["state"] == "TIMED_OUT"
