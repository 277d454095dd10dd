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
infrastructure to tear down and rebuild around a process on this machine.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .context import current_store, flow_run_var, task_run_var
from .errors import CancelledRun, FlowPauseTimeout, UsageError
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
    schema = None
    if wait_for_input is not None:
        schema = json.dumps(wait_for_input.model_json_schema())  # type: ignore[attr-defined]
    deadline = time.time() + timeout
    message = f"waiting to be resumed: orch resume {ctx.run_id[:12]}"
    store.pause_flow_run(ctx.run_id, key, schema, deadline, message)
    logger = get_run_logger()
    logger.info("Pausing flow, execution will continue when this flow run is resumed.")
    while True:
        if ctx.stopped():
            raise CancelledRun("the flow run was cancelled while paused")
        pause = store.pause_of(ctx.run_id)
        if pause is not None and pause["status"] == "submitted":
            try:
                value = _accept(wait_for_input, pause["input"])
            except UsageError as exc:
                store.settle_resume(ctx.run_id, False, str(exc))
                logger.warning("Resume refused: %s", exc)
            else:
                store.settle_resume(ctx.run_id, True)
                logger.info("Resuming flow run execution!")
                return value
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


def resume_in(store: Store, flow_run_id: str, run_input: dict[str, Any] | None) -> None:
    """`resume_flow_run` against a given store (the CLI's and the TUI's)."""
    run_id = store.resolve_run_id(flow_run_id)
    payload = None if run_input is None else json.dumps(run_input)
    if not store.request_resume(run_id, payload):
        state = store.get_flow_run(run_id).state
        raise UsageError(f"flow run {run_id[:12]} is {state}, not {StateName.PAUSED.value}")
    deadline = time.monotonic() + ANSWER_SECONDS
    while time.monotonic() < deadline:
        pause = store.pause_of(run_id) or {}
        if pause.get("status") == "accepted":
            return
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
