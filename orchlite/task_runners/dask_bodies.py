"""Task bodies in flight on a Dask client, sent and collected in batches (see `DaskBodies`).

Loaded with `DaskTaskRunner`, never by `import orchlite.task_runners`; it takes a started
client and never imports Dask itself.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import threading
import time
from typing import Any

from .worker import run_request

# How the Dask runner batches: it keeps the cluster fed first and batches second.
FEED_FACTOR = 2  # "fed" = at least this many bodies per cluster thread sent and not yet done
PREPARE_WAIT = 0.005  # when not fed: wait this long at most for bodies still being prepared
BATCH_WAIT = 0.05  # when fed: let a batch grow for this long at most
GATHER_MIN = 16  # when fed: fetch finished bodies in groups of this many...
GATHER_WAIT = 0.01  # ...or after this long, whichever comes first


class DaskBodies:
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
