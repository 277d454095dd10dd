"""The task runner contract, and the runner that keeps bodies in the orchestrating thread.

`TaskRunner` is what the engine asks of a runner; `ThreadPoolTaskRunner` is the default one.
`WorkerBridge` is the engine's side of a body that runs in another process: a flow run
hands its copy of the runner the bridge that carries its run context and logs
(`FlowRunContext.runner`), so this module never imports them.
"""

from __future__ import annotations

import concurrent.futures as cf
import inspect
from collections.abc import Callable
from typing import Any

from .. import timeouts
from ..errors import TaskTimeoutError
from ..states import State
from ..timeouts import timeout_message


def call_with_timeout(
    fn: Callable[..., Any],
    bound: Any,
    timeout: float | None,
    what: str,
    error: type[TaskTimeoutError] = TaskTimeoutError,
) -> Any:
    """Call `fn` with `bound` arguments; past `timeout` seconds interrupt it and raise
    `error` (see `orchlite.timeouts` for what an interrupt can stop)."""
    if isinstance(bound, inspect.BoundArguments):
        args, kwargs = bound.args, bound.kwargs
    else:
        args, kwargs = (), bound
    return timeouts.call(fn, args, kwargs, timeout, lambda: error(timeout_message(what, timeout)))


class WorkerBridge:
    """How a body that runs in another process joins the task run that sent it.

    `scope()` is called in the orchestrating thread and returns a picklable object whose
    `activate(fn, args, kwargs)` context manager, entered in the worker around the body,
    yields a list that collects the body's log records; `replay(records)` writes those
    records for the current task run, back in the orchestrating thread.

    This default ships no run context and keeps no logs: a runner that no flow run started
    uses it. `orchlite.remote`, which sits above the run context and logging in the module
    layers, defines the one a flow run hands to its runner.
    """

    def scope(self) -> Any:
        return None

    def replay(self, records: list[tuple[str, int, float, str]]) -> None:
        return None


class TaskRunner:
    """Base class. A flow run gets its own copy (`duplicate()`), started on first use."""

    starts_bodies = False
    """Whether the runner sends bodies off without waiting for them (`start_body`): then
    the engine hands it task runs as steps (`submit_steps`), and no orchestrating thread
    waits while a body runs."""

    worker_bridge: WorkerBridge = WorkerBridge()
    """How bodies sent to other processes join their task runs; a flow run sets the one
    that carries its run context and logs on its copy (`FlowRunContext.runner`)."""

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

    def submit_steps(
        self, start: Callable[[], None], outcome: cf.Future[State], after: list[cf.Future[Any]]
    ) -> None:
        """Schedule a task run's first step, `start`, once the futures `after` are done;
        `outcome` is its future (cancelled if the runner stops before it starts)."""
        raise NotImplementedError

    def start_body(
        self, fn: Callable[..., Any], bound: Any, timeout: float | None, what: str
    ) -> cf.Future[Any]:
        """Send a body off; returns a future of its reply, for `finish_body`."""
        raise NotImplementedError

    def finish_body(self, reply: Any) -> Any:
        """The body's value from its reply (or raise its exception), in the task's context."""
        return reply

    def call_soon(self, step: Callable[[], None]) -> None:
        """Run a task run's next step in an orchestrating thread."""
        raise NotImplementedError

    def cancel_pending(self) -> None:
        """The flow run was cancelled. Task runs not started yet never start (they check the
        run's state first); a runner that holds work for started ones may drop it here."""

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
