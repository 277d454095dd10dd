"""What the three runtime modules share: the attribute lookup with its environment overrides,
and the run contexts they read.

`ORCH__RUNTIME__FLOW_RUN__ID=abc` makes `flow_run.id` read "abc", in or out of a run (Prefect's
`PREFECT__RUNTIME__...` variables, renamed). The text is converted to the type of the value
it replaces: "true" (any case) is True for a bool, numbers for int and float, an ISO 8601
time for a datetime (UTC when it names no offset), the text itself for a str or a None. An
attribute holding a dict or a list cannot be set this way (ValueError). A variable for a name
that is not an attribute makes that name an attribute holding the text.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Mapping
from typing import Any

from ..context import FlowRunContext, TaskRunContext, flow_run_var, task_run_var
from ..isotime import parse_iso_datetime

ENV_PREFIX = "ORCH__RUNTIME__"

Fields = Mapping[str, Callable[[], Any]]


def lookup(module: str, fields: Fields, name: str) -> Any:
    """The value of attribute `name` of runtime module `module` (its `__name__`)."""
    section = module.rpartition(".")[2].upper()
    env_key = f"{ENV_PREFIX}{section}__{name.upper()}"
    override = os.environ.get(env_key)
    getter = fields.get(name)
    if getter is None:
        if override is not None:
            return override
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    value = getter()
    return value if override is None else _convert(override, value, env_key)


def _convert(text: str, like: Any, env_key: str) -> Any:
    if isinstance(like, bool):
        return text.lower() == "true"
    if isinstance(like, (int, float)):
        return type(like)(text)
    if like is None or isinstance(like, str):
        return text
    if isinstance(like, dt.datetime):
        parsed = parse_iso_datetime(text)
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=dt.timezone.utc)
        return parsed.astimezone(dt.timezone.utc)
    raise ValueError(
        f"{env_key}: this attribute holds a {type(like).__name__}, which cannot be set"
        " from the environment; patch it in the test instead"
    )


def flow_context() -> FlowRunContext | None:
    """The flow run of the calling code (None outside a flow run).

    In a task body that runs in a worker process, a stand-in that knows the flow run's id,
    name and flow name only (it has no store): see `orchlite.remote`.
    """
    return flow_run_var.get()


def recorded_flow_context() -> FlowRunContext | None:
    """The flow run of the calling code, if this process records it (it has the store)."""
    ctx = flow_run_var.get()
    return ctx if isinstance(ctx, FlowRunContext) else None


def task_context() -> TaskRunContext | None:
    """The task run of the calling code (None outside a task run)."""
    return task_run_var.get()
