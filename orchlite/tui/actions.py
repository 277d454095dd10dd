"""Cancel and retry from the TUI, through the same library functions as `orch cancel/retry`.

Each call opens its own `Store` and closes it: they run in worker threads while the
screens keep polling.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..cancellation import cancel_run
from ..config import HOME_ENV, find_home
from ..errors import UsageError
from ..executor import RunRequest, run_in_subprocess
from ..store import Store

CANCEL_WAIT_SECONDS = 10.0


@dataclass
class Outcome:
    message: str
    ok: bool = True
    run_id: str | None = None


def cancel(home: Path, run_id: str, wait_seconds: float = CANCEL_WAIT_SECONDS) -> Outcome:
    store = Store(home, create=False)
    try:
        state = cancel_run(store, run_id, wait_seconds=wait_seconds)
    finally:
        store.close()
    return Outcome(f"Run {run_id[:8]} {state}", ok=state in ("CANCELLED", "CANCELLING"))


def retry_request(home: Path, run_id: str) -> RunRequest:
    """The request `orch retry RUN --force` would make; UsageError when it cannot be retried."""
    store = Store(home, create=False)
    try:
        old = store.get_flow_run(run_id)
    finally:
        store.close()
    if old.parent_run_id is not None:
        raise UsageError(
            f"run {old.id[:8]} is a subflow; retry its parent run {old.parent_run_id[:8]}"
        )
    if not old.target:
        raise UsageError(f"run {old.id[:8]} has no recorded target to run again")
    params = json.loads(old.parameters or "{}")
    return RunRequest(target=old.target, params=params, resume_from=old.id, trigger="retry")


def retry(home: Path, request: RunRequest) -> Outcome:
    """Run the retry in a supervised child process and wait for it to end."""
    if find_home() != home:
        # The executor finds the store the way the CLI does; `orch --home` sets this too.
        os.environ[HOME_ENV] = str(home)
    # Captured: the child's output becomes log records of its run instead of landing on
    # the terminal the TUI draws on.
    new_id, code = run_in_subprocess(request, capture_output=True)
    if new_id is None:
        old = (request.resume_from or "")[:8]
        return Outcome(f"The retry of run {old} did not start (exit code {code})", ok=False)
    store = Store(home, create=False)
    try:
        state = store.get_flow_run(new_id).state
    finally:
        store.close()
    return Outcome(f"Run {new_id[:8]} (retry) {state}", ok=code == 0, run_id=new_id)
