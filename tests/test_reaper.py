"""Runs left unfinished by a dead process are ended CRASHED; live ones are left alone."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from orchlite.reaper import STALE_HEARTBEAT_SECONDS, reap_dead_runs
from orchlite.states import StateName
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
