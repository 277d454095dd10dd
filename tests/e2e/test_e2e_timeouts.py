"""Timeouts stop a run on time, in-process and in a supervised child process."""

from __future__ import annotations

import time

import pytest

from tests.helpers import Project, pid_alive, wait_for

HANGS = """
import os
import time
from pathlib import Path

from orchlite import flow, task


@task(timeout_seconds=0.5)
def hang():
    Path("task.pid").write_text(str(os.getpid()))
    time.sleep(3600)


@task
def after():
    bump("after.count")


@flow
def stuck_task():
    hang()
    after()


@flow(timeout_seconds=0.5)
def stuck_flow():
    Path("task.pid").write_text(str(os.getpid()))
    time.sleep(3600)


@task
def endless():
    Path("task.pid").write_text(str(os.getpid()))
    time.sleep(3600)


@flow(timeout_seconds=0.5)
def stuck_in_a_task():
    endless()
"""


def _run_timed(project: Project, *args: str) -> float:
    started = time.monotonic()
    project.orch("run", *args, expect=1, timeout=30)
    return time.monotonic() - started


@pytest.mark.parametrize("mode", ["in-process", "subprocess"])
def test_task_timeout(project: Project, mode: str) -> None:
    project.write_flow("flows.py", HANGS)
    extra = ["--subprocess"] if mode == "subprocess" else []
    took = _run_timed(project, *extra, "flows.py:stuck_task")
    assert took < 6, f"orch run took {took:.1f} s for a 0.5 s timeout"

    detail = project.show()
    assert detail["state"] in ("TIMED_OUT", "FAILED")
    [task] = detail["tasks"]
    assert task["state"] == "TIMED_OUT"
    assert "0.5 s" in task["error"]
    assert project.count("after.count") == 0
    pid = project.read_pid()
    # The process that ran the task is gone: `orch run` itself, or its child.
    wait_for(lambda: not pid_alive(pid), timeout=5, what=f"pid {pid} to exit")


@pytest.mark.parametrize("mode", ["in-process", "subprocess"])
def test_flow_timeout(project: Project, mode: str) -> None:
    project.write_flow("flows.py", HANGS)
    extra = ["--subprocess"] if mode == "subprocess" else []
    took = _run_timed(project, *extra, "flows.py:stuck_flow")
    assert took < 6, f"orch run took {took:.1f} s for a 0.5 s timeout"

    detail = project.show()
    assert detail["state"] == "TIMED_OUT"
    assert "0.5 s" in detail["message"]
    assert detail["ended"] is not None
    pid = project.read_pid()
    wait_for(lambda: not pid_alive(pid), timeout=5, what=f"pid {pid} to exit")


@pytest.mark.parametrize("mode", ["in-process", "subprocess"])
def test_a_flow_timeout_ends_the_task_run_it_cut_short(project: Project, mode: str) -> None:
    project.write_flow("flows.py", HANGS)
    extra = ["--subprocess"] if mode == "subprocess" else []
    _run_timed(project, *extra, "flows.py:stuck_in_a_task")
    detail = project.show()
    assert detail["state"] == "TIMED_OUT"
    [task] = detail["tasks"]
    assert task["state"] == "CANCELLED"  # cut short: the task itself did not time out
    assert task["message"] == "interrupted: an enclosing run exceeded its timeout"
    assert task["ended"] is not None


def test_subprocess_child_that_cannot_stop_itself_is_killed_at_its_deadline(
    project: Project,
) -> None:
    """A flow body that holds the GIL starves the child's own timeout; the parent kills it."""
    project.write_flow(
        "flows.py",
        """
        import os
        from pathlib import Path

        from orchlite import flow


        @flow(timeout_seconds=0.5)
        def hog():
            Path("task.pid").write_text(str(os.getpid()))
            # One C call that runs for hours holding the GIL and never checks for signals
            # (unlike the `re` engine, which a timeout's alarm does interrupt).
            sum(range(10**12))
        """,
    )
    took = _run_timed(project, "--subprocess", "flows.py:hog")
    assert took < 10
    detail = project.show()
    assert detail["state"] == "TIMED_OUT"
    assert "killed" in detail["message"]
    pid = project.read_pid()
    assert not pid_alive(pid)
