"""What the engine knows about the run in progress, carried in context variables.

A flow run's context is inherited by the threads that run its tasks (the engine copies the
`contextvars` context into them), so `get_run_logger()` and nested task calls find it.
"""

from __future__ import annotations

import itertools
import threading
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .blobs import BlobStore
from .config import find_home, project_root
from .settings import persist_by_default
from .store import Store, TaskRun

if TYPE_CHECKING:
    from .flows import Flow
    from .futures import TaskRunFuture
    from .task_runners import TaskRunner, WorkerBridge
    from .tasks import Task


@dataclass
class FlowRunContext:
    flow: Flow[..., Any]
    run_id: str
    run_name: str
    parameters: dict[str, Any]
    store: Store
    blobs: BlobStore
    refresh_cache: bool = False
    log_prints: bool = False
    prior: dict[int, TaskRun] = field(default_factory=dict)
    """Task runs that succeeded in an earlier attempt of this flow run, by position."""
    resumed: dict[int, TaskRun] = field(default_factory=dict)
    """Task runs that succeeded in the run this one retries, by position."""
    resumed_from: str | None = None
    run_cache: dict[str, TaskRun] = field(default_factory=dict)
    """Results cached under keys scoped to this run (policies with RUN_ID)."""
    cancelled: threading.Event = field(default_factory=threading.Event)
    ending: bool = False
    """Set as this process records the run's end: a terminal state seen after it is ours."""
    parent: FlowRunContext | None = None
    task_runner: TaskRunner | None = None
    """The flow's runner template; a copy is started on the first `.submit()`."""
    futures: list[TaskRunFuture[Any]] = field(default_factory=list)
    declared_secrets: frozenset[str] | None = None
    """The secrets the flow may read (`@flow(secrets=...)`); None outside a flow (a task
    called on its own), where any secret may be read."""
    _runner: TaskRunner | None = None
    _positions: itertools.count[int] = field(default_factory=itertools.count)
    _dynamic: dict[str, int] = field(default_factory=dict)
    _pauses: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _persists: bool | None = None

    @property
    def flow_name(self) -> str:
        return self.flow.name if self.flow is not None else self.run_name

    def next_position(self, task_key: str) -> tuple[int, str]:
        """The next call position in this run, and the task's dynamic key (nth call of it)."""
        with self._lock:
            position = next(self._positions)
            n = self._dynamic.get(task_key, 0)
            self._dynamic[task_key] = n + 1
        return position, str(n)

    def next_pause_key(self) -> str:
        """The key of the next `pause_flow_run` call of this attempt that names none:
        "pause-1", "pause-2", ... the same at the same call when the run starts again."""
        with self._lock:
            self._pauses += 1
            return f"pause-{self._pauses}"

    def persists_results(self) -> bool:
        """Whether a task that does not say persists its results (and so is cached).

        Prefect's rule: the flow's `persist_result` (True when it sets a `result_serializer`),
        else that of the flow run this one is a subflow of, else the project setting
        (`settings.persist_by_default`). Read once per flow run.
        """
        if self._persists is None:
            own = _flow_persists(self.flow) if self.flow is not None else None
            if own is not None:
                self._persists = own
            elif self.parent is not None:
                self._persists = self.parent.persists_results()
            else:
                self._persists = persist_by_default(project_root(self.store.home))
        return self._persists

    def stopped(self) -> bool:
        """Cancelled or timed out, this run or a run it is a subflow of."""
        ctx: FlowRunContext | None = self
        while ctx is not None:
            if ctx.cancelled.is_set():
                return True
            ctx = ctx.parent
        return False

    def cancel(self) -> None:
        """Someone asked to cancel this run: no task run starts from now on, and the runner
        drops what it holds for started ones (Dask: bodies still on the cluster)."""
        if self.cancelled.is_set():
            return
        self.cancelled.set()
        with self._lock:
            runner = self._runner
        if runner is not None:
            runner.cancel_pending()

    def runner(self, bridge: WorkerBridge) -> TaskRunner:
        """This run's copy of its task runner, made on first use; `bridge` joins the bodies
        it sends to other processes to their task runs (see `WorkerBridge`)."""
        with self._lock:
            if self._runner is None:
                from .task_runners import ThreadPoolTaskRunner

                template = self.task_runner or ThreadPoolTaskRunner()
                runner = template.duplicate()
                runner.worker_bridge = bridge
                self._runner = runner
            return self._runner

    def shutdown_runner(self, wait: bool = True) -> None:
        """Wait for submitted task runs (unless abandoning them) and stop the runner."""
        with self._lock:
            runner, self._runner = self._runner, None
        if runner is not None:
            runner.shutdown(wait=wait)

    def restart_positions(self) -> None:
        """Start counting call positions again, for a new attempt of the flow body."""
        with self._lock:
            self._positions = itertools.count()
            self._dynamic = {}
            self._pauses = 0


def _flow_persists(flow: Flow[..., Any]) -> bool | None:
    if flow.persist_result is not None:
        return bool(flow.persist_result)
    return True if flow.result_serializer is not None else None


@dataclass
class TaskRunContext:
    """What `cache_key_fn(context, parameters)` and hooks see; Prefect-shaped."""

    task: Task[..., Any]
    task_run: TaskRun
    parameters: dict[str, Any]
    log_prints: bool = False
    abandoned: bool = False
    """Set when the task timed out: its still-running body may not start more tasks."""


flow_run_var: ContextVar[FlowRunContext | None] = ContextVar("orch_flow_run", default=None)
task_run_var: ContextVar[TaskRunContext | None] = ContextVar("orch_task_run", default=None)

_stores: dict[Path, tuple[Store, BlobStore]] = {}
_stores_lock = threading.Lock()


def open_store(home: Path | None = None) -> tuple[Store, BlobStore]:
    """The process-wide store for `home` (default: the discovered `.orch/`)."""
    home = home or find_home()
    with _stores_lock:
        pair = _stores.get(home)
        if pair is None:
            pair = (Store(home), BlobStore(home / "blobs"))
            _stores[home] = pair
    return pair


def current_store() -> Store:
    """The store of the flow run in progress, else the project's."""
    ctx = flow_run_var.get()
    return ctx.store if ctx is not None else open_store()[0]


def existing_store() -> Store | None:
    """The store of the flow run in progress, else the project's if anything was ever
    recorded in it (a look never creates one)."""
    ctx = flow_run_var.get()
    if ctx is not None:
        return ctx.store
    home = find_home()
    return open_store(home)[0] if (home / "orch.db").exists() else None


def open_stores() -> list[Store]:
    """The process-wide stores opened so far."""
    with _stores_lock:
        return [store for store, _ in _stores.values()]


def get_run_context() -> FlowRunContext | TaskRunContext | None:
    """The innermost run context: the task run if inside one, else the flow run."""
    return task_run_var.get() or flow_run_var.get()
