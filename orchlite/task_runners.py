"""Task runners: where submitted task runs execute.

Orchestration (states, retries, timeouts, caching, logs, every store write) always happens in
the flow's own process, in the runner's orchestration threads: `submit(orchestrate)` returns a
future of the task run's final state. A runner decides how many task runs go at once and where
their function bodies execute (`run_body`):

- `ThreadPoolTaskRunner` runs bodies in the orchestrating thread (the default).
- `ProcessPoolTaskRunner` sends each body to a pool of worker processes ("spawn" start method).
- `DaskTaskRunner` sends each body to a Dask cluster (`pip install 'orchlite[dask]'`); it
  takes task runs as steps (`submit_steps`, see `orchlite.steps`), so no thread waits
  while a body is on the cluster.

A body sent to another process travels as cloudpickle bytes: functions of the flow's own file
(often loaded by path under a name a worker cannot import) are pickled by value. In the worker
it runs with a stand-in run context, so `get_run_logger()` and `print()` (with `log_prints`)
work; their records travel back with the result and are written to the store by the
orchestrating thread, under the same task run, as if the body had run there. Workers never
open `.orch/`. An exception raised by the body is raised again in the orchestrating thread,
with the worker's traceback as a note.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import contextvars
import inspect
import io
import itertools
import linecache
import multiprocessing
import os
import pickle
import signal
import sys
import sysconfig
import threading
import time
import traceback
import types
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import cloudpickle

from . import timeouts
from .errors import CancelledRun, SerializationError, TaskTimeoutError, UsageError
from .states import State


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


def timeout_message(what: str, timeout: float | None) -> str:
    """Prefect's words for a run that ran out of time."""
    return f"{what} exceeded timeout of {timeout:g} second(s)"


class TaskRunner:
    """Base class. A flow run gets its own copy (`duplicate()`), started on first use."""

    starts_bodies = False
    """Whether the runner sends bodies off without waiting for them (`start_body`): then
    the engine hands it task runs as steps (`submit_steps`), and no orchestrating thread
    waits while a body runs."""

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


def default_runner() -> TaskRunner:
    return ThreadPoolTaskRunner()


# -- bodies in other processes: the wire format -------------------------------------------


class WorkerBridge:
    """How a body that runs in another process joins the task run that sent it.

    `scope()` is called in the orchestrating thread and returns a picklable object whose
    `activate(fn, args, kwargs)` context manager, entered in the worker around the body,
    yields a list that collects the body's log records; `replay(records)` writes those
    records for the current task run, back in the orchestrating thread.

    This default ships no run context and keeps no logs. `orchlite.remote`, which sits above
    the run context and logging in the module layers, installs the real one when the engine
    is imported, so this module never imports them.
    """

    def scope(self) -> Any:
        return None

    def replay(self, records: list[tuple[str, int, float, str]]) -> None:
        return None


_bridge = WorkerBridge()


def set_worker_bridge(bridge: WorkerBridge) -> None:
    global _bridge
    _bridge = bridge


class RemoteTraceback(Exception):
    """The traceback text of an exception raised in a worker process (set as its cause)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class RemoteError(Exception):
    """Stands in for a worker's exception that could not be sent back as itself; the stand-in
    class has the original's name, so the task run records the same error type."""


class WorkerCrashedError(Exception):
    """The worker process running a task body died (a signal, `os._exit`, out of memory)."""


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_started_pipe: Any = None  # in a process-pool worker: where it says that a body started


def run_request(request: bytes, notify: int | None = None) -> bytes:
    """Worker side: run one task body described by `request`; returns the reply bytes.

    Runs in a fresh `contextvars` context, so nothing leaks between bodies that share a
    worker thread (a Dask cluster with `processes=False` shares the flow's process). With
    `notify`, a process-pool worker first tells the flow process that the body started.
    """
    if notify is not None and _started_pipe is not None:
        with contextlib.suppress(OSError):
            _started_pipe.send_bytes(notify.to_bytes(8, "little"))
    return contextvars.Context().run(_serve, request)


