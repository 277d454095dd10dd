"""One task run from its first recorded state to its last: the attempts with their retries,
the result, and the one place where a task run changes state.

A `TaskRunExecution` holds what a task run needs while it executes (the task, its row, the
flow run's context, the bound arguments, its cache key), so each step takes `self` instead
of seven arguments. Every state change goes through `set_state`, as every change of a
Prefect task run goes through its engine's `set_state`: it updates the row, records it with
its new states (`recorder`), tells the listeners (the live view) and logs the change.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from . import limits, results, timeouts, transactions
from .context import FlowRunContext, TaskRunContext, task_run_var
from .errors import CancelledRun, OrchError, TaskTimeoutError
from .logging import capture_prints, narrate, restore_prints, task_run_logger
from .recorder import recorder
from .retries import delay_before_retry, delays_for
from .run_support import (
    describe,
    error_fields,
    error_text,
    listening,
    log,
    new_run_id,
    notify_listeners,
    persist_result,
    render_name,
    run_hooks,
    run_label,
    to_json,
)
from .run_tags import current_tags
from .states import TERMINAL, State, StateName, StateType, returned_state
from .steps import Blocking, Body, Pause, Steps
from .store import StateRow, StoredResult, TaskRun
from .timeouts import timeout_message

if TYPE_CHECKING:
    from .tasks import Task

# State names as stored (`StateName.X.value` is a property lookup: these are read per call).
_PENDING = StateName.PENDING.value
_RUNNING = StateName.RUNNING.value
_COMPLETED = StateName.COMPLETED.value
_CACHED = StateName.CACHED.value
_RETRYING = StateName.RETRYING.value
_CANCELLED = StateName.CANCELLED.value
_ENDED = frozenset(s.value for s in TERMINAL)
_CACHE_HIT = "cache hit"


def new_task_run(
    task: Task[..., Any],
    arguments: dict[str, Any] | None,
    flow_run_id: str,
    position: int,
    dynamic_key: str,
    standalone: bool = False,
) -> TaskRun:
    """The row of a task call, PENDING, named by the task's `task_run_name` if it has one."""
    name = render_name(task.task_run_name, arguments) if arguments is not None else None
    run = TaskRun.new(
        flow_run_id=flow_run_id,
        position=position,
        id=new_run_id(),
        task_key=task.task_key,
        name=name or f"{task.name}-{dynamic_key}",
        created=time.time(),
        dynamic_key=dynamic_key,
        standalone=standalone,
    )
    tags = tags_of(task)
    if tags:
        run.tags = to_json(sorted(tags))
    return run


def tags_of(task: Task[..., Any]) -> set[str] | frozenset[str]:
    """The task's own tags and those of the enclosing `tags(...)` blocks."""
    around = current_tags()
    return task.tags | around if around else task.tags


