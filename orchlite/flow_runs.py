"""Pausing a flow run for a person, as Prefect's `prefect.flow_runs`.

    @flow
    def deploy(version: str) -> None:
        build(version)
        approval = pause_flow_run(wait_for_input=Approval, timeout=3600)
        if approval.approved:
            release(version)

`pause_flow_run` records the run PAUSED (shown by `orch runs`, `orch show` and the TUI) and
waits, in the run's own process, for `orch resume RUN [-p key=value ...]`, the TUI's resume
form or `resume_flow_run(run_id, run_input={...})` from any process of the project. With
`wait_for_input` the resume must carry input that the `RunInput` model accepts: anything
else is refused with the model's reason (the run goes on waiting) and the pause returns the
validated model. Past `timeout` seconds (default 3600) it raises `FlowPauseTimeout` and the
run fails, as in Prefect. A cancelled run stops waiting at once.

The process keeps the run alive while it waits (its heartbeat goes on), so the run survives
what its process survives. `suspend_flow_run` pauses the same way: there is no
infrastructure to tear down and rebuild around a process on this machine. A run of
`orch daemon` waiting at a pause is suspended when the daemon stops, and started again
once resumed (`orchlite.daemon.suspended`); pauses are keyed ("pause-1", ... unless `key`
names one) so that the started-again run answers those already answered from their input.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .context import FlowRunContext, current_store, flow_run_var, task_run_var
from .errors import CancelledRun, FlowPauseTimeout, SuspendedRun, UsageError
from .logging import get_run_logger
from .states import StateName

if TYPE_CHECKING:
    from .store import Store

T = TypeVar("T")

POLL_SECONDS = 0.25
"""How often a paused run looks for a resume request (one indexed read)."""
ANSWER_SECONDS = 10.0
"""How long `resume_flow_run` waits for the paused run to accept or refuse its request."""


def pause_flow_run(
    wait_for_input: type[T] | None = None,
    timeout: int = 3600,
    poll_interval: int = 10,
    key: str | None = None,
) -> T | None:
    """Pause the current flow run until it is resumed; returns the validated input when
    `wait_for_input` names a `RunInput` model. `poll_interval` is accepted for Prefect's
    signature: a paused run looks every quarter second."""
    ctx = flow_run_var.get()
    if ctx is None or task_run_var.get() is not None:
        raise RuntimeError("Flow runs can only be paused from within a flow run (not a task).")
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, not {timeout}")
    store = ctx.store
    key = key or ctx.next_pause_key()
    earlier = store.pause_of(ctx.run_id)
    logger = get_run_logger()
    if earlier is not None and key in earlier["answers"]:
        with contextlib.suppress(UsageError):  # a model that changed since: ask again
            return _accept(wait_for_input, earlier["answers"][key])
    schema = None
    if wait_for_input is not None:
        schema = json.dumps(wait_for_input.model_json_schema())  # type: ignore[attr-defined]
    refused = None
    if earlier is not None and earlier["key"] == key and earlier["status"] == "relaunch":
        # A suspended run started again: this is the pause its resume request was for.
        try:
            value = _accept(wait_for_input, earlier["input"])
        except UsageError as exc:
            refused = str(exc)
        else:
            store.settle_resume(ctx.run_id, True)
            logger.info("Resuming flow run execution!")
            return value
    deadline = time.time() + timeout
    message = f"waiting to be resumed: orch resume {ctx.run_id[:12]}"
    store.pause_flow_run(ctx.run_id, key, schema, deadline, message)
    logger.info("Pausing flow, execution will continue when this flow run is resumed.")
    if refused is not None:
        store.settle_resume(ctx.run_id, False, refused)
        logger.warning("Resume refused: %s", refused)
    return _wait_for_resume(ctx, wait_for_input, deadline)


def _wait_for_resume(ctx: FlowRunContext, model: type[T] | None, deadline: float) -> T | None:
    """Poll the run's pause until a resume request it accepts, a cancel, a suspension by
    the stopping daemon (SuspendedRun), or the deadline (FlowPauseTimeout)."""
    store = ctx.store
    logger = get_run_logger()
    while True:
        if ctx.stopped():
            raise CancelledRun("the flow run was cancelled while paused")
        pause = store.pause_of(ctx.run_id)
        status = pause["status"] if pause is not None else None
        if status == "submitted":
            try:
                value = _accept(model, pause["input"])  # type: ignore[index]
            except UsageError as exc:
                store.settle_resume(ctx.run_id, False, str(exc))
                logger.warning("Resume refused: %s", exc)
            else:
                store.settle_resume(ctx.run_id, True)
                logger.info("Resuming flow run execution!")
                return value
        elif status == "suspending" and ctx.parent is None:
            message = f"suspended: resumes under orch daemon after orch resume {ctx.run_id[:12]}"
            if store.suspend(ctx.run_id, message):
                logger.info("Suspending flow run: the daemon is stopping.")
                raise SuspendedRun(message)
        if time.time() >= deadline:
            raise FlowPauseTimeout("Flow run was paused and never resumed.")
        time.sleep(POLL_SECONDS)


def suspend_flow_run(
    wait_for_input: type[T] | None = None,
    flow_run_id: str | None = None,
    timeout: int | None = 3600,
    key: str | None = None,
) -> T | None:
    """As `pause_flow_run` (see the module's documentation for why)."""
    if flow_run_id is not None:
        ctx = flow_run_var.get()
        if ctx is None or ctx.run_id != flow_run_id:
            raise UsageError("only the current flow run can be suspended, from its own flow")
    return pause_flow_run(wait_for_input, timeout=timeout or 3600, key=key)


def resume_flow_run(flow_run_id: str, run_input: dict[str, Any] | None = None) -> None:
    """Resume a paused flow run (an id or an id prefix), with input for its model.

    Waits for the paused run to accept the request; UsageError with the reason if the run
    is not paused, refuses the input, or does not answer in `ANSWER_SECONDS`.
    """
    resume_in(current_store(), flow_run_id, run_input)


def input_fields(store: Store, run_id: str) -> list[InputField]:
    """The fields of the input a paused run waits for, from its model's JSON schema."""
    pause = store.pause_of(run_id)
    if pause is None or not pause["schema"]:
        return []
    schema = json.loads(pause["schema"])
    required = set(schema.get("required", []))
    fields = []
    for name, spec in schema.get("properties", {}).items():
        kind = spec.get("type") or " | ".join(
            str(option.get("type", "?")) for option in spec.get("anyOf", [])
        )
        default = json.dumps(spec["default"]) if "default" in spec else None
        fields.append(InputField(name, kind or "any", name in required, default))
    return fields


@dataclass(frozen=True)
class InputField:
    name: str
    kind: str
    """The JSON schema type: string, integer, boolean, ..."""
    required: bool
    default: str | None
    """The default as JSON, if there is one."""


def resume_in(store: Store, flow_run_id: str, run_input: dict[str, Any] | None) -> str:
    """`resume_flow_run` against a given store (the CLI's and the TUI's); returns what the
    user is told: that the run resumed, or, for a run suspended by a stopping daemon, that
    a daemon starts it again (its input is checked then, at its pause)."""
    run_id = store.resolve_run_id(flow_run_id)
    payload = None if run_input is None else json.dumps(run_input)
    requested = store.request_resume(run_id, payload)
    if requested is None:
        state = store.get_flow_run(run_id).state
        raise UsageError(f"flow run {run_id[:12]} is {state}, not {StateName.PAUSED.value}")
    status, key = requested
    if status == "relaunch":
        return f"flow run {run_id[:12]} was suspended; orch daemon starts it again to resume"
    deadline = time.monotonic() + ANSWER_SECONDS
    while time.monotonic() < deadline:
        pause = store.pause_of(run_id) or {}
        # Accepted: the run may already wait at its next pause.
        if pause.get("status") == "accepted" or pause.get("key") != key:
            return f"resumed flow run {run_id[:12]}"
        if pause.get("status") == "refused":
            raise UsageError(f"flow run {run_id[:12]} refused the input: {pause['verdict']}")
        if store.get_flow_run(run_id).state != StateName.PAUSED.value:
            raise UsageError(f"flow run {run_id[:12]} ended while being resumed")
        time.sleep(0.05)
    raise UsageError(
        f"flow run {run_id[:12]} did not answer within {ANSWER_SECONDS:g} s; it will"
        " resume when its process looks again"
    )


def _accept(model: type[T] | None, payload: str | None) -> T | None:
    """The resume input, validated by the model (UsageError naming what is wrong)."""
    data = json.loads(payload) if payload else {}
    if model is None:
        return None
    from pydantic import ValidationError

    try:
        return model.model_validate(data)  # type: ignore[attr-defined, no-any-return]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'input'}: {error['msg']}"
            for error in exc.errors()
        )
        raise UsageError(problems) from None
