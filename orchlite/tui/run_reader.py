"""One run's detail and graph, read from the store in a worker thread, incrementally.

A run's own state changes are history rows read after a mark; its task runs' are lines of
their own rows (`orchlite.store.history`), so what changed is found by comparing each task
run's `Progress` with the one read before, from the first position that may still change:
a poll of a live run of 10,000 task runs reads the few rows that moved.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import RunNotFoundError
from ..run_graph import RunGraph, build_graph
from ..states import TERMINAL, StateName
from ..store import Artifact, FlowRun, HistoryEntry, Progress, Store, TaskRun
from .poller import Follower

_RUNNING = StateName.RUNNING.value
RETRY_MARK = "attempt "
"""How the message of a task run's RUNNING state starts when it is a retry (`task_engine`)."""


@dataclass
class RunDetail:
    run: FlowRun
    tasks: list[TaskRun]
    """Every task run, in call order."""
    history: list[HistoryEntry]
    """The flow run's own state changes, oldest first."""
    children: list[FlowRun]
    parent: FlowRun | None = None
    retry_of: FlowRun | None = None
    retried_by: list[FlowRun] = field(default_factory=list)
    """The runs that retried this one, oldest first (only a finished run is retried)."""
    artifacts: list[Artifact] = field(default_factory=list)
    """Oldest first."""
    changed: list[TaskRun] | None = None
    """The task runs new or changed since the previous snapshot (None: all of them are)."""
    retried: dict[str, float] = field(default_factory=dict)
    """When the last attempt of each task run that was retried started, by task run id."""

    @property
    def error(self) -> str | None:
        """The last traceback of a task run that did not complete."""
        failed = [t for t in self.tasks if t.traceback and t.state != "COMPLETED"]
        return failed[-1].traceback if failed else None


class DetailFollower(Follower):
    """Reads a run's detail incrementally: its new state changes, and the task runs whose
    `Progress` moved since the last read."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.reset()

    def reset(self) -> None:
        self.mark = 0
        self.loaded = False
        self.tasks: dict[int, TaskRun] = {}
        self.progress: dict[int, Progress] = {}
        self.settled = 0
        """Task runs before this position have ended in the flow run's current attempt:
        they change no more, so they are not read again."""
        self.history: list[HistoryEntry] = []
        self.retried: dict[int, float] = {}

    def __call__(self, store: Store) -> RunDetail:
        run = store.get_flow_run(self.run_id)  # first: if it has ended, so have its task runs
        first, self.loaded = not self.loaded, True
        entries, self.mark = store.flow_history_since(self.run_id, self.mark)
        self.history += entries
        if entries:  # a new attempt of the flow run may run its task runs again
            self.settled = 0
        progress = store.task_run_progress(self.run_id, self.settled)
        if first:
            changed = store.task_runs(self.run_id)
        else:
            moved = [p.position for p in progress if self.progress.get(p.position) != p]
            changed = store.task_runs_at(self.run_id, moved)
        self.progress.update((p.position, p) for p in progress)
        self.tasks.update((task.position, task) for task in changed)
        self._note_retries(store, changed)
        children = store.child_flow_runs(self.run_id)
        self._settle(run, children)
        return RunDetail(
            run=run,
            tasks=[self.tasks[position] for position in sorted(self.tasks)],
            history=list(self.history),
            children=children,
            parent=_maybe_run(store, run.parent_run_id),
            retry_of=_maybe_run(store, run.retry_of),
            retried_by=store.retries_of(self.run_id) if run.state in TERMINAL else [],
            artifacts=list(reversed(store.artifacts(flow_run_id=self.run_id))),
            changed=None if first else changed,
            retried={self.tasks[p].id: ts for p, ts in self.retried.items() if p in self.tasks},
        )

    def _note_retries(self, store: Store, changed: list[TaskRun]) -> None:
        """When the last attempt of each changed task run that was retried started."""
        again = [task.position for task in changed if task.attempts > 1]
        for position, entries in store.task_histories(self.run_id, again).items():
            starts = [e.ts for e in entries if e.state == _RUNNING and _is_retry(e.message)]
            if starts:
                self.retried[position] = starts[-1]

    def _settle(self, run: FlowRun, children: list[FlowRun]) -> None:
        """Move `settled` past the task runs that can change no more: all of them once the
        flow run has ended (read before them); else those that ended after the flow run's
        current attempt started (an earlier attempt's may run again), and subflows."""
        if run.state in TERMINAL:
            self.settled = max(self.progress, default=-1) + 1
            return
        starts = [e.ts for e in self.history if e.state == _RUNNING]
        if not starts:
            return
        subflows = {child.parent_position for child in children}
        position = self.settled
        while True:
            found = self.progress.get(position)
            if found is not None:
                if StateName(found.state) not in TERMINAL or found.created < starts[-1]:
                    break
            elif position not in subflows:
                break
            position += 1
        self.settled = position


def load_detail(store: Store, run_id: str) -> RunDetail:
    """A run's whole detail, read once."""
    return DetailFollower(run_id)(store)


@dataclass
class GraphSnapshot:
    run: FlowRun
    graph: RunGraph


class GraphFollower(Follower):
    """A run's graph, built again from the task runs a `DetailFollower` keeps (it reads
    only those that changed), in the worker thread: a run of 10,000 task runs costs a
    poll a few milliseconds, and its map groups collapse to a few nodes."""

    def __init__(self, run_id: str) -> None:
        self.detail = DetailFollower(run_id)

    def reset(self) -> None:
        self.detail.reset()

    def __call__(self, store: Store) -> GraphSnapshot:
        detail = self.detail(store)
        return GraphSnapshot(detail.run, build_graph(detail.tasks, detail.children))


def _is_retry(message: str | None) -> bool:
    return message is not None and message.startswith(RETRY_MARK)


def _maybe_run(store: Store, run_id: str | None) -> FlowRun | None:
    if run_id is None:
        return None
    try:
        return store.get_flow_run(run_id)
    except RunNotFoundError:
        return None
