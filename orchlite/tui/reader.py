"""What the screens show, read from the store in a worker thread.

A `Poller` asks SQLite's `data_version` (one pragma, microseconds) on every tick and only
runs its loader when another connection committed since the last load, so an idle TUI
costs next to nothing however many runs the store holds. Loaders only call `Store` query
methods and return plain snapshots; nothing here imports Textual or writes to the store.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from ..errors import OrchError, RunNotFoundError
from ..store import DB_NAME, FlowRun, HistoryEntry, LogRecord, Store, TaskRun

T = TypeVar("T")

PAGE_SIZE = 200
"""Runs shown at most: the newest ones matching the filters."""
SEARCH_WINDOW = 2_000
"""Runs a text search looks through (newest first)."""


@dataclass(frozen=True)
class RunsQuery:
    flow: str | None = None
    state: str | None = None
    text: str = ""
    limit: int = PAGE_SIZE

    @property
    def filtered(self) -> bool:
        return bool(self.flow or self.state or self.text)


@dataclass
class RunsPage:
    query: RunsQuery
    runs: list[FlowRun]
    counts: dict[str, dict[str, int]]
    store_exists: bool = True


@dataclass
class RunDetail:
    run: FlowRun
    tasks: list[TaskRun]
    history: list[HistoryEntry]
    children: list[FlowRun]
    parent: FlowRun | None = None
    retry_of: FlowRun | None = None

    @property
    def error(self) -> str | None:
        """The last traceback of a task run that did not complete."""
        failed = [t for t in self.tasks if t.traceback and t.state != "COMPLETED"]
        return failed[-1].traceback if failed else None


@dataclass
class LogBatch:
    records: list[LogRecord]
    reset: bool = False
    """True: the records replace what is shown (the level filter changed)."""


@dataclass
class LoadError:
    message: str


def _matches(run: FlowRun, text: str) -> bool:
    text = text.lower()
    return any(
        text in (value or "").lower()
        for value in (run.id, run.name, run.flow_name, run.trigger, run.state, run.state_message)
    )


def load_runs(store: Store, query: RunsQuery) -> RunsPage:
    """The newest runs matching `query`; a text search looks through the newest few thousand."""
    limit = SEARCH_WINDOW if query.text else query.limit
    runs = store.list_flow_runs(flow=query.flow, state=query.state, limit=limit)
    if query.text:
        runs = [r for r in runs if _matches(r, query.text)][: query.limit]
    return RunsPage(query, runs, store.task_state_counts([r.id for r in runs]))


def _maybe_run(store: Store, run_id: str | None) -> FlowRun | None:
    if run_id is None:
        return None
    try:
        return store.get_flow_run(run_id)
    except RunNotFoundError:
        return None


def load_detail(store: Store, run_id: str) -> RunDetail:
    run = store.get_flow_run(run_id)
    return RunDetail(
        run=run,
        tasks=store.task_runs(run_id),
        history=store.history(run_id),
        children=store.child_flow_runs(run_id),
        parent=_maybe_run(store, run.parent_run_id),
        retry_of=_maybe_run(store, run.retry_of),
    )


class LogFollower:
    """Reads a run's log records incrementally: only those after the last one read."""

    def __init__(self, run_id: str, min_level: int = 0) -> None:
        self.run_id = run_id
        self.min_level = min_level
        self.after_id = 0
        self._lock = threading.Lock()
        self._reset = True  # the first read replaces the "loading" state

    def set_level(self, min_level: int) -> None:
        """Show records at `min_level` and above from the start (called from the UI thread)."""
        with self._lock:
            self.min_level = min_level
            self._reset = True

    def __call__(self, store: Store) -> LogBatch | None:
        with self._lock:
            reset, self._reset = self._reset, False
            level = self.min_level
        if reset:
            self.after_id = 0
        records = store.logs(self.run_id, after_id=self.after_id, min_level=level)
        if records:
            self.after_id = records[-1].id
        if not records and not reset:
            return None
        return LogBatch(records, reset=reset)


class Poller(Generic[T]):
    """Runs `load(store)` when the store changed (or when asked to); see the module doc.

    `load` returning None means "nothing new". Before the store exists, `missing()` is
    delivered once, and the poller keeps watching for the database file to appear.
    """

    def __init__(
        self,
        home: Path,
        load: Callable[[Store], T | None],
        missing: Callable[[], T | None] = lambda: None,
    ) -> None:
        self.home = home
        self.load = load
        self.missing = missing
        self.store: Store | None = None
        self.version: int | None = None
        self._reported_missing = False

    def tick(self, force: bool = False) -> T | LoadError | None:
        """One poll: a new snapshot, an error to show, or None when nothing changed."""
        try:
            if self.store is None:
                if not (self.home / DB_NAME).exists():
                    if self._reported_missing and not force:
                        return None
                    self._reported_missing = True
                    return self.missing()
                self.store = Store(self.home, create=False)
            version = self.store.data_version()
            if version == self.version and not force:
                return None
            self.version = version
            return self.load(self.store)
        except OrchError as exc:
            self.version = None  # try again next tick
            return LoadError(str(exc))

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None


@dataclass
class Wakeup:
    """Tells a polling thread to poll now (and to reload even if nothing changed)."""

    event: threading.Event = field(default_factory=threading.Event)
    stopped: bool = False

    def poke(self) -> None:
        self.event.set()

    def stop(self) -> None:
        self.stopped = True
        self.event.set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True if poked (consumes the poke)."""
        poked = self.event.wait(seconds)
        self.event.clear()
        return poked
