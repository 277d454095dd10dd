"""Run one flow call: its run, attempts, timeout, futures, hooks and final state.

A flow call creates a flow run (or adopts one claimed ahead by a scheduler) and runs the body
with a FlowRunContext set; the task calls inside it go through `task_engine`. A flow-level
retry runs the body again in the same run, answering the task calls that completed in an
earlier attempt from their results; `resume_from` does the same across runs (`orch retry`).
A flow timeout interrupts the body (see `orchlite.timeouts`) and refuses later task calls
from a body that could not be stopped.

Terminal states are final. If another process ends the run first (the reaper took a host
that stalled for minutes for dead, and marked the run CRASHED), this process notices within
half a second of resuming (the recorder's poll), logs a warning saying so, and stops as if
cancelled: no new task run starts, nothing more of the run or its task runs is recorded,
no hooks run, and the call raises CancelledRun, so `orch run` exits non-zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import futures, secrets, timeouts
from .config import project_root
from .context import FlowRunContext, flow_run_var, open_store
from .errors import CancelledRun, FlowTimeoutError, OrchError, SuspendedRun
from .logging import (
    capture_prints,
    ensure_logging,
    flow_run_logger,
    get_run_logger,
    restore_prints,
)
from .output_capture import captured_output
from .params import call_form
from .recorder import recorder
from .retries import delay_before_retry, delays_for
from .run_support import (
    describe,
    error_fields,
    error_text,
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
from .states import SUCCESS, State, StateName, StateType, returned_state
from .steps import with_timeout
from .store import EngineStore, StoredResult, TaskRun
from .task_runners import call_with_timeout

if TYPE_CHECKING:
    from .flows import Flow

HOST = socket.gethostname()


def run_flow(
    flow: Flow[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    run_id: str | None = None,
    target: str | None = None,
    trigger: str = "manual",
    refresh_cache: bool = False,
    resume_from: str | None = None,
    run_options: str | None = None,
    parameters: dict[str, Any] | None = None,
    home: Path | None = None,
) -> Any:
    """Run `flow` with these arguments as a new flow run (or the pre-created `run_id`);
    `run_options` (JSON) is recorded as how the run started (`shell_jobs.RunOptions`).
    `parameters` are the call's arguments bound already (`executor.run_target` binds and
    converts them before anything is recorded), used as they are instead of `args`.
    `home` is the store a top-level run records into (default: `config.find_home`)."""
    return_state = bool(kwargs.pop("return_state", False))
    blocked = _wait_for_upstream(kwargs.pop("wait_for", None))
    ensure_logging()
    parent = flow_run_var.get()
    if parent is not None and parent.stopped():
        raise CancelledRun("the parent flow run was cancelled")
    if parameters is None:
        parameters = _bind_flow_parameters(flow, args, kwargs)
    secrets.register_declared(flow.secrets)  # before anything is recorded
    store, blobs = (parent.store, parent.blobs) if parent else open_store(home)
    if parent is None:
        from .alerting import enable

        enable()  # also for a flow file run with `python` (see `alerting`)

    from .params import jsonable_parameters

    params_json = to_json(jsonable_parameters(parameters))
    parent_position = None
    if parent is not None:
        parent_position, _ = parent.next_position(f"subflow:{flow.name}")
        refresh_cache = refresh_cache or parent.refresh_cache
    run_name = render_name(flow.flow_run_name, parameters) or flow.name
    run_id = run_id or new_run_id()
    if target is None and parent is None:
        target = target_of(flow, store.home)
    delays = delays_for(flow.retry_delay_seconds, flow.retries)
    attempt = store.create_flow_run(
        run_id=run_id,
        flow_name=flow.name,
        name=run_name,
        parameters=params_json,
        target=target,
        trigger="subflow" if parent else trigger,
        parent_run_id=parent.run_id if parent else None,
        parent_position=parent_position,
        retry_of=resume_from,
        tags=to_json(sorted(current_tags())),
        pid=os.getpid(),
        host=HOST,
        run_options=None if parent else run_options,
        # Started at once unless an upstream future failed: then it fails from PENDING.
        start=blocked is None,
        deadline=time.time() + flow.timeout_seconds if flow.timeout_seconds else None,
        # Read by the daemon to retry the run in the store if its process dies.
        retry_policy=(
            json.dumps({"retries": flow.retries, "delays": delays})
            if flow.retries and parent is None
            else None
        ),
        # A run the daemon scheduled to retry a crashed one continues its chain's attempt
        # count, so the flow's `retries` bounds the whole chain.
        continues_chain=resume_from is not None and parent is None,
    )
    ctx = FlowRunContext(
        flow=flow,
        run_id=run_id,
        run_name=run_name,
        parameters=parameters,
        store=store,
        blobs=blobs,
        refresh_cache=refresh_cache,
        log_prints=bool(flow.log_prints),
        parent=parent,
        task_runner=flow.task_runner,
        declared_secrets=frozenset(flow.secrets),
    )
    if resume_from is not None:
        ctx.resumed_from = resume_from
        ctx.resumed = _succeeded_tasks(store, resume_from)
    elif parent is None and store.pause_of(run_id) is not None:
        # A suspended run started again (`orchlite.daemon.suspended`): what completed
        # before it was suspended answers from its results, as in an attempt's retry.
        ctx.prior = _succeeded_tasks(store, run_id)
    elif parent is not None and parent.resumed_from is not None:
        old_child = _resumed_subflow(parent, parent_position)
        if old_child is not None:
            ctx.resumed_from = old_child
            ctx.resumed = _succeeded_tasks(store, old_child)
    token = flow_run_var.set(ctx)
    recorder.track_flow(store, run_id, _stop_when_told(ctx))
    try:
        with captured_output(ctx):
            if blocked is not None:
                failed = State(StateName.FAILED, error_text(blocked), exception=blocked)
                state = _finish_flow(flow, ctx, failed, flow.on_failure_hooks)
                returned = NOT_RETURNED
            else:
                state, returned = _run_flow_attempts(flow, ctx, attempt, delays)
    finally:
        recorder.untrack_flow(run_id)
        recorder.flush()
        flow_run_var.reset(token)
    if return_state:
        return state
    if returned is not NOT_RETURNED and not isinstance(returned, State):
        return returned  # as in Prefect, even when the states it holds failed the run
    return state.result()


def _wait_for_upstream(wait_for: Any) -> Exception | None:
    """Wait for the futures in a flow call's `wait_for`; the error that keeps the flow from
    running when one of them failed (outside `allow_failure(...)`), else None."""
    if wait_for is None:
        return None
    try:
        futures.resolve(wait_for, [], states=True)
    except (futures.UpstreamFailed, futures.InputResolutionError) as exc:
        return exc
    return None


def _run_flow_attempts(
    flow: Flow[..., Any], ctx: FlowRunContext, attempt: int, delays: list[float]
) -> tuple[State, Any]:
    """The run's final state and the body's return value (futures replaced by states);
    the run was created RUNNING in its `attempt`."""
    store: EngineStore = ctx.store
    log.info("Beginning flow run %r for flow %r", ctx.run_name, flow.name, extra=run_label(ctx))
    while True:
        ctx.restart_positions()
        ctx.futures.clear()
        if flow.on_running_hooks:
            running = State(StateName.RUNNING)
            run_hooks(flow.on_running_hooks, flow, store.get_flow_run(ctx.run_id), running)
        prints = capture_prints(ctx.log_prints)
        try:
            arguments = call_form(flow.signature, ctx.parameters)
            if flow.is_async:
                value = call_with_timeout(_async_body(flow), arguments, None, "Flow run")
            else:
                value = call_with_timeout(
                    flow.fn, arguments, flow.timeout_seconds, "Flow run", FlowTimeoutError
                )
            ctx.shutdown_runner(wait=True)  # every submitted task run ends with the flow
            if ctx.stopped():  # cancelled while the body waited on task runs it cut short
                raise CancelledRun("the flow run was cancelled")
            value = futures.resolve_futures_to_states(value)
        except CancelledRun as exc:
            return _end_cancelled(flow, ctx, error_text(exc) or "cancelled", exc), NOT_RETURNED
        except KeyboardInterrupt as exc:
            _end_cancelled(flow, ctx, str(exc) or "interrupted (Ctrl-C)", exc)
            raise
        except SuspendedRun:  # the run stays PAUSED, to start again once resumed
            ctx.shutdown_runner(wait=True)
            raise
        except timeouts.Interrupted as exc:  # a subflow, when its parent's timeout passed
            _end_cancelled(flow, ctx, "interrupted: an enclosing run exceeded its timeout", exc)
            raise
        except Exception as exc:
            timed_out = isinstance(exc, FlowTimeoutError)
            if not timed_out and ctx.stopped():
                # The body failed on task runs that its cancellation cut short.
                state = _end_cancelled(flow, ctx, "the flow run was cancelled", exc)
                return state, NOT_RETURNED
            if timed_out:
                ctx.cancelled.set()
            ctx.shutdown_runner(wait=not timed_out)
            if attempt <= flow.retries and not timed_out:
                delay = delay_before_retry(delays, attempt)
                message = f"attempt {attempt} failed ({describe(exc)}); retrying in {delay:g} s"
                store.set_flow_run_state(
                    ctx.run_id, StateName.RETRYING, message, retry_due=time.time() + delay
                )
                log.warning("%s", message, extra=run_label(ctx))
                time.sleep(delay)
                attempt += 1
                store.set_flow_run_state(ctx.run_id, StateName.RUNNING, attempts=attempt)
                ctx.prior = _succeeded_tasks(store, ctx.run_id)
                continue
            kind = StateName.TIMED_OUT if timed_out else StateName.FAILED
            state = State(kind, error_text(exc) if timed_out else describe(exc), exception=exc)
            return _finish_flow(flow, ctx, state, flow.on_failure_hooks, exc), NOT_RETURNED
        except BaseException as exc:  # SystemExit and the like: the run cannot go on
            ctx.cancelled.set()
            ctx.shutdown_runner(wait=False)
            state = State(StateName.CRASHED, describe(exc), exception=exc)
            _finish_flow(flow, ctx, state, flow.on_crashed_hooks)
            raise
        finally:
            restore_prints(prints)
        return _finish_returned(flow, ctx, value), value


def _async_body(flow: Flow[..., Any]) -> Callable[..., Any]:
    """An `async def` flow body as a plain call: it runs in an event loop of its own in the
    run's thread, where its awaited task calls run too; its timeout cancels it there."""

    def body(*args: Any, **kwargs: Any) -> Any:
        coroutine = flow.fn(*args, **kwargs)
        return asyncio.run(
            with_timeout(coroutine, flow.timeout_seconds, "Flow run", FlowTimeoutError)
        )

    return body


