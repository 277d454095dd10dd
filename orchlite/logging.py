"""Run logs: `get_run_logger()`, captured prints, and the handler that stores them.

Records from `get_run_logger()` (loggers `orchlite.flow_runs` and `orchlite.task_runs`) and
prints captured with `log_prints=True` are buffered in memory and written to the store with
the next state change of the run, or by the background recorder within a fraction of a
second, so logging costs no commit of its own. Records below the run log level
(ORCH_LOGGING_LEVEL, default INFO, as Prefect's PREFECT_LOGGING_LEVEL) are dropped: a
`get_run_logger().debug(...)` is neither stored nor shown unless that level is DEBUG.
Everything under the `orchlite` logger is also echoed to the console (stderr) unless the
application configured logging itself. Both the stored and the echoed text have secret
values replaced by `***` (see `redaction`).
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from .context import FlowRunContext, flow_run_var, task_run_var
from .errors import OrchError
from .redaction import redact
from .settings import logging_level
from .store import LogRow, Store, TaskRun

FLOW_LOGGER = "orchlite.flow_runs"
TASK_LOGGER = "orchlite.task_runs"


class MissingContextError(OrchError):
    """`get_run_logger()` was called outside a flow or task run."""


class _LogBuffer:
    """Log rows waiting for their store's next commit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._rows: dict[Store, list[LogRow]] = {}

    def add(self, store: Store, row: LogRow) -> None:
        with self._lock:
            self._rows.setdefault(store, []).append(row)

    def holds(self, store: Store) -> bool:
        """Whether rows wait for `store` (most task runs log nothing: their writes need not
        take them). A row added just after this answer goes with the next write."""
        return bool(self._rows.get(store))

    def taken(self, store: Store) -> contextlib.AbstractContextManager[list[LogRow]]:
        """The rows buffered for `store`, for the caller to commit inside the block.

        Rows taken are committed in the order they were taken: the block waits for a flush
        or another block under way, and holds the next one back until it ends. With nothing
        buffered it waits for nothing.
        """
        if not self.holds(store):
            return contextlib.nullcontext([])
        return self._taken(store)

    @contextlib.contextmanager
    def _taken(self, store: Store) -> Iterator[list[LogRow]]:
        with self._flushing:
            with self._lock:
                rows = self._rows.pop(store, [])
            yield rows

    def flush(self) -> None:
        """Write every buffered row now.

        Flushes queue behind each other: when this returns, rows that another thread's
        flush had already taken are committed too (a flow run ends only after its logs).
        """
        with self._flushing:
            with self._lock:
                pending, self._rows = self._rows, {}
            for store, rows in pending.items():
                store.write_logs(rows)


log_buffer = _LogBuffer()


class RunLogAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


class StoreHandler(logging.Handler):
    """Buffers run log records for the store of the run that emitted them."""

    def emit(self, record: logging.LogRecord) -> None:
        store: Store | None = getattr(record, "orch_store", None)
        if store is None:
            return
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            message = redact(message)
            log_buffer.add(
                store,
                (
                    record.__dict__.get("flow_run_id"),
                    record.__dict__.get("task_run_id"),
                    record.__dict__.get("task_name"),
                    record.created,
                    record.levelno,
                    record.name,
                    message,
                ),
            )
        except Exception:
            self.handleError(record)


class ConsoleFormatter(logging.Formatter):
    """`HH:MM:SS | LEVEL   | Task run 'name' - message`, secret values masked."""

    _clock = (-1, "")
    """(second, its `HH:MM:SS`): a line per task formats the time once a second."""

    def format(self, record: logging.LogRecord) -> str:
        second, stamp = self._clock
        if second != int(record.created):
            second = int(record.created)
            stamp = time.strftime("%H:%M:%S", time.localtime(second))
            self._clock = (second, stamp)
        who = record.__dict__.get("run_label")
        prefix = f"{stamp} | {record.levelname:<7} | "
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return prefix + redact(f"{who} - {text}" if who else text)


class PipeConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The console handler when stderr is not a terminal (a pipe, a file): the lines of a
    flow run are written in batches, as Python buffers stdout there.

    In a pipe, a write per line costs more than the rest of a short task's recording (the
    reading process is woken for each). A line logged inside a flow run waits at most
    `BATCH_SECONDS` (the recorder flushes the batch on its tick, and at the run's end); a
    warning or an error goes out at once with the lines before it, and so does any line
    logged outside a run.
    """

    BATCH_SECONDS = 0.1

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._lines: list[str] = []
        self._since = 0.0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        lines = self._lines  # `handle` holds this handler's lock
        if not lines:
            self._since = record.created
        lines.append(line)
        if (
            record.levelno >= logging.WARNING
            or record.created - self._since >= self.BATCH_SECONDS
            or flow_run_var.get() is None
        ):
            self._write(record)

    @property
    def waiting(self) -> bool:
        """Whether lines wait in the batch (read without the lock: a hint)."""
        return bool(self._lines)

    def _write(self, record: logging.LogRecord | None = None) -> None:
        text, self._lines = "".join(self._lines), []
        try:
            self.stream.write(text)
            self.stream.flush()
        except Exception:
            if record is not None:
                self.handleError(record)

    def flush(self) -> None:
        self.acquire()
        try:
            if self._lines:
                self._write()
        finally:
            self.release()
        super().flush()


def narrate(
    logger: logging.Logger, level: int, msg: str, *args: Any, extra: dict[str, Any]
) -> None:
    """`logger.log(level, msg, *args, extra=extra)` for a line the engine writes per task run
    (no single mapping among `args`). The caller has checked `logger.isEnabledFor(level)`,
    before building the arguments.

    Its record is what `makeRecord` builds, but not built from scratch: `logger.log` searches
    the call stack for the caller's file and line, and a new `LogRecord` looks up this
    file's name, the thread and the process, which together cost more than handling the
    record. Here the record names this module, and copies those fields from one made once
    per thread, process, logger and level (`_template`). A custom record factory
    (`logging.setLogRecordFactory`) gets every record to make itself.
    """
    if logging.getLogRecordFactory() is not logging.LogRecord:
        record = logger.makeRecord(logger.name, level, __file__, 0, msg, args, None, extra=extra)
    else:
        record = _new_record(logging.LogRecord)
        fields = record.__dict__
        fields.update(_template(logger.name, level))
        now = time.time()
        fields["relativeCreated"] += (now - fields["created"]) * 1000
        fields["created"] = now
        fields["msecs"] = int((now - int(now)) * 1000) + 0.0
        fields["msg"], fields["args"] = msg, args
        fields.update(extra)
        if "taskName" in fields:  # Python 3.12+: the asyncio task logging, if any
            fields["taskName"] = _task_name()
    logger.handle(record)


_new_record = object.__new__
_templates = threading.local()


def _template(name: str, level: int) -> dict[str, Any]:
    """The fields of a record of logger `name` at `level` made by this thread and process
    (and with the same of `logging`'s switches for thread and process fields)."""
    key = (name, level, os.getpid(), logging.logThreads, logging.logProcesses)
    made: dict[Any, dict[str, Any]] | None = getattr(_templates, "made", None)
    if made is None:
        made = _templates.made = {}
    fields = made.get(key)
    if fields is None:
        record = logging.LogRecord(name, level, __file__, 0, "", (), None)
        fields = made[key] = dict(record.__dict__)
    return fields


def _task_name() -> str | None:
    """What a new record would hold as `taskName`: the running asyncio task's name."""
    if not getattr(logging, "logAsyncioTasks", False):
        return None
    asyncio = sys.modules.get("asyncio")
    try:
        return asyncio.current_task().get_name() if asyncio else None
    except Exception:
        return None


def flush_console() -> None:
    """Write the console lines waiting in a batch (see `PipeConsoleHandler`)."""
    for handler in _console_handlers:
        handler.flush()


def write_console_batch() -> None:
    """Write the console lines waiting in a batch, if any: called before a run's own write
    to stdout or stderr, so that the two keep their order in a shared pipe or file."""
    for handler in _console_handlers:
        if isinstance(handler, PipeConsoleHandler) and handler.waiting:
            handler.flush()


_console_handlers: list[logging.Handler] = []


def for_console(record: logging.LogRecord) -> bool:
    """The console handlers' filter: a record logged with `orch_log_only=True` (a flow's
    traceback, which the console already sums up in one line) goes to the run log only."""
    return not record.__dict__.get("orch_log_only", False)


_setup_lock = threading.Lock()
_configured = False


def setup_logging(console: bool = True, level: int | None = None) -> None:
    """Install the store handler, and a console handler unless `console` is False.

    `level` (default: ORCH_LOGGING_LEVEL, else INFO, as Prefect's PREFECT_LOGGING_LEVEL) is
    the level of the `orchlite` logger: run log records below it are dropped, neither stored
    nor shown. UsageError for an ORCH_LOGGING_LEVEL that is not a level name.
    """
    global _configured
    if level is None:
        level = logging_level()
    with _setup_lock:
        root = logging.getLogger("orchlite")
        if not _configured:
            store_handler = StoreHandler()
            logging.getLogger(FLOW_LOGGER).addHandler(store_handler)
            logging.getLogger(TASK_LOGGER).addHandler(store_handler)
            _configured = True
        root.setLevel(level)
        for previous in _console_handlers:
            with contextlib.suppress(ValueError):  # its stream was closed since (a test runner's)
                previous.flush()
            root.removeHandler(previous)
        _console_handlers.clear()
        # Engine narration ("Finished in state ...") only ever goes to the console: skip
        # building those records entirely when nobody prints them.
        logging.getLogger("orchlite.engine").setLevel(
            level if console else max(level, logging.WARNING)
        )
        if console:
            handler = (
                logging.StreamHandler(sys.stderr)
                if _is_terminal(sys.stderr)
                else PipeConsoleHandler(sys.stderr)
            )
            _console_handlers.append(handler)
            handler.setFormatter(ConsoleFormatter())
            handler.setLevel(level)
            handler.addFilter(for_console)
            root.addHandler(handler)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no such method, or a closed stream
        return False


def ensure_logging() -> None:
    """Set up logging on first use, unless something already did."""
    if not _configured:
        setup_logging(console=True)


def get_run_logger(**extra: Any) -> logging.LoggerAdapter:  # type: ignore[type-arg]
    """A logger bound to the current task run, or else the current flow run."""
    task_ctx = task_run_var.get()
    flow_ctx = flow_run_var.get()
    if task_ctx is not None:
        store = flow_ctx.store if flow_ctx else _standalone_store()
        return task_run_logger(task_ctx.task_run, store, **extra)
    if flow_ctx is not None:
        return flow_run_logger(flow_ctx, **extra)
    raise MissingContextError("get_run_logger() was called outside a flow or task run")


def task_run_logger(run: TaskRun, store: Store, **extra: Any) -> logging.LoggerAdapter:  # type: ignore[type-arg]
    """A logger bound to this task run (its lines are the run's logs, kept in `store`)."""
    return RunLogAdapter(
        logging.getLogger(TASK_LOGGER),
        {
            "flow_run_id": run.flow_run_id,
            "task_run_id": run.id,
            "task_name": run.name,
            "run_label": f"Task run {run.name!r}",
            "orch_store": store,
            **extra,
        },
    )


def flow_run_logger(flow_ctx: FlowRunContext, **extra: Any) -> logging.LoggerAdapter:  # type: ignore[type-arg]
    """A logger bound to this flow run (its lines are the run's logs), from any thread."""
    return RunLogAdapter(
        logging.getLogger(FLOW_LOGGER),
        {
            "flow_run_id": flow_ctx.run_id,
            "task_run_id": None,
            "task_name": None,
            "run_label": f"Flow run {flow_ctx.run_name!r}",
            "orch_store": flow_ctx.store,
            **extra,
        },
    )


def _standalone_store() -> Store:
    from .context import open_store

    return open_store()[0]


# -- print capture ------------------------------------------------------------------------

_print_capture: ContextVar[bool] = ContextVar("orch_print_capture", default=False)
_original_print = builtins.print
_patched = False


def capture_prints(enabled: bool) -> Any:
    """Route `print()` (to stdout) into the run log for the current context; returns a token."""
    global _patched
    if enabled and not _patched:
        builtins.print = _logging_print
        _patched = True
    if _print_capture.get() is enabled:
        return None  # already so: nothing to set, nothing to restore
    return _print_capture.set(enabled)


def restore_prints(token: Any) -> None:
    if token is not None:
        _print_capture.reset(token)


def _logging_print(
    *args: Any, sep: str | None = " ", end: str | None = "\n", file: Any = None, flush: bool = False
) -> None:
    if _print_capture.get() and (file is None or file is sys.stdout):
        try:
            logger = get_run_logger()
        except MissingContextError:
            pass
        else:
            logger.info((sep if sep is not None else " ").join(str(a) for a in args))
            return
    _original_print(*args, sep=sep, end=end, file=file, flush=flush)
