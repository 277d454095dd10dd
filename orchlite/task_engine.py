"""Run one task call: states, retries, timeouts, caching, resume, limits, hooks and logs.

A task call inside a flow run takes the next call position; the (flow run, position) pair
identifies the task run. Before executing, a task call is answered without running when:

1. an earlier attempt of the same flow run completed it (flow-level retries),
2. the run this one retries completed it with the same task and inputs (`orch retry`),
3. its cache key has an unexpired entry (cache policies). As in Prefect 3, keys are
   computed, looked up and written only when the task's results are persisted: the user
   asked for caching (`cache_policy`, `cache_key_fn`, `persist_result=True` on the task or
   its flow, or the project setting; see `_caches`). Results stored only so that
   `orch retry` can resume (2.) never answer identical calls.

A timeout interrupts the body at its deadline (`orchlite.timeouts`); a body blocked in C
code that cannot be interrupted is abandoned, and its later task calls are refused. Run in a
child process (`orch run --subprocess`) when such work must really be killed. `.submit()` and
`.map()` hand task runs to the flow's task runner, which decides where bodies execute.

A task run is written as steps (`orchlite.steps`): a generator that yields the function body
it needs executed and the pauses between attempts. A direct call drives it in the calling
thread; a runner that starts bodies without waiting (Dask) drives it from its callbacks.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextvars
import inspect
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from contextvars import ContextVar
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from . import futures, limits, remote, results, timeouts, transactions
from .cache_policies import DEFAULT, NO_CACHE, CachePolicy, RunId
from .context import FlowRunContext, TaskRunContext, flow_run_var, open_store, task_run_var
from .errors import CancelledRun, OrchError, TaskTimeoutError, UnhashableInputError
from .futures import TaskRunFuture, mapped_calls
from .hashing import hash_arguments
from .logging import capture_prints, ensure_logging, restore_prints
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
    task_logger,
    to_json,
)
from .run_tags import current_tags
from .states import State, StateName, StateType, returned_state
from .steps import Blocking, Body, Pause, StepDriver, Steps, arun_steps, await_body, run_steps
from .store import TaskRun
from .task_runners import TaskRunner, call_with_timeout
from .timeouts import timeout_message

if TYPE_CHECKING:
    from .registry import Task

# State names as stored (`StateName.X.value` is a property lookup: these are read per call).
_PENDING = StateName.PENDING.value
_RUNNING = StateName.RUNNING.value
_COMPLETED = StateName.COMPLETED.value
_CACHED = StateName.CACHED.value
_RETRYING = StateName.RETRYING.value

body_runner_var: ContextVar[TaskRunner | None] = ContextVar("orch_body_runner", default=None)
"""Set inside a submitted task run: the runner its function body executes on."""


def run_task(task: Task[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run one call of `task`: inside the current flow run, or standalone."""
    call = _TaskCall.take(task, args, kwargs)
    return call.outcome(run_steps(call.steps(), _call_body))