def _serve(request: bytes) -> bytes:
    scope, fn_bytes, args_bytes, sources = pickle.loads(request)
    records: list[tuple[str, int, float, str]] = []
    try:
        fn = _load_function(fn_bytes)
    except Exception as exc:
        error = SerializationError(
            f"cannot load the task's function in the worker process: {_describe(exc)}"
        )
        return _reply_error(error, records, sources)
    try:
        args, kwargs = cloudpickle.loads(args_bytes)
    except Exception as exc:
        error = SerializationError(
            f"cannot load the task's arguments in the worker process: {_describe(exc)}"
        )
        return _reply_error(error, records, sources)
    try:
        activate = scope.activate if scope is not None else _no_records
        with activate(fn, args, kwargs) as logs:
            records = logs
            value = fn(*args, **kwargs)
    except BaseException as exc:
        return _reply_error(exc, records, sources)
    try:
        return cloudpickle.dumps(("value", value, records), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        error = SerializationError(
            f"cannot send the return value of type {type(value).__name__!r} back from the "
            f"worker process: {_describe(exc)}"
        )
        return _reply_error(error, records, sources)


@contextlib.contextmanager
def _no_records(fn: Any, args: Any, kwargs: Any) -> Any:
    yield []


_loaded: dict[bytes, Callable[..., Any]] = {}
_loaded_lock = threading.Lock()


def _load_function(fn_bytes: bytes) -> Callable[..., Any]:
    """Unpickle a task function once per worker (bodies of one task share its globals)."""
    fn = _loaded.get(fn_bytes)
    if fn is None:
        fn = cloudpickle.loads(fn_bytes)
        with _loaded_lock:
            if len(_loaded) >= 64:
                _loaded.clear()
            _loaded[fn_bytes] = fn
    return fn


Frame = tuple[str, int, str]
"""A frame of a worker's traceback: (file, line number, function name)."""


def _worker_frames(exc: BaseException, sources: dict[str, str]) -> list[Frame]:
    """The frames of `exc`'s traceback outside orchlite, each under its source file.

    Code pickled by value has no trustworthy file name in the worker (a pickler may replace
    it, cloudpickle 3.1.3 writes "<dynamic-code>"), so a frame of a module the flow process
    sent by value takes the file that process named for it in `sources`; line numbers travel
    with the code and are kept.
    """
    frames = []
    for frame, line in traceback.walk_tb(exc.__traceback__):
        file = frame.f_code.co_filename
        if file.startswith(_PACKAGE_DIR):
            continue
        module = str(frame.f_globals.get("__name__", ""))
        frames.append((sources.get(module, file), line, frame.f_code.co_name))
    return frames


def _reply_error(exc: BaseException, records: list[Any], sources: dict[str, str]) -> bytes:
    frames = _worker_frames(exc, sources)
    kind = type(exc)
    try:  # the parent must be able to load it: check the round trip here
        cloudpickle.loads(cloudpickle.dumps(exc))
        sent: BaseException | None = exc
    except Exception:
        sent = None
    reply = ("error", sent, records, frames, kind.__name__, kind.__module__, str(exc))
    try:
        return cloudpickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        reply = ("error", None, records, frames, kind.__name__, kind.__module__, str(exc))
        return cloudpickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)


def _format_frames(frames: list[Frame]) -> str:
    """A worker's frames as traceback text, each source line read here, in the flow process
    (a worker on another machine may not have the file)."""
    summaries = [
        traceback.FrameSummary(file, line, name, line=linecache.getline(file, line).strip())
        for file, line, name in frames
    ]
    return "".join(traceback.format_list(summaries)).rstrip()


def _worker_init(started: Any) -> None:
    """Process-pool worker start-up: Ctrl-C is the flow process's to handle, not ours."""
    global _started_pipe
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _started_pipe = started


def _add_note(exc: BaseException, note: str) -> None:
    """`exc.add_note(note)`, also on Python 3.10 (which has `__notes__` but no `add_note`)."""
    if sys.version_info >= (3, 11):
        exc.add_note(note)
    else:
        exc.__notes__ = [*getattr(exc, "__notes__", ()), note]  # type: ignore[attr-defined]


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_stand_ins: dict[tuple[str, str], type[RemoteError]] = {}


def _stand_in(name: str, module: str, message: str) -> RemoteError:
    cls = _stand_ins.get((module, name))
    if cls is None:
        cls = type(name, (RemoteError,), {"__module__": module, "__qualname__": name})
        _stand_ins[(module, name)] = cls
    return cls(message)


# -- pickling for the trip to a worker ----------------------------------------------------

_DYNAMIC_CLASS_REDUCE = getattr(cloudpickle.cloudpickle, "_dynamic_class_reduce", None)
_PICKLER_HAS_BY_VALUE = _DYNAMIC_CLASS_REDUCE is not None and hasattr(
    cloudpickle.Pickler, "_dynamic_function_reduce"
)


class _Pickler(cloudpickle.Pickler):
    """cloudpickle, with the functions and classes of some modules pickled by value.

    `cloudpickle.register_pickle_by_value` would do the same for every pickle in the
    process, results in the store included; this keeps it to what is sent to workers.
    """

    def __init__(self, file: Any, by_value: frozenset[str]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._by_value = by_value

    def reducer_override(self, obj: Any) -> Any:
        if self._by_value:
            if type(obj) is types.FunctionType and obj.__module__ in self._by_value:
                return self._dynamic_function_reduce(obj)  # type: ignore[attr-defined]
            if isinstance(obj, type) and obj.__module__ in self._by_value:
                return _DYNAMIC_CLASS_REDUCE(obj)  # type: ignore[misc]
        return super().reducer_override(obj)


def _dumps(obj: Any, by_value: frozenset[str]) -> bytes:
    if not by_value:
        return cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    buffer = io.BytesIO()
    _Pickler(buffer, by_value).dump(obj)
    return buffer.getvalue()


def _installed_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    dirs.add(_PACKAGE_DIR)
    return tuple(os.path.join(os.path.realpath(d), "") for d in dirs)


_INSTALLED = _installed_dirs()


def _by_value_modules(fn: Callable[..., Any]) -> frozenset[str]:
    """The module of `fn` when it is the user's own code (a flow file, a project module):
    a worker may not be able to import it by name, so its functions and classes travel by
    value. Installed packages and the standard library travel by reference."""
    name = getattr(fn, "__module__", None)
    module = sys.modules.get(name) if name else None
    if name is None or module is None or name == "__main__":
        return frozenset()  # cloudpickle already pickles these by value
    file = getattr(module, "__file__", None)
    if not file or os.path.realpath(file).startswith(_INSTALLED):
        return frozenset()
    if not _PICKLER_HAS_BY_VALUE:
        cloudpickle.register_pickle_by_value(module)
        return frozenset()
    return frozenset({name})


def _source_file(fn: Callable[..., Any]) -> dict[str, str]:
    """{module name: source file} of `fn`'s module as this process loaded it: the worker's
    traceback names that file for the module's frames, whatever the pickler did to the code."""
    name = getattr(fn, "__module__", None) or "__main__"
    file = getattr(sys.modules.get(name), "__file__", None)
    return {name: os.path.abspath(file)} if file else {}


def _call_arguments(bound: Any) -> tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]]:
    """(args, kwargs, name → value) of a `Task.bind()` result."""
    if isinstance(bound, inspect.BoundArguments):
        return bound.args, bound.kwargs, bound.arguments
    return (), bound, bound


