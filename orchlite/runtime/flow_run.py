"""The current flow run, as Prefect's `prefect.runtime.flow_run`: `from orchlite.runtime import
flow_run`, then `flow_run.id`, `flow_run.name`, ... (looked up as they are read).

Outside a flow run (a task called on its own included) every attribute is empty: None,
`{}`, `[]` or 0, and `scheduled_start_time` is now. Attributes:

- `id`: the flow run's id;
- `name`: its name (`flow_run_name`, or the flow's name);
- `flow_name`: the flow's name;
- `flow_version`: the flow's `version` (None unless the flow sets one);
- `parameters`: the parameters the body was called with, defaults included;
- `tags`: the tags of the `tags(...)` blocks the run was created in;
- `scheduled_start_time`: when the run was due, in UTC: for a scheduled run its slot's
  time (also when caught up late or backfilled), for a triggered run when the trigger
  fired; otherwise when the run was created;
- `run_count`: the attempt the run is in (1 on the first, 2 on its first retry, ...);
- `parent_flow_run_id`: for a subflow, the id of the flow run that called it;
- `root_flow_run_id`: the id of the outermost flow run (the run's own id if it has no parent);
- `parent_deployment_id`: the `deployment.id` of the flow run that called this subflow;
- `api_url`, `ui_url`: always None (there is no server).

In a task body that runs in a worker process (`ProcessPoolTaskRunner`, Dask), only `id`,
`name` and `flow_name` are known; the others are empty.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from ._attributes import flow_context, lookup, recorded_flow_context
from .deployment import claimed_by


def __getattr__(name: str) -> Any:
    return lookup(__name__, FIELDS, name)


def __dir__() -> list[str]:
    return sorted(FIELDS)


def get_id() -> str | None:
    ctx = flow_context()
    return None if ctx is None else ctx.run_id


def get_name() -> str | None:
    ctx = flow_context()
    return None if ctx is None else ctx.run_name


def get_flow_name() -> str | None:
    ctx = flow_context()
    return None if ctx is None else ctx.flow_name


def get_flow_version() -> str | None:
    ctx = recorded_flow_context()
    return None if ctx is None or ctx.flow is None else ctx.flow.version


def get_parameters() -> dict[str, Any]:
    ctx = recorded_flow_context()
    return {} if ctx is None else dict(ctx.parameters)


def get_tags() -> list[str]:
    """The tags of the `tags(...)` blocks the run was created in."""
    ctx = recorded_flow_context()
    return [] if ctx is None else list(json.loads(ctx.store.get_flow_run(ctx.run_id).tags))


def get_scheduled_start_time() -> dt.datetime:
    ctx = recorded_flow_context()
    if ctx is None:
        return dt.datetime.now(dt.timezone.utc)
    due = ctx.store.slot_time(ctx.run_id)
    if due is None:
        due = ctx.store.get_flow_run(ctx.run_id).created
    return dt.datetime.fromtimestamp(due, dt.timezone.utc)


def get_run_count() -> int:
    ctx = recorded_flow_context()
    return 0 if ctx is None else ctx.store.get_flow_run(ctx.run_id).attempts


def get_parent_flow_run_id() -> str | None:
    ctx = recorded_flow_context()
    return None if ctx is None or ctx.parent is None else ctx.parent.run_id


def get_root_flow_run_id() -> str | None:
    ctx = recorded_flow_context()
    if ctx is None:
        return None
    while ctx.parent is not None:
        ctx = ctx.parent
    return ctx.run_id


def get_parent_deployment_id() -> str | None:
    ctx = recorded_flow_context()
    if ctx is None or ctx.parent is None:
        return None
    claim = claimed_by(ctx.parent)
    return None if claim is None else claim.key


def get_api_url() -> str | None:
    return None


FIELDS = {
    "id": get_id,
    "name": get_name,
    "flow_name": get_flow_name,
    "flow_version": get_flow_version,
    "parameters": get_parameters,
    "tags": get_tags,
    "scheduled_start_time": get_scheduled_start_time,
    "run_count": get_run_count,
    "parent_flow_run_id": get_parent_flow_run_id,
    "root_flow_run_id": get_root_flow_run_id,
    "parent_deployment_id": get_parent_deployment_id,
    "api_url": get_api_url,
    "ui_url": get_api_url,
}
