"""What a flow run in this process writes to `sys.stdout` and `sys.stderr`, stored as its logs.

While a flow run is open here (`orch run`, `python flow.py`), `sys.stdout` and `sys.stderr`
are tees: each write goes to the stream as before, and each whole line written by code
inside a run (the flow body, its task threads, which carry the run's context) is also
stored as a log record of the run that is current there (a subflow's lines are the
subflow's), as `orchlite.child_output` stores a supervised child's: stdout at INFO (logger
"orchlite.stdout"), stderr at WARNING ("orchlite.stderr"), redacted, with no task. Lines
are cut per run and thread, so prints from parallel tasks do not mix; a last line without
its newline is stored as the run ends. Writes outside any run pass through untouched.

The capture is at the Python level: `os.write(1, ...)`, `sys.__stdout__`, `sys.stdout.buffer`
and programs the flow starts bypass it, and prints in task runner worker processes stay
there. A child whose parent stores its output already (`CAPTURE_ENV`: the daemon, the TUI)
captures nothing, so no line is stored twice.

The tees are installed when the first run opens and removed when the last one ends, unless
something replaced them meanwhile (`contextlib.redirect_stdout`): then they stay in place,
passing writes through unrecorded.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .child_output import CAPTURE_ENV, STDERR_LOGGER, STDOUT_LOGGER
from .context import flow_run_var
from .logging import log_buffer, write_console_batch
from .redaction import redact

if TYPE_CHECKING:
    from .context import FlowRunContext


class _Tee:
    """A text stream that writes to the stream it wraps and stores the lines of runs."""

    def __init__(self, stream: Any, level: int, logger: str) -> None:
        self._stream = stream
        self._level = level
        self._logger = logger
        self.recording = True
        self._lock = threading.Lock()
        self._partial: dict[tuple[str, int], str] = {}
        """Text written by (run id, thread) since its last newline."""

    @property
    def wrapped(self) -> Any:
        return self._stream

    def write(self, text: str) -> int:
        write_console_batch()  # the console lines logged before this write go out first
        self._stream.write(text)
        if self.recording:
            ctx = flow_run_var.get()
            if ctx is not None and ctx.run_id in _open_runs:
                self._record(ctx, text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def _record(self, ctx: FlowRunContext, text: str) -> None:
        key = (ctx.run_id, threading.get_ident())
        with self._lock:
            if "\n" not in text:
                self._partial[key] = self._partial.get(key, "") + text
                return
            *lines, rest = (self._partial.pop(key, "") + text).split("\n")
            if rest:
                self._partial[key] = rest
        self._store(ctx, lines)

    def end_run(self, ctx: FlowRunContext) -> None:
        """Store what the run wrote after its last newline, and forget it."""
        with self._lock:
            keys = [key for key in self._partial if key[0] == ctx.run_id]
            rest = [self._partial.pop(key) for key in keys]
        self._store(ctx, rest)

    def _store(self, ctx: FlowRunContext, lines: list[str]) -> None:
        now = time.time()
        for line in lines:
            text = redact(line.removesuffix("\r"))
            row = (ctx.run_id, None, None, now, self._level, self._logger, text)
            log_buffer.add(ctx.store, row)

    def __getattr__(self, name: str) -> Any:
        # Everything else is the wrapped stream's (also rich's `rich_proxied_file`, so a
        # rich console writing to `sys.stderr` bypasses the tee, as its console lines are
        # run logs stored already).
        return getattr(self._stream, name)


_lock = threading.Lock()
_open_runs: set[str] = set()
_tees: tuple[_Tee, _Tee] | None = None


@contextlib.contextmanager
def captured_output(ctx: FlowRunContext) -> Iterator[None]:
    """While open, the lines that code in run `ctx` writes to sys.stdout/sys.stderr are
    stored as its logs (see the module docstring)."""
    if os.environ.get(CAPTURE_ENV):
        yield  # the parent process stores this one's output already
        return
    tees = _open(ctx.run_id)
    try:
        yield
    finally:
        _close(ctx, tees)


def _open(run_id: str) -> tuple[_Tee, _Tee] | None:
    global _tees
    with _lock:
        if _tees is None and sys.stdout is not None and sys.stderr is not None:
            _tees = (
                _Tee(sys.stdout, logging.INFO, STDOUT_LOGGER),
                _Tee(sys.stderr, logging.WARNING, STDERR_LOGGER),
            )
            sys.stdout, sys.stderr = _tees
        if _tees is not None:
            _open_runs.add(run_id)
        return _tees


def _close(ctx: FlowRunContext, tees: tuple[_Tee, _Tee] | None) -> None:
    global _tees
    if tees is None:
        return
    for tee in tees:
        tee.end_run(ctx)
    with _lock:
        _open_runs.discard(ctx.run_id)
        if _open_runs or _tees is None:
            return
        out, err = _tees
        _tees = None
        for tee in (out, err):
            tee.recording = False
        if sys.stdout is out:
            sys.stdout = out.wrapped
        if sys.stderr is err:
            sys.stderr = err.wrapped
