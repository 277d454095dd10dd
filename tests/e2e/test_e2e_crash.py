"""Killed and interrupted runs: recorded truthfully, and the store stays whole."""

from __future__ import annotations

import os
import signal

import pytest

from orchlite.states import TERMINAL
from tests.helpers import Project, assert_blobs_whole, finish, pid_alive, wait_for

SLEEPS = """
import os
import time
from pathlib import Path

from orchlite import flow, task


@task
def big(i: int) -> bytes:
    return os.urandom(50_000)


@task
def hang():
    Path("task.pid").write_text(str(os.getpid()))
    time.sleep(3600)


@task
def never():
    bump("never.count")


@flow
def doomed():
    for i in range(3):
        big(i)
    hang()
    never()


@task
def spawn_and_hang():
    import subprocess
    import sys

    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(3600)"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    Path("grandchild.pid").write_text(str(child.pid))
    Path("task.pid").write_text(str(os.getpid()))
    time.sleep(3600)


@flow
def spawner():
    spawn_and_hang()
    never()


@flow
def churn():
    Path("task.pid").write_text(str(os.getpid()))
    i = 0
    while True:
        big(i)
        i += 1
"""

TERMINAL_NAMES = {s.value for s in TERMINAL}


def _running_task(project: Project, name: str) -> bool:
    store = project.store() if (project.home / "orch.db").exists() else None
    if store is None:
        return False
    return any(
        t.name == name and t.state == "RUNNING"
        for run in store.list_flow_runs()
        for t in store.task_runs(run.id)
    )


def _assert_store_whole(project: Project) -> None:
    store = project.store()
    assert store.integrity_check() == "ok"
    assert_blobs_whole(project)
    for run in store.list_flow_runs(limit=1000):
        assert run.state in TERMINAL_NAMES, run
        for task in store.task_runs(run.id):
            assert task.state in TERMINAL_NAMES, task


def test_sigkill_of_the_child_mid_task_is_a_crash(project: Project) -> None:
    project.write_flow("flows.py", SLEEPS)
    runner = project.popen("run", "--subprocess", "flows.py:doomed")
    try:
        pid = project.read_pid()
        assert pid != runner.pid
        # Wait until the store shows the task RUNNING, then kill the child outright.
        wait_for(lambda: _running_task(project, "hang-0"), what="hang-0 RUNNING")
        os.kill(pid, signal.SIGKILL)
    finally:
        _, err = finish(runner)
    assert runner.returncode == 1, err
    assert not pid_alive(pid)

    detail = project.show()
    assert detail["state"] == "CRASHED"
    assert "SIGKILL" in detail["message"]
    states = {t["name"]: t["state"] for t in detail["tasks"]}
    assert states == {"big-0": "COMPLETED", "big-1": "COMPLETED", "big-2": "COMPLETED"} | {
        "hang-0": "CRASHED"
    }
    assert project.count("never.count") == 0
    assert len(project.blob_files()) == 3
    _assert_store_whole(project)


def test_sigkill_while_writing_blobs_leaves_no_partial_blob(project: Project) -> None:
    project.write_flow("flows.py", SLEEPS)
    runner = project.popen("run", "--subprocess", "flows.py:churn")
    try:
        pid = project.read_pid()
        wait_for(lambda: len(project.blob_files()) >= 20, what="20 blobs")
        os.kill(pid, signal.SIGKILL)
    finally:
        _, err = finish(runner)
    assert runner.returncode == 1, err
    detail = project.show()
    assert detail["state"] == "CRASHED"
    assert "SIGKILL" in detail["message"]
    completed = [t for t in detail["tasks"] if t["state"] == "COMPLETED"]
    assert len(completed) >= 19
    _assert_store_whole(project)
    # Every completed task's result is readable from its blob.
    store = project.store()
    referenced = store.referenced_blobs()
    on_disk = {p.name for p in project.blob_files()}
    assert referenced <= on_disk


