"""Shell-command entries: their target, flow name, options, and how the daemon starts them."""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path

import pytest

from orchlite.daemon import Daemon
from orchlite.errors import ExitCode, UsageError
from orchlite.executor import RunRequest, run_target
from orchlite.project import load_schedules, load_triggers
from orchlite.shell_jobs import (
    RunOptions,
    command_flow_name,
    command_of,
    command_target,
    one_off_target,
    read_entry,
    resolve_working_dir,
)
from orchlite.states import StateName
from orchlite.store import Store
from orchlite.supervisor import run_in_subprocess
from tests.helpers import wait_for
from tests.helpers import write as _write
from tests.helpers.daemon import FakeLaunch


@pytest.mark.parametrize(
    ("command", "name"),
    [
        ("pg_dump mydb > /backup/db.sql", "pg_dump-mydb"),
        ("PGHOST=db /usr/bin/python3 /srv/app/report.py --daily", "python3-report.py"),
        ("echo hello; echo again", "echo-hello"),
        ("tar czf /backup/home.tgz /home", "tar-czf-home.tgz"),
        ("./notify.sh", "notify.sh"),
        ("'unclosed", "unclosed"),
        (">/dev/null", "command"),
    ],
)
def test_a_commands_flow_name_is_its_first_words(command: str, name: str) -> None:
    assert command_flow_name(command) == name


def test_a_command_target_round_trips_and_is_no_flow_target() -> None:
    target = command_target("  make backup ")
    assert target == "$ make backup"
    assert command_of(target) == "make backup"
    assert command_of("flows.py:etl") is None
    with pytest.raises(UsageError):
        command_target("   ")


def test_one_off_targets() -> None:
    assert one_off_target("flows.py:etl", None, {"a": 1}) == "flows.py:etl"
    assert one_off_target(None, "true", {}) == "$ true"
    for target, command, params in [
        (None, None, {}),
        ("x.py:f", "true", {}),
        (None, "t", {"a": 1}),
    ]:
        with pytest.raises(UsageError):
            one_off_target(target, command, params)


def test_run_options_are_stored_without_env() -> None:
    options = RunOptions("data", 5.0, 2, 1.5, (("TOKEN", "s3cr3t"),))
    stored = options.stored()
    assert stored is not None and "s3cr3t" not in stored and "TOKEN" not in stored
    assert RunOptions.from_stored(stored) == RunOptions("data", 5.0, 2, 1.5)
    assert RunOptions().stored() is None
    assert RunOptions.from_stored("not json") == RunOptions()


def test_working_dir_stays_in_the_project_or_is_an_existing_absolute_folder(
    tmp_path: Path,
) -> None:
    (tmp_path / "data").mkdir()
    assert resolve_working_dir(tmp_path, None) == tmp_path.resolve()
    assert resolve_working_dir(tmp_path, "data") == (tmp_path / "data").resolve()
    outside = tmp_path.parent
    assert resolve_working_dir(tmp_path, str(outside)) == outside.resolve()
    with pytest.raises(UsageError, match="leaves the project root"):
        resolve_working_dir(tmp_path, "../")
    with pytest.raises(UsageError, match="no such folder"):
        resolve_working_dir(tmp_path, "missing")


@pytest.mark.parametrize(
    ("item", "why"),
    [
        ({"command": "x", "target": "f.py:g"}, "either command or target"),
        ({"command": "x", "parameters": {}}, "either command or parameters"),
        ({"target": "f.py:g", "retries": 1}, "belong(s) to a command entry"),
        ({"command": "x", "retries": -1}, "invalid retries"),
        ({"command": "x", "timeout_seconds": "1m"}, "invalid timeout_seconds"),
        ({"command": "x", "env": {"1X": "v"}}, "invalid variable name"),
        ({"command": "x", "env": {"X": 1}}, "expected a string"),
        ({"command": "x", "env": "X=1"}, "env must be a table"),
        ({"command": "x", "working_dir": "nope"}, "no such folder"),
        ({"command": ""}, "non-empty"),
    ],
)
def test_bad_entries_say_why(tmp_path: Path, item: dict[str, object], why: str) -> None:
    with pytest.raises(UsageError) as info:
        read_entry(item, tmp_path)
    assert why in str(info.value)