def run_flow_async(
    flow: Flow[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Coroutine[Any, Any, Any]:
    """A call of an `async def` flow: the coroutine that runs it.

    The run goes on in a thread of its own (its body in that thread's event loop), so the
    caller's loop is free meanwhile, and an async subflow is awaited like any coroutine.
    Cancelling the awaiting task (Ctrl-C in `asyncio.run`) interrupts the run, recorded
    CANCELLED, before the cancellation goes on.
    """

    async def run() -> Any:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Any] = loop.create_future()
        context = contextvars.copy_context()

        def settle(value: Any, error: BaseException | None) -> None:
            # Not after the caller gave up: an exception nobody retrieves is logged when
            # the future is collected, at whatever moment that is.
            if not done.done():
                done.set_exception(error) if error is not None else done.set_result(value)

        def target() -> None:
            try:
                value, error = context.run(run_flow, flow, args, kwargs), None
            except BaseException as exc:
                value, error = None, exc
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(settle, value, error)

        thread = threading.Thread(target=target, name=f"orch-flow-{flow.name}", daemon=True)
        thread.start()
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            done.cancel()
            if thread.ident is not None:
                timeouts.raise_in_thread(thread.ident, KeyboardInterrupt)
            thread.join(timeout=10)
            raise

    return run()


NOT_RETURNED: Any = object()
"""Stands for the return value of a flow body that raised."""


def _finish_returned(flow: Flow[..., Any], ctx: FlowRunContext, value: Any) -> State:
    """End the run in the state its return value gives, by Prefect's rules (see
    `states.returned_state`; returned futures were replaced by their states). Task runs the
    body neither returned nor raised from do not decide the flow's state.
    """
    state = returned_state(value) or State(StateName.COMPLETED, None, value=value)
    if not state.is_completed():
        hooks = _HOOKS_BY_TYPE.get(state.type)
        return _finish_flow(flow, ctx, state, getattr(flow, hooks) if hooks else [])
    try:
        stored = persist_result(state.data, flow.result_serializer, flow.persist_result, ctx)
    except OrchError as exc:
        if flow.persist_result is not None:
            failed = State(StateName.FAILED, error_text(exc), exception=exc)
            return _finish_flow(flow, ctx, failed, flow.on_failure_hooks, exc)
        # Flows often return live objects; only an explicit persist_result=True makes an
        # unserializable return value a failure.
        log.warning("Result not persisted: %s", exc, extra=run_label(ctx))
        stored = None
    return _finish_flow(flow, ctx, state, flow.on_completion_hooks, result=stored)


_HOOKS_BY_TYPE = {
    StateType.FAILED: "on_failure_hooks",
    StateType.CRASHED: "on_crashed_hooks",
    StateType.CANCELLED: "on_cancellation_hooks",
}


def _end_cancelled(
    flow: Flow[..., Any], ctx: FlowRunContext, message: str, exc: BaseException
) -> State:
    ctx.cancelled.set()
    ctx.shutdown_runner(wait=False)
    state = State(StateName.CANCELLED, message, exception=exc)
    return _finish_flow(flow, ctx, state, flow.on_cancellation_hooks)


def _finish_flow(
    flow: Flow[..., Any],
    ctx: FlowRunContext,
    state: State,
    hooks: list[Callable[..., Any]],
    exc: BaseException | None = None,
    result: StoredResult | None = None,
) -> State:
    if state.is_completed():
        log.info("Finished in state %s", state.name, extra=run_label(ctx))
    else:
        log.error("Finished in state %s: %s", state.name, state.message, extra=run_label(ctx))
    if exc is not None:
        get_run_logger(orch_log_only=True).error(
            "Encountered exception during execution:\n%s", error_fields(exc)[2]
        )
    state.from_run = True
    recorder.flush()
    ctx.ending = True
    stored = ctx.store.set_flow_run_state(
        ctx.run_id, state.stored_name, state.stored_message, result=result
    )
    if not stored:
        return _ended_elsewhere(ctx, state)
    notify_listeners("flow", ctx.run_id)
    if hooks:
        run = ctx.store.get_flow_run(ctx.run_id)
        run_hooks(hooks, flow, run, state)
    return state


def _stop_when_told(ctx: FlowRunContext) -> Callable[[str], None]:
    """What the recorder calls while the run's recorded state says it must stop."""
    told: list[str] = []

    def stop(state: str) -> None:
        if ctx.ending:
            return  # the end this process is recording (or just recorded)
        if state != StateName.CANCELLING.value and not told:
            told.append(state)
            run = ctx.store.get_flow_run(ctx.run_id)
            why = f" ({run.state_message})" if run.state_message else ""
            flow_run_logger(ctx).warning(
                "This run was ended %s by another process%s while this one went unseen;"
                " stopping it here without recording anything more",
                state,
                why,
            )
        ctx.cancel()

    return stop


def _ended_elsewhere(ctx: FlowRunContext, state: State) -> State:
    """The run had already ended when this process came to record `state`: that stands."""
    run = ctx.store.get_flow_run(ctx.run_id)
    message = f"flow run {ctx.run_id[:8]} had already ended {run.state}"
    flow_run_logger(ctx).warning(
        "Not recorded: this process ended the run %s, but it had already ended %s%s",
        state.name,
        run.state,
        f" ({run.state_message})" if run.state_message else "",
    )
    recorder.flush()
    return State(StateType(run.state), run.state_message, exception=CancelledRun(message))


def target_of(flow: Flow[..., Any], home: Path) -> str | None:
    """`file.py:function` for a flow run outside `orch run`, so `orch retry` can find it."""
    fn = flow.fn
    source = getattr(getattr(fn, "__code__", None), "co_filename", None)
    if not source or fn.__qualname__ != fn.__name__ or not os.path.exists(source):
        return None
    path = Path(source).resolve()
    root = project_root(home).resolve()
    if path.is_relative_to(root):
        path = path.relative_to(root)
    return f"{path.as_posix()}:{fn.__name__}"


def _bind_flow_parameters(
    flow: Flow[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    from .params import bind_parameters, call_arguments

    bound = flow.signature.bind_partial(*args, **kwargs)
    given = call_arguments(flow.signature, bound.arguments)
    if flow.validate_parameters:
        return bind_parameters(flow.fn, given, flow_name=flow.name)
    full = flow.signature.bind(*args, **kwargs)
    full.apply_defaults()
    return call_arguments(flow.signature, full.arguments)


def _succeeded_tasks(store: EngineStore, run_id: str) -> dict[int, TaskRun]:
    return {
        run.position: run
        for run in store.task_runs(run_id, with_results=True)
        if run.state in SUCCESS and run.result_serializer is not None
    }


def _resumed_subflow(parent: FlowRunContext, position: int | None) -> str | None:
    for child in parent.store.child_flow_runs(parent.resumed_from or ""):
        if child.parent_position == position:
            return child.id
    return None


# -- tasks --------------------------------------------------------------------------------