@pytest.mark.parametrize("mode", ["in-process", "subprocess"])
def test_ctrl_c_cancels_the_run(project: Project, mode: str) -> None:
    project.write_flow("flows.py", SLEEPS)
    extra = ["--subprocess"] if mode == "subprocess" else []
    runner = project.popen("run", *extra, "flows.py:doomed")
    try:
        pid = project.read_pid()
        runner.send_signal(signal.SIGINT)
    finally:
        _, err = finish(runner)
    assert runner.returncode == 130, err
    assert "Traceback" not in err
    assert not pid_alive(pid) or pid == runner.pid

    detail = project.show()
    assert detail["state"] == "CANCELLED"
    states = {t["name"]: t["state"] for t in detail["tasks"]}
    assert states["hang-0"] == "CANCELLED"
    assert "never-0" not in states
    assert project.count("never.count") == 0
    _assert_store_whole(project)


@pytest.mark.parametrize("mode", ["in-process", "subprocess"])
def test_sigterm_cancels_the_run_like_ctrl_c(project: Project, mode: str) -> None:
    """systemd's stop, `timeout` and `kill` send SIGTERM: the run ends CANCELLED, what the
    flow started in its child process is stopped, and `orch` exits 143 (128 + SIGTERM)."""
    project.write_flow("flows.py", SLEEPS)
    extra = ["--subprocess"] if mode == "subprocess" else []
    runner = project.popen("run", *extra, "flows.py:spawner")
    grandchild = 0
    try:
        pid = project.read_pid()
        grandchild = project.read_pid("grandchild.pid")
        runner.send_signal(signal.SIGTERM)
    finally:
        _, err = finish(runner)
    try:
        assert runner.returncode == 143, err
        assert "Traceback" not in err
        assert "CANCELLED" in err
        detail = project.show()
        assert detail["state"] == "CANCELLED"
        assert "SIGTERM" in detail["message"]
        states = {t["name"]: t["state"] for t in detail["tasks"]}
        assert states["spawn_and_hang-0"] == "CANCELLED"
        assert "never-0" not in states
        if mode == "subprocess":
            assert not pid_alive(pid)
            wait_for(lambda: not pid_alive(grandchild), what="the grandchild to be stopped")
    finally:
        if grandchild and pid_alive(grandchild):
            os.kill(grandchild, signal.SIGKILL)
    _assert_store_whole(project)


def test_sigkill_of_an_in_process_run_is_found_by_the_next_command(project: Project) -> None:
    """Nobody supervises an in-process run: `orch logs -f` and `orch show` notice it died."""
    project.write_flow("flows.py", SLEEPS)
    runner = project.popen("run", "flows.py:doomed")
    follower = None
    try:
        pid = project.read_pid()
        assert pid == runner.pid
        wait_for(lambda: _running_task(project, "hang-0"), what="hang-0 RUNNING")
        follower = project.popen("logs", "last", "--follow")
        runner.kill()
        finish(runner)
        _, err = finish(follower, timeout=15)  # ends once the dead run is ended
        assert follower.returncode == 0, err
    finally:
        if runner.poll() is None:
            runner.kill()
            finish(runner)
        if follower is not None and follower.poll() is None:
            follower.kill()
            finish(follower)
    detail = project.show()
    assert detail["state"] == "CRASHED"
    assert str(pid) in detail["message"]
    assert {t["name"]: t["state"] for t in detail["tasks"]}["hang-0"] == "CRASHED"
    _assert_store_whole(project)


@pytest.mark.parametrize("mode", ["in-process", "subprocess"])
@pytest.mark.parametrize("status", [0, 3])
def test_flow_calling_sys_exit_is_a_crash_and_exits_1(
    project: Project, mode: str, status: int
) -> None:
    project.write_flow(
        "flows.py",
        f"""
        import sys

        from orchlite import flow


        @flow
        def quits():
            sys.exit({status})
        """,
    )
    extra = ["--subprocess"] if mode == "subprocess" else []
    proc = project.orch("run", *extra, "flows.py:quits", expect=1)
    assert "CRASHED" in proc.stderr.splitlines()[-1]
    detail = project.show()
    assert detail["state"] == "CRASHED"
    assert f"SystemExit: {status}" in detail["message"]
