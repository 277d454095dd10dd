"""Finding runs whose process died, so no run stays RUNNING forever.

A run records the pid and host of the process running it, and that process refreshes a
heartbeat every few seconds. A run that is not finished is dead when its process is gone
(same host, pid not alive) or, on another host, when its heartbeat stopped long ago. It is
ended CRASHED, together with its unfinished task runs.
"""

from __future__ import annotations

import os
import socket
import time

from .processes import pid_alive
from .states import StateName
from .store import FlowRun, Store

STALE_HEARTBEAT_SECONDS = 300.0


def reap_dead_runs(store: Store, now: float | None = None) -> list[str]:
    """End every unfinished run whose process is gone; returns their ids."""
    now = time.time() if now is None else now
    host = socket.gethostname()
    reaped = []
    for run in store.unfinished_flow_runs():
        reason = death_of(run, host, now)
        if reason and store.end_abandoned_run(run.id, StateName.CRASHED, reason):
            reaped.append(run.id)
    return reaped


def death_of(run: FlowRun, host: str, now: float) -> str | None:
    if run.pid is None:
        return None  # not started by any process yet (queued by a supervisor or daemon)
    if run.host == host and run.pid != os.getpid() and not pid_alive(run.pid):
        return f"its process (pid {run.pid}) is gone"
    if run.heartbeat is not None and now - run.heartbeat > STALE_HEARTBEAT_SECONDS:
        # On another host, or a pid since reused by an unrelated process here.
        return f"no heartbeat from {run.host} (pid {run.pid}) for {int(now - run.heartbeat)} s"
    return None
