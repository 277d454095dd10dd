"""Shell-command jobs, env files and working directories, through the `orch` command."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from tests.helpers import Project, assert_usage_error, finish, wait_for

SECRET = "s3cr3t-env-value-9431"
ENTRY_SECRET = "entry-only-value-5512"


def gone(pid: int) -> bool:
    """The process is gone, or a zombie nobody reaped yet."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def leaks(project: Project, *values: str) -> list[str]:
    """Where in the store's files, `orch show --json` and `orch logs` any of `values` shows."""
    found = []
    for path in sorted(project.home.rglob("*")):
        if path.is_file() and any(v.encode() in path.read_bytes() for v in values):
            found.append(str(path))
    for run in project.runs():
        for args in (("show", run["id"], "--json"), ("logs", run["id"])):
            text = project.orch(*args, expect=None).stdout
            if any(v in text for v in values):
                found.append(" ".join(args))
    return found


@pytest.mark.slow
def test_run_command_exit_codes_and_captured_output(project: Project) -> None:
    ok = project.orch("run", "--command", "echo hello out; echo hello err >&2")
    assert "hello out" in ok.stdout
    (run,) = project.runs()
    assert run["flow"] == "echo-hello-out" and run["state"] == "COMPLETED"
    detail = project.show(run["id"])
    assert detail["target"] == "$ echo hello out; echo hello err >&2"
    logs = project.orch("logs", run["id"]).stdout
    assert "hello out" in logs and "hello err" in logs

    failed = project.orch("run", "--command", "echo partial; exit 3", expect=1)
    assert "the command exited with code 3" in failed.stderr
    detail = project.show("last")
    assert detail["state"] == "FAILED"
    assert detail["message"] == "CommandFailed: the command exited with code 3"
    assert "partial" in project.orch("logs", "last").stdout

    as_json = project.orch("run", "--command", "echo chatter", "--json")
    assert json.loads(as_json.stdout)["state"] == "COMPLETED"


@pytest.mark.slow
def test_orch_retry_runs_a_failed_command_again(project: Project) -> None:
    project.orch("run", "--command", "test -f ready && echo done", expect=1)
    failed = project.show("last")
    (project.root / "ready").write_text("")
    project.orch("retry", failed["id"])
    retried = project.show("last")
    assert retried["state"] == "COMPLETED" and retried["retry_of"] == failed["id"]
    assert retried["flow"] == failed["flow"] == "test-ready"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("run",), "give one of them"),
        (("run", "flows.py:x", "--command", "true"), "give one of them"),
        (("run", "--command", "true", "-p", "a=1"), "a command takes no parameters"),
        (("run", "--command", "  "), "command must be a non-empty string"),
    ],
)
def test_bad_one_offs_are_one_line(project: Project, args: tuple[str, ...], needle: str) -> None:
    assert_usage_error(project.orch(*args, expect=None), 2, needle)


@pytest.mark.slow
def test_sigterm_stops_the_commands_whole_group(project: Project) -> None:
    proc = project.popen("run", "--command", "sleep 300 & echo $! > grandchild.pid; wait")
    pid = project.read_pid("grandchild.pid")
    proc.send_signal(signal.SIGTERM)
    finish(proc)
    assert proc.returncode == 143
    wait_for(lambda: gone(pid), timeout=10, what="the grandchild sleep to be stopped")
    assert project.show("last")["state"] == "CANCELLED"


@pytest.mark.slow
def test_env_file_and_working_dir_reach_a_flow_and_a_command(project: Project) -> None:
    project.write(".env", f'# settings\nexport API_TOKEN="{SECRET}"\nMODE=file\n')
    project.write("orch.toml", '[project]\nenv_file = ".env"\n')
    project.write(
        "flows.py",
        """
        import os
        from pathlib import Path

        from orchlite import flow


        @flow
        def env_flow():
            Path("flow.out").write_text(os.environ["API_TOKEN"] + " " + os.environ["MODE"])
        """,
    )
    (project.root / "sub").mkdir()
    for mode in ((), ("--subprocess",)):
        (project.root / "flow.out").unlink(missing_ok=True)
        project.orch("run", "flows.py:env_flow", *mode)
        assert (project.root / "flow.out").read_text() == f"{SECRET} file"
    project.orch("run", "--command", 'echo "$API_TOKEN" > cmd.out; echo ran')
    assert (project.root / "cmd.out").read_text().strip() == SECRET
    assert leaks(project, SECRET) == []