def _function_name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


_SentFunction = tuple[Callable[..., Any], bytes, frozenset[str], dict[str, str]]
"""A function as sent to workers: itself, its pickle, the modules pickled by value with it,
and its module's source file."""


class _RemoteBodies(TaskRunner):
    """What the process-pool and Dask runners share: requests out, replies back."""

    def __init__(self) -> None:
        self._functions: dict[int, _SentFunction] = {}
        self._functions_lock = threading.Lock()
        self._stopping = False
        self._cancelled = False

    def _request(self, fn: Callable[..., Any], bound: Any) -> bytes:
        """The bytes a worker needs to run `fn(bound)`; names what cannot be pickled."""
        cached = self._functions.get(id(fn))
        if cached is None or cached[0] is not fn:
            by_value = _by_value_modules(fn)
            try:
                fn_bytes = _dumps(fn, by_value)
            except Exception as exc:
                raise SerializationError(
                    f"cannot send function {_function_name(fn)!r} to a worker process: "
                    f"{_describe(exc)}"
                ) from None
            cached = (fn, fn_bytes, by_value, _source_file(fn))
            with self._functions_lock:
                self._functions[id(fn)] = cached
        _, fn_bytes, by_value, sources = cached
        args, kwargs, named = _call_arguments(bound)
        try:
            args_bytes = _dumps((args, kwargs), by_value)
        except Exception as exc:
            for name, value in named.items():
                try:
                    _dumps(value, by_value)
                except Exception as inner:
                    raise SerializationError(
                        f"cannot send argument {name!r} of type {type(value).__name__!r} "
                        f"to a worker process: {_describe(inner)}"
                    ) from None
            raise SerializationError(
                f"cannot send the arguments to a worker process: {_describe(exc)}"
            ) from None
        scope = _bridge.scope()
        return pickle.dumps((scope, fn_bytes, args_bytes, sources), pickle.HIGHEST_PROTOCOL)

    def finish_body(self, reply: bytes) -> Any:
        """Replay the body's logs here, then return its value or raise its exception."""
        try:
            message = cloudpickle.loads(reply)
        except Exception as load_error:
            raise SerializationError(
                f"cannot load the reply of the worker process: {_describe(load_error)}"
            ) from None
        kind, payload, records = message[0], message[1], message[2]
        if records:
            _bridge.replay(records)
        if kind == "value":
            return payload
        frames, name, module, error_message = message[3:]
        text = _format_frames(frames)
        exc = payload if payload is not None else _stand_in(name, module, error_message)
        if text and exc.__traceback__ is None:  # (with tblib installed, it came along)
            note = "Traceback in the worker process (most recent call last):\n" + text
            exc.__cause__ = RemoteTraceback(note)
            _add_note(exc, note)
        raise exc

    def _stopped_error(self) -> CancelledRun:
        if self._cancelled:
            return CancelledRun("the flow run was cancelled")
        return CancelledRun("the task runner was shut down while this task ran")


# -- process pool -------------------------------------------------------------------------


def _default_workers() -> int:
    count = os.cpu_count() or 1
    return min(count, 61) if sys.platform == "win32" else count


