"""Runs left unfinished by a dead process are ended CRASHED; live ones are left alone."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from orchlite.states import StateName
from orchlite.stopping import STALE_HEARTBEAT_SECONDS, reap_dead_runs
from orchlite.store import Store, TaskRun


def _running_run(store: Store, run_id: str, pid: int, host: str) -> None:
    store.create_flow_run(run_id=run_id, flow_name="f", name="f", parameters="{}")
    store.set_flow_run_state(run_id, StateName.RUNNING, pid=pid, host=host)
    now = time.time()
    task = TaskRun(
        run_id,
        0,
        "t" * 32,
        0,
        "t@f.py",
        "t-0",
        "0",
        "RUNNING",
        None,
        1,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        now,
        now,
        None,
    )
    store.save_task_run(task, [("PENDING", None, now), ("RUNNING", None, now)])


def test_a_run_whose_process_died_is_crashed_with_its_tasks(tmp_path: Path) -> None:
    store = Store(tmp_path / ".orch")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    _running_run(store, "aa" * 16, child.pid, socket.gethostname())
    _running_run(store, "bb" * 16, os.getpid(), socket.gethostname())
    assert reap_dead_runs(store) == []
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert reap_dead_runs(store) == ["aa" * 16]
    dead = store.get_flow_run("aa" * 16)
    assert dead.state == "CRASHED"
    assert f"pid {child.pid}" in (dead.state_message or "")
    assert [t.state for t in store.task_runs("aa" * 16)] == ["CRASHED"]
    assert store.get_flow_run("bb" * 16).state == "RUNNING"


def test_another_hosts_run_is_crashed_only_after_its_heartbeat_goes_stale(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / ".orch")
    _running_run(store, "cc" * 16, 12345, "some-other-host")
    assert reap_dead_runs(store) == []
    later = time.time() + STALE_HEARTBEAT_SECONDS + 1
    assert reap_dead_runs(store, now=later) == ["cc" * 16]


def test_a_stopped_process_is_alive_however_stale_its_heartbeat(tmp_path: Path) -> None:
    """Ctrl-Z, a suspended VM, a clock jump: on its own host a run lives while its pid does."""
    store = Store(tmp_path / ".orch")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _running_run(store, "dd" * 16, child.pid, socket.gethostname())
        child.send_signal(signal.SIGSTOP)
        later = time.time() + 400
        assert reap_dead_runs(store, now=later) == []
        assert reap_dead_runs(store, now=later, stale_after=1.0) == []
        assert store.get_flow_run("dd" * 16).state == "RUNNING"
    finally:
        child.kill()
        child.wait()
    assert reap_dead_runs(store) == ["dd" * 16]


def test_a_run_whose_pid_now_names_another_process_is_crashed(tmp_path: Path) -> None:
    store = Store(tmp_path / ".orch")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _running_run(store, "ee" * 16, child.pid, socket.gethostname())
        assert store.get_flow_run("ee" * 16).pid_start is not None
        assert reap_dead_runs(store) == []
        with store.transaction() as conn:  # recorded by an earlier process with that pid
            conn.execute("UPDATE flow_runs SET pid_start = 'another-boot:1'")
        assert reap_dead_runs(store) == ["ee" * 16]
        assert f"pid {child.pid}" in (store.get_flow_run("ee" * 16).state_message or "")
    finally:
        child.kill()
        child.wait()


def test_every_ending_of_a_flow_run_ends_its_unfinished_task_runs(tmp_path: Path) -> None:
    store = Store(tmp_path / ".orch")
    for n, state in enumerate(["CANCELLED", "TIMED_OUT", "FAILED", "COMPLETED"]):
        run_id = f"{n}" * 32
        _running_run(store, run_id, os.getpid(), socket.gethostname())
        assert store.set_flow_run_state(run_id, StateName(state), f"ended {state}")
        [task] = store.task_runs(run_id)
        expected = {"TIMED_OUT": "CANCELLED", "COMPLETED": "CRASHED"}.get(state, state)
        assert task.state == expected
        assert task.state_message == f"ended {state}"
        assert task.ended is not None


def test_a_task_run_is_not_written_once_its_flow_run_ended(tmp_path: Path) -> None:
    """Terminal states are final: a late write (a resumed or abandoned body) changes nothing."""
    store = Store(tmp_path / ".orch")
    _running_run(store, "ff" * 16, os.getpid(), socket.gethostname())
    assert store.end_abandoned_run("ff" * 16, StateName.CRASHED, "its process is gone")
    [task] = store.task_runs("ff" * 16)
    task.state, task.ended = "COMPLETED", time.time()
    assert not store.save_task_run(task, [("COMPLETED", None, task.ended)])
    assert [t.state for t in store.task_runs("ff" * 16)] == ["CRASHED"]
    assert [h.state for h in store.history("ff" * 16, 0)][-1] == "CRASHED"
