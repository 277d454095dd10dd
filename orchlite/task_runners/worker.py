"""The worker side: what runs in a worker process (or a Dask worker thread) for one body.

`run_request` loads the task's function and arguments from a request, runs the body inside
the scope its task run sent along (see `WorkerBridge`), and answers with reply bytes: the
value, or the exception with the frames of its traceback, plus the body's log records.

Frames are mapped here too, on both ends: a worker names each frame outside orchlite by the
source file the flow process gave for its module (`source_file`), and the flow process
renders them with source lines read on its own disk (`format_frames`).
"""

from __future__ import annotations

import contextlib
import contextvars
import linecache
import os
import pickle
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

import cloudpickle

from ..errors import SerializationError

ORCHLITE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
"""The orchlite package's directory: its frames are left out of a worker's traceback."""


def run_request(request: bytes) -> bytes:
    """Run one task body described by `request`; returns the reply bytes.

    Runs in a fresh `contextvars` context, so nothing leaks between bodies that share a
    worker thread (a Dask cluster with `processes=False` shares the flow's process).
    """
    return contextvars.Context().run(_serve, request)


def _serve(request: bytes) -> bytes:
    scope, fn_bytes, args_bytes, sources = pickle.loads(request)
    records: list[tuple[str, int, float, str]] = []
    try:
        fn = _load_function(fn_bytes)
    except Exception as exc:
        error = SerializationError(
            f"cannot load the task's function in the worker process: {describe(exc)}"
        )
        return _reply_error(error, records, sources)
    try:
        args, kwargs = cloudpickle.loads(args_bytes)
    except Exception as exc:
        error = SerializationError(
            f"cannot load the task's arguments in the worker process: {describe(exc)}"
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
            f"worker process: {describe(exc)}"
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
        if file.startswith(ORCHLITE_DIR):
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


def format_frames(frames: list[Frame]) -> str:
    """A worker's frames as traceback text, each source line read here, in the flow process
    (a worker on another machine may not have the file)."""
    summaries = [
        traceback.FrameSummary(file, line, name, line=linecache.getline(file, line).strip())
        for file, line, name in frames
    ]
    return "".join(traceback.format_list(summaries)).rstrip()


def source_file(fn: Callable[..., Any]) -> dict[str, str]:
    """{module name: source file} of `fn`'s module as this process loaded it: the worker's
    traceback names that file for the module's frames, whatever the pickler did to the code."""
    name = getattr(fn, "__module__", None) or "__main__"
    file = getattr(sys.modules.get(name), "__file__", None)
    return {name: os.path.abspath(file)} if file else {}


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
