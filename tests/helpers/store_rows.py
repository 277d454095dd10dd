"""Rows for the store's unit tests, made in one place."""

from __future__ import annotations

from typing import Any

from orchlite.states import StateName
from orchlite.store import FlowRun, Store, TaskRun


def task_run(run_id: str, position: int, state: str = "COMPLETED", **fields: object) -> TaskRun:
    """Task run `position` of `run_id` in `state`, with a small JSON result; `fields` override."""
    run = TaskRun(
        flow_run_id=run_id,
        position=position,
        id=f"{position:032x}",
        standalone=0,
        task_key="t@f.py",
        name=f"t-{position}",
        dynamic_key=str(position),
        state=state,
        state_message=None,
        attempts=1,
        inputs_hash=f"h{position}",
        cache_key=None,
        result_ref=None,
        result_serializer="json",
        error_type=None,
        error_message=None,
        traceback=None,
        created=100.0 + position,
        started=100.0 + position,
        ended=None if state == "RUNNING" else 101.0 + position,
        result_data=str(position).encode(),
    )
    for name, value in fields.items():
        setattr(run, name, value)
    return run


def flow_run(
    store: Store, run_id: str, state: StateName = StateName.PENDING, **fields: Any
) -> None:
    """Record flow run `run_id` (of flow "f" unless `fields` say) in `state`; `fields` as
    `create_flow_run` takes them."""
    fields = {"flow_name": "f", "name": "f", "parameters": "{}", **fields}
    store.create_flow_run(run_id=run_id, state=state, **fields)


def flow_run_record(**fields: Any) -> FlowRun:
    """A FAILED manual run of flow "etl" as a record (not stored); `fields` override."""
    base: dict[str, Any] = {
        "id": "a" * 32,
        "flow_name": "etl",
        "name": "etl-1",
        "target": "flows.py:etl",
        "parameters": "{}",
        "state": "FAILED",
        "state_message": "ValueError: boom",
        "trigger": "manual",
        "parent_run_id": None,
        "parent_position": None,
        "retry_of": None,
        "created": 1_700_000_000.0,
        "started": 1_700_000_001.0,
        "ended": 1_700_000_002.0,
        "attempts": 1,
        "pid": None,
        "host": None,
        "heartbeat": None,
        "deadline": None,
        "result_ref": None,
        "result_serializer": None,
    }
    return FlowRun(**{**base, **fields})
