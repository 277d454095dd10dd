"""Cancelling a run from another process.

`cancel_run` marks the run CANCELLING in the store. The process running the flow notices
within half a second (its recorder polls) and stops at the next task boundary; a
`--subprocess` supervisor terminates its child. A run whose process is already gone is
ended CANCELLED at once, so a dead run can always be cancelled.
"""

from __future__ import annotations

import socket
import time

from .errors import UsageError
from .reaper import death_of
from .states import TERMINAL, StateName
from .store import Store


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
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        state = store.get_flow_run(run_id).state
        if StateName(state) in TERMINAL:
            return state
        time.sleep(0.1)
    return store.get_flow_run(run_id).state
