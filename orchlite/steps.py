"""A task run's steps, and the two ways to drive them.

The engine writes a task run as a generator of steps: it yields each function body it needs
executed (a `Body`) and each wait between attempts (a `Pause`), and gets back the body's
value, or has its exception thrown in. So the same code serves two drivers:

- `run_steps` drives a task run in the calling thread: a body is a plain call. Direct task
  calls and the thread and process-pool runners use it.
- `StepDriver` drives a task run on a runner that starts bodies without waiting for them
  (`TaskRunner.starts_bodies`: Dask). A step runs in one of the runner's orchestrating
  threads until it yields a body; the runner sends the body off and the thread is free
  again; the body's completion schedules the next step. A thousand task runs waiting for
  their bodies hold no thread, and their bodies reach the cluster together.
- `arun_steps` drives a task run of an `async def` task on the caller's event loop: a body
  is awaited, a pause is an `asyncio.sleep`, and a blocking step (waiting for a
  concurrency slot) goes to a thread, so other coroutines on the loop go on meanwhile.

The first two drivers are threads: an async body reaching them runs to completion in an
event loop of its own (`Body.blocking`), as a `.submit()`ted async task does in Prefect.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextvars
import functools
import threading
import time
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, NamedTuple

from .errors import TaskTimeoutError
from .states import State
from .timeouts import timeout_message

if TYPE_CHECKING:
    from .task_runners import TaskRunner


class Body(NamedTuple):
    """A function body to execute for the task run named `name`."""

    fn: Callable[..., Any]
    bound: Any
    timeout: float | None
    name: str
    is_async: bool = False
    """`fn` is an `async def`: calling it gives a coroutine to run."""

    @property
    def what(self) -> str:
        return f"Task run {self.name!r}"

    def blocking(self) -> Body:
        """This body as a plain call, for a driver that runs bodies in threads: an async
        one runs in an event loop of its own, its timeout enforced there."""
        if not self.is_async:
            return self
        fn = functools.partial(run_coroutine_function, self.fn, self.timeout, self.what)
        return Body(fn, self.bound, None, self.name)


class Pause(NamedTuple):
    """Wait this long before the next step (the delay before a retry)."""

    seconds: float


class Blocking(NamedTuple):
    """Call `fn()`, which may block for long (waiting for a concurrency slot), and send
    back what it returns."""

    fn: Callable[[], Any]


Steps = Generator["Body | Pause | Blocking", Any, State]


def run_steps(steps: State | Steps, call: Callable[[Body], Any]) -> State:
    """Drive `steps` to the end in this thread, executing each body with `call` (a task run
    answered without running, e.g. from the cache, comes as its state)."""
    if isinstance(steps, State):
        return steps
    try:
        request = steps.send(None)
        while True:
            if isinstance(request, Pause):
                time.sleep(request.seconds)
                request = steps.send(None)
                continue
            try:
                value = request.fn() if isinstance(request, Blocking) else call(request)
            except BaseException as exc:
                request = steps.throw(exc)
            else:
                request = steps.send(value)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


async def arun_steps(steps: State | Steps, call: Callable[[Body], Awaitable[Any]]) -> State:
    """Drive `steps` to the end on the running event loop, awaiting each body's `call`."""
    if isinstance(steps, State):
        return steps
    try:
        request = steps.send(None)
        while True:
            if isinstance(request, Pause):
                await asyncio.sleep(request.seconds)
                request = steps.send(None)
                continue
            try:
                if isinstance(request, Blocking):
                    value = await asyncio.to_thread(request.fn)
                else:
                    value = await call(request)
            except BaseException as exc:
                request = steps.throw(exc)
            else:
                request = steps.send(value)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


async def await_body(body: Body) -> Any:
    """Run an async body on the running loop; past its timeout it is cancelled and
    TaskTimeoutError raised, with Prefect's words."""
    bound = body.bound
    plain = type(bound) is dict
    coroutine = body.fn(**bound) if plain else body.fn(*bound.args, **bound.kwargs)
    return await with_timeout(coroutine, body.timeout, body.what, TaskTimeoutError)


