"""Cancelling a run from another process.

`cancel_run` marks the run CANCELLING in the store. The process running the flow notices
within half a second (its recorder polls) and stops at the next task boundary; a
`--subprocess` supervisor terminates its child. A run whose process is already gone is
ended CANCELLED at once, so a dead run can always be cancelled.
"""

from __future__ import annotations

import os
import socket
import time

from .errors import UsageError
from .states import TERMINAL, StateType
from .store import FlowRun, Store


def cancel_run(store: Store, run_id: str, *, wait_seconds: float = 10.0) -> str:
    """Ask a run to stop and wait up to `wait_seconds` for it; returns the state it reached."""
    run = store.get_flow_run(run_id)
    if StateType(run.state) in TERMINAL:
        raise UsageError(f"run {run_id[:8]} already ended {run.state}")
    if not store.request_cancel(run_id):
        return store.get_flow_run(run_id).state
    if not _process_alive(run):
        store.end_abandoned_run(run_id, StateType.CANCELLED, "cancelled; its process was gone")
        return StateType.CANCELLED.value
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        state = store.get_flow_run(run_id).state
        if StateType(state) in TERMINAL:
            return state
        time.sleep(0.1)
    return store.get_flow_run(run_id).state


def _process_alive(run: FlowRun) -> bool:
    """Whether the run's process may still be running (unknowable on another host: yes)."""
    if run.pid is None:
        # Not started yet: a supervisor or daemon may still be about to start it.
        return run.state not in (StateType.SCHEDULED.value,)
    if run.host and run.host != socket.gethostname():
        return True
    try:
        os.kill(run.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