def test_command_entries_in_orch_toml(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    _write(
        tmp_path,
        "orch.toml",
        """
        [[schedule]]
        name = "backup"
        command = "pg_dump mydb > db.sql"
        cron = "0 3 * * *"
        retries = 2
        timeout_seconds = 60
        working_dir = "out"
        env = { PGHOST = "db" }

        [[schedule]]
        command = "make report"
        interval = "1h"

        [[trigger]]
        command = "./notify.sh"
        after = "backup"
        states = ["FAILED"]
        """,
    )
    entries, problems = load_schedules(tmp_path)
    assert problems == []
    backup, report = entries
    assert (backup.target, backup.flow_name) == ("$ pg_dump mydb > db.sql", "backup")
    assert backup.options == RunOptions("out", 60.0, 2, 0.0, (("PGHOST", "db"),))
    assert (report.target, report.flow_name) == ("$ make report", "make-report")
    triggers, problems = load_triggers(tmp_path)
    assert problems == []
    assert [(t.target, t.flow_name) for t in triggers] == [("$ ./notify.sh", "notify.sh")]


def test_the_daemon_claims_with_options_and_starts_with_the_entrys_env(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    _write(
        tmp_path,
        "orch.toml",
        """
        [[schedule]]
        command = "backup.sh"
        interval = "10s"
        working_dir = "out"
        retries = 1
        env = { TOKEN = "s3cr3t" }
        """,
    )
    launch = FakeLaunch()
    store = Store(tmp_path / ".orch")
    t0 = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
    clock = lambda: t0.timestamp() + 11  # noqa: E731 - when the retry is scheduled
    daemon = Daemon(store, tmp_path, launch=launch, log=lambda _: None, clock=clock)
    daemon.tick(t0)
    report = daemon.tick(t0 + dt.timedelta(seconds=10))
    (run_id,) = report.started
    assert launch.calls == [(run_id, "$ backup.sh", {})]
    assert launch.envs[run_id] == {"TOKEN": "s3cr3t"}
    stored = store.run_options(run_id)
    assert RunOptions.from_stored(stored) == RunOptions("out", None, 1, 0.0)
    assert store.get_flow_run(run_id).flow_name == "backup.sh"
    # The run's process dies: the retry the daemon schedules carries the options, and is
    # started with the entry's env again.
    store.set_retry_policy(run_id, json.dumps({"retries": 1, "delays": [0.0]}))
    store.set_flow_run_state(run_id, StateName.PENDING)
    store.set_flow_run_state(run_id, StateName.RUNNING, attempts=1)
    store.end_abandoned_run(run_id, StateName.CRASHED, "killed")
    launch.runs[run_id].alive = False
    (retry_id,) = daemon.tick(t0 + dt.timedelta(seconds=11)).started
    assert store.get_flow_run(retry_id).retry_of == run_id
    assert launch.envs[retry_id] == {"TOKEN": "s3cr3t"}
    assert RunOptions.from_stored(store.run_options(retry_id)) == RunOptions("out", None, 1, 0.0)


def test_a_decorator_schedules_working_dir_and_env_apply_as_an_entrys(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    _write(
        tmp_path,
        "flows.py",
        """
        from orchlite import flow, interval

        @flow(schedules=[interval(10, working_dir="out", env={"TOKEN": "s3cr3t"})])
        def etl() -> None: ...

        @flow(schedules=[interval(10, working_dir="missing")])
        def nowhere() -> None: ...
        """,
    )
    entries, problems = load_schedules(tmp_path)
    assert [str(p) for p in problems] == [
        f"flows.py:6: flows.py:nowhere: working_dir 'missing': no such folder {tmp_path.resolve()}"
        "/missing"
    ]
    (entry,) = entries
    assert entry.options == RunOptions("out", env=(("TOKEN", "s3cr3t"),))
    launch = FakeLaunch()
    store = Store(tmp_path / ".orch")
    daemon = Daemon(store, tmp_path, launch=launch, log=lambda _: None)
    t0 = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
    daemon.tick(t0)
    (run_id,) = daemon.tick(t0 + dt.timedelta(seconds=10)).started
    assert launch.calls == [(run_id, "flows.py:etl", {})]
    assert launch.envs[run_id] == {"TOKEN": "s3cr3t"}
    assert RunOptions.from_stored(store.run_options(run_id)) == RunOptions("out")


def test_a_claimed_run_whose_env_file_is_broken_ends_failed_saying_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCH_HOME", str(tmp_path / ".orch"))
    _write(tmp_path, "orch.toml", '[project]\nenv_file = ".env"\n')
    _write(tmp_path, ".env", "A=1\nno equals sign\n")
    store = Store(tmp_path / ".orch")
    run_id = "a" * 32
    store.claim_trigger_run(
        run_id=run_id,
        key="k",
        flow_name="true",
        name="true",
        target="$ true",
        parameters="{}",
        trigger="file",
    )
    request = RunRequest("$ true", run_id=run_id, trigger="schedule")
    assert run_in_subprocess(request, capture_output=True) == (run_id, ExitCode.RUN_FAILED)
    run = store.get_flow_run(run_id)
    assert run.state == "FAILED"
    assert run.state_message == f"{tmp_path / '.env'}:2: expected KEY=value"


def _claim_command(store: Store, run_id: str, command: str, options: RunOptions) -> None:
    store.claim_trigger_run(
        run_id=run_id,
        key="k",
        flow_name="job",
        name="job",
        target=command_target(command),
        parameters="{}",
        trigger="file",
        run_options=options.stored(),
    )


def _gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


BACKGROUNDED = "sleep 300 & echo $! > grandchild.pid; wait"


def test_a_timeout_kills_the_commands_whole_group_in_process(tmp_path: Path) -> None:
    store = Store(tmp_path / ".orch")
    _claim_command(store, "b" * 32, BACKGROUNDED, RunOptions(timeout_seconds=0.5))
    request = RunRequest(command_target(BACKGROUNDED), run_id="b" * 32, trigger="schedule")
    assert run_target(request, console=False) == ("b" * 32, ExitCode.RUN_FAILED)
    run = store.get_flow_run("b" * 32)
    assert (run.state, run.flow_name) == ("TIMED_OUT", "job")
    wait_for(
        lambda: _gone(int(read(tmp_path / "grandchild.pid"))), what="the grandchild to be killed"
    )


def test_a_cancel_stops_the_commands_whole_group_in_process(tmp_path: Path) -> None:
    store = Store(tmp_path / ".orch")
    _claim_command(store, "c" * 32, BACKGROUNDED, RunOptions())
    pid_file = tmp_path / "grandchild.pid"

    def cancel() -> None:
        wait_for(lambda: read(pid_file).strip(), what="the command to start")
        Store(tmp_path / ".orch").request_cancel("c" * 32)

    canceller = threading.Thread(target=cancel)
    canceller.start()
    request = RunRequest(command_target(BACKGROUNDED), run_id="c" * 32, trigger="schedule")
    run_target(request, console=False)
    canceller.join()
    assert store.get_flow_run("c" * 32).state == "CANCELLED"
    wait_for(lambda: _gone(int(read(pid_file))), what="the grandchild to be stopped")


def read(path: Path) -> str:
    return path.read_text() if path.exists() else ""
