"""orchlite: Prefect-style flows and tasks with all state in a project-local `.orch/`.

The public API is imported on first use (PEP 562), so `import orchlite` and the `orch`
command pay only for what they touch; nothing here imports Textual or rich.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "flow": "flows",
    "task": "tasks",
    "Flow": "flows",
    "Task": "tasks",
    "State": "states",
    "StateType": "states",
    "CachePolicy": "cache_policies",
    "get_run_logger": "logging",
    "get_run_context": "context",
    "wait": "futures",
    "as_completed": "futures",
    "unmapped": "annotations",
    "allow_failure": "annotations",
    "ThreadPoolTaskRunner": "task_runners",
    "concurrency": "concurrency",
    "rate_limit": "limits",
    "cron": "schedules",
    "interval": "schedules",
    "on_files": "triggers",
    "on_flow": "triggers",
    "secret": "secrets",
    "tags": "run_tags",
    "serve": "serving",
    "pause_flow_run": "flow_runs",
    "suspend_flow_run": "flow_runs",
    "resume_flow_run": "flow_runs",
}

__all__ = [
    "CachePolicy",
    "Flow",
    "State",
    "StateType",
    "Task",
    "ThreadPoolTaskRunner",
    "__version__",
    "allow_failure",
    "as_completed",
    "concurrency",
    "cron",
    "flow",
    "get_run_context",
    "get_run_logger",
    "interval",
    "on_files",
    "on_flow",
    "pause_flow_run",
    "rate_limit",
    "resume_flow_run",
    "secret",
    "serve",
    "suspend_flow_run",
    "tags",
    "task",
    "unmapped",
    "wait",
]

if TYPE_CHECKING:
    from .annotations import allow_failure, unmapped
    from .cache_policies import CachePolicy
    from .context import get_run_context
    from .flow_runs import pause_flow_run, resume_flow_run, suspend_flow_run
    from .flows import Flow, flow
    from .futures import as_completed, wait
    from .limits import concurrency, rate_limit
    from .logging import get_run_logger
    from .run_tags import tags
    from .schedules import cron, interval
    from .secrets import secret
    from .serving import serve
    from .states import State, StateType
    from .task_runners import ThreadPoolTaskRunner
    from .tasks import Task, task
    from .triggers import on_files, on_flow


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'orchlite' has no attribute {name!r}")
    if module == name:  # a package that is callable as its namesake (`concurrency`)
        return importlib.import_module(f".{module}", __name__)
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
