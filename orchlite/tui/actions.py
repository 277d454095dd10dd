"""Cancel, retry and run now from the TUI, through the library functions `orch` itself uses.

Each call opens its own `Store` and closes it: they run in worker threads while the
screens keep polling.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..config import HOME_ENV, find_home, project_root
from ..discovery import FlowInfo, load_target
from ..errors import UsageError
from ..executor import RunRequest
from ..flow_runs import InputField, input_fields, resume_in
from ..params import bind_parameters
from ..states import TERMINAL
from ..stopping import cancel_run
from ..store import Store
from ..supervisor import run_in_subprocess

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


def check_cancellable(home: Path, run_id: str) -> None:
    """UsageError when the run has finished: there is nothing left to cancel."""
    store = Store(home, create=False)
    try:
        state = store.get_flow_run(run_id).state
    finally:
        store.close()
    if state in TERMINAL:
        raise UsageError(f"run {run_id[:8]} already finished {state}: nothing to cancel")


@dataclass
class RetryPlan:
    request: RunRequest
    completed: bool
    """The run completed: `orch retry` asks for --force, the TUI for a typed confirmation."""


def retry_plan(home: Path, run_id: str) -> RetryPlan:
    """What `orch retry RUN --force` would run; UsageError when it cannot be retried."""
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
    request = RunRequest(target=old.target, params=params, resume_from=old.id, trigger="retry")
    return RetryPlan(request, completed=old.state == "COMPLETED")


def run_now_request(home: Path, flow: FlowInfo, values: dict[str, str]) -> RunRequest:
    """The request `orch run TARGET -p name=value ...` would make, validated the same way.

    `values` are the texts typed for the parameters (those left at their default are left
    out); the flow is imported here to check them, so call this in a worker thread.
    """
    loaded: object = load_target(flow.target, project_root(home))
    fn = getattr(loaded, "fn", None)
    if not getattr(loaded, "__orch_flow__", False) or fn is None:
        raise UsageError(f"{flow.target} is not a flow (decorate it with @flow)")
    bind_parameters(fn, values, flow_name=getattr(loaded, "name", flow.name))
    return RunRequest(target=flow.target, params=dict(values))


def resume_fields(home: Path, run_id: str) -> list[InputField]:
    """What a paused run waits for; UsageError when it is not paused."""
    store = Store(home, create=False)
    try:
        state = store.get_flow_run(run_id).state
        if state != "PAUSED":
            raise UsageError(f"run {run_id[:8]} is {state}, not PAUSED")
        return input_fields(store, run_id)
    finally:
        store.close()


def resume(home: Path, run_id: str, values: dict[str, str]) -> Outcome:
    """Resume a paused run with the typed values, as `orch resume RUN -p ...` does."""
    store = Store(home, create=False)
    try:
        said = resume_in(store, run_id, values or None)
    finally:
        store.close()
    return Outcome(said[0].upper() + said[1:])


def retry(home: Path, request: RunRequest) -> Outcome:
    """Run the retry in a supervised child process and wait for it to end."""
    return launch(home, request)


def launch(home: Path, request: RunRequest) -> Outcome:
    """Run `request` in a supervised child process and wait for it to end."""
    if find_home() != home:
        # The executor finds the store the way the CLI does; `orch --home` sets this too.
        os.environ[HOME_ENV] = str(home)
    # Captured: the child's output becomes log records of its run instead of landing on
    # the terminal the TUI draws on.
    new_id, code = run_in_subprocess(request, capture_output=True)
    if new_id is None:
        what = (
            f"The retry of run {request.resume_from[:8]}"
            if request.resume_from
            else f"The run of {request.target}"
        )
        return Outcome(f"{what} did not start (exit code {code})", ok=False)
    store = Store(home, create=False)
    try:
        state = store.get_flow_run(new_id).state
    finally:
        store.close()
    how = "retry" if request.resume_from else request.target
    return Outcome(f"Run {new_id[:8]} ({how}) {state}", ok=code == 0, run_id=new_id)
