"""Writes task-run records with one commit per task, and keeps long work visible.

Recording a task durably needs one commit; recording its start as a separate commit would
double the cost of every short task. So a task's start is held in memory and written
together with its outcome. A background thread writes the start of any task still running
after `START_DELAY` seconds (so `orch show` and the TUI see it RUNNING), flushes buffered log
lines, refreshes the heartbeat of this process's flow runs, and tells each one when it must
stop: someone asked to cancel it, or another process ended it (see `orchlite.stopping`).
A process killed within `START_DELAY` of starting a task loses only that task's RUNNING
row; its run is reaped as CRASHED and a resume executes the task again.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections.abc import Callable, Sequence

from .context import open_stores
from .logging import flush_console, log_buffer
from .store import EngineStore, StateRow, Store, TaskRun, TaskRunSave

START_DELAY = 0.2
TICK = 0.1
HEARTBEAT_EVERY = 5.0
CHECKPOINT_EVERY = 1.0
CANCEL_POLL_EVERY = 0.5


class _Held:
    """A task run's first states, not yet written. Its lock orders the one write of them."""

    __slots__ = ("lock", "run", "states", "store", "written")

    def __init__(self, store: Store, run: TaskRun, states: list[StateRow]) -> None:
        self.lock = threading.Lock()
        self.store = store
        self.run = run
        self.states = states
        self.written = False


class Recorder:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, int], _Held] = {}
        self._active_flows: dict[str, tuple[EngineStore, Callable[[str], None]]] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._stores_used: set[EngineStore] = set()  # by the background thread
        self._last_heartbeat = 0.0
        self._last_checkpoint = 0.0
        self._last_cancel_poll = 0.0
        os.register_at_fork(after_in_child=self._forget_thread)

    # -- task runs ----------------------------------------------------------------------

    def begin(self, store: Store, run: TaskRun, states: list[StateRow]) -> None:
        """Hold a task run's first states until it ends or runs past START_DELAY."""
        with self._lock:
            self._pending[(run.flow_run_id, run.position)] = _Held(store, run, states)
        if self._thread is None:
            self._ensure_thread()

    def write(
        self,
        store: Store,
        run: TaskRun,
        states: Sequence[StateRow],
        *,
        cache: tuple[str, float | None] | None = None,
        answer: Callable[[], bool] | None = None,
    ) -> bool:
        """Commit the task run's row with its new states (and any held start) now; False
        when nothing of it was written (see `Store.save_task_run`, which asks `answer`).

        No process-wide lock is held during the commit, so task runs in other threads
        record in parallel; only a background write of this run's own start is waited for.
        """
        with self._lock:
            held = self._pending.pop((run.flow_run_id, run.position), None)
        if held is None:
            return _save(store, run, states, cache, answer)
        with held.lock:
            if not held.written:
                states = [*held.states, *states]
            held.written = True
            return _save(store, run, states, cache, answer)

    # -- flow runs ----------------------------------------------------------------------

    def track_flow(self, store: EngineStore, run_id: str, stop: Callable[[str], None]) -> None:
        """Heartbeat this flow run, and call `stop(state)` while its recorded state says it
        must stop: CANCELLING, or a terminal state another process recorded."""
        with self._lock:
            self._active_flows[run_id] = (store, stop)
        self._ensure_thread()

    def untrack_flow(self, run_id: str) -> None:
        with self._lock:
            self._active_flows.pop(run_id, None)

    def flush(self) -> None:
        """Write every held start and buffered log line now."""
        self._flush_pending(older_than=-1.0)
        log_buffer.flush()
        flush_console()

    # -- background ---------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        """Start the background thread, once per process (asked on every task run)."""
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._loop, name="orch-recorder", daemon=True
                    )
                    self._thread.start()
                    atexit.register(self._stop_thread)

    def _forget_thread(self) -> None:
        """In a forked child: the parent's thread does not exist here."""
        self._thread = None

    def _stop_thread(self) -> None:
        """At exit: end the background thread, which closes its connections. A connection
        left open by a thread frozen at exit keeps the WAL on disk (the last connection to
        close merges it back), taking space a full disk lacks."""
        thread = self._thread
        if thread is not None:
            self._stop.set()
            thread.join(timeout=1.0)

    def _loop(self) -> None:
        while not self._stop.wait(TICK):
            try:
                self._flush_pending(older_than=START_DELAY)
                log_buffer.flush()
                flush_console()
                self._beat()
            except Exception:  # the recorder must outlive a transient store error
                continue
        for store in {*self._stores_used, *open_stores()}:  # log lines go to the latter
            store.close_thread_connection()

    def _flush_pending(self, older_than: float) -> None:
        now = time.time()
        with self._lock:
            due = [
                held
                for held in self._pending.values()
                if now - (held.run.started or held.run.created) > older_than
            ]
        # Held starts are written together, one commit per store; one whose task run is
        # being written right now (its lock taken) is left to that write.
        taken = [held for held in due if held.lock.acquire(blocking=False)]
        failed: BaseException | None = None
        try:
            by_store: dict[EngineStore, list[_Held]] = {}
            for held in taken:
                if not held.written:
                    by_store.setdefault(held.store, []).append(held)
            for store, group in by_store.items():
                self._stores_used.add(store)
                saves = [TaskRunSave(held.run, held.states) for held in group]
                errors = store.save_task_runs(saves)
                for held, error in zip(group, errors, strict=True):
                    held.written = error is None
                    failed = failed or error
        finally:
            for held in taken:
                held.lock.release()
        if failed is not None:
            raise failed

    def _beat(self) -> None:
        now = time.time()
        beat = now - self._last_heartbeat >= HEARTBEAT_EVERY
        checkpoint = now - self._last_checkpoint >= CHECKPOINT_EVERY
        poll = now - self._last_cancel_poll >= CANCEL_POLL_EVERY
        if not (beat or checkpoint or poll):
            return
        with self._lock:
            flows = dict(self._active_flows)
        by_store: dict[EngineStore, list[str]] = {}
        for run_id, (store, _) in flows.items():
            by_store.setdefault(store, []).append(run_id)
        self._stores_used.update(by_store)
        if poll:
            self._last_cancel_poll = now
            for store, run_ids in by_store.items():
                for run_id, state in store.stopping(run_ids).items():
                    flows[run_id][1](state)
        if beat:
            self._last_heartbeat = now
            for store, run_ids in by_store.items():
                store.heartbeat(run_ids, now)
        if checkpoint:
            self._last_checkpoint = now
            for store in by_store:
                store.checkpoint()


def _save(
    store: Store,
    run: TaskRun,
    states: Sequence[StateRow],
    cache: tuple[str, float | None] | None,
    answer: Callable[[], bool] | None = None,
) -> bool:
    """Commit the task run with its new states, and the log lines buffered for `store`."""
    if not log_buffer.holds(store):  # most task runs log nothing
        return store.save_task_run(run, states, cache=cache, answer=answer)
    with log_buffer.taken(store) as logs:
        return store.save_task_run(run, states, cache=cache, logs=logs, answer=answer)


recorder = Recorder()
