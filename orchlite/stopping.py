"""Ending runs from outside the process that runs them: reaping the runs whose process died,
and cancelling runs someone asked to stop.

**Reaping.** A run records the pid, start time and host of the process running it, and that
process refreshes a heartbeat every few seconds. A run that is not finished is dead when:

- on this host, its process is gone: the pid is not alive, or belongs to a process that
  started at another time (the pid was reused). The heartbeat is not looked at: a process
  stopped with Ctrl-Z, or on a suspended machine, or after a clock jump, is alive and its
  run goes on when it resumes.
- on another host, whose processes cannot be seen from here, its heartbeat stopped
  `stale_after` seconds ago (`STALE_HEARTBEAT_SECONDS` by default).

It is ended CRASHED, together with its unfinished task runs. Terminal states are final: if
the process of a run reaped this way was in fact alive (a host that stalled longer than
`stale_after`), it finds its run ended when it resumes, records nothing more, and stops
(see `Recorder` and `engine`).

**Cancelling.** `cancel_run` marks the run CANCELLING in the store. The process running the
flow notices within half a second (its recorder polls) and stops at the next task boundary;
a `--subprocess` supervisor terminates its child. A run whose process is already gone (as
reaping judges it) is ended CANCELLED at once, so a dead run can always be cancelled; so is a
paused run suspended by a stopping daemon (`orchlite.daemon.suspended`), which has none.
"""

from __future__ import annotations

import socket
import time

from .errors import UsageError
from .processes import SEES_PROCESSES, process_alive
from .states import TERMINAL, StateName
from .store import FlowRun, Store

STALE_HEARTBEAT_SECONDS = 300.0


def reap_dead_runs(
    store: Store, now: float | None = None, *, stale_after: float = STALE_HEARTBEAT_SECONDS
) -> list[str]:
    """End every unfinished run whose process is gone; returns their ids."""
    now = time.time() if now is None else now
    host = socket.gethostname()
    reaped = []
    for run in store.unfinished_flow_runs():
        reason = death_of(run, host, now, stale_after=stale_after)
        if reason and store.end_abandoned_run(run.id, StateName.CRASHED, reason):
            reaped.append(run.id)
    return reaped


def death_of(
    run: FlowRun, host: str, now: float, *, stale_after: float = STALE_HEARTBEAT_SECONDS
) -> str | None:
    """Why `run`'s process is known to be dead, seen from `host` at `now`; None if it may live."""
    if run.pid is None:
        return None  # not started by any process yet (queued by a supervisor or daemon)
    if run.host == host and SEES_PROCESSES:
        if process_alive(run.pid, run.pid_start):
            return None
        return f"its process (pid {run.pid}) is gone"
    if run.heartbeat is not None and now - run.heartbeat > stale_after:
        return f"no heartbeat from {run.host} (pid {run.pid}) for {int(now - run.heartbeat)} s"
    return None


def cancel_run(store: Store, run_id: str, *, wait_seconds: float = 10.0) -> str:
    """Ask a run to stop and wait up to `wait_seconds` for it; returns the state it reached."""
    run = store.get_flow_run(run_id)
    if StateName(run.state) in TERMINAL:
        raise UsageError(f"run {run_id[:8]} already ended {run.state}")
    if not store.request_cancel(run_id):
        return store.get_flow_run(run_id).state
    if run.pid is not None and death_of(run, socket.gethostname(), time.time()):
        store.end_abandoned_run(run_id, StateName.CANCELLED, "cancelled; its process was gone")
        return StateName.CANCELLED.value
    if run.pid is None and run.state == StateName.PAUSED.value:  # suspended: no process
        store.end_abandoned_run(run_id, StateName.CANCELLED, "cancelled while suspended")
        return StateName.CANCELLED.value
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        state = store.get_flow_run(run_id).state
        if StateName(state) in TERMINAL:
            return state
        time.sleep(0.1)
    return store.get_flow_run(run_id).state
