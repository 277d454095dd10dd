"""The run context around a task body that executes in a worker process.

`orchlite.task_runners` moves bodies to worker processes (a process pool, a Dask cluster);
this module gives such a body the pieces of its task run it can use there, and brings its
logs home:

- in the orchestrating thread, `scope()` describes the current task run (ids, name, whether
  prints are captured, the task logger's level) in a small picklable `WorkerScope`;
- in the worker, `WorkerScope.activate()` sets a stand-in run context, so `get_run_logger()`,
  `get_run_context()` and `print()` (with `log_prints`) work; their records are kept in a
  list instead of going to a store (workers never open `.orch/`);
- back in the orchestrating thread, `replay()` emits those records through the run loggers,
  so the store and the console get them exactly as if the body had run there.

Task and flow calls from inside a worker body are refused with a clear error: a worker
cannot record runs.

It sits above the run context and logging in the module layers, so `task_runners` never
imports it: the task engine hands `BRIDGE` to a flow run's copy of its task runner.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import logging
import os
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any

from .context import TaskRunContext, flow_run_var, task_run_var
from .errors import UsageError
from .logging import (
    FLOW_LOGGER,
    TASK_LOGGER,
    _print_capture,
    capture_prints,
    get_run_logger,
    restore_prints,
)
from .redaction import redact
from .store import TaskRun
from .task_runners import WorkerBridge

Record = tuple[str, int, float, str]
"""(logger name, level, created, message) of one log record made in a worker."""


class _Sink:
    """Stands in for the store inside a worker: records addressed to it are kept here."""

    __slots__ = ("records",)

    def __init__(self) -> None:
        self.records: list[Record] = []


class _CaptureFilter(logging.Filter):
    """On the run loggers: takes the records addressed to a `_Sink` out of the logging flow
    (no handler sees them: not the store's, not the console's) and keeps them."""

    def filter(self, record: logging.LogRecord) -> bool:
        sink = record.__dict__.get("orch_store")
        if type(sink) is not _Sink:
            return True
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
        sink.records.append((record.name, record.levelno, record.created, redact(message)))
        return False


_filter_lock = threading.Lock()
_filter_installed = False


def _install_filter() -> None:
    global _filter_installed
    if _filter_installed:
        return
    with _filter_lock:
        if not _filter_installed:
            capture = _CaptureFilter()
            logging.getLogger(TASK_LOGGER).addFilter(capture)
            logging.getLogger(FLOW_LOGGER).addFilter(capture)
            _filter_installed = True


class _WorkerFlowRun:
    """Stands in for the flow run inside a worker: enough for `get_run_logger()` and
    `get_run_context()`; the engine asks `stopped()` before any task or flow call, and
    that call is refused here."""

    def __init__(
        self,
        run_id: str,
        run_name: str,
        store: _Sink,
        log_prints: bool,
        flow_name: str = "",
        declared_secrets: frozenset[str] | None = None,
    ) -> None:
        self.run_id = run_id
        self.run_name = run_name
        self.store = store
        self.log_prints = log_prints
        self.parameters: dict[str, Any] = {}
        self.flow = None
        self.flow_name = flow_name
        self.declared_secrets = declared_secrets

    def stopped(self) -> bool:
        raise UsageError(
            "a task body that runs in a worker process cannot call tasks or flows; "
            "call them from the flow instead"
        )


@dataclasses.dataclass
class WorkerScope:
    """What a worker needs to know about the task run whose body it executes."""

    task_run: TaskRun
    task: Any
    flow_run_name: str
    log_prints: bool
    level: int
    pid: int
    flow_name: str = ""
    declared_secrets: frozenset[str] | None = None
    """The secrets the flow may read with `orchlite.secret()` (checked in the worker too)."""

    @contextlib.contextmanager
    def activate(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Iterator[list[Record]]:
        """Run the enclosed body as this task run; yields the list its log records fill."""
        sink = _Sink()
        _install_filter()
        if os.getpid() != self.pid:  # a worker process: log what the flow process logs
            logging.getLogger(TASK_LOGGER).setLevel(self.level)
        flow_ctx = _WorkerFlowRun(
            self.task_run.flow_run_id,
            self.flow_run_name,
            sink,
            self.log_prints,
            self.flow_name,
            self.declared_secrets,
        )
        task_ctx = TaskRunContext(
            task=self.task,
            task_run=self.task_run,
            parameters=_parameters(fn, args, kwargs),
            log_prints=self.log_prints,
        )
        flow_token = flow_run_var.set(flow_ctx)  # type: ignore[arg-type]
        task_token = task_run_var.set(task_ctx)
        prints = capture_prints(self.log_prints)
        try:
            yield sink.records
        finally:
            restore_prints(prints)
            task_run_var.reset(task_token)
            flow_run_var.reset(flow_token)


def _parameters(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if not args:
        return dict(kwargs)
    try:
        return dict(inspect.signature(fn).bind_partial(*args, **kwargs).arguments)
    except (TypeError, ValueError):
        return dict(kwargs)


class _Bridge(WorkerBridge):
    """The run context out to a worker (`scope`), the worker's log records back (`replay`)."""

    def scope(self) -> WorkerScope | None:
        task_ctx = task_run_var.get()
        if task_ctx is None:
            return None
        flow_ctx = flow_run_var.get()
        task = task_ctx.task
        info = None
        if task is not None:
            info = types.SimpleNamespace(
                name=task.name, task_key=task.task_key, tags=set(task.tags or ())
            )
        return WorkerScope(
            task_run=dataclasses.replace(task_ctx.task_run),
            task=info,
            flow_run_name=flow_ctx.run_name if flow_ctx is not None else "",
            log_prints=_print_capture.get(),
            level=logging.getLogger(TASK_LOGGER).getEffectiveLevel(),
            pid=os.getpid(),
            flow_name=flow_ctx.flow_name if flow_ctx is not None else "",
            declared_secrets=flow_ctx.declared_secrets if flow_ctx is not None else None,
        )

    def replay(self, records: list[Record]) -> None:
        adapter = get_run_logger()
        extra = adapter.extra or {}
        for name, level, created, message in records:
            logger = logging.getLogger(name)
            if not logger.isEnabledFor(level):
                continue
            record = logger.makeRecord(
                name, level, "(worker)", 0, message, (), None, extra=dict(extra)
            )
            record.created = created
            record.msecs = (created - int(created)) * 1000
            logger.handle(record)


BRIDGE = _Bridge()
"""The worker bridge of every flow run's task runner."""

__all__ = ["BRIDGE", "WorkerScope"]