def run_task_async(
    task: Task[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Coroutine[Any, Any, Any]:
    """One call of an `async def` task: the coroutine that runs it on the caller's loop.

    The call position is taken now, so `asyncio.gather(t(1), t(2))` numbers its task runs
    in the order of the calls, whichever finishes first.
    """
    call = _TaskCall.take(task, args, kwargs)

    async def run() -> Any:
        await call.upstream_done()
        return call.outcome(await arun_steps(call.steps(), await_body))

    return run()


class _TaskCall:
    """One call of a task, from its arguments to its steps and its outcome."""

    __slots__ = (
        "args",
        "ctx",
        "dynamic_key",
        "kwargs",
        "position",
        "return_state",
        "task",
        "wait_for",
    )

    def __init__(self, task: Task[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.task, self.args, self.kwargs = task, args, kwargs
        self.return_state = bool(kwargs.pop("return_state", False))
        self.wait_for = kwargs.pop("wait_for", None)
        self.ctx = flow_run_var.get()
        self.position, self.dynamic_key = 0, "0"

    @classmethod
    def take(cls, task: Task[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> _TaskCall:
        """The call, with its position in the flow run taken (if it is in one)."""
        call = cls(task, args, kwargs)
        if call.ctx is not None:
            _refuse_if_stopped(call.ctx)
            call.position, call.dynamic_key = call.ctx.next_position(task.task_key)
        return call

    def steps(self) -> State | Steps:
        task, args, kwargs, ctx = self.task, self.args, self.kwargs, self.ctx
        if ctx is None:
            return _standalone_steps(task, args, kwargs, self.wait_for)
        if self.wait_for is not None or _holds_futures(args, kwargs):
            return _run_with_upstream(
                task, args, kwargs, ctx, self.position, self.dynamic_key, None, self.wait_for
            )
        bound = task.bind(args, kwargs)
        return _run_task_in_flow(task, bound, ctx, ctx.run_id, self.position, self.dynamic_key)

    async def upstream_done(self) -> None:
        """Wait, without blocking the loop, for the futures the call depends on."""
        if self.wait_for is None and not _holds_futures(self.args, self.kwargs):
            return
        upstream: list[TaskRunFuture[Any]] = []
        futures.collect((self.args, self.kwargs, self.wait_for), upstream)
        if upstream:
            await asyncio.wait([asyncio.wrap_future(f._inner) for f in upstream])

    def outcome(self, state: State) -> Any:
        if self.ctx is None:
            recorder.flush()
        return state if self.return_state else state.result()


def _refuse_if_stopped(flow_ctx: FlowRunContext) -> None:
    """No new task runs once the flow run is cancelled or timed out, nor from the body of
    a task abandoned after its timeout."""
    if flow_ctx.stopped():
        raise CancelledRun("the flow run was cancelled")
    parent = task_run_var.get()
    if parent is not None and parent.abandoned:
        raise CancelledRun(f"task run {parent.task_run.name!r} was abandoned after its timeout")


def submit_task(
    task: Task[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> TaskRunFuture[Any]:
    """Hand one task run to the flow's task runner; the call position is taken now."""
    flow_ctx = flow_run_var.get()
    if flow_ctx is None:
        state = run_task(task, args, {**kwargs, "return_state": True})
        return futures.finished(state, task.name, "", 0)
    _refuse_if_stopped(flow_ctx)
    wait_for = kwargs.pop("wait_for", None)
    bound = task.bind(args, kwargs)  # a call that does not fit fails here, in the caller
    position, dynamic_key = flow_ctx.next_position(task.task_key)
    context = contextvars.copy_context()
    runner = flow_ctx.runner(remote.BRIDGE)
    call = (task, args, kwargs, flow_ctx, position, dynamic_key, bound, wait_for)
    if runner.starts_bodies and not _tags_of(task):
        inner = _submit_steps(runner, context, call)
    else:
        # Waiting for a concurrency slot blocks; such task runs keep a thread throughout.
        inner = runner.submit(lambda: context.run(_run_submitted, runner, *call))
    name = f"{task.name}-{dynamic_key}"
    future: TaskRunFuture[Any] = TaskRunFuture(inner, name, flow_ctx.run_id, position)
    flow_ctx.futures.append(future)
    return future


def map_task(
    task: Task[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> futures.PrefectFutureList[Any]:
    """Submit one task run per element of the iterable arguments, zipped like Prefect;
    `wait_for` is not mapped: every run waits for all of it."""
    wait_for = kwargs.pop("wait_for", None)
    calls = mapped_calls(task.name, args, kwargs)
    if wait_for is not None:
        calls = [(a, {**k, "wait_for": wait_for}) for a, k in calls]
    return futures.PrefectFutureList(submit_task(task, a, k) for a, k in calls)


def _run_submitted(runner: TaskRunner, *args: Any) -> State:
    """A submitted task run: like a direct call, but its body goes through the runner."""
    body_runner_var.set(runner)
    return run_steps(_run_with_upstream(*args), _call_body)


def _submit_steps(
    runner: TaskRunner, context: contextvars.Context, call: tuple[Any, ...]
) -> cf.Future[State]:
    """Hand a task run to a runner that starts bodies without waiting (see `StepDriver`).

    Its first step starts once the futures among its arguments and in its `wait_for` are
    done, so no thread waits for them either.
    """
    outcome: cf.Future[State] = cf.Future()

    def start() -> None:
        if outcome.set_running_or_notify_cancel():
            StepDriver(runner, context, outcome).start(lambda: _run_with_upstream(*call))

    upstream: list[TaskRunFuture[Any]] = []
    futures.collect((call[1], call[2], call[7]), upstream)
    runner.submit_steps(start, outcome, [f._inner for f in upstream])
    return outcome


def _call_body(body: Body) -> Any:
    """Execute a task's function body in this thread (or on the runner of a submitted run)."""
    body = body.blocking()
    runner = body_runner_var.get()
    if runner is not None:
        return runner.run_body(body.fn, body.bound, body.timeout, body.what)
    if body.timeout or timeouts.active():
        return call_with_timeout(body.fn, body.bound, body.timeout, body.what)
    if type(body.bound) is dict:
        return body.fn(**body.bound)
    return body.fn(*body.bound.args, **body.bound.kwargs)


def _run_with_upstream(
    task: Task[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    ctx: FlowRunContext,
    position: int,
    dynamic_key: str,
    bound: Any = None,
    wait_for: Any = None,
) -> State | Steps:
    """Wait for the futures in `wait_for` and among the arguments, then run the task with
    the arguments' results. All of them are recorded as the run's upstream; one that failed
    (outside `allow_failure(...)`) fails the run before it starts.

    `bound` is `task.bind(args, kwargs)` when the caller has it already.
    """
    if ctx.stopped():
        run = _new_task_run(task, None, ctx.run_id, position, dynamic_key)
        error = CancelledRun(f"flow run {ctx.run_id} was cancelled before this task started")
        state = State(StateName.CANCELLED, str(error), exception=error)
        return _fail_task(task, run, ctx, state, error, hooks=False)
    upstream: list[int] = []
    if bound is None or wait_for is not None or _holds_futures(args, kwargs):
        try:
            futures.resolve(wait_for, upstream, states=True)
            args, kwargs = futures.resolve((args, kwargs), upstream, states=True)
        except (futures.UpstreamFailed, futures.InputResolutionError) as exc:
            run = _new_task_run(task, None, ctx.run_id, position, dynamic_key)
            run.upstream = to_json(sorted(set(upstream)))
            state = State(StateName.FAILED, error_text(exc), exception=exc)
            return _fail_task(task, run, ctx, state, exc)
        bound = task.bind(args, kwargs)
    return _run_task_in_flow(
        task, bound, ctx, ctx.run_id, position, dynamic_key, upstream=sorted(set(upstream))
    )


def _standalone_steps(
    task: Task[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], wait_for: Any
) -> State | Steps:
    """A task run outside any flow; futures in its `wait_for` (done already: submitted
    outside a flow, they ran at once) fail it if they failed."""
    ensure_logging()
    store, blobs = open_store()
    bound = task.bind(args, kwargs)
    ctx = FlowRunContext(
        flow=None,  # type: ignore[arg-type]
        run_id=new_run_id(),
        run_name=task.name,
        parameters={},
        store=store,
        blobs=blobs,
    )
    try:
        futures.resolve(wait_for, [], states=True)
    except (futures.UpstreamFailed, futures.InputResolutionError) as exc:
        run = _new_task_run(task, None, ctx.run_id, 0, "0", standalone=True)
        state = State(StateName.FAILED, error_text(exc), exception=exc)
        return _fail_task(task, run, ctx, state, exc)
    return _run_task_in_flow(task, bound, ctx, ctx.run_id, 0, "0", standalone=True)


def _new_task_run(
    task: Task[..., Any],
    arguments: dict[str, Any] | None,
    flow_run_id: str,
    position: int,
    dynamic_key: str,
    standalone: bool = False,
) -> TaskRun:
    name = None
    if arguments is not None:
        name = render_name(task.task_run_name, arguments)
    run = TaskRun(
        flow_run_id=flow_run_id,
        position=position,
        id=new_run_id(),
        standalone=int(standalone),
        task_key=task.task_key,
        name=name or f"{task.name}-{dynamic_key}",
        dynamic_key=dynamic_key,
        state=_PENDING,
        state_message=None,
        attempts=0,
        inputs_hash=None,
        cache_key=None,
        result_ref=None,
        result_serializer=None,
        error_type=None,
        error_message=None,
        traceback=None,
        created=time.time(),
        started=None,
        ended=None,
    )
    tags = _tags_of(task)
    if tags:
        run.tags = to_json(sorted(tags))
    return run


def _run_task_in_flow(
    task: Task[..., Any],
    bound: Any,
    ctx: FlowRunContext,
    flow_run_id: str,
    position: int,
    dynamic_key: str,
    *,
    standalone: bool = False,
    upstream: list[int] | None = None,
) -> State | Steps:
    """The task run's state if it is answered without running, else its steps."""
    arguments = _arguments(bound)
    run = _new_task_run(task, arguments, flow_run_id, position, dynamic_key, standalone)
    if upstream:
        run.upstream = to_json(upstream)
    task_ctx = TaskRunContext(task=task, task_run=run, parameters=arguments)
    try:
        run.inputs_hash = hash_arguments(arguments)
    except UnhashableInputError:
        run.inputs_hash = None

    reused = _reuse(task, run, ctx)
    if reused is not None:
        return reused
    if not _caches(task, ctx):
        return _execute(task, run, task_ctx, bound, ctx, False, None)
    try:
        policy, key = _cache_key(task, task_ctx, arguments, ctx)
    except UnhashableInputError as exc:
        return _fail_task(
            task, run, ctx, State(StateName.FAILED, error_text(exc), exception=exc), exc
        )
    run.cache_key = key
    scoped = _run_scoped(policy)
    refresh = ctx.refresh_cache or bool(task.refresh_cache)
    if key is not None and not refresh:
        hit = _cache_hit(key, scoped, ctx)
        if hit is not None:
            answered = _answer_from(run, ctx, hit, "cache hit")
            if answered is not None:
                return answered
    return _execute(task, run, task_ctx, bound, ctx, scoped, key)


def _reuse(task: Task[..., Any], run: TaskRun, ctx: FlowRunContext) -> State | None:
    """Answer from an earlier attempt of this flow run, or from the run being resumed."""
    prior = ctx.prior.get(run.position)
    if prior is not None and _same_call(prior, run):
        try:
            value = results.load(prior.result, ctx.blobs)  # type: ignore[arg-type]
        except Exception:
            return None
        return State(StateName.COMPLETED, prior.state_message, value=value)
    old = ctx.resumed.get(run.position)
    if old is not None and _same_call(old, run):
        return _answer_from(run, ctx, old, f"resumed from {ctx.resumed_from}")
    return None


def _same_call(old: TaskRun, new: TaskRun) -> bool:
    return (
        old.task_key == new.task_key
        and old.inputs_hash is not None
        and (old.inputs_hash == new.inputs_hash)
    )


def _caches(task: Task[..., Any], ctx: FlowRunContext) -> bool:
    """Whether calls of `task` look up and write cache entries.

    Prefect 3's rule: a cache policy takes effect only when results are persisted. A task
    persists them when it says so (`persist_result`), when it asks for caching (a
    `cache_policy` other than NO_CACHE, a `cache_key_fn`) or sets a `result_serializer`;
    otherwise its flow run decides (`FlowRunContext.persists_results`). With
    `persist_result=False` a cache policy is ignored, with a warning.
    """
    if task.persist_result is False:
        if _asks_for_caching(task):
            _warn_ignored_policy(task)
        return False
    if task.persist_result or task.result_serializer is not None or _asks_for_caching(task):
        return True
    return ctx.persists_results()


def _asks_for_caching(task: Task[..., Any]) -> bool:
    if task.cache_key_fn is not None:
        return True
    return task.cache_policy is not None and not isinstance(task.cache_policy, type(NO_CACHE))


def _warn_ignored_policy(task: Task[..., Any]) -> None:
    """Warn once per task object, as Prefect warns once when the task is defined."""
    if task.__dict__.get("_orch_warned_ignored_policy"):
        return
    task.__dict__["_orch_warned_ignored_policy"] = True
    log.warning("Task %r: ignoring its cache policy because persist_result is False", task.name)


def _cache_key(
    task: Task[..., Any], task_ctx: TaskRunContext, bound: dict[str, Any], ctx: FlowRunContext
) -> tuple[CachePolicy | None, str | None]:
    if task.cache_key_fn is not None:
        from .cache_policies import CacheKeyFnPolicy

        policy: CachePolicy = CacheKeyFnPolicy(task.cache_key_fn)
    else:
        policy = task.cache_policy if task.cache_policy is not None else DEFAULT
    try:
        key = policy.compute_key(task_ctx, bound, ctx.parameters)
    except UnhashableInputError:
        if task.cache_policy is None and task.cache_key_fn is None:
            return None, None  # the implicit default quietly skips caching, as in Prefect
        raise
    return policy, key


def _run_scoped(policy: CachePolicy | None) -> bool:
    """Whether keys of `policy` include the run id, so entries need not outlive the run.

    Remembered on the policy object: it is asked on every task call.
    """
    if policy is None:
        return False
    scoped: bool | None = policy.__dict__.get("_orch_run_scoped")
    if scoped is None:
        members = getattr(policy, "policies", (policy,))
        scoped = any(isinstance(p, RunId) for p in members)
        policy.__dict__["_orch_run_scoped"] = scoped
    return scoped


def _cache_hit(key: str, scoped: bool, ctx: FlowRunContext) -> TaskRun | None:
    if scoped:
        return ctx.run_cache.get(key)
    entry = ctx.store.get_cache_entry(key)
    if entry is None:
        return None
    stub = TaskRun(
        flow_run_id="",
        position=0,
        id=entry.task_run_id or "",
        standalone=0,
        task_key=entry.task_key,
        name=entry.task_key.split("@")[0],
        dynamic_key="0",
        state=_COMPLETED,
        state_message=None,
        attempts=0,
        inputs_hash=None,
        cache_key=key,
        result_ref=entry.result.blob,
        result_serializer=entry.result.serializer,
        error_type=None,
        error_message=None,
        traceback=None,
        created=entry.created,
        started=None,
        ended=None,
        result_data=entry.result.data,
        result_preview=entry.result.preview,
    )
    return stub


def _answer_from(run: TaskRun, ctx: FlowRunContext, source: TaskRun, message: str) -> State | None:
    """Record `run` as CACHED with the result `source` holds; None if it cannot be read."""
    stored = source.result
    if stored is None:
        return None
    try:
        value = results.load(stored, ctx.blobs)
    except Exception as exc:
        log.warning(
            "Stored result for %r is unreadable (%s); running the task instead",
            run.name,
            exc,
            extra=run_label(ctx, run),
        )
        return None
    now = time.time()
    run.state = _CACHED
    run.state_message = message
    run.started = run.ended = now
    run.result_ref, run.result_data, run.result_serializer, run.result_preview = (
        stored.blob,
        stored.data,
        stored.serializer,
        stored.preview,
    )
    recorder.write(ctx.store, run, [(_PENDING, None, run.created), (run.state, message, now)])
    notify_listeners("task", run)
    if log.isEnabledFor(logging.INFO):
        log.info("Finished in state Cached (%s)", message, extra=run_label(ctx, run))
    return State(StateName.CACHED, message, value=value)


def _execute(
    task: Task[..., Any],
    run: TaskRun,
    task_ctx: TaskRunContext,
    bound: Any,
    ctx: FlowRunContext,
    scoped: bool,
    key: str | None,
) -> Steps:
    delays = delays_for(task.retry_delay_seconds, task.retries) if task.retries else [0.0]
    log_prints = task.log_prints if task.log_prints is not None else ctx.log_prints
    tags = _tags_of(task)
    attempt = 0
    while True:
        attempt += 1
        slots = (yield Blocking(lambda: _take_slots(task, run, ctx, tags))) if tags else None
        now = time.time()
        run.attempts = attempt
        run.state = _RUNNING
        if attempt == 1:
            run.started = now
            recorder.begin(
                ctx.store,
                run,
                [(_PENDING, None, run.created), (run.state, None, now)],
            )
        else:
            recorder.write(ctx.store, run, [(run.state, f"attempt {attempt}", now)])
        if listening():
            notify_listeners("task", run)
        task_token = task_run_var.set(task_ctx)
        prints = capture_prints(log_prints)
        try:
            if task.on_running_hooks:
                run_hooks(task.on_running_hooks, task, run, State(StateName.RUNNING), ctx)
            value = yield Body(task.fn, bound, task.timeout_seconds, run.name, task.is_async)
        except (CancelledRun, KeyboardInterrupt, timeouts.Interrupted) as exc:
            message = "flow run cancelled"
            if isinstance(exc, timeouts.Interrupted):
                message = "interrupted: an enclosing run exceeded its timeout"
            state = State(StateName.CANCELLED, message, exception=exc)
            _fail_task(task, run, ctx, state, exc, hooks=False)
            raise
        except Exception as exc:
            message = describe(exc)
            kind = StateName.FAILED
            if isinstance(exc, TaskTimeoutError):
                kind = StateName.TIMED_OUT
                task_ctx.abandoned = True  # if its body could not be stopped
                if task.timeout_seconds:
                    message = timeout_message("Task run", task.timeout_seconds)
            state = State(kind, message, exception=exc, timestamp=time.time())
            if attempt <= task.retries and _should_retry(task, run, state, ctx):
                delay = delay_before_retry(delays, attempt, task.retry_jitter_factor)
                _record_retry(run, ctx, exc, attempt, delay)
                limits.release(slots)
                yield Pause(delay)
                if ctx.stopped():  # cancelled or timed out while waiting to retry
                    stop = CancelledRun("the flow run was cancelled")
                    cancelled = State(StateName.CANCELLED, "flow run cancelled", exception=stop)
                    _fail_task(task, run, ctx, cancelled, stop, hooks=False)
                    raise stop from None
                continue
            return _fail_task(task, run, ctx, state, exc)
        finally:
            if slots is not None:
                limits.release(slots)
            restore_prints(prints)
            task_run_var.reset(task_token)
        return _complete_task(task, run, ctx, value, scoped, key)


def _tags_of(task: Task[..., Any]) -> set[str] | frozenset[str]:
    """The task's own tags and those of the enclosing `tags(...)` blocks."""
    around = current_tags()
    return task.tags | around if around else task.tags


def _take_slots(
    task: Task[..., Any], run: TaskRun, ctx: FlowRunContext, tags: Iterable[str]
) -> limits.Lease | None:
    """Wait for a slot of each limit named by the run's tags (recorded PENDING meanwhile)."""
    try:
        return limits.acquire_for_task(ctx.store, run, sorted(tags), ctx.stopped)
    except (CancelledRun, KeyboardInterrupt) as exc:
        state = State(StateName.CANCELLED, "flow run cancelled", exception=exc)
        _fail_task(task, run, ctx, state, exc, hooks=False)
        raise


def _should_retry(task: Task[..., Any], run: TaskRun, state: State, ctx: FlowRunContext) -> bool:
    if task.retry_condition_fn is None:
        return True
    try:
        return bool(task.retry_condition_fn(task, run, state))
    except Exception as exc:
        log.error(
            "retry_condition_fn raised %s; not retrying", describe(exc), extra=run_label(ctx, run)
        )
        return False


def _record_retry(
    run: TaskRun, ctx: FlowRunContext, exc: BaseException, attempt: int, delay: float
) -> None:
    message = f"attempt {attempt} failed ({describe(exc)}); retrying in {delay:.3g} s"
    run.state = _RETRYING
    run.state_message = message
    run.error_type, run.error_message, run.traceback = error_fields(exc)
    task_logger(ctx, run).warning("%s\n%s", message, run.traceback)
    recorder.write(ctx.store, run, [(run.state, message, time.time())])
    if listening():
        notify_listeners("task", run)


def _complete_task(
    task: Task[..., Any],
    run: TaskRun,
    ctx: FlowRunContext,
    value: Any,
    scoped: bool,
    key: str | None,
) -> State:
    decided = returned_state(value)
    if decided is not None:
        if not decided.is_completed():
            return _end_in_returned_state(task, run, ctx, decided)
        value = decided.data
    try:
        stored = persist_result(value, task.result_serializer, task.persist_result, ctx)
    except OrchError as exc:
        return _fail_task(
            task, run, ctx, State(StateName.FAILED, error_text(exc), exception=exc), exc
        )
    now = time.time()
    name, message = (
        (decided.stored_name.value, decided.stored_message) if decided else (_COMPLETED, None)
    )
    run.state = name
    run.state_message = message
    run.ended = now
    run.error_type = run.error_message = run.traceback = None
    cache = None
    publish: Callable[[], None] | None = None
    staged = transactions.defers_commit()
    if stored is not None:
        run.result_ref, run.result_data, run.result_serializer, run.result_preview = (
            stored.blob,
            stored.data,
            stored.serializer,
            stored.preview,
        )
        if key is not None:
            expires = _expiry(task.cache_expiration, now)
            if staged:
                publish = _cache_writer(run, ctx, key, scoped, expires)
            elif scoped:
                ctx.run_cache[key] = run
            else:
                cache = (key, expires)
    recorder.write(ctx.store, run, [(run.state, message, now)], cache=cache)
    state = State(StateName(name), message, value=value, timestamp=now)
    if decided is not None:
        state.name = decided.name
    if listening():
        notify_listeners("task", run)
    if log.isEnabledFor(logging.INFO):
        log.info("Finished in state %s", state, extra=run_label(ctx, run))
    if staged or task.on_commit_hooks or task.on_rollback_hooks:
        transactions.task_completed(
            run.cache_key, publish, task.on_commit_hooks, task.on_rollback_hooks
        )
    if task.on_completion_hooks:
        run_hooks(task.on_completion_hooks, task, run, state, ctx)
    return state


def _cache_writer(
    run: TaskRun, ctx: FlowRunContext, key: str, scoped: bool, expires: float | None
) -> Callable[[], None]:
    """What makes a completed task run's result answer later calls with the same key: held
    by an open transaction until it commits (so a rolled-back run never answers)."""
    if scoped:
        return lambda: ctx.run_cache.__setitem__(key, run)
    return lambda: recorder.write(ctx.store, run, [], cache=(key, expires))


def _end_in_returned_state(
    task: Task[..., Any], run: TaskRun, ctx: FlowRunContext, state: State
) -> State:
    """Record the failed, crashed or cancelled state the task body returned."""
    failed = state.type is StateType.FAILED
    return _fail_task(task, run, ctx, state, state.exception(), hooks=failed)


def _fail_task(
    task: Task[..., Any],
    run: TaskRun,
    ctx: FlowRunContext,
    state: State,
    exc: BaseException,
    *,
    hooks: bool = True,
) -> State:
    now = time.time()
    run.state = state.stored_name.value
    run.state_message = state.stored_message
    run.ended = now
    run.error_type, run.error_message, run.traceback = error_fields(exc)
    if state.type is not StateType.CANCELLED:
        task_logger(ctx, run).error(
            "Finished in state %s: %s\n%s", state.name, state.message, run.traceback
        )
    recorder.write(ctx.store, run, [(run.state, run.state_message, now)])
    transactions.task_failed()
    if listening():
        notify_listeners("task", run)
    if hooks and task.on_failure_hooks:
        run_hooks(task.on_failure_hooks, task, run, state, ctx)
    return state


def _expiry(expiration: timedelta | None, now: float) -> float | None:
    return now + expiration.total_seconds() if expiration is not None else None


def _holds_futures(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Cheap pre-check so plain calls skip the argument walk."""
    for value in args:
        if futures.may_hold_futures(value):
            return True
    for value in kwargs.values():  # noqa: SIM110
        if futures.may_hold_futures(value):
            return True
    return False


def _arguments(bound: Any) -> dict[str, Any]:
    """The name → value mapping of a `Task.bind()` result."""
    return bound.arguments if isinstance(bound, inspect.BoundArguments) else bound
