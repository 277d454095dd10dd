"""Bugs the crash loops found, each pinned by the smallest test that shows it."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from orchlite.project import load_schedules
from orchlite.stopping import reap_dead_runs
from orchlite.store import Store

pytestmark = pytest.mark.chaos


def test_a_run_whose_process_died_before_it_started_is_reaped(tmp_path: Path) -> None:
    """A process killed between creating its run (PENDING) and starting it (RUNNING) left
    the run PENDING for ever: it recorded no pid, so no reaper could tell it was dead."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store = Store(tmp_path / ".orch")
    store.create_flow_run(
        run_id="ab" * 16,
        flow_name="f",
        name="f",
        parameters="{}",
        pid=dead.pid,
        host=socket.gethostname(),
    )
    assert reap_dead_runs(store) == ["ab" * 16]
    run = store.get_flow_run("ab" * 16)
    assert run.state == "CRASHED"
    assert f"pid {dead.pid}" in (run.state_message or "")


def test_a_run_claimed_ahead_keeps_waiting_until_a_process_adopts_it(tmp_path: Path) -> None:
    """A SCHEDULED run has no process yet and is never reaped; adopting it records one."""
    store = Store(tmp_path / ".orch")
    store.create_flow_run(run_id="cd" * 16, flow_name="f", name="f", parameters="{}")
    assert reap_dead_runs(store) == []
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store.create_flow_run(
        run_id="cd" * 16,
        flow_name="f",
        name="f",
        parameters="{}",
        pid=dead.pid,
        host=socket.gethostname(),
    )
    assert store.get_flow_run("cd" * 16).pid == dead.pid
    assert reap_dead_runs(store) == ["cd" * 16]


def test_schedules_after_another_decorator_option_are_read(tmp_path: Path) -> None:
    """`@flow(retries=1, schedules=[...])`: only the first keyword used to be looked at, so
    the schedule was silently ignored."""
    (tmp_path / "flows.py").write_text(
        textwrap.dedent(
            """
            from orchlite import flow, interval

            @flow(retries=1, retry_delay_seconds=0, schedules=[interval(seconds=5)])
            def retried():
                pass
            """
        )
    )
    entries, problems = load_schedules(tmp_path)
    assert problems == []
    assert [e.target for e in entries] == ["flows.py:retried"]
