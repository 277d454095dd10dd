"""Run one task call: states, retries, timeouts, caching, resume, limits, hooks and logs.

A task call inside a flow run takes the next call position; the (flow run, position) pair
identifies the task run. Before executing, a task call is answered without running when:

1. an earlier attempt of the same flow run completed it (flow-level retries),
2. the run this one retries completed it with the same task and inputs (`orch retry`),
3. its cache key has an unexpired entry (cache policies). As in Prefect 3, keys are
   computed, looked up and written only when the task's results are persisted: the user
   asked for caching (`cache_policy`, `cache_key_fn`, `persist_result=True` on the task or
   its flow, or the project setting; see `orchlite.task_caching`). Results stored only so
   that `orch retry` can resume (2.) never answer identical calls.

A timeout interrupts the body at its deadline (`orchlite.timeouts`); a body blocked in C
code that cannot be interrupted is abandoned, and its later task calls are refused. Run in a
child process (`orch run --subprocess`) when such work must really be killed. `.submit()` and
`.map()` hand task runs to the flow's task runner, which decides where bodies execute.

A task run is written as steps (`orchlite.steps`): a generator that yields the function body
it needs executed and the pauses between attempts (`TaskRunExecution.steps` in
`orchlite.task_execution`, where every state change of a task run goes through `set_state`).
A direct call drives it in the calling thread; a runner that starts bodies without waiting
(Dask) drives it from its callbacks.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextvars
import inspect
from collections.abc import Coroutine
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from . import futures, remote, results, timeouts
from .context import FlowRunContext, TaskRunContext, flow_run_var, open_store, task_run_var
from .errors import CancelledRun, UnhashableInputError
from .futures import TaskRunFuture, mapped_calls
from .hashing import hash_arguments
from .logging import ensure_logging
from .recorder import recorder
from .run_support import error_text, new_run_id, to_json
from .states import State, StateName
from .steps import Body, StepDriver, Steps, arun_steps, await_body, run_steps
from .store import TaskRun
from .task_caching import cache_key, caches, run_cache_hit, run_scoped
from .task_execution import TaskRunExecution, new_task_run, tags_of
from .task_runners import TaskRunner, call_with_timeout

if TYPE_CHECKING:
    from .tasks import Task

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
        self.return_state, self.wait_for = False, None
        if kwargs:
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
    if runner.starts_bodies and not tags_of(task):
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
        run = new_task_run(task, None, ctx.run_id, position, dynamic_key)
        error = CancelledRun(f"flow run {ctx.run_id} was cancelled before this task started")
        state = State(StateName.CANCELLED, str(error), exception=error)
        return TaskRunExecution(task, run, ctx).fail(state, error, hooks=False)
    upstream: list[int] = []
    if bound is None or wait_for is not None or _holds_futures(args, kwargs):
        try:
            futures.resolve(wait_for, upstream, states=True)
            args, kwargs = futures.resolve((args, kwargs), upstream, states=True)
        except (futures.UpstreamFailed, futures.InputResolutionError) as exc:
            run = new_task_run(task, None, ctx.run_id, position, dynamic_key)
            run.upstream = to_json(sorted(set(upstream)))
            state = State(StateName.FAILED, error_text(exc), exception=exc)
            return TaskRunExecution(task, run, ctx).fail(state, exc)
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
        run = new_task_run(task, None, ctx.run_id, 0, "0", standalone=True)
        state = State(StateName.FAILED, error_text(exc), exception=exc)
        return TaskRunExecution(task, run, ctx).fail(state, exc)
    return _run_task_in_flow(task, bound, ctx, ctx.run_id, 0, "0", standalone=True)


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
    run = new_task_run(task, arguments, flow_run_id, position, dynamic_key, standalone)
    if upstream:
        run.upstream = to_json(upstream)
    task_ctx = TaskRunContext(task, run, arguments)  # positional: binding keywords costs more
    try:
        run.inputs_hash = hash_arguments(arguments)
    except UnhashableInputError:
        run.inputs_hash = None
    execution = TaskRunExecution(task, run, ctx, task_ctx, bound)

    reused = _reuse(execution)
    if reused is not None:
        return reused
    if not caches(task, ctx):
        return execution.steps()
    try:
        policy, key = cache_key(task, task_ctx, arguments, ctx)
    except UnhashableInputError as exc:
        return execution.fail(State(StateName.FAILED, error_text(exc), exception=exc), exc)
    run.cache_key = execution.key = key
    execution.scoped = run_scoped(policy)
    refresh = ctx.refresh_cache or bool(task.refresh_cache)
    if key is not None and not refresh:
        if execution.scoped:
            answered = execution.answer_from(run_cache_hit(key, ctx), "cache hit")
        else:
            answered = execution.answer_from_cache(key)
        if answered is not None:
            return answered
    return execution.steps()


def _reuse(execution: TaskRunExecution) -> State | None:
    """Answer from an earlier attempt of this flow run, or from the run being resumed."""
    run, ctx = execution.run, execution.flow
    prior = ctx.prior.get(run.position)
    if prior is not None and _same_call(prior, run):
        try:
            value = results.load(prior.result, ctx.blobs)  # type: ignore[arg-type]
        except Exception:
            return None
        return State(StateName.COMPLETED, prior.state_message, value=value)
    old = ctx.resumed.get(run.position)
    if old is not None and _same_call(old, run):
        return execution.answer_from(old.result, f"resumed from {ctx.resumed_from}")
    return None


def _same_call(old: TaskRun, new: TaskRun) -> bool:
    return (
        old.task_key == new.task_key
        and old.inputs_hash is not None
        and (old.inputs_hash == new.inputs_hash)
    )


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
