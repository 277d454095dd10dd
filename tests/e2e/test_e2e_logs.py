"""`orch logs`: `--task` by task name, `-n/--tail`, `--json` (NDJSON), the stored stdout and
stderr of an in-process run, and `orch version`."""

from __future__ import annotations

import json

from tests.helpers import Project, assert_usage_error


def test_orch_logs_picks_tasks_by_name_tails_and_prints_ndjson(project: Project) -> None:
    project.write(
        "flows.py",
        """
        from orchlite import flow, get_run_logger, task

        @task
        def load(part: int) -> None:
            get_run_logger().info("loaded part %s", part)

        @task
        def report() -> None:
            get_run_logger().warning("report ready")

        @flow
        def etl() -> None:
            get_run_logger().info("starting")
            load.map([0, 1, 2]).wait()
            report()
        """,
    )
    project.orch("run", "flows.py:etl")

    loads = project.orch("logs", "last", "--task", "load").stdout.splitlines()
    assert sorted(line.split(" - ")[1] for line in loads if "loaded part" in line) == [
        "loaded part 0",
        "loaded part 1",
        "loaded part 2",
    ]
    assert all("Task run 'load-" in line for line in loads)
    one = project.orch("logs", "last", "--task", "load-1").stdout
    assert "loaded part 1" in one and "loaded part 0" not in one

    every = project.orch("logs", "last").stdout.splitlines()
    last_two = project.orch("logs", "last", "-n", "2").stdout.splitlines()
    assert last_two == every[-2:]

    records = [
        json.loads(line) for line in project.orch("logs", "last", "--json").stdout.splitlines()
    ]
    assert [r["message"] for r in records] == [line.split(" - ", 1)[1] for line in every]
    warning = next(r for r in records if r["message"] == "report ready")
    assert (warning["level"], warning["task"]) == ("WARNING", "report-0")
    assert records[0]["task"] is None and records[0]["ts"].endswith("+00:00")

    bad = project.orch("logs", "last", "--task", "nope", expect=2)
    assert_usage_error(bad, 2, "no task run 'nope'", "load-0")
    assert_usage_error(project.orch("logs", "last", "-n", "0", expect=2), 2)


def test_orch_version_prints_what_dash_dash_version_prints(project: Project) -> None:
    assert project.orch("version").stdout == project.orch("--version").stdout
    assert project.orch("version").stdout.startswith("orch ")


NOISY = """
import sys

from orchlite import flow, task

@task
def part(n: int) -> None:
    print(f"part {n} done")

@flow
def noisy() -> None:
    print("hello stdout")
    print("hello stderr", file=sys.stderr)
    part.map([1, 2]).wait()

if __name__ == "__main__":
    noisy()
"""


def _output_lines(project: Project) -> list[tuple[str, str, str]]:
    records = [
        json.loads(line) for line in project.orch("logs", "last", "--json").stdout.splitlines()
    ]
    return [
        (r["logger"], r["level"], r["message"])
        for r in records
        if r["logger"] in ("orchlite.stdout", "orchlite.stderr")
    ]


EXPECTED = [
    ("orchlite.stdout", "INFO", "hello stdout"),
    ("orchlite.stderr", "WARNING", "hello stderr"),
    ("orchlite.stdout", "INFO", "part 1 done"),
    ("orchlite.stdout", "INFO", "part 2 done"),
]


def test_an_in_process_runs_stdout_and_stderr_are_stored_and_still_printed(
    project: Project,
) -> None:
    project.write("flows.py", NOISY)
    proc = project.orch("run", "flows.py:noisy")  # stdout and stderr are pipes
    assert proc.stdout.splitlines()[0] == "hello stdout"
    assert "hello stderr" in proc.stderr.splitlines()
    shown = project.orch("logs", "last").stdout.splitlines()
    messages = [line.split(" | ", 1)[1] for line in shown]
    assert "INFO    | Flow run - hello stdout" in messages
    assert "WARNING | Flow run - hello stderr" in messages
    assert sum("part" in line for line in shown) == 2


def test_with_json_the_flows_prints_go_to_stderr_and_are_stored(project: Project) -> None:
    project.write("flows.py", NOISY)
    as_json = project.orch("run", "flows.py:noisy", "--json")
    assert json.loads(as_json.stdout)["state"] == "COMPLETED"  # stdout is the JSON alone
    assert "hello stdout" in as_json.stderr
    assert sorted(_output_lines(project)) == sorted(EXPECTED)


def test_a_flow_file_run_with_python_stores_its_output_too(project: Project) -> None:
    import subprocess
    import sys

    project.write("flows.py", NOISY)
    proc = subprocess.run(
        [sys.executable, "flows.py"],
        cwd=project.root,
        env=project.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "hello stdout" in proc.stdout and "hello stderr" in proc.stderr
    assert sorted(_output_lines(project)) == sorted(EXPECTED)


INTERLEAVED = """
from orchlite import flow, get_run_logger

@flow
def steps() -> None:
    logger = get_run_logger()
    for n in (1, 2, 3):
        logger.info("logged %d", n)
        print(f"printed {n}")
"""


def test_in_a_shared_pipe_the_console_lines_and_prints_keep_their_order(
    project: Project,
) -> None:
    """The console lines are batched in a pipe, but a print sends the waiting ones first."""
    import subprocess

    from tests.helpers.commands import ORCH

    project.write("flows.py", INTERLEAVED)
    proc = subprocess.run(
        [*ORCH, "run", "flows.py:steps"],
        cwd=project.root,
        env=project.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
        check=True,
    )
    lines = [
        line.rsplit(" - ", 1)[-1]
        for line in proc.stdout.splitlines()
        if "logged" in line or "printed" in line
    ]
    assert lines == [f"{what} {n}" for n in (1, 2, 3) for what in ("logged", "printed")]