class _ProcessPool:
    """One ProcessPoolExecutor plus what the runner knows about the bodies in it.

    After a timeout the pool is retired: new bodies go to a fresh pool, and once the retired
    pool's other bodies are done its processes, still running the abandoned body, are
    killed. A body that keeps running never blocks the flow (nor the interpreter's exit).
    """

    _ids = itertools.count(1)

    def __init__(self, size: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._reader, writer = context.Pipe(duplex=False)
        self.executor = cf.ProcessPoolExecutor(
            max_workers=size,
            mp_context=context,
            initializer=_worker_init,
            initargs=(writer,),
        )
        self._writer = writer
        self._lock = threading.Lock()
        self._live: set[cf.Future[bytes]] = set()
        self._abandoned: set[cf.Future[bytes]] = set()
        self._waiting: dict[int, threading.Event] = {}
        self._retired = False
        self._closed = False
        self._listener: threading.Thread | None = None

    def submit(
        self, request: bytes, timed: bool
    ) -> tuple[cf.Future[bytes], int | None, threading.Event | None]:
        """Send one body; for a timed one also an event set when a worker starts it."""
        started = notify = None
        with self._lock:
            if self._closed:
                raise BrokenProcessPool("the process pool was shut down")
            if timed:
                notify = next(self._ids)
                started = self._waiting[notify] = threading.Event()
                if self._listener is None:
                    self._listener = threading.Thread(
                        target=self._listen, name="orch-process-starts", daemon=True
                    )
                    self._listener.start()
            future = self.executor.submit(run_request, request, notify)
            self._live.add(future)
        future.add_done_callback(self._done)
        return future, notify, started

    def _listen(self) -> None:
        """Set the event of each timed body when its worker says that it started."""
        try:
            while not self._closed:
                if not self._reader.poll(0.2):
                    continue
                notify = int.from_bytes(self._reader.recv_bytes(), "little")
                with self._lock:
                    event = self._waiting.pop(notify, None)
                if event is not None:
                    event.set()
        except (OSError, EOFError):
            pass
        finally:
            if self._closed:
                self._close_pipe()

    def forget(self, notify: int | None) -> None:
        if notify is not None:
            with self._lock:
                self._waiting.pop(notify, None)

    def _done(self, future: cf.Future[bytes]) -> None:
        with self._lock:
            self._live.discard(future)
            self._abandoned.discard(future)
            close = self._retired and not self._live and not self._closed
        if close:
            self.close()

    def abandon(self, future: cf.Future[bytes]) -> None:
        """Stop waiting for `future`; retire the pool so its process can be reclaimed."""
        with self._lock:
            if future in self._live:
                self._live.discard(future)
                self._abandoned.add(future)
            self._retired = True
            close = not self._live and not self._closed
        if close:
            self.close()

    def retire(self) -> None:
        with self._lock:
            self._retired = True
            close = not self._live and not self._closed
        if close:
            self.close()

    @property
    def retired(self) -> bool:
        return self._retired

    def close(self, wait: bool = False) -> None:
        """Kill the workers if any still runs a body, else shut the pool down cleanly."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            busy = bool(self._live or self._abandoned)
        if busy:
            self.kill()
            self.executor.shutdown(wait=False, cancel_futures=True)
        else:
            self.executor.shutdown(wait=wait, cancel_futures=True)
        if self._listener is None:
            self._close_pipe()

    def kill(self) -> None:
        processes = dict(getattr(self.executor, "_processes", None) or {})
        for process in processes.values():
            with contextlib.suppress(Exception):
                process.kill()

    def _close_pipe(self) -> None:
        for end in (self._reader, self._writer):
            with contextlib.suppress(Exception):
                end.close()


class ProcessPoolTaskRunner(_RemoteBodies):
    """Run task bodies in up to `max_workers` worker processes (default: the CPU count).

    Orchestration stays in the flow's process, in as many threads as there are workers.
    Workers are started with the "spawn" method (never a plain fork of a threaded
    process); like any spawned process they import the flow process's `__main__` module,
    so a flow file run with `python file.py` needs its `if __name__ == "__main__":` guard.
    Arguments and return values must be picklable (cloudpickle). A body that outlives its
    `timeout_seconds` is abandoned and its worker process killed once no other body in the
    same pool needs it. Task bodies in workers cannot call other tasks or flows.
    """

    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is not None and max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        super().__init__()
        self.max_workers = max_workers
        self._size = max_workers or _default_workers()
        self._lock = threading.Lock()
        self._orchestration: cf.ThreadPoolExecutor | None = None
        self._pool: _ProcessPool | None = None
        self._pools: list[_ProcessPool] = []

    def duplicate(self) -> ProcessPoolTaskRunner:
        return type(self)(max_workers=self.max_workers)

    def submit(self, orchestrate: Callable[[], State]) -> cf.Future[State]:
        with self._lock:
            if self._orchestration is None:
                self._stopping = False
                self._orchestration = cf.ThreadPoolExecutor(
                    max_workers=self._size, thread_name_prefix="orch-task"
                )
            return self._orchestration.submit(orchestrate)

    def _current_pool(self) -> _ProcessPool:
        with self._lock:
            if self._stopping:
                raise self._stopped_error()
            if self._pool is None or self._pool.retired:
                self._pool = _ProcessPool(self._size)
                self._pools = [p for p in self._pools if not p._closed]
                self._pools.append(self._pool)
            return self._pool

    def run_body(self, fn: Callable[..., Any], bound: Any, timeout: float | None, what: str) -> Any:
        request = self._request(fn, bound)  # fails here, naming what cannot be pickled
        pool = self._current_pool()
        try:
            future, notify, started = pool.submit(request, timed=bool(timeout))
        except BrokenProcessPool as exc:
            pool.retire()
            raise self._broken(exc, what) from None
        try:
            if started is not None:
                # The clock starts when a worker starts the body, not while one spawns.
                while not started.wait(0.05) and not future.done():
                    pass
            reply = future.result(timeout=timeout or None)
        except cf.TimeoutError:
            pool.abandon(future)
            raise TaskTimeoutError(timeout_message(what, timeout)) from None
        except BrokenProcessPool as exc:
            pool.retire()
            raise self._broken(exc, what) from None
        except cf.CancelledError:
            raise self._stopped_error() from None
        finally:
            pool.forget(notify)
        return self.finish_body(reply)

    def _broken(self, exc: BaseException, what: str) -> BaseException:
        if self._stopping:
            return self._stopped_error()
        return WorkerCrashedError(
            f"the worker process running {what[0].lower()}{what[1:]} died: {exc}"
        )

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            orchestration, self._orchestration = self._orchestration, None
            if not wait:
                self._stopping = True
        if orchestration is not None:
            if not wait:
                # Running bodies are abandoned: kill their workers so their orchestrating
                # threads stop waiting (their task runs end CANCELLED).
                for pool in list(self._pools):
                    pool.kill()
            orchestration.shutdown(wait=wait, cancel_futures=not wait)
        with self._lock:
            pools, self._pools, self._pool = self._pools, [], None
        for pool in pools:
            pool.close(wait=wait)

    def __repr__(self) -> str:
        return f"ProcessPoolTaskRunner(max_workers={self.max_workers})"


# -- Dask ---------------------------------------------------------------------------------


# How the Dask runner batches: it keeps the cluster fed first and batches second.
FEED_FACTOR = 2  # "fed" = at least this many bodies per cluster thread sent and not yet done
PREPARE_WAIT = 0.005  # when not fed: wait this long at most for bodies still being prepared
BATCH_WAIT = 0.05  # when fed: let a batch grow for this long at most
GATHER_MIN = 16  # when fed: fetch finished bodies in groups of this many...
GATHER_WAIT = 0.01  # ...or after this long, whichever comes first


class _DaskBodies:
    """Task bodies in flight on a Dask client, sent and collected in batches.

    Every `client.map` is a scheduler round trip and every `client.gather` a round trip to
    the workers, each costing about as much as running a small task: sending and fetching
    one body at a time made the runner ~1.7x slower than a plain `client.map` of the same
    tasks. So task runs hand in requests and get plain concurrent futures back; one
    dispatcher thread sends what has queued up as one `client.map`, and one collector
    thread, told by `distributed.as_completed` which bodies finished, fetches them with one
    `client.gather` per group.

    Batching never starves the cluster: while fewer than `FEED_FACTOR` bodies per cluster
    thread are in flight, a request goes out at once (after at most `PREPARE_WAIT` for task
    runs that are preparing theirs, so a `.map()` goes out together), and finished bodies
    are fetched at once. Only while the workers have plenty queued do batches grow, for at
    most `BATCH_WAIT` / `GATHER_WAIT`.
    """

    def __init__(self, client: Any, as_completed: type[Any]) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._waiting: list[tuple[str, bytes, cf.Future[bytes]]] = []
        self._preparing = 0  # task runs started whose first body is not handed in yet
        self._in_flight = 0  # bodies sent and not yet reported finished
        self._local: dict[str, cf.Future[bytes]] = {}
        self._remote: dict[str, Any] = {}
        self._completed = as_completed(loop=client.loop)
        self._added = threading.Event()
        self._closed = False
        try:
            threads = sum(client.nthreads().values())
        except Exception:
            threads = 0
        self.threads = threads
        self._fed = FEED_FACTOR * (threads or 4)
        self._threads = [
            threading.Thread(target=self._dispatch, name="orch-dask-send", daemon=True),
            threading.Thread(target=self._collect, name="orch-dask-receive", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def preparing(self) -> None:
        """A task run started; its body follows unless it is answered without one."""
        with self._lock:
            self._preparing += 1

    def prepared(self) -> None:
        """A task run that was preparing ended without handing in a body."""
        with self._lock:
            self._preparing -= 1
            self._wake.notify()

    def submit(self, key: str, request: bytes, first: bool) -> cf.Future[bytes]:
        """Queue one body; `first` when it is its task run's first (it was preparing)."""
        local: cf.Future[bytes] = cf.Future()
        with self._lock:
            if first:
                self._preparing -= 1
            if self._closed:
                local.cancel()
                return local
            self._local[key] = local
            self._waiting.append((key, request, local))
            self._wake.notify()
        return local

    def cancel(self, key: str) -> None:
        """Give up on one body (after its timeout); Dask stops it if it has not started."""
        with self._lock:
            local = self._local.pop(key, None)
            remote = self._remote.pop(key, None)
        if local is not None:
            local.cancel()
        if remote is not None:
            with contextlib.suppress(Exception):
                remote.cancel()

    def _dispatch(self) -> None:
        while True:
            with self._lock:
                while not self._waiting and not self._closed:
                    self._wake.wait()
                if not self._waiting:
                    return
                first = time.monotonic()
                while not self._closed:
                    waited = time.monotonic() - first
                    if self._in_flight < self._fed:
                        if not self._preparing or waited >= PREPARE_WAIT:
                            break
                        self._wake.wait(PREPARE_WAIT - waited)
                    else:
                        if waited >= BATCH_WAIT:
                            break
                        self._wake.wait(BATCH_WAIT - waited)
                batch = [entry for entry in self._waiting if not entry[2].done()]
                self._waiting = []
                self._in_flight += len(batch)
            if batch:
                self._send(batch)

    def _send(self, batch: list[tuple[str, bytes, cf.Future[bytes]]]) -> None:
        keys = [key for key, _, _ in batch]
        try:
            remote = self.client.map(
                run_request, [request for _, request, _ in batch], key=keys, pure=False
            )
        except Exception as exc:
            with self._lock:
                self._in_flight -= len(batch)
                for key in keys:
                    self._local.pop(key, None)
            for _, _, local in batch:
                if local.set_running_or_notify_cancel():
                    local.set_exception(exc)
            return
        with self._lock:
            for key, future in zip(keys, remote, strict=True):
                if key in self._local:
                    self._remote[key] = future
        self._completed.update(remote)
        self._added.set()

    def _collect(self) -> None:
        while True:
            self._added.wait(0.5)
            self._added.clear()
            while not self._completed.is_empty():
                batch = self._completed.next_batch(block=True)
                started = time.monotonic()
                while (
                    len(batch) < GATHER_MIN
                    and self._in_flight - len(batch) >= self._fed
                    and time.monotonic() - started < GATHER_WAIT
                ):
                    time.sleep(0.001)
                    batch += self._completed.next_batch(block=False)
                with self._lock:
                    self._in_flight -= len(batch)
                    self._wake.notify()
                self._deliver(batch)
            if self._closed and not self._local:
                return

    def _deliver(self, batch: list[Any]) -> None:
        """Settle the local futures of finished Dask futures: one gather for all that
        succeeded, and each failed or cancelled one on its own."""
        finished = [future for future in batch if future.status == "finished"]
        rest = [future for future in batch if future.status != "finished"]
        if finished:
            try:
                replies = self.client.gather(finished)
            except Exception:
                rest = batch  # a result was lost meanwhile (its worker died): one by one
            else:
                for future, reply in zip(finished, replies, strict=True):
                    self._settle(future.key, reply, None)
        for future in rest:
            try:
                error = future.exception()
            except BaseException as exc:
                error = exc
            if error is None:
                error = cf.CancelledError(f"Dask future {future.key} was cancelled")
            self._settle(future.key, None, error)

    def _settle(self, key: str, reply: Any, error: BaseException | None) -> None:
        with self._lock:
            local = self._local.pop(key, None)
            self._remote.pop(key, None)
        if local is None or not local.set_running_or_notify_cancel():
            return
        if error is None:
            local.set_result(reply)
        else:
            local.set_exception(error)

    def cancel_all(self) -> None:
        """Give up on every body in flight; Dask drops those that have not started."""
        with self._lock:
            local, remote = list(self._local.values()), list(self._remote.values())
            self._local.clear()
            self._remote.clear()
        for future in local:
            future.cancel()
        if remote:
            with contextlib.suppress(Exception):
                self.client.cancel(remote)

    def close(self, cancel: bool) -> None:
        """Stop the threads; with `cancel`, first give up on every body still in flight."""
        with self._lock:
            self._closed = True
            self._wake.notify()
        if cancel:
            self.cancel_all()
        self._added.set()
        for thread in self._threads:
            thread.join(timeout=2)


_preparing = threading.local()
"""In an orchestrating thread of the Dask runner: whether its task run has not yet handed
in a body (it counts as preparing)."""


STEP_THREADS = 4
"""Threads of the Dask runner that run task runs' steps."""

DASK_MISSING = "DaskTaskRunner needs the dask extra: pip install 'orchlite[dask]'"
CONNECT_TIMEOUT_SECONDS = 5.0


class DaskTaskRunner(_RemoteBodies):
    """Run task bodies on a Dask cluster (`pip install 'orchlite[dask]'`).

    With no `address`, each flow run starts a temporary cluster, `cluster_class(**
    cluster_kwargs)` (default `distributed.LocalCluster`), and closes it at the end; with an
    `address` it connects a `distributed.Client` to that scheduler (5 s connect timeout,
    change it with `client_kwargs={"timeout": ...}`). `adapt_kwargs` makes a started cluster
    adaptive; `cluster` uses a cluster object you manage (not closed by the runner).

    Orchestration stays in the flow's process; workers must have orchlite installed. Dask is
    imported when the runner starts, on the flow's first `.submit()`; a runner that cannot
    start raises UsageError there, and the flow run fails with that one line.

    Task runs go as steps (`orchlite.steps`): no orchestrating thread waits while a body
    runs, so a `.map()` sends all its bodies at once. A task with tags (concurrency limits)
    keeps its thread, since waiting for a slot blocks.
    """

    starts_bodies = True

    def __init__(
        self,
        address: str | None = None,
        cluster_class: type[Any] | str | Callable[..., Any] | None = None,
        cluster_kwargs: dict[str, Any] | None = None,
        client_kwargs: dict[str, Any] | None = None,
        *,
        adapt_kwargs: dict[str, Any] | None = None,
        cluster: Any = None,
    ) -> None:
        if address is not None and (cluster_class is not None or cluster is not None):
            raise ValueError("pass either an address or a cluster (class), not both")
        super().__init__()
        self.address = address
        self.cluster_class = cluster_class
        self.cluster_kwargs = dict(cluster_kwargs or {})
        self.client_kwargs = dict(client_kwargs or {})
        self.adapt_kwargs = dict(adapt_kwargs or {})
        self.cluster = cluster
        self._lock = threading.Lock()
        self._client: Any = None
        self._own_cluster: Any = None
        self._orchestration: cf.ThreadPoolExecutor | None = None
        self._steps: cf.ThreadPoolExecutor | None = None
        self._error: UsageError | None = None
        self._bodies: _DaskBodies | None = None
        self._abandoned = False
        self._outstanding: set[cf.Future[State]] = set()

    def duplicate(self) -> DaskTaskRunner:
        return type(self)(
            address=self.address,
            cluster_class=self.cluster_class,
            cluster_kwargs=self.cluster_kwargs,
            client_kwargs=self.client_kwargs,
            adapt_kwargs=self.adapt_kwargs,
            cluster=self.cluster,
        )

    @property
    def client(self) -> Any:
        """The `distributed.Client` of a started runner (None before the first submit)."""
        return self._client

    def submit(self, orchestrate: Callable[[], State]) -> cf.Future[State]:
        with self._lock:
            if self._orchestration is None:
                self._start()
            assert self._orchestration is not None
            bodies = self._bodies
            assert bodies is not None
            return self._orchestration.submit(self._orchestrate, bodies, orchestrate)

    def submit_steps(
        self, start: Callable[[], None], outcome: cf.Future[State], after: list[cf.Future[Any]]
    ) -> None:
        with self._lock:
            if self._orchestration is None:
                self._start()
            self._outstanding.add(outcome)
        outcome.add_done_callback(self._forget)
        waiting = [future for future in after if not future.done()]
        if not waiting:
            self._launch(start, outcome)
            return
        count = [len(waiting)]
        count_lock = threading.Lock()

        def one_done(_: cf.Future[Any]) -> None:
            with count_lock:
                count[0] -= 1
                last = count[0] == 0
            if last:
                self._launch(start, outcome)

        for future in waiting:
            future.add_done_callback(one_done)

    def _forget(self, outcome: cf.Future[State]) -> None:
        with self._lock:
            self._outstanding.discard(outcome)

    def _launch(self, start: Callable[[], None], outcome: cf.Future[State]) -> None:
        """Queue a task run's first step; cancel its outcome if the runner has stopped."""
        with self._lock:
            pool, bodies = self._steps, self._bodies
        try:
            if pool is None or bodies is None:
                raise RuntimeError("the runner has stopped")
            work = pool.submit(self._orchestrate, bodies, start)
        except RuntimeError:
            outcome.cancel()
            return
        work.add_done_callback(lambda done: done.cancelled() and outcome.cancel())

    def call_soon(self, step: Callable[[], None]) -> None:
        """Queue `step`; once the runner is stopping (its queue dropped), run it right here,
        so a task run cut short still records how it ended."""
        pool = self._steps
        try:
            if pool is None:
                raise RuntimeError("the runner has stopped")
            work = pool.submit(step)
        except RuntimeError:
            step()
            return
        work.add_done_callback(lambda done: step() if done.cancelled() else None)

    def _orchestrate(self, bodies: _DaskBodies, orchestrate: Callable[[], Any]) -> Any:
        bodies.preparing()
        _preparing.flag = True
        try:
            return orchestrate()
        finally:
            if _preparing.flag:
                _preparing.flag = False
                bodies.prepared()

    def _start(self) -> None:
        if self._error is not None:
            raise self._error
        try:
            self._client, self._own_cluster, as_completed = self._connect()
        except UsageError as exc:
            self._error = exc
            raise
        self._bodies = _DaskBodies(self._client, as_completed)
        self._stopping = False
        # Task runs as steps hold a thread only while a step runs: a few threads do, more
        # would only contend for the GIL. A task run with tags holds its thread throughout
        # (waiting for a slot blocks), so those get many, to keep the cluster fed.
        self._steps = cf.ThreadPoolExecutor(
            max_workers=STEP_THREADS, thread_name_prefix="orch-step"
        )
        self._orchestration = cf.ThreadPoolExecutor(
            max_workers=max(64, 4 * self._bodies.threads), thread_name_prefix="orch-task"
        )

    def _connect(self) -> tuple[Any, Any, Any]:
        try:
            import distributed
        except ImportError:
            raise UsageError(DASK_MISSING) from None
        client_kwargs = dict(self.client_kwargs)
        if self.address is not None:
            client_kwargs.setdefault("timeout", CONNECT_TIMEOUT_SECONDS)
            try:
                client = distributed.Client(self.address, **client_kwargs)
            except Exception as exc:
                raise UsageError(
                    f"cannot connect to the Dask scheduler at {self.address}: {_one_line(exc)}"
                ) from None
            return client, None, distributed.as_completed
        cluster, own = self.cluster, None
        if cluster is None:
            cluster_class = _resolve_class(self.cluster_class) or distributed.LocalCluster
            name = getattr(cluster_class, "__name__", repr(cluster_class))
            try:
                cluster = own = cluster_class(**self.cluster_kwargs)
                if self.adapt_kwargs:
                    cluster.adapt(**self.adapt_kwargs)
            except UsageError:
                raise
            except Exception as exc:
                if own is not None:
                    with contextlib.suppress(Exception):
                        own.close()
                raise UsageError(
                    f"cannot start the Dask cluster ({name}): {_one_line(exc)}"
                ) from None
        try:
            return distributed.Client(cluster, **client_kwargs), own, distributed.as_completed
        except Exception as exc:
            if own is not None:
                with contextlib.suppress(Exception):
                    own.close()
            raise UsageError(f"cannot connect to the Dask cluster: {_one_line(exc)}") from None

    def start_body(
        self, fn: Callable[..., Any], bound: Any, timeout: float | None, what: str
    ) -> cf.Future[bytes]:
        request = self._request(fn, bound)
        bodies = self._bodies
        if bodies is None or self._stopping or self._cancelled:
            raise self._stopped_error()
        key = f"{getattr(fn, '__name__', 'task')}-{os.urandom(8).hex()}"
        first = getattr(_preparing, "flag", False)
        _preparing.flag = False
        local = bodies.submit(key, request, first)
        reply: cf.Future[bytes] = cf.Future()
        timer: threading.Timer | None = None

        def arrived(done: cf.Future[bytes]) -> None:
            if timer is not None:
                timer.cancel()
            if done.cancelled():
                _settle_once(reply, None, self._stopped_error())
            else:
                error = done.exception()
                if error is None:
                    _settle_once(reply, done.result(), None)
                else:
                    _settle_once(reply, None, self._body_error(error, what))

        if timeout:

            def expire() -> None:
                error = TaskTimeoutError(timeout_message(what, timeout))
                if _settle_once(reply, None, error):
                    self._abandoned = True
                    bodies.cancel(key)

            timer = threading.Timer(timeout, expire)
            timer.daemon = True
            timer.start()
        local.add_done_callback(arrived)
        return reply

    def _body_error(self, error: BaseException, what: str) -> BaseException:
        if self._stopping or self._cancelled:
            return self._stopped_error()
        if type(error).__name__ == "KilledWorker":
            return WorkerCrashedError(
                f"the Dask worker running {what[0].lower()}{what[1:]} died: {_one_line(error)}"
            )
        return error

    def run_body(self, fn: Callable[..., Any], bound: Any, timeout: float | None, what: str) -> Any:
        return self.finish_body(self.start_body(fn, bound, timeout, what).result())

    def cancel_pending(self) -> None:
        """The flow run was cancelled: give up on the bodies on the cluster, so their task
        runs end CANCELLED now, and start no more."""
        self._cancelled = True
        bodies = self._bodies
        if bodies is not None:
            bodies.cancel_all()

    def shutdown(self, wait: bool = True) -> None:
        if wait:  # task runs waiting for bodies hold no thread: wait for them here
            while True:
                with self._lock:
                    outstanding = list(self._outstanding)
                if not outstanding:
                    break
                cf.wait(outstanding)
        with self._lock:
            orchestration, self._orchestration = self._orchestration, None
            steps, self._steps = self._steps, None
            bodies, self._bodies = self._bodies, None
            client, self._client = self._client, None
            cluster, self._own_cluster = self._own_cluster, None
            if not wait:
                self._stopping = True
        if not wait and bodies is not None:
            bodies.close(cancel=True)  # their orchestrating threads stop waiting now
        for pool in (orchestration, steps):
            if pool is not None:
                pool.shutdown(wait=wait, cancel_futures=not wait)
        self._stopping = True
        if bodies is not None:
            bodies.close(cancel=True)
        with self._lock:
            unstarted, self._outstanding = list(self._outstanding), set()
        for outcome in unstarted:  # still waiting for their upstream futures
            outcome.cancel()
        _close_dask(client, cluster, abandoned=self._abandoned or not wait)

    def __repr__(self) -> str:
        where = f"address={self.address!r}" if self.address else "local cluster"
        return f"DaskTaskRunner({where})"


def _settle_once(future: cf.Future[Any], value: Any, error: BaseException | None) -> bool:
    """Settle `future` unless something else did first; whether this call did."""
    try:
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(error)
    except cf.InvalidStateError:
        return False
    return True


def _close_dask(client: Any, cluster: Any, abandoned: bool) -> None:
    """Close the client, and the cluster the runner started.

    A body abandoned after its timeout may still run in a worker thread; closing an
    in-process worker would wait for it, so such workers are closed without waiting for
    their threads, and worker processes are killed without the usual grace period.
    """
    if client is not None:
        with contextlib.suppress(Exception):
            client.close()
    if cluster is None:
        return
    if abandoned:
        for worker in list(getattr(cluster, "workers", {}).values()):
            with contextlib.suppress(Exception):
                if hasattr(worker, "executor"):  # a Worker in this process
                    cluster.sync(worker.close, executor_wait=False)
                elif hasattr(worker, "kill"):  # a Nanny: its worker process goes at once
                    cluster.sync(worker.kill, timeout=0.5)
    with contextlib.suppress(Exception):
        cluster.close()


def _resolve_class(value: Any) -> Any:
    """A class, or a "package.module.Class" / "package.module:Class" string naming one."""
    if value is None or not isinstance(value, str):
        return value
    import importlib

    module_name, _, attribute = value.replace(":", ".").rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as exc:
        raise UsageError(f"cannot import the Dask cluster class {value!r}: {exc}") from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


__all__ = [
    "DaskTaskRunner",
    "ProcessPoolTaskRunner",
    "RemoteError",
    "TaskRunner",
    "ThreadPoolTaskRunner",
    "WorkerCrashedError",
]