@pytest.mark.slow
def test_bad_env_files_and_working_dirs_are_one_line(project: Project) -> None:
    project.write("orch.toml", '[project]\nenv_file = "conf/.env"\n')
    missing = project.orch("run", "--command", "true", expect=None)
    assert_usage_error(missing, 2, "conf/.env", "env file not found")
    project.write("conf/.env", "GOOD=1\nnot a variable line\n")
    for args in (("run", "--command", "true"), ("daemon", "--print-systemd-unit"), ("daemon",)):
        assert_usage_error(project.orch(*args, expect=None), 2, "conf/.env:2: expected KEY=value")
    project.write("conf/.env", "GOOD=1\n")
    unit = project.orch("daemon", "--print-systemd-unit").stdout
    assert f"EnvironmentFile={project.root / 'conf' / '.env'}\n" in unit

    project.write(
        "orch.toml",
        """
        [[schedule]]
        command = "true"
        interval = 60
        working_dir = "missing"

        [[schedule]]
        command = "true"
        interval = 60
        working_dir = "../"

        [[schedule]]
        target = "flows.py:f"
        interval = 60
        retries = 2
        """,
    )
    listed = project.orch("schedules", expect=3)
    errors = [line for line in listed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 3, listed.stderr
    assert "no such folder" in errors[0]
    assert "leaves the project root" in errors[1]
    assert "belong(s) to a command entry" in errors[2]


@pytest.mark.slow
def test_daemon_runs_command_jobs(project: Project) -> None:
    """A command job writing a file (in its working_dir, with env_file and env), one that
    fails and is retried, one that outlives its timeout (its grandchild is stopped too), and
    a command trigger after the first; none of the env values is stored anywhere."""
    project.write(".env", f"API_TOKEN={SECRET}\nMODE=file\n")
    (project.root / "out").mkdir()
    project.write(
        "flows.py",
        """
        import os
        from pathlib import Path

        from orchlite import flow


        @flow
        def where():
            Path("cwd.txt").write_text(os.getcwd())
        """,
    )
    project.write(
        "orch.toml",
        f"""
        [project]
        env_file = ".env"

        [[schedule]]
        name = "writer"
        command = 'echo "$API_TOKEN $MODE $EXTRA" > written.txt; pwd >> written.txt; echo wrote'
        interval = 1
        working_dir = "out"
        env = {{ MODE = "entry", EXTRA = "{ENTRY_SECRET}" }}

        [[schedule]]
        name = "flaky"
        command = "echo try >> attempts.txt; test $(wc -l < attempts.txt) -ge 2"
        interval = 1
        retries = 1
        retry_delay_seconds = 0.2

        [[schedule]]
        name = "stuck"
        command = "sleep 300 & echo $! > stuck.pid; wait"
        interval = 1
        timeout_seconds = 1

        [[schedule]]
        target = "flows.py:where"
        interval = 1
        working_dir = "out"

        [[trigger]]
        command = "echo after > triggered.txt"
        after = "writer"
        """,
    )
    daemon = project.popen("daemon", "--tick", "0.2", "--grace", "2", stdout=subprocess.DEVNULL)
    try:
        written = project.root / "out" / "written.txt"
        wait_for(lambda: written.exists() and written.read_text().count("\n") == 2, timeout=30)
        wait_for(lambda: (project.root / "triggered.txt").exists(), timeout=30)
        pid = project.read_pid("stuck.pid")

        def state_of(flow: str) -> str | None:
            ended = [r for r in project.recorded() if r["flow"] == flow and r["ended"]]
            return ended[-1]["state"] if ended else None

        wait_for(lambda: state_of("stuck") == "TIMED_OUT", timeout=30, what="stuck TIMED_OUT")
        wait_for(lambda: gone(pid), timeout=10, what="the grandchild sleep to be stopped")
        flaky = wait_for(lambda: state_of("flaky"), timeout=30, what="flaky to end")
    finally:
        daemon.send_signal(signal.SIGTERM)
        finish(daemon)
    assert daemon.returncode == 0
    assert (
        written.read_text()
        == f"{SECRET} entry {ENTRY_SECRET}\n{(project.root / 'out').resolve()}\n"
    )
    assert flaky == "COMPLETED"
    first_flaky = [r for r in project.runs() if r["flow"] == "flaky"][-1]
    assert project.show(first_flaky["id"])["attempts"] == 2
    writer = [r for r in project.runs() if r["flow"] == "writer"][-1]
    assert "wrote" in project.orch("logs", writer["id"]).stdout
    assert project.show(writer["id"])["target"].startswith("$ echo")
    assert (project.root / "out" / "cwd.txt").read_text() == str((project.root / "out").resolve())
    # `orch retry` starts the run in its working directory again, with the env file and the
    # env of the schedule that started it (read from orch.toml, never stored).
    written.unlink()
    project.orch("retry", writer["id"], "--force")
    assert written.read_text().splitlines()[0] == f"{SECRET} entry {ENTRY_SECRET}"
    assert leaks(project, SECRET, ENTRY_SECRET) == []
