"""Named crash points, for the tests that kill a process at every commit.

`fault_point("task_result_recorded")` sits right after a commit in the store or blob layer
(or right before one, when its name says so). It does nothing unless the environment
variable `ORCH_FAULT` names it when this module is first imported:

    ORCH_FAULT=task_result_recorded      # SIGKILL this process the first time it gets there
    ORCH_FAULT=task_result_recorded:3    # ... the third time

The process kills itself with SIGKILL, exactly as `kill -9` would: no cleanup, no flush, no
`finally`. Only the crash tests (tests/chaos/) set the variable; unset, a point costs one
comparison. `POINTS` lists every point, so the tests cover a new one without being told.
"""

from __future__ import annotations

import os
import signal
import threading

ENV = "ORCH_FAULT"

POINTS: dict[str, str] = {
    "run_created": "a new flow run's row is committed (or a claimed run adopted)",
    "run_started": "a flow run is committed RUNNING",
    "task_started": "a task run's RUNNING row is committed",
    "blob_temp_written": "a blob's temporary file is written and synced, before its rename",
    "blob_written": "a blob is renamed to its final name, before a row references it",
    "task_result_recorded": "a task run's COMPLETED or CACHED row, with its result, is committed",
    "run_finished": "a flow run's final state is committed",
    "slot_claimed": "a schedule slot's run is committed SCHEDULED",
    "trigger_run_claimed": "a file or flow trigger's run is committed SCHEDULED",
    "retry_run_claimed": "the daemon's next attempt of a crashed run is committed SCHEDULED",
}


def _parse(spec: str | None) -> tuple[str | None, int]:
    """(point, nth) from `ORCH_FAULT`; (None, 0) when unset."""
    if not spec:
        return None, 0
    name, _, nth = spec.partition(":")
    return name, int(nth) if nth else 1


_target, _nth = _parse(os.environ.get(ENV))
_hits = 0
_lock = threading.Lock()


def fault_point(name: str) -> None:
    """Kill this process here if `ORCH_FAULT` armed this point and this is its nth visit."""
    if name != _target:
        return
    global _hits
    with _lock:
        _hits += 1
        due = _hits == _nth
    if due:
        os.kill(os.getpid(), signal.SIGKILL)
