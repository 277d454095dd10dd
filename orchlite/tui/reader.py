"""What the screens show, read from the store in a worker thread.

Each loader (or `Follower`, which keeps what it read to read only what changed next time)
only calls `Store` query methods and returns a plain snapshot; a `Poller` (`poller`) runs
it when the store changed. Nothing here imports Textual or writes to the store.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..states import TERMINAL
from ..store import (
    FlowRun,
    LogRecord,
    RunKey,
    RunMark,
    Store,
    TaskRunDetail,
)
from .poller import Follower
from .run_filters import TimeRange

PAGE_SIZE = 200
"""Runs loaded at a time: the newest ones matching the filters, then a page more per ask."""
MAX_SHOWN = 1_000
"""Runs shown at most: loading older ones past this drops the newest from the top."""
COUNTS_CHUNK = 500
"""Runs whose task counts are asked for in one query (SQLite bounds a query's parameters)."""
TREND_FLOWS = 4
"""Flows in the trends strip (a line each): those that ran most recently."""
TREND_RUNS = 20
"""Runs per flow in the trends strip: the newest ones."""


@dataclass(frozen=True)
class RunsQuery:
    flow: str | None = None
    """Part of a flow's name, in any case."""
    states: tuple[str, ...] = ()
    """Any of these states (none: every state)."""
    text: str = ""
    tags: tuple[str, ...] = ()
    """Every one of these tags."""
    window: TimeRange | None = None
    """When the runs were created."""
    anchor: RunKey | None = None
    """None: the newest `PAGE_SIZE` runs. A run's key: every run down to that one (the pages
    shown so far, read again) and the next page below it (keyset paging: cheap at any depth)."""
    top: RunKey | None = None
    """With an anchor: only runs older than this key, so that at most `MAX_SHOWN` runs are
    read again on each change however deep the pages go (newer runs are then not shown)."""

    @property
    def filtered(self) -> bool:
        return bool(self.flow or self.states or self.text or self.tags or self.window)

    @property
    def only_flow(self) -> bool:
        """Filtered by flow at most: a run's state changing never moves it in or out."""
        return not (self.states or self.text or self.tags or self.window)


@dataclass
class RunsPage:
    query: RunsQuery
    runs: list[FlowRun]
    counts: dict[str, dict[str, int]]
    store_exists: bool = True
    more: bool = False
    """Older runs match the filters too (`RunsQuery.anchor` loads them)."""
    top: RunKey | None = None
    """The `RunsQuery.top` that keeps the runs shown to `MAX_SHOWN` (None: from the newest)."""
    trends: list[list[FlowRun]] = field(default_factory=list)
    """The newest runs of each flow that ran recently (`Store.latest_runs_per_flow`)."""
    matching: int = 0
    """How many runs match the filters, shown or not."""


def run_key(run: FlowRun) -> RunKey:
    return (run.created, run.id)


FLOW_ONLY = "flow"
"""`LogFilter.task` for the flow run's own records (no task run's)."""


@dataclass(frozen=True)
class LogFilter:
    min_level: int = 0
    task: str | None = None
    """A task run's id, `FLOW_ONLY`, or None for every record."""
    text: str = ""
    """Only records whose message contains this (ignoring ASCII case)."""


@dataclass
class LogBatch:
    records: list[LogRecord]
    reset: bool = False
    """True: the records replace what is shown (a filter changed)."""
    tasks: list[tuple[str, str]] | None = None
    """The run's task runs as (id, name), when they changed since the last batch."""


def flow_matches(part: str | None, name: str) -> bool:
    """Whether a flow named `name` passes the flow filter `part`: a part of its name, in
    any case (None: every flow)."""
    return part is None or part.casefold() in name.casefold()


def flows_matching(store: Store, part: str) -> list[str]:
    """The names of the flows that ran that pass the flow filter `part`."""
    newest = store.latest_runs_per_flow(flows=-1, runs=1)  # a run per flow: its name
    return [runs[0].flow_name for runs in newest if flow_matches(part, runs[0].flow_name)]


def load_runs(store: Store, query: RunsQuery, now: float | None = None) -> RunsPage:
    """The runs `query` asks for, newest first, their task counts, how many match and the
    flows' trends (`now`: where a time range given as an age ends)."""
    since, until = (None, None)
    if query.window is not None:
        since, until = query.window.bounds(time.time() if now is None else now)
    filters: dict[str, Any] = {
        "flow": None if query.flow is None else flows_matching(store, query.flow),
        "state": query.states or None,
        "text": query.text,
        "tags": query.tags,
        "since": since,
        "until": until,
    }
    page = functools.partial(store.flow_runs_page, **filters)
    if query.anchor is None:
        runs = page(limit=PAGE_SIZE + 1)
        more = len(runs) > PAGE_SIZE
        runs = runs[:PAGE_SIZE]
    else:
        runs = page(before=query.top, down_to=query.anchor)
        older = page(before=query.anchor, limit=PAGE_SIZE + 1)
        more = len(older) > PAGE_SIZE
        runs += older[:PAGE_SIZE]
    top = query.top
    if len(runs) > MAX_SHOWN:
        top = run_key(runs[-MAX_SHOWN - 1])
        runs = runs[-MAX_SHOWN:]
    counts = _task_counts(store, [r.id for r in runs])
    trends = store.latest_runs_per_flow(flows=TREND_FLOWS, runs=TREND_RUNS)
    matching = store.count_flow_runs(**filters)
    return RunsPage(query, runs, counts, more=more, top=top, trends=trends, matching=matching)


class RunsFollower(Follower):
    """Loads the runs screen's page again only when what it shows changed.

    Another process (a daemon, say) commits all the time, and each commit wakes the poller;
    most touch nothing the page shows (heartbeats, schedule marks, other runs' task
    runs). A poll first asks for the newest run, the marks (state, start, end) of the runs
    shown still going, in the page or the trends, how many runs the span of creation times
    shown still holds (a finished run never moves again, but retention deletes it), and the
    task counts of those still going, all by index, and does nothing more unless one of
    these moved. On the first page filtered by flow at most it then reads only what moved
    (`_update`); otherwise, and when the query changed, it loads the page again. `clock`
    gives the now a time range ends at.
    """

    def __init__(
        self, query: Callable[[], RunsQuery], clock: Callable[[], float] = time.time
    ) -> None:
        self.query = query
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        self.loaded: RunsPage | None = None
        self.newest: RunKey | None = None
        self.marks: dict[str, RunMark] = {}
        self.span: _Span | None = None
        self.finished: list[str] = []
        """The runs shown (in the page or the trends) that had finished when read, sorted."""
        self.going: list[str] = []
        """The others, sorted: their marks are asked for on each poll."""
        self.counted: list[str] = []
        """The page's runs going: their task counts are asked for, the poll seeing one end too."""

    def __call__(self, store: Store) -> RunsPage | None:
        query = self.query()
        loaded = self.loaded
        if loaded is None or loaded.query != query:
            return self._load(store, query)
        newest = _newest(store)
        if not self._all_there(store):
            return self._load(store, query)  # deleted: the page gets older runs in their place
        going = store.run_marks(self.going)
        counts = _task_counts(store, self.counted)
        counted = any(counts[run_id] != loaded.counts.get(run_id, {}) for run_id in self.counted)
        moved = len(going) != len(self.going) or any(
            mark != self.marks[run_id] for run_id, mark in going.items()
        )
        if newest == self.newest and not moved and not counted:
            return None
        if (
            self.newest is None
            or query.anchor is not None
            or not query.only_flow
            or len(going) != len(self.going)  # a run going was deleted
        ):
            return self._load(store, query)  # runs may leave the page: read it again
        return self._update(store, newest, self.marks | going, counts)

    def _all_there(self, store: Store) -> bool:
        """Whether the finished runs shown all still exist (retention deletes finished
        runs): the span of the page counted again, and by id those shown outside it."""
        span = self.span
        if span is None:
            return store.count_existing_runs(self.finished) == len(self.finished)
        if store.count_runs_created(span.oldest, span.newest, SPAN_COUNTED + 1) != span.count:
            return False
        return not span.outside or store.count_existing_runs(span.outside) == len(span.outside)

    def _load(self, store: Store, query: RunsQuery) -> RunsPage:
        self.newest = _newest(store)
        page = load_runs(store, query, self.clock())
        self._keep(store, page)
        return page

    def _keep(self, store: Store, page: RunsPage) -> None:
        """Keep `page` and what the next polls ask about it."""
        self.loaded = page
        self.marks = _marks(page)
        self.span = _span(store, page)
        self.finished = sorted(run_id for run_id, mark in self.marks.items() if mark[0] in TERMINAL)
        self.going = sorted(self.marks.keys() - set(self.finished))
        self.counted = [run.id for run in page.runs if run.state not in TERMINAL]

    def _update(
        self,
        store: Store,
        newest: RunKey | None,
        marks: dict[str, RunMark],
        counts: dict[str, dict[str, int]],
    ) -> RunsPage:
        """The first page again from what moved: the runs newer than the newest shown, the
        runs whose marks changed and the task counts of the runs going. A daemon firing
        every second thus costs a few index reads a second, not the page."""
        assert self.loaded is not None and self.newest is not None
        old = self.loaded
        above = store.flow_runs_page(down_to=self.newest)  # every flow's: the trends show all
        arrived = [run for run in above if run_key(run) != self.newest]
        new = [run for run in arrived if flow_matches(old.query.flow, run.flow_name)]
        moved = {run_id for run_id, mark in marks.items() if self.marks.get(run_id) != mark}
        runs = new + [store.get_flow_run(run.id) if run.id in moved else run for run in old.runs]
        more = old.more or len(runs) > PAGE_SIZE
        runs = runs[:PAGE_SIZE]
        page_counts = {run.id: old.counts.get(run.id, {}) for run in runs}
        page_counts |= {run_id: c for run_id, c in counts.items() if run_id in page_counts}
        page_counts |= _task_counts(store, [run.id for run in new])
        trends = old.trends
        moved_in_trends = moved & {run.id for runs in old.trends for run in runs}
        if arrived or moved_in_trends:
            fresh = {run.id: run for run in runs if run.id in moved_in_trends}
            told = _trends_after(old.trends, arrived, moved_in_trends, fresh)
            trends = told or store.latest_runs_per_flow(flows=TREND_FLOWS, runs=TREND_RUNS)
        self.newest = newest
        matching = old.matching + len(new)  # by flow at most: no run left the filter
        page = RunsPage(old.query, runs, page_counts, more=more, trends=trends, matching=matching)
        self._keep(store, page)
        return page


@dataclass(frozen=True)
class _Span:
    """The creation times a page's runs span, how many runs that span held when read, and
    the finished runs shown older than it (in the trends), to be checked by id."""

    oldest: float
    newest: float
    count: int
    outside: list[str]


SPAN_COUNTED = 2_000
"""A page whose span holds more runs than this (a filter matching few) is checked by id."""


def _span(store: Store, page: RunsPage) -> _Span | None:
    if not page.runs:
        return None
    oldest, newest = page.runs[-1].created, page.runs[0].created
    count = store.count_runs_created(oldest, newest, SPAN_COUNTED + 1)
    if count > SPAN_COUNTED:
        return None
    trends = [run for runs in page.trends for run in runs]
    outside = sorted(r.id for r in trends if r.created < oldest and r.state in TERMINAL)
    return _Span(oldest, newest, count, outside)


def _marks(page: RunsPage) -> dict[str, RunMark]:
    """The marks of the runs a page shows, in its table or in its trends strip, as they were
    read (not read again after: a run that moved in between shows at the next poll)."""
    shown = [run for runs in page.trends for run in runs] + page.runs  # the page's win
    return {run.id: (run.state, run.started, run.ended) for run in shown}


def _newest(store: Store) -> RunKey | None:
    newest = store.flow_runs_page(limit=1)
    return run_key(newest[0]) if newest else None


def _trends_after(
    trends: list[list[FlowRun]], new: list[FlowRun], moved: set[str], fresh: dict[str, FlowRun]
) -> list[list[FlowRun]] | None:
    """The trends with the `new` runs (newest first) added and their `moved` runs replaced
    by their `fresh` rows, or None when the page alone cannot tell them: a new run of a flow
    not in the trends (it may push another flow out), or a moved trend run the page does
    not show."""
    if moved - fresh.keys():
        return None
    lines = {runs[0].flow_name: [fresh.get(run.id, run) for run in runs] for runs in trends if runs}
    for run in reversed(new):
        if run.flow_name not in lines:
            return None
        lines[run.flow_name] = [run, *lines[run.flow_name]][:TREND_RUNS]
    return sorted(lines.values(), key=lambda runs: runs[0].created, reverse=True)


def _task_counts(store: Store, run_ids: list[str]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for start in range(0, len(run_ids), COUNTS_CHUNK):
        counts |= store.task_state_counts(run_ids[start : start + COUNTS_CHUNK])
    return counts


@dataclass
class TaskSnapshot:
    run: FlowRun
    detail: TaskRunDetail | None
    """None: the run has no task run at that position (yet)."""


def load_task(store: Store, run_id: str, position: int) -> TaskSnapshot:
    """Task run `position` of run `run_id` in full, and its flow run."""
    return TaskSnapshot(store.get_flow_run(run_id), store.task_run_detail(run_id, position))


class LogFollower(Follower):
    """Reads a run's log records incrementally: only those after the last one read."""

    def __init__(self, run_id: str, log_filter: LogFilter | None = None) -> None:
        self.run_id = run_id
        self.filter = log_filter or LogFilter()
        self.after_id = 0
        self._lock = threading.Lock()
        self._reset = True  # the first read replaces the "loading" state
        self._tasks: list[tuple[str, str]] | None = None

    def reset(self) -> None:
        with self._lock:
            self._reset = True
        self._tasks = None

    def set_filter(self, log_filter: LogFilter) -> None:
        """Show the records `log_filter` keeps, from the start (called from the UI thread)."""
        with self._lock:
            self.filter = log_filter
            self._reset = True

    def __call__(self, store: Store) -> LogBatch | None:
        with self._lock:
            reset, self._reset = self._reset, False
            shown = self.filter
        if reset:
            self.after_id = 0
        records = store.logs(
            self.run_id,
            after_id=self.after_id,
            min_level=shown.min_level,
            task_run_id=shown.task if shown.task != FLOW_ONLY else None,
            flow_only=shown.task == FLOW_ONLY,
            text=shown.text,
        )
        if records:
            self.after_id = records[-1].id
        tasks = [(t.id, t.name) for t in store.task_runs(self.run_id)]
        changed = tasks != self._tasks
        self._tasks = tasks
        if not records and not reset and not changed:
            return None
        return LogBatch(records, reset=reset, tasks=tasks if changed else None)
