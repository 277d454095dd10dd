"""The current task run, as Prefect's `prefect.runtime.task_run`: `from orchlite.runtime import
task_run`, then `task_run.id`, `task_run.name`, ... (looked up as they are read).

Outside a task run (in a flow body, or outside any run) every attribute is empty: None,
`{}`, `[]` or 0. Attributes:

- `id`: the task run's id;
- `name`: its name (`task_run_name`, or "<task name>-<n>" for the nth call in the flow run);
- `task_name`: the task's name;
- `parameters`: the arguments of the call, by parameter name;
- `tags`: the task's tags;
- `run_count`: the attempt the task run is in (1 on the first, 2 on its first retry, ...);
- `api_url`, `ui_url`: always None (there is no server).
"""

from __future__ import annotations

import json
from typing import Any

from ._attributes import lookup, task_context


def __getattr__(name: str) -> Any:
    return lookup(__name__, FIELDS, name)


def __dir__() -> list[str]:
    return sorted(FIELDS)


def get_id() -> str | None:
    ctx = task_context()
    return None if ctx is None else ctx.task_run.id


def get_name() -> str | None:
    ctx = task_context()
    return None if ctx is None else ctx.task_run.name


def get_task_name() -> str | None:
    ctx = task_context()
    return None if ctx is None or ctx.task is None else ctx.task.name


def get_parameters() -> dict[str, Any]:
    ctx = task_context()
    return {} if ctx is None else dict(ctx.parameters)


def get_tags() -> list[str]:
    ctx = task_context()
    return [] if ctx is None else list(json.loads(ctx.task_run.tags))


def get_run_count() -> int:
    ctx = task_context()
    return 0 if ctx is None else ctx.task_run.attempts


def get_api_url() -> str | None:
    return None


FIELDS = {
    "id": get_id,
    "name": get_name,
    "task_name": get_task_name,
    "parameters": get_parameters,
    "tags": get_tags,
    "run_count": get_run_count,
    "api_url": get_api_url,
    "ui_url": get_api_url,
}