class TaskRunExecution:
    """A task run being decided: answered from a stored result, executed, or failed."""

    __slots__ = ("bound", "flow", "key", "run", "scoped", "task", "task_ctx")

    def __init__(
        self,
        task: Task[..., Any],
        run: TaskRun,
        flow: FlowRunContext,
        task_ctx: TaskRunContext | None = None,
        bound: Any = None,
    ) -> None:
        self.task, self.run, self.flow = task, run, flow
        self.task_ctx, self.bound = task_ctx, bound
        self.scoped = False
        """Whether the cache key includes the run id (kept in the run, not the store)."""
        self.key: str | None = None
        """The cache key its result is stored under once completed; None: not cached."""

    # -- the one state change ---------------------------------------------------------

    def set_state(
        self,
        name: str,
        message: str | None = None,
        *,
        now: float,
        state: State | None = None,
        error: BaseException | None = None,
        earlier: Iterable[StateRow] = (),
        cache: tuple[str, float | None] | None = None,
        first: bool = False,
        answer: Callable[[], bool] | None = None,
    ) -> None:
        """Move the task run to `name`: the row (its error from `error`, its end for a final
        state), its history (`earlier` rows first), the listeners and the log.

        `first` holds the row back briefly (`recorder.begin`), so a task run that ends at
        once is written in one commit; `cache` = (key, expiry) stores the result as a cache
        entry in the same commit. `state` is what the log line shows for a final state.
        `answer` is asked inside the commit before the row is written (a cache hit's
        lookup, see `answer_from_cache`); when it says no, nothing is recorded, told or
        logged.
        """
        run = self.run
        run.state = name
        run.state_message = message
        if error is not None:
            run.error_type, run.error_message, run.traceback = error_fields(error)
        if name in _ENDED:
            run.ended = now
        self._log_before(name, message, state)
        rows = [*earlier, (name, message, now)]
        if first:
            recorder.begin(self.flow.store, run, rows)
        else:
            written = recorder.write(self.flow.store, run, rows, cache=cache, answer=answer)
            if answer is not None and not written:
                return  # the lookup said no (or the flow run has ended): nothing happened
        if listening():
            notify_listeners("task", run)
        if (
            state is not None
            and state.type is StateType.COMPLETED
            and log.isEnabledFor(logging.INFO)
        ):
            shown = f"Cached ({message})" if name == _CACHED else state
            narrate(
                log, logging.INFO, "Finished in state %s", shown, extra=run_label(self.flow, run)
            )

    def _log_before(self, name: str, message: str | None, state: State | None) -> None:
        """A retry and a failure are logged, with the traceback, before they are recorded."""
        run = self.run
        if name == _RETRYING:
            task_run_logger(run, self.flow.store).warning("%s\n%s", message, run.traceback)
        elif state is not None and state.type not in (StateType.COMPLETED, StateType.CANCELLED):
            task_run_logger(run, self.flow.store).error(
                "Finished in state %s: %s\n%s", state.name, state.message, self.run.traceback
            )

    # -- answered without running -----------------------------------------------------

    def answer_from_cache(self, key: str) -> State | None:
        """Record the run CACHED with the unexpired entry under `key`; None if there is
        none, or its result cannot be read.

        The entry is looked up, and an inline result read, inside the commit that records
        the hit: one transaction instead of a read and then a write, where the read alone
        costs more than the lookup inside the write. A result kept in a blob (over 4 KiB)
        is read outside any transaction instead, so the store is never held while a file
        is read.
        """
        run = self.run
        lookup = CacheLookup(self.flow, run, key)
        now = time.time()
        run.started = now
        self.set_state(
            _CACHED,
            _CACHE_HIT,
            now=now,
            state=State(StateName.CACHED, _CACHE_HIT),
            earlier=[(_PENDING, None, run.created)],
            answer=lookup,
        )
        if lookup.found:
            return State(StateName.CACHED, _CACHE_HIT, value=lookup.value)
        run.state, run.state_message, run.started, run.ended = _PENDING, None, None, None
        if lookup.error is not None:
            self._unreadable(lookup.error)
            return None
        if lookup.blob is not None:
            return self.answer_from(lookup.blob, _CACHE_HIT)
        return None

    def answer_from(self, stored: StoredResult | None, message: str) -> State | None:
        """Record the run CACHED with the `stored` result; None if there is none, or it
        cannot be read."""
        if stored is None:
            return None
        try:
            value = results.load(stored, self.flow.blobs)
        except Exception as exc:
            self._unreadable(exc)
            return None
        now = time.time()
        self.run.started = now
        self.run.result = stored
        state: State = State(StateName.CACHED, message, value=value)
        self.set_state(
            _CACHED, message, now=now, state=state, earlier=[(_PENDING, None, self.run.created)]
        )
        return state

    def _unreadable(self, exc: Exception) -> None:
        log.warning(
            "Stored result for %r is unreadable (%s); running the task instead",
            self.run.name,
            exc,
            extra=run_label(self.flow, self.run),
        )

    # -- executed ---------------------------------------------------------------------

    def steps(self) -> Steps:
        """The attempts: each takes its concurrency slots, runs the body, and retries or
        ends the run (see `orchlite.steps` for who drives them)."""
        task, run, flow = self.task, self.run, self.flow
        delays = delays_for(task.retry_delay_seconds, task.retries) if task.retries else [0.0]
        log_prints = task.log_prints if task.log_prints is not None else flow.log_prints
        tags = tags_of(task)
        attempt = 0
        while True:
            attempt += 1
            slots = (yield Blocking(lambda: self._take_slots(tags))) if tags else None
            now = time.time()
            run.attempts = attempt
            if attempt == 1:
                run.started = now
                self.set_state(
                    _RUNNING, now=now, earlier=[(_PENDING, None, run.created)], first=True
                )
            else:
                self.set_state(_RUNNING, f"attempt {attempt}", now=now)
            task_token = task_run_var.set(self.task_ctx)
            prints = capture_prints(log_prints)
            try:
                if task.on_running_hooks:
                    run_hooks(task.on_running_hooks, task, run, State(StateName.RUNNING), flow)
                value = yield Body(
                    task.fn, self.bound, task.timeout_seconds, run.name, task.is_async
                )
            except (CancelledRun, KeyboardInterrupt, timeouts.Interrupted) as exc:
                message = "flow run cancelled"
                if isinstance(exc, timeouts.Interrupted):
                    message = "interrupted: an enclosing run exceeded its timeout"
                self.fail(State(StateName.CANCELLED, message, exception=exc), exc, hooks=False)
                raise
            except Exception as exc:
                state = self._failed_state(exc)
                if attempt <= task.retries and self._should_retry(state):
                    delay = delay_before_retry(delays, attempt, task.retry_jitter_factor)
                    message = (
                        f"attempt {attempt} failed ({describe(exc)}); retrying in {delay:.3g} s"
                    )
                    self.set_state(_RETRYING, message, now=time.time(), error=exc)
                    limits.release(slots)
                    yield Pause(delay)
                    if flow.stopped():  # cancelled or timed out while waiting to retry
                        self.fail_cancelled(CancelledRun("the flow run was cancelled"))
                    continue
                return self.fail(state, exc)
            finally:
                if slots is not None:
                    limits.release(slots)
                restore_prints(prints)
                task_run_var.reset(task_token)
            return self.complete(value)

    def _failed_state(self, exc: Exception) -> State:
        """FAILED with the error, or TIMED_OUT for a body past its timeout (then abandoned,
        in case it could not be stopped)."""
        message, kind = describe(exc), StateName.FAILED
        if isinstance(exc, TaskTimeoutError):
            kind = StateName.TIMED_OUT
            self.task_ctx.abandoned = True  # type: ignore[union-attr]
            if self.task.timeout_seconds:
                message = timeout_message("Task run", self.task.timeout_seconds)
        return State(kind, message, exception=exc, timestamp=time.time())

    def _take_slots(self, tags: Iterable[str]) -> limits.Lease | None:
        """Wait for a slot of each limit named by the run's tags (recorded PENDING meanwhile)."""
        try:
            return limits.acquire_for_task(
                self.flow.store, self.run, sorted(tags), self.flow.stopped
            )
        except (CancelledRun, KeyboardInterrupt) as exc:
            self.fail(
                State(StateName.CANCELLED, "flow run cancelled", exception=exc), exc, hooks=False
            )
            raise

    def _should_retry(self, state: State) -> bool:
        condition = self.task.retry_condition_fn
        if condition is None:
            return True
        try:
            return bool(condition(self.task, self.run, state))
        except Exception as exc:
            log.error(
                "retry_condition_fn raised %s; not retrying",
                describe(exc),
                extra=run_label(self.flow, self.run),
            )
            return False

    # -- ended ------------------------------------------------------------------------

    def complete(self, value: Any) -> State:
        """End the run with what its body returned: COMPLETED with the value persisted (and
        cached under its key), or the state the body returned."""
        task, run, flow = self.task, self.run, self.flow
        decided = returned_state(value)
        if decided is not None:
            if not decided.is_completed():
                failed = decided.type is StateType.FAILED
                return self.fail(decided, decided.exception(), hooks=failed)
            value = decided.data
        try:
            stored = persist_result(value, task.result_serializer, task.persist_result, flow)
        except OrchError as exc:
            return self.fail(State(StateName.FAILED, error_text(exc), exception=exc), exc)
        now = time.time()
        kind, name, message = StateName.COMPLETED, _COMPLETED, None
        if decided:
            kind, message = decided.stored_name, decided.stored_message
            name = kind.value
        run.error_type = run.error_message = run.traceback = None
        cache = None
        publish: Callable[[], None] | None = None
        staged = transactions.defers_commit()
        if stored is not None:
            run.result = stored
            if self.key is not None:
                expires = expiry(task.cache_expiration, now)
                if staged:
                    publish = self._cache_writer(expires)
                elif self.scoped:
                    flow.run_cache[self.key] = run
                else:
                    cache = (self.key, expires)
        state: State = State(kind, message, value=value, timestamp=now)
        if decided is not None:
            state.name = decided.name
        self.set_state(name, message, now=now, state=state, cache=cache)
        if staged or task.on_commit_hooks or task.on_rollback_hooks:
            transactions.task_completed(
                run.cache_key, publish, task.on_commit_hooks, task.on_rollback_hooks
            )
        if task.on_completion_hooks:
            run_hooks(task.on_completion_hooks, task, run, state, flow)
        return state

    def _cache_writer(self, expires: float | None) -> Callable[[], None]:
        """What makes the completed run's result answer later calls with its key: held by
        an open transaction until it commits (so a rolled-back run never answers)."""
        key, run, flow = self.key or "", self.run, self.flow
        if self.scoped:
            return lambda: flow.run_cache.__setitem__(key, run)

        def write() -> None:
            recorder.write(flow.store, run, [], cache=(key, expires))

        return write

    def fail(self, state: State, exc: BaseException, *, hooks: bool = True) -> State:
        """End the run in a failed, crashed, timed-out or cancelled `state` caused by `exc`;
        the task's failure hooks run unless `hooks` is False."""
        self.set_state(
            state.stored_name.value, state.stored_message, now=time.time(), state=state, error=exc
        )
        transactions.task_failed()
        if hooks and self.task.on_failure_hooks:
            run_hooks(self.task.on_failure_hooks, self.task, self.run, state, self.flow)
        return state

    def fail_cancelled(self, stop: CancelledRun) -> None:
        """End the run CANCELLED because its flow run stopped, and raise `stop`."""
        self.fail(
            State(StateName.CANCELLED, "flow run cancelled", exception=stop), stop, hooks=False
        )
        raise stop from None


def expiry(expiration: timedelta | None, now: float) -> float | None:
    """When a cache entry written `now` expires (None: never)."""
    return now + expiration.total_seconds() if expiration is not None else None


class CacheLookup:
    """A cache hit's lookup, asked by the store inside the transaction that records the
    hit (`Store.save_task_run`'s `answer`): the unexpired entry under `key` and its inline
    result, read into `value` and the run's result. It says no to a miss, to a result kept
    in a blob (then in `blob`, to read outside the transaction) and to a result that cannot
    be read (then in `error`)."""

    __slots__ = ("blob", "error", "flow", "found", "key", "run", "value")

    def __init__(self, flow: FlowRunContext, run: TaskRun, key: str) -> None:
        self.flow, self.run, self.key = flow, run, key
        self.found = False
        self.value: Any = None
        self.blob: StoredResult | None = None
        self.error: Exception | None = None

    def __call__(self) -> bool:
        stored = self.flow.store.cached_result(self.key)
        if stored is None:
            return False
        if stored.data is None:
            self.blob = stored
            return False
        try:
            self.value = results.load(stored, self.flow.blobs)
        except Exception as exc:
            self.error = exc
            return False
        self.run.result = stored
        self.found = True
        return True
