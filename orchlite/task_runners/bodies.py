"""What the process-pool and Dask runners share: bodies go out as requests, come back as
replies.

In the orchestrating thread, `RemoteBodies._request` pickles a body for the trip (see
`orchlite.task_runners.pickling`) with the scope of its task run from the runner's
`worker_bridge`; the worker runs it (`orchlite.task_runners.worker`), and `finish_body`
replays the body's log records under the same task run, as if the body had run there, then
returns its value or raises its exception again, with the worker's traceback as a note.
"""

from __future__ import annotations

import inspect
import pickle
import sys
import threading
from collections.abc import Callable
from typing import Any

import cloudpickle

from ..errors import CancelledRun, SerializationError
from .base import TaskRunner
from .pickling import by_value_modules, dumps
from .worker import describe, format_frames, source_file


class RemoteTraceback(Exception):
    """The traceback text of an exception raised in a worker process (set as its cause)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class RemoteError(Exception):
    """Stands in for a worker's exception that could not be sent back as itself; the stand-in
    class has the original's name, so the task run records the same error type."""


class WorkerCrashedError(Exception):
    """The worker process running a task body died (a signal, `os._exit`, out of memory)."""


def _add_note(exc: BaseException, note: str) -> None:
    """`exc.add_note(note)`, also on Python 3.10 (which has `__notes__` but no `add_note`)."""
    if sys.version_info >= (3, 11):
        exc.add_note(note)
    else:
        exc.__notes__ = [*getattr(exc, "__notes__", ()), note]  # type: ignore[attr-defined]


_stand_ins: dict[tuple[str, str], type[RemoteError]] = {}


def _stand_in(name: str, module: str, message: str) -> RemoteError:
    cls = _stand_ins.get((module, name))
    if cls is None:
        cls = type(name, (RemoteError,), {"__module__": module, "__qualname__": name})
        _stand_ins[(module, name)] = cls
    return cls(message)


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


class RemoteBodies(TaskRunner):
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
            by_value = by_value_modules(fn)
            try:
                fn_bytes = dumps(fn, by_value)
            except Exception as exc:
                raise SerializationError(
                    f"cannot send function {_function_name(fn)!r} to a worker process: "
                    f"{describe(exc)}"
                ) from None
            cached = (fn, fn_bytes, by_value, source_file(fn))
            with self._functions_lock:
                self._functions[id(fn)] = cached
        _, fn_bytes, by_value, sources = cached
        args, kwargs, named = _call_arguments(bound)
        try:
            args_bytes = dumps((args, kwargs), by_value)
        except Exception as exc:
            for name, value in named.items():
                try:
                    dumps(value, by_value)
                except Exception as inner:
                    raise SerializationError(
                        f"cannot send argument {name!r} of type {type(value).__name__!r} "
                        f"to a worker process: {describe(inner)}"
                    ) from None
            raise SerializationError(
                f"cannot send the arguments to a worker process: {describe(exc)}"
            ) from None
        scope = self.worker_bridge.scope()
        return pickle.dumps((scope, fn_bytes, args_bytes, sources), pickle.HIGHEST_PROTOCOL)

    def finish_body(self, reply: bytes) -> Any:
        """Replay the body's logs here, then return its value or raise its exception."""
        try:
            message = cloudpickle.loads(reply)
        except Exception as load_error:
            raise SerializationError(
                f"cannot load the reply of the worker process: {describe(load_error)}"
            ) from None
        kind, payload, records = message[0], message[1], message[2]
        if records:
            self.worker_bridge.replay(records)
        if kind == "value":
            return payload
        frames, name, module, error_message = message[3:]
        text = format_frames(frames)
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
