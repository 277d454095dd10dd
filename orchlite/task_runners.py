"""Task runners: where submitted task runs execute.

Orchestration (states, retries, caching, logs) always happens in the flow's own process; a
runner decides how many task runs go at once and where their function bodies execute.
`ThreadPoolTaskRunner` runs them in threads of the flow's process (the default).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextvars
import inspect
import threading
from collections.abc import Callable
from typing import Any

from .errors import TaskTimeoutError
from .states import State


def call_with_timeout(
    fn: Callable[..., Any],
    bound: Any,
    timeout: float | None,
    what: str,
    error: type[TaskTimeoutError] = TaskTimeoutError,
) -> Any:
    """Call `fn` with `bound` arguments; past `timeout` seconds stop waiting and raise."""
    if isinstance(bound, inspect.BoundArguments):
        args, kwargs = bound.args, bound.kwargs
    else:
        args, kwargs = (), bound
    if not timeout:
        return fn(*args, **kwargs)
    outcome: dict[str, Any] = {}

    def body() -> None:
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as exc:
            outcome["error"] = exc

    context = contextvars.copy_context()
    worker = threading.Thread(target=context.run, args=(body,), name="orch-timed", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise error(f"{what} exceeded its timeout of {timeout:g} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


class TaskRunner:
    """Base class. A flow run gets its own copy (`duplicate()`), started on first use."""

    def duplicate(self) -> TaskRunner:
        raise NotImplementedError

    def submit(self, orchestrate: Callable[[], State]) -> cf.Future[State]:
        """Schedule one task run's orchestration; returns a future of its final state."""
        raise NotImplementedError

    def run_body(self, fn: Callable[..., Any], bound: Any, timeout: float | None, what: str) -> Any:
        """Execute a submitted task's function body; orchestration stays with the caller.

        The default runs it right here, in the orchestrating thread.
        """
        return call_with_timeout(fn, bound, timeout, what)

    def shutdown(self, wait: bool = True) -> None:
        """Wait for every submitted task run (unless `wait` is False: then drop the queued
        ones and abandon the running ones), then release the runner's resources."""
        raise NotImplementedError

    def __enter__(self) -> TaskRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


class ThreadPoolTaskRunner(TaskRunner):
    """Run task runs in up to `max_workers` threads (default: Python's thread-pool default)."""

    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is not None and max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.max_workers = max_workers
        self._pool: cf.ThreadPoolExecutor | None = None

    def duplicate(self) -> ThreadPoolTaskRunner:
        return type(self)(max_workers=self.max_workers)

    def submit(self, orchestrate: Callable[[], State]) -> cf.Future[State]:
        if self._pool is None:
            self._pool = cf.ThreadPoolExecutor(
                max_workers=self.max_workers, thread_name_prefix="orch-task"
            )
        return self._pool.submit(orchestrate)

    def shutdown(self, wait: bool = True) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=not wait)
            self._pool = None

    def __repr__(self) -> str:
        return f"ThreadPoolTaskRunner(max_workers={self.max_workers})"


def default_runner() -> TaskRunner:
    return ThreadPoolTaskRunner()


__all__ = ["TaskRunner", "ThreadPoolTaskRunner"]
