"""The daemon's side of suspended runs, against a real store with a fake launch: a resumed
suspended run starts again under its own id, once, as slots free up; one past its pause
timeout fails; the reaper leaves a suspended run alone."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

from orchlite.daemon import Daemon
from orchlite.daemon.suspended import PAUSE_TIMED_OUT
from orchlite.states import StateName
from orchlite.stopping import reap_dead_runs
from orchlite.store import Store
from tests.helpers.daemon import FakeLaunch

UTC = dt.timezone.utc


def suspended_run(store: Store, run_id: str, *, deadline: float) -> None:
    """A run of this process paused at "pause-1", then suspended by a stopping daemon."""
    store.create_flow_run(
        run_id=run_id,
        flow_name="deploy",
        name="deploy",
        parameters='{"version": "2.0"}',
        target="flows.py:deploy",
        trigger="file",
        pid=os.getpid(),
        host=os.uname().nodename,
    )
    store.set_flow_run_state(run_id, StateName.RUNNING)
    store.pause_flow_run(run_id, "pause-1", None, deadline, "waiting to be resumed")
    assert store.ask_to_suspend(run_id)
    assert store.suspend(run_id, "suspended")


def daemon_for(tmp_path: Path, store: Store, max_runs: int | None = None) -> Daemon:
    return Daemon(store, tmp_path, launch=FakeLaunch(), log=lambda _: None, max_runs=max_runs)


def at(timestamp: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, UTC)


def test_a_resumed_suspended_run_starts_again_once_under_its_own_id(tmp_path: Path) -> None:
    store = Store(tmp_path / ".orch")
    now = time.time()
    suspended_run(store, "run-a", deadline=now + 600)
    assert reap_dead_runs(store) == []  # no process, and not dead
    daemon = daemon_for(tmp_path, store)
    launch = daemon.launch
    assert isinstance(launch, FakeLaunch)

    daemon.relaunch_resumed(at(now))
    assert launch.calls == []  # suspended, but nobody asked to resume it
    assert store.request_resume("run-a", '{"approved": true}') == ("relaunch", "pause-1")

    report = daemon.relaunch_resumed(at(now))
    assert report.started == ["run-a"]
    assert launch.calls == [("run-a", "flows.py:deploy", {"version": "2.0"})]
    assert launch.resumed == {"run-a": None}  # the same run, not a retry of it
    assert store.get_flow_run("run-a").state == StateName.PENDING.value
    daemon.relaunch_resumed(at(now))
    assert len(launch.calls) == 1


def test_relaunches_wait_for_a_free_slot_under_max_runs(tmp_path: Path) -> None:
    store = Store(tmp_path / ".orch")
    now = time.time()
    for run_id in ("run-a", "run-b"):
        suspended_run(store, run_id, deadline=now + 600)
        store.request_resume(run_id, None)
    daemon = daemon_for(tmp_path, store, max_runs=1)
    assert len(daemon.relaunch_resumed(at(now)).started) == 1
    assert daemon.relaunch_resumed(at(now)).started == []  # the first still runs
    for handle in daemon.launch.runs.values():  # type: ignore[attr-defined]
        handle.alive = False
    daemon.collect_finished()
    assert len(daemon.relaunch_resumed(at(now)).started) == 1


def test_a_suspended_run_past_its_pause_timeout_fails(tmp_path: Path) -> None:
    store = Store(tmp_path / ".orch")
    now = time.time()
    suspended_run(store, "run-a", deadline=now + 5)
    store.request_resume("run-a", None)  # too late: the daemon comes back after the timeout
    daemon = daemon_for(tmp_path, store)
    assert daemon.relaunch_resumed(at(now + 6)).started == []
    run = store.get_flow_run("run-a")
    assert (run.state, run.state_message) == (StateName.FAILED.value, PAUSE_TIMED_OUT)
    assert store.request_resume("run-a", None) is None


def test_only_a_waiting_pause_can_be_suspended(tmp_path: Path) -> None:
    store = Store(tmp_path / ".orch")
    suspended_run(store, "run-a", deadline=time.time() + 600)
    assert not store.ask_to_suspend("run-a")  # suspended already
    store.create_flow_run(run_id="run-b", flow_name="f", name="f", parameters="{}", pid=os.getpid())
    store.set_flow_run_state("run-b", StateName.RUNNING)
    assert not store.ask_to_suspend("run-b")  # running, not paused
    assert not store.suspend("run-b", "suspended")
