"""The process-pool task runner: bodies run in worker processes started with "spawn".

Loaded on first use of `ProcessPoolTaskRunner` (`orchlite.task_runners` imports it lazily),
so a flow that runs its tasks in threads never imports the process-pool machinery.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import itertools
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ..errors import TaskTimeoutError
from ..states import State
from ..timeouts import timeout_message
from .bodies import RemoteBodies, WorkerCrashedError
from .worker import run_request

_started_pipe: Any = None
"""In a pool's worker process: where it says that a body started (set by `_worker_init`)."""


def _worker_init(started: Any) -> None:
    """Process-pool worker start-up: Ctrl-C is the flow process's to handle, not ours."""
    global _started_pipe
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _started_pipe = started


def _run_in_worker(request: bytes, notify: int | None) -> bytes:
    """Run one body in a pool's worker process; with `notify`, first tell the flow process
    that the body started (a timed body's clock starts then)."""
    if notify is not None and _started_pipe is not None:
        with contextlib.suppress(OSError):
            _started_pipe.send_bytes(notify.to_bytes(8, "little"))
    return run_request(request)


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
            future = self.executor.submit(_run_in_worker, request, notify)
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


class ProcessPoolTaskRunner(RemoteBodies):
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
