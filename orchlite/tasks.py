"""`prefect.tasks` names: the decorator, the class, backoff and the classic input hash."""

from __future__ import annotations

from typing import Any

from .hashing import hash_parts, hash_value
from .registry import Task, task
from .retries import exponential_backoff


def task_input_hash(context: Any, arguments: dict[str, Any]) -> str | None:
    """A `cache_key_fn` keyed on the task's identity, code and arguments (Prefect's helper)."""
    fn = context.task.fn
    code = getattr(fn, "__code__", None)
    return hash_parts(
        {
            "task": context.task.task_key,
            "code": code.co_code if code is not None else b"",
            "arguments": hash_value(arguments, name="arguments"),
        }
    )


__all__ = ["Task", "exponential_backoff", "task", "task_input_hash"]
