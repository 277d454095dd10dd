"""What a user does to runs and schedules, whether from `orch` or from the TUI: run, retry,
cancel, run now, resume, pause or resume a schedule, run a schedule now, and the checks and
messages that go with each.

Every function takes the store's home (`.orch/`) as an argument and opens its own `Store`
for the call: the TUI calls them in worker threads while its screens keep polling. Nothing
here reads or writes this process's environment to find the store; a child process gets
the home in its own environment (`supervisor.run_in_subprocess(home=...)`).

The TUI reaches the executor, the supervisor, the daemon and `stopping` only through this
module (an import contract in `pyproject.toml`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import schedule_control
from .config import project_root
from .daemon import PID_FILE, listing, status
from .daemon.retry_chain import entry_key
from .daemon.service import is_running
from .declarations import entry_env, read_declarations
from .discovery import FlowInfo, is_flow_name, load_target
from .errors import OrchError, ParameterError, UsageError
from .executor import RunRequest
from .flow_runs import InputField, input_fields, resume_in
from .params import bind_parameters
from .redaction import MASK, holds_mask
from .schedule_control import ScheduleRun
from .shell_jobs import command_of
from .states import TERMINAL
from .stopping import cancel_run
from .store import FlowRun, Store
from .supervisor import run_in_subprocess

__all__ = [
    "PID_FILE",
    "FlowInfo",
    "InputField",
    "Outcome",
    "RetryPlan",
    "RunRequest",
    "ScheduleRun",
    "cancel",
    "check_cancellable",
    "is_running",
    "launch",
    "listing",
    "pause_schedule",
    "rerun_request",
    "resume",
    "resume_fields",
    "resume_schedule",
    "retry_plan",
    "run_now_request",
    "schedule_run",
    "status",
]

CANCEL_WAIT_SECONDS = 10.0


@dataclass
class Outcome:
    message: str
    ok: bool = True
    run_id: str | None = None


def cancel(home: Path, run_id: str, wait_seconds: float = CANCEL_WAIT_SECONDS) -> Outcome:
    """Cancel the run and wait up to `wait_seconds` for it to stop."""
    with Store(home, create=False) as store:
        state = cancel_run(store, run_id, wait_seconds=wait_seconds)
    return Outcome(f"Run {run_id[:8]} {state}", ok=state in ("CANCELLED", "CANCELLING"))


def check_cancellable(home: Path, run_id: str) -> None:
    """UsageError when the run has finished: there is nothing left to cancel."""
    with Store(home, create=False) as store:
        state = store.get_flow_run(run_id).state
    if state in TERMINAL:
        raise UsageError(f"run {run_id[:8]} already finished {state}: nothing to cancel")


@dataclass
class RetryPlan:
    request: RunRequest
    completed: bool
    """The run completed: `orch retry` asks for --force, the TUI for a typed confirmation."""
    recorded: dict[str, Any] = field(default_factory=dict)
    """The parameters recorded on the run retried (the request's are these, updated)."""


def retry_plan(
    home: Path,
    run_id: str,
    params: dict[str, Any] | None = None,
    *,
    force: bool = True,
    redacted_ok: bool = False,
) -> RetryPlan:
    """The request that retries the run, with `params` over its recorded parameters.

    UsageError when it cannot be retried: a subflow, a run without a recorded target, or,
    without `force`, a run that completed; and, unless `redacted_ok` (a form that asks for
    them again), when a parameter recorded redacted (a secret's value, stored as `***`) is
    not given again in `params`: it is never sent as `***`.
    """
    with Store(home, create=False) as store:
        old = store.get_flow_run(run_id)
        key = _entry_key(store, old)
    completed = old.state == "COMPLETED"
    if completed and not force:
        raise UsageError(f"run {old.id[:8]} completed; pass --force to run it again")
    if old.parent_run_id is not None:
        raise UsageError(
            f"run {old.id[:8]} is a subflow; retry its parent run {old.parent_run_id[:8]}"
        )
    if not old.target:
        raise UsageError(f"run {old.id[:8]} has no recorded target to run again")
    recorded = json.loads(old.parameters or "{}")
    if not redacted_ok:
        for name, value in recorded.items():
            if name not in (params or {}) and holds_mask(value):
                raise UsageError(
                    f"parameter '{name}' of run {old.id[:8]} was recorded redacted ({MASK});"
                    f" give its value again: -p {name}=VALUE"
                )
    given = {**recorded, **(params or {})}
    env = {} if key is None else _entry_env(project_root(home), key)
    request = RunRequest(
        target=old.target, params=given, resume_from=old.id, trigger="retry", env=env
    )
    return RetryPlan(request, completed=completed, recorded=recorded)


def _entry_key(store: Store, run: FlowRun) -> str | None:
    """The key of the schedule or trigger entry that started the run, or the first run of
    the retries it ends (None: started by hand, or nothing recorded)."""
    seen: set[str] = set()
    while run.id not in seen:
        seen.add(run.id)
        claim = store.slot_claim(run.id)
        if claim is not None:
            return entry_key(claim[0])
        if run.retry_of is None:
            return None
        try:
            run = store.get_flow_run(run.retry_of)
        except OrchError:  # deleted by retention
            return None
    return None


def _entry_env(root: Path, key: str) -> dict[str, str]:
    """The `env` the entry with `key` declares now, as the daemon reads it at each start.
    The project's env file and the run's recorded `working_dir` are applied wherever a
    retry runs (`orchlite.run_setup`)."""
    declared = read_declarations(root)
    return entry_env([*declared.schedules, *declared.triggers], key)


def run_now_request(home: Path, flow: FlowInfo, values: dict[str, str]) -> RunRequest:
    """The request `orch run TARGET -p name=value ...` would make, validated the same way.

    `values` are the texts typed for the parameters (those left at their default are left
    out); the flow is imported here to check them, so call this in a worker thread.
    """
    _check_parameters(home, flow.target, values)
    return RunRequest(target=flow.target, params=dict(values))


def rerun_request(home: Path, run_id: str, values: dict[str, Any], *, retry: bool) -> RetryPlan:
    """The run started again with `values` over its recorded parameters: as a retry of it
    (`retry`: what `orch retry RUN --force -p ...` starts) or as a fresh run of its target
    (what `orch run TARGET -p ...` starts), checked as those check them. A retry's plan says
    whether the run completed (the TUI then asks for a typed confirmation).

    UsageError as `retry_plan` refuses (a subflow, no recorded target); ParameterError for a
    value the flow refuses, and for a parameter recorded redacted (a secret's value, stored
    as `***`) whose value still holds `***`: it must be typed again, never sent as `***`.
    The flow is imported to check the values: call this in a worker thread.
    """
    plan = retry_plan(home, run_id, values, redacted_ok=True)
    params = plan.request.params
    for name, value in plan.recorded.items():
        if holds_mask(value) and holds_mask(params.get(name)):
            raise ParameterError(
                f"parameter '{name}' was recorded redacted ({MASK}): type its value again",
                names=(name,),
            )
    if not retry:
        plan = RetryPlan(RunRequest(target=plan.request.target, params=params), completed=False)
    _check_parameters(home, plan.request.target, plan.request.params)
    return plan


def _check_parameters(home: Path, target: str, params: dict[str, Any]) -> None:
    """Refuse `params` as running `target` with them would, before any run is recorded."""
    if command_of(target) is not None:
        if params:
            raise UsageError(f"a command takes no parameters: {', '.join(params)}")
        return
    root = project_root(home)
    project = None
    if is_flow_name(target):
        from .project_model import Project  # only a name is looked up in the project

        project = Project(root)
    loaded: object = load_target(target, root, project)
    fn = getattr(loaded, "fn", None)
    if not getattr(loaded, "__orch_flow__", False) or fn is None:
        raise UsageError(f"{target} is not a flow (decorate it with @flow)")
    bind_parameters(fn, params, flow_name=getattr(loaded, "name", target))


def resume_fields(home: Path, run_id: str) -> list[InputField]:
    """What a paused run waits for; UsageError when it is not paused."""
    with Store(home, create=False) as store:
        state = store.get_flow_run(run_id).state
        if state != "PAUSED":
            raise UsageError(f"run {run_id[:8]} is {state}, not PAUSED")
        return input_fields(store, run_id)


def resume(home: Path, run_id: str, values: dict[str, Any] | None) -> Outcome:
    """Resume a paused run with its input (checked by the run's input model)."""
    with Store(home, create=False) as store:
        return Outcome(resume_in(store, run_id, values or None))


def launch(home: Path, request: RunRequest, started_by: ScheduleRun | None = None) -> Outcome:
    """Run `request` in a supervised child process and wait for it to end; with
    `started_by` (`schedule_run`), record that the schedule started it, as `orch run
    --schedule` does.

    The child's output is captured as log records of its run (instead of landing on the
    terminal the TUI draws on).
    """
    new_id, code = run_in_subprocess(request, home=home, capture_output=True)
    if new_id is None:
        what = (
            f"The retry of run {request.resume_from[:8]}"
            if request.resume_from
            else f"The run of {request.target}"
        )
        return Outcome(f"{what} did not start (exit code {code})", ok=False)
    with Store(home, create=False) as store:
        state = store.get_flow_run(new_id).state
        if started_by is not None:
            started_by.record(store, new_id)
    how = "retry" if request.resume_from else request.target
    return Outcome(f"Run {new_id[:8]} ({how}) {state}", ok=code == 0, run_id=new_id)


def pause_schedule(home: Path, name: str) -> Outcome:
    """Pause the schedule `name` (`orch schedule pause NAME`); UsageError when there is none."""
    found, changed = schedule_control.pause(home, project_root(home), name)
    return Outcome(f"schedule {found!r} {'paused' if changed else 'was paused already'}")


def resume_schedule(home: Path, name: str) -> Outcome:
    """Resume the schedule `name` from its next slot (`orch schedule resume NAME`)."""
    found, changed = schedule_control.resume(home, project_root(home), name)
    return Outcome(f"schedule {found!r} {'resumed' if changed else 'was not paused'}")


def schedule_run(home: Path, name: str, params: Mapping[str, Any] | None = None) -> ScheduleRun:
    """What `orch run --schedule NAME` runs now: the schedule's target with its parameters
    (`params` over them) and its `env`. UsageError when there is no such schedule."""
    return schedule_control.scheduled_run(
        project_root(home), name, dt.datetime.now(dt.timezone.utc), params
    )