async def with_timeout(
    coroutine: Awaitable[Any],
    timeout: float | None,
    what: str,
    error: type[TaskTimeoutError] = TaskTimeoutError,
) -> Any:
    """Await `coroutine`; past `timeout` seconds cancel it and raise `error`."""
    if timeout is None:
        return await coroutine
    try:
        return await asyncio.wait_for(coroutine, timeout)
    except asyncio.TimeoutError:
        raise error(timeout_message(what, timeout)) from None


def run_coroutine_function(
    fn: Callable[..., Awaitable[Any]],
    timeout: float | None,
    what: str,
    *args: Any,
    **kwargs: Any,
) -> Any:
    """Call an async function to the end in a new event loop in this thread (picklable by
    reference, so it reaches worker processes and Dask workers as it is)."""
    return asyncio.run(with_timeout(fn(*args, **kwargs), timeout, what))


class StepDriver:
    """Drives one task run's steps on a runner that starts bodies without waiting.

    Every step runs inside `context` (the submitting call's copy), so context variables the
    steps set, such as the current task run, hold from one step to the next whatever thread
    runs it. A context can be entered by one thread at a time, and a body may finish before
    the step that sent it has returned: then the thread finishing that step runs the next
    one too, so steps never overlap. `outcome` gets the final state, or the exception the
    steps ended with.
    """

    def __init__(
        self, runner: TaskRunner, context: contextvars.Context, outcome: cf.Future[State]
    ) -> None:
        self.runner = runner
        self.context = context
        self.outcome = outcome
        self._steps: Steps | None = None
        self._lock = threading.Lock()
        self._running = False
        self._next: Callable[[], None] | None = None

    def start(self, first: Callable[[], State | Steps]) -> None:
        """Run the first step here: `first()` gives the steps, or the state of a task run
        answered without running."""
        self._run(lambda: self._begin(first))

    def _run(self, step: Callable[[], None]) -> None:
        with self._lock:
            if self._running:
                self._next = step
                return
            self._running = True
        current: Callable[[], None] | None = step
        while current is not None:
            try:
                self.context.run(current)
            except BaseException as exc:  # not raised by the steps: never leave them hanging
                if not self.outcome.done():
                    self.outcome.set_exception(exc)
            with self._lock:
                current, self._next = self._next, None
                if current is None:
                    self._running = False

    def _begin(self, first: Callable[[], State | Steps]) -> None:
        try:
            steps = first()
        except BaseException as exc:
            self.outcome.set_exception(exc)
            return
        if isinstance(steps, State):
            self.outcome.set_result(steps)
        else:
            self._steps = steps
            self._advance(None, None)

    def _advance(self, value: Any, error: BaseException | None) -> None:
        steps = self._steps
        assert steps is not None
        try:
            while True:
                request = steps.send(value) if error is None else steps.throw(error)
                value = error = None
                if isinstance(request, Pause):
                    timer = threading.Timer(request.seconds, self._wake)
                    timer.daemon = True
                    timer.start()
                    return
                if isinstance(request, Blocking):
                    try:
                        value = request.fn()
                    except BaseException as exc:
                        error = exc
                    continue
                body = request.blocking()
                try:
                    pending = self.runner.start_body(body.fn, body.bound, body.timeout, body.what)
                except BaseException as exc:
                    # Arguments that cannot be pickled, a runner that stopped (CancelledRun):
                    # the steps record how the task run ends.
                    error = exc
                    continue
                pending.add_done_callback(self._body_done)
                return
        except StopIteration as stop:
            self.outcome.set_result(stop.value)
        except BaseException as exc:
            self.outcome.set_exception(exc)

    def _wake(self) -> None:
        self.runner.call_soon(lambda: self._run(lambda: self._advance(None, None)))

    def _body_done(self, reply: cf.Future[Any]) -> None:
        self.runner.call_soon(lambda: self._run(lambda: self._resume(reply)))

    def _resume(self, reply: cf.Future[Any]) -> None:
        try:
            value = self.runner.finish_body(reply.result())
        except BaseException as exc:
            self._advance(None, exc)
        else:
            self._advance(value, None)
